package drivertest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/goleak"
	_ "modernc.org/sqlite"

	"github.com/oauthtransport/oauthtransport/internal/pgtest"
)

func TestMain(m *testing.M) {
	if runChild() { // a fleet member started by a test
		return
	}
	code := m.Run()
	stopPostgres()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// One PostgreSQL cluster serves the package's tests; each store gets
// tables of its own.
var (
	pgOnce sync.Once
	pgSrv  *pgtest.Server
	pgErr  error
)

func postgres(t testing.TB) *pgtest.Server {
	t.Helper()
	pgOnce.Do(func() { pgSrv, pgErr = pgtest.Run() })
	if pgErr == pgtest.ErrNotInstalled && os.Getenv("CI") != "true" {
		t.Skip(pgErr)
	}
	if pgErr != nil {
		t.Fatal(pgErr)
	}
	return pgSrv
}

func stopPostgres() {
	if pgSrv != nil {
		pgSrv.Stop()
	}
}

// openPostgres opens the test cluster, closed when t ends.
func openPostgres(t testing.TB) *sql.DB {
	return open(t, "pgx", postgres(t).DSN())
}

// openSQLite opens a new SQLite file the way the package documentation
// says, closed when t ends.
func openSQLite(t testing.TB, dir string) *sql.DB {
	if dir == "" {
		dir = t.TempDir()
	}
	dsn := "file:" + filepath.Join(dir, "tokens.db") + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"
	return open(t, "sqlite", dsn)
}

func open(t testing.TB, driver, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

var tables atomic.Int64

// table is a fresh table name.
func table() string { return fmt.Sprintf("tokens_%d_%d", os.Getpid(), tables.Add(1)) }
