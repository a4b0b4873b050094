package drivertest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
	"github.com/oauthtransport/oauthtransport/store/storetest"
)

// databases are the two the package supports, each opened for a test.
var databases = []struct {
	name string
	open func(t *testing.T) *sql.DB
}{
	{"PostgreSQL", func(t *testing.T) *sql.DB { return openPostgres(t) }},
	{"SQLite", func(t *testing.T) *sql.DB { return openSQLite(t, "") }},
}

func newStore(t *testing.T, db *sql.DB, opts ...sqlstore.Option) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.New(db, append([]sqlstore.Option{sqlstore.WithTable(table())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			db := d.open(t)
			storetest.Run(t, func(t *testing.T) store.Store { return newStore(t, db) })
		})
	}
}

// Every key a Store accepts works, and different keys stay apart: NUL,
// invalid UTF-8, a key that looks like an encoded one, a very long key.
func TestAnyKeyWorks(t *testing.T) {
	keys := []string{"plain", "tenant/42", "with\x00nul", "bad\xffutf8", "~looks-encoded", strings.Repeat("k", 5000),
		strings.Repeat("k", 4999) + "j", "", "ünïcode 🔑"}
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, d.open(t))
			for i, k := range keys {
				if err := s.Save(ctx, k, &oauth2.Token{AccessToken: "at-" + string(rune('a'+i))}); err != nil {
					t.Fatalf("Save key #%d: %v", i, err)
				}
			}
			for i, k := range keys {
				tok, err := s.Load(ctx, k)
				if err != nil {
					t.Fatalf("Load key #%d: %v", i, err)
				}
				if want := "at-" + string(rune('a'+i)); tok.AccessToken != want {
					t.Errorf("key #%d holds %q, want %q", i, tok.AccessToken, want)
				}
				if _, err := s.Lock(ctx, k, time.Second); err != nil {
					t.Errorf("Lock key #%d: %v", i, err)
				}
			}
			listed := map[string]bool{}
			for k, err := range s.Keys(ctx, "") {
				require.NoError(t, err)
				listed[k] = true
			}
			for i, k := range keys {
				if want := len(k) <= 700 || !strings.HasPrefix(k, "kkk"); listed[k] != want {
					t.Errorf("key #%d (%d bytes) listed: %v, want %v (only long keys kept as a hash are not)", i, len(k), listed[k], want)
				}
			}
		})
	}
}

// Keys pages through the table: every key once, whatever the count.
func TestKeysPages(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, d.open(t))
			want := map[string]bool{}
			for i := range 1203 {
				k := fmt.Sprintf("tenant/%d", i)
				if i%100 == 0 {
					k = fmt.Sprintf("tenant/\xff%d", i) // stored encoded
				}
				want[k] = true
				require.NoError(t, s.Save(ctx, k, &oauth2.Token{AccessToken: "a"}))
			}
			require.NoError(t, s.Save(ctx, "other", &oauth2.Token{AccessToken: "a"}))
			got := map[string]int{}
			for k, err := range s.Keys(ctx, "tenant/") {
				require.NoError(t, err)
				got[k]++
			}
			assert.Len(t, got, len(want))
			for k, n := range got {
				assert.True(t, want[k], "unexpected key %q", k)
				assert.Equal(t, 1, n, "key %q listed %d times", k, n)
			}
		})
	}
}

// One row per key, its version one more on each save.
func TestVersionCountsSaves(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, d.open(t))
			if _, err := s.Version(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Version of a missing key: err = %v, want ErrNotFound", err)
			}
			for i := 1; i <= 3; i++ {
				if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "a"}); err != nil {
					t.Fatal(err)
				}
				if v, err := s.Version(ctx, "k"); err != nil || v != int64(i) {
					t.Fatalf("after %d saves: version %d, %v; want %d", i, v, err, i)
				}
			}
		})
	}
}

// A lock past its expiry is taken over, and its old holder's unlock does
// not release the new holder's lock (compare-and-delete).
func TestExpiredLockIsNotReleasedByOldHolder(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t, d.open(t))
			old, err := s.Lock(ctx, "k", 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			current, err := s.Lock(ctx, "k", 10*time.Second) // waits until the old one expires
			if err != nil {
				t.Fatal(err)
			}
			old()
			short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if u, err := s.Lock(short, "k", time.Second); err == nil {
				u()
				t.Fatal("the old holder released the new holder's lock")
			}
			current()
			if u, err := s.Lock(ctx, "k", time.Second); err != nil {
				t.Fatalf("Lock after the holder released it: %v", err)
			} else {
				u()
			}
		})
	}
}

func TestTablesAndOptions(t *testing.T) {
	for _, d := range databases {
		t.Run(d.name, func(t *testing.T) {
			db := d.open(t)
			name := table()
			if _, err := sqlstore.New(db, sqlstore.WithTable(name), sqlstore.WithoutCreateTable()); err == nil {
				t.Fatal("WithoutCreateTable with no tables: New succeeded")
			}
			if _, err := sqlstore.New(db, sqlstore.WithTable(name)); err != nil {
				t.Fatal(err)
			}
			if _, err := sqlstore.New(db, sqlstore.WithTable(name), sqlstore.WithoutCreateTable()); err != nil {
				t.Fatalf("WithoutCreateTable after the tables exist: %v", err)
			}
			if _, err := sqlstore.New(db, sqlstore.WithTable("x; DROP TABLE y")); err == nil {
				t.Fatal("a table name that is not an identifier was accepted")
			}
		})
	}
	if _, err := sqlstore.New(nil); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}
