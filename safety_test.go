package oauthtransport_test

// Refresh safety against real parts: a real redis-server restarted from an
// older snapshot or killed, stores that fail saves, an IdP with
// refresh-token rotation and reuse detection, a token endpoint whose
// answer is lost. Each asserts that the IdP saw no reused refresh token.

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

// rotate makes tr's next request refresh: the IdP stops accepting the
// access token in use, and a request replays after the 401.
func rotate(t *testing.T, srv *oauthtest.Server, tr *oauthtransport.Transport) (*http.Response, error) {
	t.Helper()
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	srv.Revoke(tok.AccessToken)
	return get(t, tr.Client(), srv.APIURL)
}

func mustRotate(t *testing.T, srv *oauthtest.Server, tr *oauthtransport.Transport) {
	t.Helper()
	resp, err := rotate(t, srv, tr)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func generation(t *testing.T, s store.Store) uint64 {
	t.Helper()
	tok, err := s.Load(context.Background(), "k")
	require.NoError(t, err)
	return store.MetaOf(tok).Generation
}

func refreshTransport(t *testing.T, srv *oauthtest.Server, rt string, opts ...oauthtransport.Option) *oauthtransport.Transport {
	return newTransport(t, oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: rt}), opts...)
}

func TestRedisRestoredFromOlderSnapshot(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	rds := redistest.Start(t)
	s := redisstore.New(rds.Client(t))
	tr := refreshTransport(t, srv, srv.IssueRefreshToken(), oauthtransport.WithStore(s, "k"))
	mustGet(t, tr.Client(), srv.APIURL)
	require.NoError(t, rds.Client(t).Save(context.Background()).Err())
	old, err := os.ReadFile(rds.DumpPath())
	require.NoError(t, err)

	mustRotate(t, srv, tr)
	mustRotate(t, srv, tr)
	require.Equal(t, uint64(3), generation(t, s))

	require.NoError(t, os.WriteFile(rds.DumpPath(), old, 0o600))
	require.NoError(t, rds.Restart())
	require.Equal(t, uint64(1), generation(t, s), "Redis came back with the older snapshot")

	mustRotate(t, srv, tr) // must present the newest refresh token, not the restored one
	assert.Zero(t, srv.Reuses(), "the IdP saw a reused refresh token")
	assert.Equal(t, uint64(4), generation(t, s), "the store was repaired")

	peer := refreshTransport(t, srv, "unused", oauthtransport.WithStore(s, "k"))
	mustGet(t, peer.Client(), srv.APIURL)
	assert.Equal(t, int64(1), peer.Stats().Adopted)
	assert.Equal(t, int64(4), srv.TokenCalls())
}

func TestRedisDownUnderTwoReplicasSharingARefreshGrant(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	rds := redistest.Start(t)
	rt := srv.IssueRefreshToken()
	var replicas []*oauthtransport.Transport
	for range 2 {
		o := rds.Options()
		o.MaxRetries = -1
		c := redis.NewClient(o)
		t.Cleanup(func() { _ = c.Close() })
		tr := refreshTransport(t, srv, rt, oauthtransport.WithStore(redisstore.New(c), "k"))
		mustGet(t, tr.Client(), srv.APIURL)
		replicas = append(replicas, tr)
	}
	require.Equal(t, int64(1), srv.TokenCalls(), "the second replica adopted the first one's token")
	rds.Kill()

	for _, tr := range replicas {
		mustGet(t, tr.Client(), srv.APIURL) // the valid token is still used
	}
	for _, tr := range replicas {
		_, err := rotate(t, srv, tr)
		var te *oauthtransport.TokenError
		require.ErrorAs(t, err, &te)
		assert.True(t, te.Temporary(), "a passing failure")
		assert.NotErrorIs(t, err, oauthtransport.ErrReauthRequired)
		assert.Contains(t, err.Error(), "not spent without it")
	}
	assert.Equal(t, int64(1), srv.TokenCalls(), "no refresh without the fleet lock")
	assert.Zero(t, srv.Reuses())
}

// failingSaves is a store (and Locker, if its inner store is one) whose
// saves of fetched tokens fail while fail > 0 (each failure counts one
// down; a negative value fails forever). Spent marks are saved normally.
type failingSaves struct {
	store.Store
	fail  atomic.Int64
	saved chan struct{} // a fetched token was saved
}

func newFailingSaves(inner store.Store) *failingSaves {
	return &failingSaves{Store: inner, saved: make(chan struct{}, 100)}
}

func (f *failingSaves) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if store.MetaOf(tok).Spent.IsZero() {
		if n := f.fail.Load(); n != 0 {
			if n > 0 {
				f.fail.Add(-1)
			}
			return errors.New("disk full")
		}
		defer func() { f.saved <- struct{}{} }()
	}
	return f.Store.Save(ctx, key, tok)
}

