package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// person is an interactive Source whose person signs in when asked; its
// refresh-token grant rotates and refuses what it revoked.
type person struct {
	logins, refreshes atomic.Int64
	mu                sync.Mutex
	revoked           map[string]bool
	failLogin         error
	loginDelay        time.Duration
}

func (p *person) login(ctx context.Context) (*oauth2.Token, error) {
	n := p.logins.Add(1)
	if p.loginDelay > 0 {
		time.Sleep(p.loginDelay)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failLogin != nil {
		return nil, &TokenError{Err: p.failLogin}
	}
	return &oauth2.Token{AccessToken: fmt.Sprint("login-", n), RefreshToken: fmt.Sprint("rt-login-", n), Expiry: time.Now().Add(time.Hour)}, nil
}

func (p *person) loginTimeout() time.Duration { return time.Minute }

func (p *person) Token(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
	if cur == nil || cur.RefreshToken == "" {
		return nil, &TokenError{Err: errors.New("a login is needed")}
	}
	p.mu.Lock()
	dead := p.revoked[cur.RefreshToken]
	p.mu.Unlock()
	if dead {
		return nil, &TokenError{Code: "invalid_grant", StatusCode: 400}
	}
	n := p.refreshes.Add(1)
	return &oauth2.Token{AccessToken: fmt.Sprint("refreshed-", n), RefreshToken: fmt.Sprint("rt-refreshed-", n), Expiry: time.Now().Add(time.Hour)}, nil
}

func (p *person) SpendsRefreshToken() bool { return true }

func (p *person) revoke(_ context.Context, tok *oauth2.Token) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revoked == nil {
		p.revoked = make(map[string]bool)
	}
	p.revoked[tok.RefreshToken] = true
	return nil
}

// TestOneLoginForManyCallers: fifty callers before the first login, one
// person asked; across two processes sharing a store with a lock, still
// one.
func TestOneLoginForManyCallers(t *testing.T) {
	t.Parallel()
	p := &person{loginDelay: 50 * time.Millisecond}
	shared := store.NewFile(t.TempDir())
	var trs []*Transport
	for range 2 {
		tr, err := New(p, WithStore(shared, "me"), WithBase(okBase{}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tr.Close() })
		trs = append(trs, tr)
	}
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := trs[i%2].Token(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p.logins.Load() != 1 || p.refreshes.Load() != 0 {
		t.Fatalf("%d logins and %d refreshes, want 1 and 0", p.logins.Load(), p.refreshes.Load())
	}
}

// TestNoLoginFromTheBackground: a refresh in the background never asks the
// person; the next caller who waits is asked at once after a dead grant,
// however the cool-down stands.
func TestNoLoginFromTheBackground(t *testing.T) {
	t.Parallel()
	p := &person{}
	tr, err := New(p, WithBase(okBase{}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tok, err := tr.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_ = p.revoke(context.Background(), tok) // the grant dies at the server
	k := tr.cache
	k.refreshInBackground(context.Background())
	if f := k.flights.current(); f != nil {
		<-f.done
	}
	if p.logins.Load() != 1 {
		t.Fatalf("a background refresh asked the person (%d logins)", p.logins.Load())
	}
	if _, err := tr.Refresh(context.Background()); err != nil {
		t.Fatalf("a waiting caller after a dead grant: %v", err)
	}
	if p.logins.Load() != 2 {
		t.Fatalf("%d logins, want the second at once", p.logins.Load())
	}
}

// TestFailedLoginIsNotHeldBack: open or show failing ends that login; the
// next waiting caller may start another at once.
func TestFailedLoginIsNotHeldBack(t *testing.T) {
	t.Parallel()
	p := &person{failLogin: errors.New("no browser")}
	tr, err := New(p, WithBase(okBase{}))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for range 2 {
		if _, err := tr.Token(context.Background()); !errors.Is(err, ErrToken) {
			t.Fatalf("a failed login: %v", err)
		}
	}
	if p.logins.Load() != 2 {
		t.Fatalf("%d logins, want 2: a failed login holds nobody back", p.logins.Load())
	}
}

// TestRevokeEndsTheGrantEverywhere: the server is told, the store holds
// the revocation, a peer never presents the revoked refresh token, and an
// interactive source asks the person again.
func TestRevokeEndsTheGrantEverywhere(t *testing.T) {
	t.Parallel()
	p := &person{}
	shared := store.NewFile(t.TempDir())
	a, _ := New(p, WithStore(shared, "me"), WithBase(okBase{}))
	defer a.Close()
	first, err := a.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Revoke(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !p.revoked[first.RefreshToken] {
		t.Fatal("the server was not told")
	}
	stored, err := shared.Load(context.Background(), "me")
	if err != nil || stored.AccessToken != "" || store.MetaOf(stored).Refusal.Code != revokedCode {
		t.Fatalf("the store still holds the grant (err %v)", err)
	}
	plain := SourceFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) { return p.Token(ctx, cur) })
	b, _ := New(spender{plain}, WithStore(shared, "me"), WithBase(okBase{}))
	defer b.Close()
	if _, err := b.Token(context.Background()); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("a peer after Revoke: %v, want ErrReauthRequired", err)
	}
	if p.refreshes.Load() != 0 {
		t.Fatal("the revoked refresh token was presented")
	}
	if tok, err := a.Token(context.Background()); err != nil || tok.AccessToken != "login-2" {
		t.Fatalf("after Revoke the person is asked again: %v", err)
	}
}

type spender struct{ Source }

func (spender) SpendsRefreshToken() bool { return true }

func TestRevokeWithoutAnEndpoint(t *testing.T) {
	t.Parallel()
	src := SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "at", RefreshToken: "rt", Expiry: time.Now().Add(time.Hour)}, nil
	})
	tr, _ := New(spender{src}, WithBase(okBase{}))
	defer tr.Close()
	if _, err := tr.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := tr.Revoke(context.Background())
	if !errors.Is(err, errNoRevocationEndpoint) {
		t.Fatalf("Revoke without an endpoint: %v", err)
	}
	if _, err := tr.Token(context.Background()); !errors.Is(err, ErrReauthRequired) {
		t.Fatalf("after Revoke: %v, want ErrReauthRequired", err)
	}
}
