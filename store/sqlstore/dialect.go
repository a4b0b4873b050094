package sqlstore

// What differs between PostgreSQL and SQLite: how a driver is recognised,
// the placeholders, and how to read the database's clock. Every statement
// is written once.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Dialect is the SQL database a Store talks to.
type Dialect int

const (
	// Detect recognises the database from the driver, or by asking it.
	Detect Dialect = iota
	// PostgreSQL, version 9.5 or later (INSERT ... ON CONFLICT).
	PostgreSQL
	// SQLite, version 3.24 or later (upsert).
	SQLite
)

func (d Dialect) String() string {
	switch d {
	case PostgreSQL:
		return "PostgreSQL"
	case SQLite:
		return "SQLite"
	}
	return "Detect"
}

const setupTimeout = 30 * time.Second

// detect tells the database from the driver's package, else by asking it.
func detect(ctx context.Context, db *sql.DB, d Dialect) (Dialect, error) {
	if d != Detect {
		return d, nil
	}
	pkg := strings.ToLower(reflect.Indirect(reflect.ValueOf(db.Driver())).Type().PkgPath())
	switch {
	case strings.Contains(pkg, "sqlite"):
		return SQLite, nil
	case strings.Contains(pkg, "pgx"), strings.Contains(pkg, "lib/pq"), strings.Contains(pkg, "postgres"):
		return PostgreSQL, nil
	}
	var v string
	if db.QueryRowContext(ctx, "SELECT sqlite_version()").Scan(&v) == nil {
		return SQLite, nil
	}
	if db.QueryRowContext(ctx, "SELECT current_setting('server_version_num')").Scan(&v) == nil {
		return PostgreSQL, nil
	}
	return Detect, fmt.Errorf("sqlstore: cannot tell the database behind driver %q; use WithDialect", pkg)
}

// queries are a Store's statements, for its dialect and tables.
type queries struct {
	create                   []string
	exists                   string
	load, save, del, version string
	lock, unlock             string
	keys                     string
}

func newQueries(d Dialect, table string) queries {
	locks := table + "_locks"
	now := "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
	if d == SQLite {
		now = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
	}
	q := queries{
		create: []string{
			"CREATE TABLE IF NOT EXISTS " + table + " (store_key TEXT PRIMARY KEY, token TEXT NOT NULL, " +
				"version BIGINT NOT NULL, updated_ms BIGINT NOT NULL)",
			"CREATE TABLE IF NOT EXISTS " + locks + " (store_key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_ms BIGINT NOT NULL)",
		},
		exists:  "SELECT (SELECT COUNT(*) FROM " + table + " WHERE 1 = 0) + (SELECT COUNT(*) FROM " + locks + " WHERE 1 = 0)",
		load:    "SELECT token FROM " + table + " WHERE store_key = $1",
		version: "SELECT version FROM " + table + " WHERE store_key = $1",
		save: "INSERT INTO " + table + " AS cur (store_key, token, version, updated_ms) VALUES ($1, $2, 1, " + now + ") " +
			"ON CONFLICT (store_key) DO UPDATE SET token = excluded.token, version = cur.version + 1, updated_ms = excluded.updated_ms",
		del: "DELETE FROM " + table + " WHERE store_key = $1",
		// Taken when absent or expired; zero rows affected when held.
		lock: "INSERT INTO " + locks + " AS cur (store_key, owner, expires_ms) VALUES ($1, $2, " + now + " + $3) " +
			"ON CONFLICT (store_key) DO UPDATE SET owner = excluded.owner, expires_ms = excluded.expires_ms " +
			"WHERE cur.expires_ms <= " + now,
		unlock: "DELETE FROM " + locks + " WHERE store_key = $1 AND owner = $2",
		keys:   "SELECT store_key FROM " + table + " WHERE store_key > $1 ORDER BY store_key LIMIT $2",
	}
	if d == SQLite { // numbered parameters are ?N in SQLite
		for _, p := range []*string{&q.load, &q.version, &q.save, &q.del, &q.lock, &q.unlock, &q.keys} {
			*p = strings.ReplaceAll(*p, "$", "?")
		}
	}
	return q
}

// setUp creates the tables (or checks they exist). Two processes creating
// them at once may collide in PostgreSQL's catalog: the loser tries again.
func (s *Store) setUp(ctx context.Context, create bool) error {
	if create {
		var err error
		for range 3 {
			if err = s.createTables(ctx); err == nil {
				break
			}
		}
		if err != nil {
			return fmt.Errorf("sqlstore: creating tables: %w", err)
		}
	}
	var n int64
	if err := s.db.QueryRowContext(ctx, s.q.exists).Scan(&n); err != nil {
		return fmt.Errorf("sqlstore: the token and lock tables are not usable: %w", err)
	}
	return nil
}

func (s *Store) createTables(ctx context.Context) error {
	var errs []error
	for _, stmt := range s.q.create {
		if _, err := s.db.ExecContext(ctx, stmt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