type failingLocker struct {
	*failingSaves
	store.Locker
}

func (f failingLocker) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	return f.failingSaves.Save(ctx, key, tok)
}

func TestFailedSaveHoldsTheLockUntilSaved(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	rds := redistest.Start(t)
	shared := redisstore.New(rds.Client(t))
	fs := newFailingSaves(shared)
	rt := srv.IssueRefreshToken()
	a := refreshTransport(t, srv, rt, oauthtransport.WithStore(failingLocker{fs, shared}, "k"))
	b := refreshTransport(t, srv, rt, oauthtransport.WithStore(shared, "k"))
	mustGet(t, a.Client(), srv.APIURL)
	mustGet(t, b.Client(), srv.APIURL)
	<-fs.saved

	fs.fail.Store(1)
	mustRotate(t, srv, a) // a's save fails once; a keeps the lock and saves again
	mustRotate(t, srv, b) // b waits for the lock, then adopts a's token
	assert.Equal(t, int64(2), srv.TokenCalls(), "one refresh for both")
	assert.Zero(t, srv.Reuses())
	assert.Equal(t, int64(2), b.Stats().Adopted)
}

func TestPeerFindsTheSpentMarkAfterTheLockExpired(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	rds := redistest.Start(t)
	shared := redisstore.New(rds.Client(t))
	fs := newFailingSaves(shared)
	rt := srv.IssueRefreshToken()
	a := refreshTransport(t, srv, rt, oauthtransport.WithStore(failingLocker{fs, shared}, "k"),
		oauthtransport.WithRefreshTimeout(300*time.Millisecond))
	b := refreshTransport(t, srv, rt, oauthtransport.WithStore(shared, "k"), oauthtransport.WithRefreshTimeout(5*time.Second))
	mustGet(t, a.Client(), srv.APIURL)
	<-fs.saved
	mustGet(t, b.Client(), srv.APIURL)

	fs.fail.Store(-1)
	mustRotate(t, srv, a) // a's saves keep failing past its lock's expiry
	_, err := rotate(t, srv, b)
	var te *oauthtransport.TokenError
	require.ErrorAs(t, err, &te)
	assert.True(t, te.Temporary())
	assert.Contains(t, err.Error(), "has not saved the result yet")
	assert.Equal(t, int64(2), srv.TokenCalls(), "b did not present the refresh token a spent")

	fs.fail.Store(0) // a's background save lands; b adopts its token
	<-fs.saved
	require.Eventually(t, func() bool {
		resp, err := get(t, b.Client(), srv.APIURL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	assert.Equal(t, int64(2), srv.TokenCalls())
	assert.Zero(t, srv.Reuses())
}

func TestCloseSavesOrReportsAnUnsavedToken(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	for _, recovers := range []bool{true, false} {
		fs := newFailingSaves(store.NewMemory())
		fs.fail.Store(-1)
		tr, err := oauthtransport.New(oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}),
			oauthtransport.WithStore(fs, "k"), oauthtransport.WithRefreshTimeout(500*time.Millisecond))
		require.NoError(t, err)
		mustGet(t, tr.Client(), srv.APIURL)
		tok, err := tr.Token(context.Background())
		require.NoError(t, err)
		if recovers {
			fs.fail.Store(0)
		}
		start := time.Now()
		err = tr.Close()
		assert.Less(t, time.Since(start), 5*time.Second)
		if recovers {
			require.NoError(t, err)
			saved, err := fs.Load(context.Background(), "k")
			require.NoError(t, err)
			assert.True(t, saved.RefreshToken == tok.RefreshToken, "Close saved the rotated refresh token")
			continue
		}
		require.Error(t, err)
		assert.Contains(t, err.Error(), "was not saved")
		assert.Contains(t, err.Error(), "sha256:")
		assert.NotContains(t, err.Error(), tok.AccessToken)
		assert.NotContains(t, err.Error(), tok.RefreshToken)
		assert.Equal(t, err, tr.Close(), "every call returns the same value")
	}
}

func TestLostRefreshAnswer(t *testing.T) {
	t.Parallel()
	for _, grace := range []time.Duration{0, 10 * time.Second} {
		t.Run("grace="+grace.String(), func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t, oauthtest.RotationGrace(grace))
			proxy := newDroppingProxy(t, srv.TokenURL)
			cfg := srv.OAuth2Config()
			cfg.Endpoint.TokenURL = proxy.url
			var logs logBuffer
			tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()},
				oauthtransport.WithRotationGrace(grace)), oauthtransport.WithLogger(logs.logger()))
			mustGet(t, tr.Client(), srv.APIURL)

			proxy.dropNext.Store(true) // the IdP rotates; its answer never arrives
			resp, err := rotate(t, srv, tr)
			if grace > 0 {
				require.NoError(t, err, "resent once within the grace period")
				resp.Body.Close()
				assert.Equal(t, int64(3), srv.TokenCalls())
			} else {
				require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
				assert.Contains(t, err.Error(), "answer to the refresh was lost")
				_, err = get(t, tr.Client(), srv.APIURL)
				require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
				assert.Equal(t, int64(2), srv.TokenCalls(), "the refresh token is never presented again")
			}
			assert.Zero(t, srv.Reuses(), "the IdP saw a reused refresh token")
			assert.NotContains(t, logs.String(), "rt-")
		})
	}
}

