package oauthtransport

// ProtectedResource with requests at once: one login for many callers,
// many resources on one keyed Transport, registrations and logins that
// start together (one client per server, one login per redirect port,
// and nothing else waits).

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func TestProtectedResourcesOnOneTransport(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("a"), oauthtest.RequireScopes("a"))
	two := oauthtest.NewResource(t, e.as, oauthtest.ResourceScopes("b"), oauthtest.RequireScopes("b"))
	cfg := e.person()
	tr := keyedProtected(t, func(string) *ClientConfig { return cfg })
	for range 2 {
		for _, res := range []*oauthtest.Resource{e.res, two} {
			status, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
		}
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "one login per resource")
	assert.Equal(t, 1, e.as.Registrations(), "one client at their common server")
	one, other := tokensSeen(e.res), tokensSeen(two)
	require.Len(t, one, 1)
	require.Len(t, other, 1)
	for tok := range one {
		assert.NotContains(t, other, tok, "a token is never sent to the other resource")
		assert.Equal(t, []string{e.res.ResourceURL}, e.as.Introspect(tok).Resources)
		assert.Equal(t, "a", e.as.Introspect(tok).Scope)
	}
	for tok := range other {
		assert.Equal(t, []string{two.ResourceURL}, e.as.Introspect(tok).Resources)
		assert.Equal(t, "b", e.as.Introspect(tok).Scope)
	}
	for _, r := range e.as.TokenRequests() {
		assert.Len(t, r.Form["resource"], 1, "each token request names its one resource")
	}
}

func TestProtectedResourceOneLoginForConcurrentCallers(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	tr := e.transport(t, e.person())
	for _, err := range together(8, func(int) error { return callOK(context.Background(), tr, e.res.ResourceURL) }) {
		require.NoError(t, err)
	}
	assert.Equal(t, int64(1), e.b.opens.Load())
	assert.Equal(t, 1, e.as.Registrations())
	assert.EqualValues(t, 1, e.as.TokenCalls())
}

func TestProtectedResourcesFirstUsedTogether(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{e.res, oauthtest.NewResource(t, e.as), oauthtest.NewResource(t, e.as)}
	// Registrations that would be sent together are held until they all
	// arrive, so that each sees none kept: a client that registers once per
	// issuer sends only one, which goes on after a second.
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: len(resources), wait: 250 * time.Millisecond, all: make(chan struct{})}
	tr := keyedProtected(t, func(string) *ClientConfig { return &ClientConfig{} }, WithTokenClient(&http.Client{Transport: gate}))
	for _, err := range together(len(resources), func(i int) error { return callKeyed(tr, resources[i].ResourceURL) }) {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, e.as.Registrations(), "one client at their server, however many resources start at once")
}

// gathering holds the requests to path until n have arrived, or until
// wait has passed since one was held (then every one goes on).
type gathering struct {
	base    http.RoundTripper
	path    string
	n       int
	wait    time.Duration
	mu      sync.Mutex
	arrived int
	all     chan struct{}
	once    sync.Once
	late    atomic.Bool // the wait passed before the n requests arrived
}

func (g *gathering) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == g.path {
		release := func() { g.once.Do(func() { close(g.all) }) }
		g.mu.Lock()
		if g.arrived++; g.arrived == g.n {
			release()
		}
		g.mu.Unlock()
		timer := time.NewTimer(g.wait)
		defer timer.Stop()
		select {
		case <-g.all:
		case <-timer.C:
			g.late.Store(true)
			release()
		case <-req.Context().Done():
		}
	}
	return g.base.RoundTrip(req)
}

func TestProtectedResourcesFirstUsedTogetherThenRestart(t *testing.T) {
	t.Parallel()
	// A person signs in to two resources of one server at once; after a
	// restart, their grants refresh without asking them again.
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{e.res, oauthtest.NewResource(t, e.as)}
	s := store.NewMemory()
	keyed := func(opts ...Option) *Transport {
		return keyedProtected(t, func(string) *ClientConfig { return e.person() }, append(opts, WithStore(s, "app"))...)
	}
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: len(resources), wait: 250 * time.Millisecond, all: make(chan struct{})}
	first := keyed(WithTokenClient(&http.Client{Transport: gate}))
	for _, err := range together(len(resources), func(i int) error { return callKeyed(first, resources[i].ResourceURL) }) {
		require.NoError(t, err)
	}
	require.NoError(t, first.Close())
	require.Equal(t, int64(2), e.b.opens.Load())

	second := keyed()
	for _, res := range resources {
		ctx := WithKey(context.Background(), res.ResourceURL)
		kept, err := second.Token(ctx) // the token kept, as it was
		require.NoError(t, err, res.ResourceURL)
		refreshed, err := second.Refresh(ctx)
		require.NoError(t, err, res.ResourceURL)
		assert.NotEqual(t, kept.AccessToken, refreshed.AccessToken)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "no grant is from a client other than the one kept")
}

