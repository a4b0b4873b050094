package oauthtransport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

const (
	fleetLifetime = 8 * time.Second
	fleetWindow   = 4 * time.Second // half the lifetime: stale 4 s after issue, no jitter
	fleetChildren = 4
	fleetRequests = 50
)

// TestFleet runs this test binary as several processes sharing one store
// key: the token endpoint must see one fetch for the whole fleet, and one
// more once the token is stale.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	t.Parallel()
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t, oauthtest.Lifetime(fleetLifetime))
			env := []string{
				"OAUTHTRANSPORT_FLEET_CHILD=" + kind,
				"FLEET_TOKEN_URL=" + srv.TokenURL,
				"FLEET_API_URL=" + srv.APIURL,
			}
			var s store.Store
			if kind == "file" {
				dir := t.TempDir()
				env = append(env, "FLEET_DIR="+dir)
				s = store.NewFile(dir)
			} else {
				redis := redistest.Start(t)
				env = append(env, "REDIS_ADDR="+redis.Addr())
				s = redisstore.New(redis.Client(t))
			}
			runFleet(t, env)
			assert.Equal(t, int64(1), srv.TokenCalls(), "one fetch for %d processes", fleetChildren)

			tok, err := s.Load(context.Background(), "fleet")
			require.NoError(t, err)
			staleAt := tok.Expiry.Add(fleetWindow - fleetLifetime)
			time.Sleep(time.Until(staleAt.Add(200 * time.Millisecond)))
			runFleet(t, append(env, "FLEET_PHASE=stale"))
			assert.Equal(t, int64(2), srv.TokenCalls(), "one refresh for the fleet once stale")
			assert.Zero(t, srv.APIRejected())
		})
	}
}

func runFleet(t *testing.T, env []string) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range fleetChildren {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestFleetChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Errorf("child %d: %v\n%s", i, err, out.String())
			}
			if os.Getenv("FLEET_DEBUG") != "" {
				t.Logf("child %d:\n%s", i, out.String())
			}
		})
	}
	wg.Wait()
}

// TestFleetChild is one process of TestFleet; it runs only when started by it.
func TestFleetChild(t *testing.T) {
	kind := os.Getenv("OAUTHTRANSPORT_FLEET_CHILD")
	if kind == "" {
		t.Skip("a child process of TestFleet")
	}
	var s store.Store
	if kind == "file" {
		s = store.NewFile(os.Getenv("FLEET_DIR"))
	} else {
		c := redis.NewClient(redistest.Options(os.Getenv("REDIS_ADDR")))
		defer c.Close()
		s = redisstore.New(c)
	}
	cfg := &clientcredentials.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret,
		TokenURL: os.Getenv("FLEET_TOKEN_URL"), AuthStyle: oauth2.AuthStyleInHeader}
	opts := []oauthtransport.Option{oauthtransport.WithStore(s, "fleet"), oauthtransport.WithRefreshWindow(fleetWindow)}
	if os.Getenv("FLEET_DEBUG") != "" {
		opts = append(opts, oauthtransport.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(cfg), opts...)
	require.NoError(t, err)
	defer tr.Close()

	var wg sync.WaitGroup
	for range fleetRequests {
		wg.Go(func() { mustGet(t, tr.Client(), os.Getenv("FLEET_API_URL")+"fleet") })
	}
	wg.Wait()
	if os.Getenv("FLEET_PHASE") == "stale" {
		// We adopted a stale token (then one refresh, ours or a peer's,
		// must follow) or the peer's fresh one: wait until ours is fresh.
		deadline := time.Now().Add(10 * time.Second)
		for {
			tok, err := tr.Token(context.Background())
			require.NoError(t, err)
			if time.Until(tok.Expiry) > fleetWindow {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the stale token was never refreshed: %+v", tr.Stats())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	st := tr.Stats()
	t.Logf("fetches %d, adopted %d, background %d", st.TokenFetches, st.Adopted, st.BackgroundRefreshes)
}

func TestStoredTokenIsAdoptedWithoutFetch(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	// Another process left a valid token in the store.
	other := ccTransport(t, srv, oauthtransport.WithStore(store.NewFile(t.TempDir()+"/x"), "k"))
	mustGet(t, other.Client(), srv.APIURL)
	dir := t.TempDir()
	s := store.NewFile(dir)
	tok, _ := other.Token(context.Background())
	require.NoError(t, s.Save(context.Background(), "k", tok))

	tr := ccTransport(t, srv, oauthtransport.WithStore(s, "k"))
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(1), srv.TokenCalls(), "the stored token was used")
	assert.Equal(t, int64(1), tr.Stats().Adopted)
}

func TestCorruptStoreFileIsReplaced(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	dir := t.TempDir()
	s := store.NewFile(dir)
	require.NoError(t, s.Save(context.Background(), "k", &oauth2.Token{AccessToken: "old"}))
	entries, _ := os.ReadDir(dir)
	require.NoError(t, os.WriteFile(filepath.Join(dir, entries[0].Name()), []byte("{garbage"), 0o600))

	var logs logBuffer
	tr := ccTransport(t, srv, oauthtransport.WithStore(s, "k"), oauthtransport.WithLogger(logs.logger()))
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Contains(t, logs.String(), `"level":"WARN"`)
	assert.Contains(t, logs.String(), "corrupt")
	saved, err := s.Load(context.Background(), "k")
	require.NoError(t, err, "the corrupt file was overwritten")
	assert.True(t, srv.Live(saved.AccessToken))
}

// flakyStore fails its first saves.
type flakyStore struct {
	*store.Memory
	failures atomic.Int64
}

func (f *flakyStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if f.failures.Add(-1) >= 0 {
		return errors.New("disk full")
	}
	return f.Memory.Save(ctx, key, tok)
}

func TestFailedSaveKeepsTokenAndRetries(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	s := &flakyStore{Memory: store.NewMemory()}
	s.failures.Store(2)
	var logs logBuffer
	rt := srv.IssueRefreshToken()
	tr := newTransport(t, oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: rt}),
		oauthtransport.WithStore(s, "k"), oauthtransport.WithLogger(logs.logger()))
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Contains(t, logs.String(), "saving token to store failed")

	cur, _ := tr.Token(context.Background())
	require.Eventually(t, func() bool {
		saved, err := s.Load(context.Background(), "k")
		return err == nil && saved.RefreshToken == cur.RefreshToken && saved.RefreshToken != rt
	}, 10*time.Second, 10*time.Millisecond, "the rotated refresh token reached the store")
	assert.Equal(t, int64(1), srv.TokenCalls())
}

