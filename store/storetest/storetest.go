// Package storetest checks that a [store.Store] behaves as the Transport
// expects, in the manner of testing/fstest. Every store in this module
// passes it; run it against your own:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return newMyStore(t) })
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// Run runs the conformance tests against stores made by newStore, which
// must return an empty store (or one whose keys the tests do not use). If
// the store is a [store.Locker], the lock is tested too.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	checks := []struct {
		name string
		run  func(t *testing.T, newStore func(t *testing.T) store.Store)
	}{
		{"LoadMissing", testLoadMissing},
		{"RoundTrip", testRoundTrip},
		{"Meta", testMeta},
		{"Overwrite", testOverwrite},
		{"Delete", testDelete},
		{"KeysAreIsolated", testKeysAreIsolated},
		{"NoSharedState", testNoSharedState},
		{"Concurrent", testConcurrent},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.run(t, newStore) })
	}
	if _, ok := newStore(t).(store.Locker); ok {
		t.Run("Lock", func(t *testing.T) { testLock(t, newStore) })
	}
	if _, ok := newStore(t).(store.Lister); ok {
		t.Run("Keys", func(t *testing.T) { testKeys(t, newStore) })
	}
}

// full is a token with every field a store must keep.
func full() *oauth2.Token {
	return (&oauth2.Token{
		AccessToken:  "access-1",
		TokenType:    "Bearer",
		RefreshToken: "refresh-1",
		Expiry:       time.Date(2031, 5, 6, 7, 8, 9, 123456789, time.UTC),
		ExpiresIn:    3600,
	}).WithExtra(map[string]any{"scope": "read write", "id_token": "id.token.value"})
}

func testLoadMissing(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	_, err := s.Load(ctx, "missing")
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load of a missing key: err = %v, want ErrNotFound", err)
	}
}

func testRoundTrip(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	want := full()
	if err := s.Save(ctx, "k", want); err != nil {
		t.Fatalf("Save: %v", err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkEqual(t, got, want)
}

func testMeta(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	// The Transport's bookkeeping (generation, when obtained, a spent
	// refresh token) must survive, or a fleet cannot order tokens.
	s := newStore(t)
	m := store.Meta{Generation: 7, Obtained: time.UnixMilli(1_900_000_000_123), Spent: time.UnixMilli(1_900_000_001_000),
		Dead: time.UnixMilli(1_900_000_002_000)}
	want := store.WithMeta(full(), m)
	mustSave(t, s, "k", want)
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkEqual(t, got, want)
	mustSave(t, s, "k", store.WithMeta(full(), store.Meta{Generation: 8}))
	got, _ = s.Load(ctx, "k")
	if gm := store.MetaOf(got); gm.Generation != 8 || !gm.Spent.IsZero() || !gm.Dead.IsZero() {
		t.Errorf("after a second Save: generation %d, spent %v, dead %v; want 8 and neither", gm.Generation, gm.Spent, gm.Dead)
	}
}

func testOverwrite(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	mustSave(t, s, "k", &oauth2.Token{AccessToken: "first", RefreshToken: "r1"})
	mustSave(t, s, "k", &oauth2.Token{AccessToken: "second"})
	got, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got.AccessToken != "second" || got.RefreshToken != "" {
		t.Fatal("Load after a second Save did not return the second token")
	}
}

func testDelete(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	mustSave(t, s, "k", full())
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Load after Delete: err = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
}

func testKeysAreIsolated(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	keys := []string{"a", "A", "../a", "/etc/passwd", "a/b", `a\b`, "a\x00b", "ключ", " ", strings.Repeat("k", 4000), strings.Repeat("k", 4001)}
	for i, k := range keys {
		mustSave(t, s, k, &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", i)})
	}
	for i, k := range keys {
		got, err := s.Load(ctx, k)
		if err != nil {
			t.Fatalf("Load(key #%d): %v", i, err)
		}
		if got.AccessToken != fmt.Sprintf("tok-%d", i) {
			t.Fatalf("key #%d returned another key's token", i)
		}
	}
}

func testNoSharedState(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	tok := full()
	mustSave(t, s, "k", tok)
	tok.AccessToken = "changed after Save"
	got, _ := s.Load(ctx, "k")
	got.RefreshToken = "changed after Load"
	again, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	checkEqual(t, again, full())
}

func testConcurrent(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				tok := &oauth2.Token{AccessToken: fmt.Sprintf("g%d-%d", g, i), RefreshToken: "r"}
				if err := s.Save(ctx, "shared", tok); err != nil {
					t.Errorf("Save: %v", err)
					return
				}
				got, err := s.Load(ctx, "shared")
				if err != nil {
					t.Errorf("Load: %v", err)
					return
				}
				if !strings.HasPrefix(got.AccessToken, "g") || got.RefreshToken != "r" {
					t.Error("Load returned a torn token")
					return
				}
			}
		})
	}
	wg.Wait()
}

