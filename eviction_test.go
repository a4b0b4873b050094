package oauthtransport_test

// A keyed Transport's eviction under faults: what it forgets must never
// let a refresh token be presented twice.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// TestLostAnswerOutlivesEviction: a refresh whose answer was lost is not
// presented again once its key was evicted and used again (issue 20,
// item 1): the default store keeps the mark, the ledger the lost answer.
func TestLostAnswerOutlivesEviction(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	proxy := newDroppingProxy(t, srv.TokenURL)
	cfg := srv.OAuth2Config()
	cfg.Endpoint.TokenURL = proxy.url
	u := newUsers(srv, keys(4)...)
	tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
		u.mu.Lock()
		defer u.mu.Unlock()
		return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: u.rt[key]}), nil
	}, oauthtransport.WithMaxTokens(2))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctx0 := oauthtransport.WithKey(context.Background(), "user-0")
	_, err = tr.Token(ctx0)
	require.NoError(t, err)

	proxy.dropNext.Store(true) // the IdP rotates; its answer never arrives
	_, err = tr.Refresh(ctx0)
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	for _, k := range keys(4)[1:] { // user-0 is evicted
		_, err := tr.Token(oauthtransport.WithKey(context.Background(), k))
		require.NoError(t, err)
	}
	calls := srv.TokenCalls()
	_, err = tr.Token(ctx0) // the access token from before is still good: reloaded from the store
	require.NoError(t, err)
	for range 3 {
		_, err = tr.Refresh(ctx0)
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	}
	assert.Equal(t, calls, srv.TokenCalls(), "the refresh token whose answer was lost was presented again")
	assert.Zero(t, srv.Reuses(), "the IdP saw a reused refresh token")
}

// TestRequestHoldingAnEvictedKeyRefreshesThroughItsSuccessor: a request
// that got its token from a cache since evicted gets a 401; its replay and
// another caller of the same key refresh through the key's one cache
// (issue 20, item 2).
func TestRequestHoldingAnEvictedKeyRefreshesThroughItsSuccessor(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.TokenDelay(300*time.Millisecond)) // refreshes overlap
	u := newUsers(srv, keys(2)...)
	arrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-User") == "user-0" {
			once.Do(func() { close(arrived); <-release }) // the first request waits here
		}
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, srv.APIURL, nil)
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	}))
	t.Cleanup(api.Close)
	tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithMaxTokens(1))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctx0 := oauthtransport.WithKey(context.Background(), "user-0")
	tok, err := tr.Token(ctx0)
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() {
		resp, err := keyedGet(t, tr, "user-0", api.URL)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-arrived
	_, err = tr.Token(oauthtransport.WithKey(context.Background(), "user-1")) // evicts user-0
	require.NoError(t, err)
	_, err = tr.Token(ctx0) // user-0's new cache reloads its token from the store
	require.NoError(t, err)
	require.True(t, srv.Revoke(tok.AccessToken))
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := tr.Refresh(ctx0)
		assert.NoError(t, err)
	})
	close(release)
	require.NoError(t, <-done, "the request was replayed with a new token")
	wg.Wait()
	assert.Zero(t, srv.Reuses(), "two refreshes of one key presented one refresh token")
}

// TestSourcesFunctionThatHangsOrPanics: NewKeyed's sources function is
// users' code: one that hangs holds a request no longer than its
// deadline, one that panics is a *TokenError (issue 20, item 6).
func TestSourcesFunctionThatHangsOrPanics(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
		if key == "panics" {
			panic("sources exploded")
		}
		<-release
		return &fakeSource{}, nil
	}, oauthtransport.WithBase(&memBase{}))
	require.NoError(t, err)
	t.Cleanup(func() { close(release); _ = tr.Close() })

	ctx, cancel := context.WithTimeout(oauthtransport.WithKey(context.Background(), "hangs"), time.Second)
	defer cancel()
	start := time.Now()
	_, err = tr.Token(ctx)
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)

	_, err = tr.Token(oauthtransport.WithKey(context.Background(), "panics"))
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	var pe *oauthtransport.PanicError
	require.True(t, errors.As(err, &pe))
	assert.Contains(t, pe.Value, "sources exploded")
}

// TestLostAnswerOfAKeysFirstRefresh: the Source's own refresh token,
// presented by a refresh whose answer was lost, is not presented again:
// the ledger knows it as the Source's.
func TestLostAnswerOfAKeysFirstRefresh(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	proxy := newDroppingProxy(t, srv.TokenURL)
	cfg := srv.OAuth2Config()
	cfg.Endpoint.TokenURL = proxy.url
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}))
	proxy.dropNext.Store(true)
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	deadline := time.Now().Add(3 * time.Second) // past the first cool-downs
	for time.Now().Before(deadline) {
		_, err = tr.Token(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
		time.Sleep(100 * time.Millisecond)
	}
	assert.Equal(t, int64(1), srv.TokenCalls(), "the Source's refresh token was presented again")
	assert.Zero(t, srv.Reuses())
}
