// Package sqlstore keeps tokens in a SQL database through database/sql,
// on PostgreSQL or SQLite, shared by every process that opens the same
// database, with a lock so that one process refreshes while the others
// wait for its result.
//
// The driver is the caller's choice: this package imports only
// database/sql. It knows PostgreSQL (pgx's stdlib, lib/pq) and SQLite
// (modernc.org/sqlite, mattn/go-sqlite3) from the driver, or from
// [WithDialect].
//
// # Schema
//
// New creates two tables when they are missing ([WithoutCreateTable] turns
// that off, for schemas managed by migrations). With the default name:
//
//	CREATE TABLE oauthtransport_tokens (
//		store_key  TEXT PRIMARY KEY, -- the store key, encoded when needed (below)
//		token      TEXT NOT NULL,    -- store.MarshalToken's versioned JSON
//		version    BIGINT NOT NULL,  -- 1 on the first save, one more on each
//		updated_ms BIGINT NOT NULL   -- the database's clock, Unix milliseconds
//	);
//	CREATE TABLE oauthtransport_tokens_locks (
//		store_key  TEXT PRIMARY KEY,
//		owner      TEXT NOT NULL,    -- random, one per Lock call
//		expires_ms BIGINT NOT NULL   -- the database's clock, Unix milliseconds
//	);
//
// A key that is not empty, is valid UTF-8 without NUL, does not start with "~" and is at
// most 1000 bytes is stored as it is; any other key of at most 700 bytes as
// "~" and its unpadded base64url; a longer one as "~#" and the base64url of
// its SHA-256 (such a key works, but Keys cannot list it). Every key a
// Store accepts fits a text column and its index.
//
// Lock expiry reads the database's clock, never the processes' own, so
// clock skew between machines cannot hand a lock to two holders.
//
// database/sql keeps only 2 idle connections by default: with more
// concurrent refreshes than that, raise it (db.SetMaxIdleConns) or each
// refresh opens a connection again.
//
// SQLite: open a file, not ":memory:" (each pooled connection would get
// its own empty database), with a busy timeout so that writers wait for
// each other, e.g. with modernc.org/sqlite
// "file:tokens.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)".
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// DefaultTable is the token table's name unless [WithTable] says otherwise;
// the lock table's name adds "_locks".
const DefaultTable = "oauthtransport_tokens"

// Store is a [store.Store] and [store.Locker] on a SQL database. It is safe
// for concurrent use, and does not close the *sql.DB.
type Store struct {
	db *sql.DB
	q  queries
}

// Option configures a Store.
type Option func(*config)

type config struct {
	table   string
	dialect Dialect
	create  bool
}

// WithTable names the token table (default DefaultTable), optionally
// schema-qualified ("auth.tokens"); the lock table's name adds "_locks".
// Letters, digits and underscores only.
func WithTable(name string) Option { return func(c *config) { c.table = name } }

// WithoutCreateTable makes New check that the tables exist instead of
// creating them: for schemas managed by migrations (see the package
// documentation for the schema).
func WithoutCreateTable() Option { return func(c *config) { c.create = false } }

// WithDialect says which database the *sql.DB talks to, for a driver New
// does not recognise.
func WithDialect(d Dialect) Option { return func(c *config) { c.dialect = d } }

var tableName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// New returns a Store on db, creating its tables when they are missing.
// It fails when the name given to WithTable is not a plain identifier,
// when the database cannot be told apart, or when the tables cannot be
// created (or, with WithoutCreateTable, are missing).
func New(db *sql.DB, opts ...Option) (*Store, error) {
	c := config{table: DefaultTable, create: true}
	for _, o := range opts {
		o(&c)
	}
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	if !tableName.MatchString(c.table) {
		return nil, fmt.Errorf("sqlstore: table name %q: only letters, digits and underscores, optionally schema.table", c.table)
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	d, err := detect(ctx, db, c.dialect)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, q: newQueries(d, c.table)}
	if err := s.setUp(ctx, c.create); err != nil {
		return nil, err
	}
	return s, nil
}

// Load returns the token saved under key, or an error matching
// [store.ErrNotFound].
func (s *Store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	var data string
	err := s.db.QueryRowContext(ctx, s.q.load, encodeKey(key)).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: loading key %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading key %q: %w", key, err)
	}
	tok, err := store.UnmarshalToken([]byte(data))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: loading key %q: %w", key, err)
	}
	return tok, nil
}

// Save stores tok under key in one statement (an upsert), adding one to
// the row's version.
func (s *Store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	data, err := store.MarshalToken(tok)
	if err != nil {
		return fmt.Errorf("sqlstore: saving key %q: %w", key, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q.save, encodeKey(key), string(data)); err != nil {
		return fmt.Errorf("sqlstore: saving key %q: %w", key, err)
	}
	return nil
}

// Delete removes the token saved under key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, s.q.del, encodeKey(key)); err != nil {
		return fmt.Errorf("sqlstore: deleting key %q: %w", key, err)
	}
	return nil
}

// Version returns the version of the row under key: 1 after its first
// save, one more after each. It is 0, with an error matching
// store.ErrNotFound, when there is no row.
func (s *Store) Version(ctx context.Context, key string) (int64, error) {
	var v int64
	err := s.db.QueryRowContext(ctx, s.q.version, encodeKey(key)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("sqlstore: version of key %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("sqlstore: version of key %q: %w", key, err)
	}
	return v, nil
}