func TestInvalidGrantAdoptsPeersRotation(t *testing.T) {
	t.Parallel()
	// Two transports share a store without a lock; the IdP rotates refresh
	// tokens. The peer refreshes first; ours then fails with invalid_grant,
	// reads the store again and adopts the peer's token.
	var mu sync.Mutex
	live := "r0"
	n := 0
	idp := oauthtransport.SourceFunc(func(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		mu.Lock()
		defer mu.Unlock()
		if cur == nil || cur.RefreshToken != live {
			return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant"}
		}
		n++
		live = fmt.Sprintf("r%d", n)
		return &oauth2.Token{AccessToken: fmt.Sprintf("a%d", n), RefreshToken: live, Expiry: time.Now().Add(time.Hour)}, nil
	})
	s := &staleOnceStore{Memory: store.NewMemory()}
	require.NoError(t, s.Memory.Save(context.Background(), "k", &oauth2.Token{AccessToken: "a0", RefreshToken: "r0", Expiry: time.Now().Add(-time.Minute)}))
	peer := newTransport(t, idp, oauthtransport.WithStore(s.Memory, "k"), oauthtransport.WithBase(&memBase{}))
	_, err := peer.Token(context.Background())
	require.NoError(t, err)

	s.stale.Store(&oauth2.Token{AccessToken: "a0", RefreshToken: "r0", Expiry: time.Now().Add(-time.Minute)})
	ours := newTransport(t, idp, oauthtransport.WithStore(s, "k"), oauthtransport.WithBase(&memBase{}))
	tok, err := ours.Token(context.Background())
	require.NoError(t, err)
	assert.True(t, tok.AccessToken == "a1", "adopted the peer's token")
	assert.Equal(t, 1, n, "no second rotation")
}

// staleOnceStore answers its first Load with an old token, as a store read
// just before a peer's save would.
type staleOnceStore struct {
	*store.Memory
	stale atomic.Pointer[oauth2.Token]
}

func (s *staleOnceStore) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if tok := s.stale.Swap(nil); tok != nil {
		return tok, nil
	}
	return s.Memory.Load(ctx, key)
}

func TestRedisUnreachableFallsBackToMemory(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	c := redis.NewClient(&redis.Options{Network: "unix", Addr: filepath.Join(t.TempDir(), "gone.sock"), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	var logs logBuffer
	tr := ccTransport(t, srv, oauthtransport.WithStore(redisstore.New(c), "k"), oauthtransport.WithLogger(logs.logger()))
	for range 20 {
		mustGet(t, tr.Client(), srv.APIURL)
	}
	assert.Equal(t, int64(1), srv.TokenCalls())
	out := logs.String()
	assert.Contains(t, out, "store lock failed; refreshing without it")
	assert.Contains(t, out, "keeping it in memory")
	assert.False(t, strings.Contains(out, srv.ClientCredentials().ClientSecret))
}

func TestStoreBehindAfterFailedSaveIsNotAdopted(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.OAuth2Config()
	first, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}).Token()
	require.NoError(t, err)
	s := &flakyStore{Memory: store.NewMemory()}
	require.NoError(t, s.Memory.Save(context.Background(), "k", first)) // a valid token, saved earlier
	s.failures.Store(1 << 30)                                           // from now on every save fails

	tr := newTransport(t, oauthtransport.RefreshToken(cfg, nil), oauthtransport.WithStore(s, "k"))
	mustGet(t, tr.Client(), srv.APIURL) // adopts the stored token
	srv.Revoke(first.AccessToken)
	mustGet(t, tr.Client(), srv.APIURL) // refreshes; the save fails
	second, _ := tr.Token(context.Background())
	srv.Revoke(second.AccessToken)
	// The store still holds the first token, unexpired by its own clock: it
	// must not be adopted, and its rotated-away refresh token not reused.
	mustGet(t, tr.Client(), srv.APIURL)
	third, _ := tr.Token(context.Background())
	assert.True(t, third.AccessToken != first.AccessToken && third.AccessToken != second.AccessToken)
	assert.True(t, srv.Live(third.AccessToken), "the refresh-token family is intact")
	assert.Equal(t, int64(3), srv.TokenCalls())
}