func TestProtectedResourcesLoginsTogether(t *testing.T) {
	t.Parallel()
	// Two resources of one server, whose client is registered already
	// (with its loopback redirect), each need the person at once.
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{oauthtest.NewResource(t, e.as), oauthtest.NewResource(t, e.as)}
	browser := &gatheredOpen{open: e.b.open, wait: 250 * time.Millisecond}
	cfg := &ClientConfig{Open: browser.Open}
	tr := keyedProtected(t, func(string) *ClientConfig { return cfg })
	status, err := callMCP(WithKey(context.Background(), e.res.ResourceURL), tr, e.res.ResourceURL)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	browser.gather(len(resources)) // both logins are under way before the person answers either
	for _, err := range together(len(resources), func(i int) error { return callKeyed(tr, resources[i].ResourceURL) }) {
		assert.NoError(t, err)
	}
	assert.Equal(t, 1, e.as.Registrations())
	assert.Equal(t, int64(3), e.b.opens.Load())
}

// gatheredOpen is an Open that, once told to gather n calls, holds each
// until the n have been made, or until wait has passed since one was
// held (then every call goes on), and opens the browser.
type gatheredOpen struct {
	open    func(ctx context.Context, authURL string) error
	wait    time.Duration
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{} // nil: calls are not held
	release func()        // closes all, once
	late    atomic.Bool   // the wait passed before the n calls were made
}

func (g *gatheredOpen) gather(n int) {
	g.mu.Lock()
	all := make(chan struct{})
	g.n, g.arrived, g.all, g.release = n, 0, all, sync.OnceFunc(func() { close(all) })
	g.mu.Unlock()
}

func (g *gatheredOpen) Open(ctx context.Context, authURL string) error {
	g.mu.Lock()
	all, release := g.all, g.release
	if all != nil {
		if g.arrived++; g.arrived == g.n {
			release()
		}
	}
	g.mu.Unlock()
	if all != nil {
		timer := time.NewTimer(g.wait)
		defer timer.Stop()
		select {
		case <-all:
		case <-timer.C:
			g.late.Store(true)
			release()
		case <-ctx.Done():
		}
	}
	return g.open(ctx, authURL)
}

func TestProtectedResourcesLoginsOnDifferentRedirectsTogether(t *testing.T) {
	t.Parallel()
	// Logins on different redirect URIs never wait for each other: 33
	// resources, each with a client registered beforehand and a redirect
	// port of its own, need the person at once, and all 33 logins reach
	// the browser before the person answers any.
	const n = 33
	e := newMCPEnv(t, nil)
	var resources []*oauthtest.Resource
	for range n {
		resources = append(resources, oauthtest.NewResource(t, e.as))
	}
	redirects := map[string]string{}
	var held []net.Listener // n distinct ports, free again just before the logins
	for _, res := range resources {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		held = append(held, l)
		redirects[res.ResourceURL] = "http://" + l.Addr().String() + "/callback"
	}
	for _, l := range held {
		require.NoError(t, l.Close())
	}
	browser := &gatheredOpen{open: e.b.open, wait: time.Second}
	browser.gather(n)
	tr := keyedProtected(t, func(key string) *ClientConfig {
		return &ClientConfig{Registered: map[string]RegisteredClient{"": {ClientID: oauthtest.PublicClientID}},
			RedirectURL: redirects[key], Open: browser.Open}
	})
	for _, err := range together(n, func(i int) error { return callKeyed(tr, resources[i].ResourceURL) }) {
		assert.NoError(t, err)
	}
	assert.False(t, browser.late.Load(), "a login waited for another one on another redirect URI")
	assert.Equal(t, int64(n), e.b.opens.Load())
}

func TestProtectedResourcesRegistrationsAtDifferentServersTogether(t *testing.T) {
	t.Parallel()
	// Registrations at different servers never wait for each other: 33
	// resources, each of its own server, first used at once, all register
	// together.
	const n = 33
	var resources []*oauthtest.Resource
	for range n {
		resources = append(resources, oauthtest.NewResource(t, oauthtest.NewServer(t)))
	}
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: n, wait: time.Second, all: make(chan struct{})}
	tr := keyedProtected(t, func(string) *ClientConfig { return &ClientConfig{} }, WithTokenClient(&http.Client{Transport: gate}))
	for _, err := range together(n, func(i int) error { return callKeyed(tr, resources[i].ResourceURL) }) {
		assert.NoError(t, err)
	}
	assert.False(t, gate.late.Load(), "a registration waited for another one at another server")
}