func TestAnyRefused400ReReadsTheStore(t *testing.T) {
	t.Parallel()
	// Two transports share a store without a lock; the IdP rotates refresh
	// tokens and answers a stale one as Dex does (invalid_request). Ours
	// reads the store again and adopts the peer's token.
	for _, code := range []string{"invalid_grant", "invalid_request"} {
		live, n := "r0", 0
		idp := oauthtransport.SourceFunc(func(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
			if cur == nil || cur.RefreshToken != live {
				return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: code}
			}
			n++
			live = "r" + strings.Repeat("x", n)
			return &oauth2.Token{AccessToken: "a" + live, RefreshToken: live, Expiry: time.Now().Add(time.Hour)}, nil
		})
		mem := store.NewMemory()
		stale := &oauth2.Token{AccessToken: "a0", RefreshToken: "r0", Expiry: time.Now().Add(-time.Minute)}
		require.NoError(t, mem.Save(context.Background(), "k", stale))
		peer := newTransport(t, idp, oauthtransport.WithStore(mem, "k"), oauthtransport.WithBase(&memBase{}))
		_, err := peer.Token(context.Background())
		require.NoError(t, err)

		s := &staleOnceStore{Memory: mem}
		s.stale.Store(stale)
		ours := newTransport(t, idp, oauthtransport.WithStore(s, "k"), oauthtransport.WithBase(&memBase{}))
		tok, err := ours.Token(context.Background())
		require.NoError(t, err, code)
		assert.True(t, tok.AccessToken == "arx", "adopted the peer's token after %s", code)
		assert.Equal(t, 1, n, "no second rotation")

		// Nothing newer in the store: the grant is dead.
		alone := store.NewMemory()
		require.NoError(t, alone.Save(context.Background(), "k", stale))
		_, err = newTransport(t, idp, oauthtransport.WithStore(alone, "k"), oauthtransport.WithBase(&memBase{})).Token(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired, code)
		assert.Equal(t, 1, n)
	}
}

func TestAutoDetectedAuthStyle(t *testing.T) {
	t.Parallel()
	t.Run("first answer reported", func(t *testing.T) {
		t.Parallel()
		srv := oauthtest.NewServer(t)
		cfg := srv.ClientCredentials()
		cfg.AuthStyle = oauth2.AuthStyleAutoDetect
		cfg.ClientSecret = "wrong-secret"
		_, err := newTransport(t, oauthtransport.ClientCredentials(cfg)).Token(context.Background())
		var te *oauthtransport.TokenError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "invalid_client", te.Code)
		assert.Contains(t, te.Description, "client_secret_basic", "the first answer, which names the cause")
		assert.Equal(t, int64(2), srv.TokenCalls())
		assert.NotContains(t, err.Error(), "wrong-secret")
	})
	t.Run("detected and remembered", func(t *testing.T) {
		t.Parallel()
		srv := oauthtest.NewServer(t, oauthtest.ClientSecretPostOnly())
		cfg := srv.OAuth2Config()
		cfg.Endpoint.AuthStyle = oauth2.AuthStyleAutoDetect
		tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}))
		mustGet(t, tr.Client(), srv.APIURL)
		assert.Equal(t, int64(2), srv.TokenCalls(), "the header, refused without spending the refresh token; then the body")
		mustRotate(t, srv, tr)
		assert.Equal(t, int64(3), srv.TokenCalls(), "the body at once")
		assert.Zero(t, srv.Reuses())
	})
}

// droppingProxy forwards token requests to the IdP; with dropNext set it
// lets the IdP answer, then closes the connection instead of passing the
// answer on, as a network failure after the server acted would.
type droppingProxy struct {
	url      string
	dropNext atomic.Bool
}

func newDroppingProxy(t *testing.T, target string) *droppingProxy {
	p := &droppingProxy{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out, _ := http.NewRequestWithContext(r.Context(), r.Method, target, r.Body)
		out.Header = r.Header.Clone()
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			http.Error(w, "proxy: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		if p.dropNext.CompareAndSwap(true, false) {
			_, _ = io.Copy(io.Discard, resp.Body)
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}