func testLock(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	l := newStore(t).(store.Locker)
	unlock, err := l.Lock(ctx, "k", 10*time.Second)
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}

	// A second Lock waits, and gives up when its context ends.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if u, err := l.Lock(short, "k", 10*time.Second); err == nil {
		u()
		t.Fatal("a second Lock succeeded while the first was held")
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock with an expiring context: err = %v, want context.DeadlineExceeded", err)
	}

	// Another key is independent.
	other, err := l.Lock(ctx, "other", 10*time.Second)
	if err != nil {
		t.Fatalf("Lock of another key: %v", err)
	}
	other()

	// Once released, a waiter gets it.
	got := make(chan func(), 1)
	go func() {
		u, err := l.Lock(ctx, "k", 10*time.Second)
		if err != nil {
			t.Errorf("Lock after release: %v", err)
			got <- func() {}
			return
		}
		got <- u
	}()
	select {
	case <-got:
		t.Fatal("the waiter got the lock before it was released")
	case <-time.After(30 * time.Millisecond):
	}
	unlock()
	unlock() // idempotent
	select {
	case u := <-got:
		u()
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the released lock")
	}
}

func mustSave(t *testing.T, s store.Store, key string, tok *oauth2.Token) {
	t.Helper()
	if err := s.Save(context.Background(), key, tok); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

// checkEqual compares tokens without printing them.
func checkEqual(t *testing.T, got, want *oauth2.Token) {
	t.Helper()
	switch {
	case got.AccessToken != want.AccessToken:
		t.Error("access token differs")
	case got.TokenType != want.TokenType:
		t.Errorf("token type = %q, want %q", got.TokenType, want.TokenType)
	case got.RefreshToken != want.RefreshToken:
		t.Error("refresh token differs")
	case !got.Expiry.Equal(want.Expiry):
		t.Errorf("expiry = %v, want %v", got.Expiry, want.Expiry)
	}
	for _, k := range []string{"scope", "id_token"} {
		if fmt.Sprint(got.Extra(k)) != fmt.Sprint(want.Extra(k)) {
			t.Errorf("extra %q lost", k)
		}
	}
	gm, wm := store.MetaOf(got), store.MetaOf(want)
	if gm.Generation != wm.Generation || !gm.Obtained.Equal(wm.Obtained) || !gm.Spent.Equal(wm.Spent) || !gm.Dead.Equal(wm.Dead) {
		t.Errorf("bookkeeping = %+v, want %+v", gm, wm)
	}
}

func testKeys(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	s := newStore(t)
	for _, k := range []string{"list/a", "list/b", "list/\u00fc/c", "lis", "other/list/d", "list/gone"} {
		mustSave(t, s, k, full())
	}
	if err := s.Delete(ctx, "list/gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	var got []string
	for k, err := range s.(store.Lister).Keys(ctx, "list/") {
		if err != nil {
			t.Fatalf("Keys: %v", err)
		}
		got = append(got, k)
	}
	sort.Strings(got)
	if want := []string{"list/a", "list/b", "list/\u00fc/c"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Keys(%q) = %q, want %q", "list/", got, want)
	}
}
