package oauthtransport_test

// A keyed Transport: one token per user against an IdP that issues
// per-user rotating refresh tokens with reuse detection.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// users gives each key a refresh token of its own from srv.
type users struct {
	srv *oauthtest.Server
	mu  sync.Mutex
	rt  map[string]string
}

func newUsers(srv *oauthtest.Server, keys ...string) *users {
	u := &users{srv: srv, rt: make(map[string]string)}
	for _, k := range keys {
		u.rt[k] = srv.IssueRefreshToken()
	}
	return u
}

func (u *users) source(key string) (oauthtransport.Source, error) {
	u.mu.Lock()
	rt, ok := u.rt[key]
	u.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no such user")
	}
	return oauthtransport.RefreshToken(u.srv.OAuth2Config(), &oauth2.Token{RefreshToken: rt}), nil
}

func keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user-%d", i)
	}
	return out
}

func keyedGet(t testing.TB, tr *oauthtransport.Transport, key, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(oauthtransport.WithKey(context.Background(), key), http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("X-User", key)
	return tr.RoundTrip(req)
}

func TestKeyedNeverSendsOneKeysTokenForAnother(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	ks := keys(1000)
	u := newUsers(srv, ks...)
	var owner sync.Map // access token → key, from WithTokenChange
	var mismatches, served atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		who, ok := owner.Load(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if !ok || who != r.Header.Get("X-User") {
			mismatches.Add(1)
		}
	}))
	t.Cleanup(api.Close)
	tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithTokenChange(func(key string, tok *oauth2.Token) {
		owner.Store(tok.AccessToken, key)
	}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 100 {
				resp, err := keyedGet(t, tr, ks[rand.IntN(len(ks))], api.URL)
				if !assert.NoError(t, err) {
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(5000), served.Load())
	assert.Zero(t, mismatches.Load(), "a request carried another key's token")
	assert.LessOrEqual(t, srv.TokenCalls(), int64(len(ks)), "at most one fetch per key")
	assert.Zero(t, srv.Reuses())
}

func TestKeyedOneRefreshPerKeyUnderConcurrentFirstRequests(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.TokenDelay(50*time.Millisecond))
	u := newUsers(srv, "alice", "bob")
	tr, err := oauthtransport.NewKeyed(u.source)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			key := []string{"alice", "bob"}[i%2]
			resp, err := keyedGet(t, tr, key, srv.APIURL)
			if assert.NoError(t, err) {
				resp.Body.Close()
				assert.Equal(t, http.StatusOK, resp.StatusCode)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(2), srv.TokenCalls(), "one fetch per key for 200 concurrent first requests")
	assert.Zero(t, srv.Reuses())
}

func TestKeyedSlowKeyNeverDelaysAnother(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	sources := func(key string) (oauthtransport.Source, error) {
		return oauthtransport.SourceFunc(func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
			if key == "slow" {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return &oauth2.Token{AccessToken: "token-of-" + key, Expiry: time.Now().Add(time.Hour)}, nil
		}), nil
	}
	tr, err := oauthtransport.NewKeyed(sources, oauthtransport.WithBase(&memBase{}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	slowCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = tr.Token(oauthtransport.WithKey(slowCtx, "slow")) }()

	start := time.Now()
	tok, err := tr.Token(oauthtransport.WithKey(context.Background(), "fast"))
	require.NoError(t, err)
	assert.Equal(t, "token-of-fast", tok.AccessToken)
	assert.Less(t, time.Since(start), time.Second, "the slow key's refresh held up another key")
}

func TestKeyedEvictionReloadsFromTheStoreWithoutAFetch(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	u := newUsers(srv, keys(5)...)
	mem := store.NewMemory()
	tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithMaxTokens(2), oauthtransport.WithStore(mem, "tenants"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	for _, k := range keys(5) {
		resp, err := keyedGet(t, tr, k, srv.APIURL)
		require.NoError(t, err)
		resp.Body.Close()
	}
	require.Equal(t, int64(5), srv.TokenCalls())
	saved, err := mem.Load(context.Background(), "tenants/user-0")
	require.NoError(t, err, "key K's token is stored under the WithStore key and K")
	assert.NotEmpty(t, saved.RefreshToken)

	resp, err := keyedGet(t, tr, "user-0", srv.APIURL) // evicted long ago
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, int64(5), srv.TokenCalls(), "reloaded from the store, not fetched")
	assert.GreaterOrEqual(t, tr.Stats().Adopted, int64(1))
}

func TestKeyedRevokedUserGetsReauthRequiredOthersDoNot(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	u := newUsers(srv, "mallory", "alice")
	tr, err := oauthtransport.NewKeyed(u.source)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctxM, ctxA := oauthtransport.WithKey(context.Background(), "mallory"), oauthtransport.WithKey(context.Background(), "alice")
	tokM, err := tr.Token(ctxM)
	require.NoError(t, err)
	_, err = tr.Token(ctxA)
	require.NoError(t, err)

	// The user withdrew consent: the IdP revokes the refresh token's family.
	form := url.Values{"token": {tokM.RefreshToken}}
	req, _ := http.NewRequest(http.MethodPost, srv.RevokeURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientID, oauthtest.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()

	before := srv.TokenCalls()
	for range 20 {
		_, err = tr.Refresh(ctxM)
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	}
	assert.LessOrEqual(t, srv.TokenCalls()-before, int64(1), "the dead grant cools down: the IdP is not hammered")
	tokA, err := tr.Refresh(ctxA)
	require.NoError(t, err, "another user is unaffected")
	assert.NotEmpty(t, tokA.AccessToken)
}

func TestKeyedRequestWithoutAKey(t *testing.T) {
	t.Parallel()
	base := &memBase{}
	tr, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return &fakeSource{}, nil }, oauthtransport.WithBase(base))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	body := &onceReader{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, "https://api.example/", body)
	_, err = tr.RoundTrip(req)
	require.ErrorIs(t, err, oauthtransport.ErrNoKey)
	assert.Zero(t, base.calls.Load(), "nothing sent")
	assert.True(t, body.closed.Load())
	_, err = tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrNoKey)

	_, err = tr.Token(oauthtransport.WithKey(context.Background(), "x"))
	require.NoError(t, err)
}
