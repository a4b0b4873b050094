package oauthtransport_test

// A process killed (SIGKILL) in the middle of a key's first refresh, the
// one that presents the Source's own refresh token, leaves a Spent mark in
// the shared store: a peer does not present that refresh token again,
// neither at once nor once the dead process's lock has gone.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

const (
	killChildEnv   = "OAUTHTRANSPORT_KILL_CHILD" // "file" or "redis": this process is TestKillChild
	killInitialRT  = "initial-rt"                // the Source's refresh token; a fixed test value
	killStoreKey   = "k"
	killRefreshFor = time.Second // the store lock's TTL is twice that
)

func TestKilledFirstRefreshIsNotRepeated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	t.Parallel()
	for _, kind := range []string{"file", "redis"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			ep := newHoldingEndpoint(t)
			env, s := killStore(t, kind)
			child := startKillChild(t, append(env, killChildEnv+"="+kind, "KILL_TOKEN_URL="+ep.URL))
			ep.waitHeld(t, child)
			require.NoError(t, child.cmd.Process.Kill(), "SIGKILL while the child's refresh request is held")
			<-child.exited

			_, err := killPeer(t, ep.URL, s).Token(context.Background())
			assert.Equal(t, 1, ep.presented(killInitialRT), "times the initial refresh token was presented")
			requireTemporary(t, err, "right after the kill")

			waitUnlocked(t, s.(store.Locker)) // the dead child's lock expired (Redis) or the kernel dropped it (flock)
			_, err = killPeer(t, ep.URL, s).Token(context.Background())
			assert.Equal(t, 1, ep.presented(killInitialRT), "times the initial refresh token was presented")
			assert.Equal(t, 1, ep.requests(), "token requests in all")
			requireTemporary(t, err, "once the lock is free")
			assert.Contains(t, err.Error(), "another process presented", "the Spent mark, not the lock, stopped the refresh")
		})
	}
}

// TestKillChild is the process TestKilledFirstRefreshIsNotRepeated kills;
// it runs only when started by it.
func TestKillChild(t *testing.T) {
	kind := os.Getenv(killChildEnv)
	if kind == "" {
		t.Skip("a child process of TestKilledFirstRefreshIsNotRepeated")
	}
	var s store.Store = store.NewFile(os.Getenv("KILL_DIR"))
	if kind == "redis" {
		c := redis.NewClient(redistest.Options(os.Getenv("REDIS_ADDR")))
		defer c.Close()
		s = redisstore.New(c)
	}
	tr, err := oauthtransport.New(killSource(os.Getenv("KILL_TOKEN_URL")), oauthtransport.WithStore(s, killStoreKey),
		oauthtransport.WithRefreshTimeout(killRefreshFor))
	require.NoError(t, err)
	defer tr.Close()
	_, err = tr.Token(context.Background()) // the parent holds the request, then kills us
	t.Logf("Token returned before the kill: %v", err)
	time.Sleep(30 * time.Second)
	t.Error("not killed")
}

// killSource is the Source of every Transport of the test: the
// refresh-token grant from the same initial refresh token.
func killSource(tokenURL string) oauthtransport.Source {
	cfg := &oauth2.Config{ClientID: "client", ClientSecret: "secret",
		Endpoint: oauth2.Endpoint{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
	return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: killInitialRT})
}

// killPeer is a Transport in the test's process sharing the child's store
// and key.
func killPeer(t *testing.T, tokenURL string, s store.Store) *oauthtransport.Transport {
	return newTransport(t, killSource(tokenURL), oauthtransport.WithStore(s, killStoreKey),
		oauthtransport.WithRefreshTimeout(killRefreshFor))
}

// killStore makes the shared store: the child's environment, and the
// test's own client of it.
func killStore(t *testing.T, kind string) ([]string, store.Store) {
	if kind == "redis" {
		srv := redistest.Start(t)
		return []string{"REDIS_ADDR=" + srv.Addr()}, redisstore.New(srv.Client(t))
	}
	dir := t.TempDir()
	return []string{"KILL_DIR=" + dir}, store.NewFile(dir)
}

func requireTemporary(t *testing.T, err error, when string) {
	t.Helper()
	require.ErrorIs(t, err, oauthtransport.ErrToken, when)
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "%s: want a *TokenError", when)
	assert.True(t, te.Temporary(), "%s: the Spent mark is another process's, so the error is temporary: %v", when, err)
}

// waitUnlocked waits until the key's lock can be taken, and lets it go.
func waitUnlocked(t *testing.T, l store.Locker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	unlock, err := l.Lock(ctx, killStoreKey, time.Second)
	require.NoError(t, err, "the killed process's lock never became free")
	unlock()
}

// killChild is the started child process and its output, to be read
// once exited is closed.
type killChild struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	exited chan struct{}
}

func startKillChild(t *testing.T, env []string) *killChild {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	c := &killChild{cmd: cmd, out: &bytes.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})
	go func() {
		defer close(c.exited)
		_ = cmd.Wait()
	}()
	return c
}

// holdingEndpoint is a token endpoint for the refresh-token grant that
// records every refresh token presented. It holds the first request (the
// child's) without answering until its client goes away, and answers the
// others with a new token and a rotated refresh token.
type holdingEndpoint struct {
	*httptest.Server
	held    chan struct{} // closed when the first request arrived
	release chan struct{} // closed when the test ends
	mu      sync.Mutex
	seen    map[string]int // refresh token → times presented
	n       int
}

func newHoldingEndpoint(t *testing.T) *holdingEndpoint {
	e := &holdingEndpoint{held: make(chan struct{}), release: make(chan struct{}), seen: map[string]int{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	t.Cleanup(func() { close(e.release) }) // runs first: a held request returns
	return e
}

func (e *holdingEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	e.seen[r.PostForm.Get("refresh_token")]++
	e.n++
	n := e.n
	e.mu.Unlock()
	if n == 1 {
		close(e.held)
		select { // the child is killed meanwhile: its connection closes
		case <-r.Context().Done():
		case <-e.release:
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer",
		"expires_in": 3600, "refresh_token": fmt.Sprintf("rt-%d", n)})
}

// waitHeld waits until the child's request is held.
func (e *holdingEndpoint) waitHeld(t *testing.T, c *killChild) {
	t.Helper()
	select {
	case <-e.held:
	case <-c.exited:
		t.Fatalf("the child exited before its refresh request arrived:\n%s", c.out.String())
	case <-time.After(10 * time.Second):
		t.Fatal("the child's refresh request did not arrive within 10 s")
	}
}

func (e *holdingEndpoint) presented(rt string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[rt]
}

func (e *holdingEndpoint) requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}
