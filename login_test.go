package oauthtransport

// What the person grants' tests share: a scripted browser, a token client
// that counts what it sends, the ways a client authenticates; and the
// options and surface of login.go.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// browser is a scripted person's browser.
type browser struct {
	// visits returns what to visit after the authorization endpoint
	// redirected to loc; nil: loc itself.
	visits func(loc *url.URL) []*url.URL

	opens    atomic.Int64
	mu       sync.Mutex
	statuses []int    // the listener's answers, in order
	first    *url.URL // the first redirect the server answered with
	client   *http.Client
	once     sync.Once
}

// open follows authURL as a browser would, without following redirects,
// then visits the loopback redirect; it asserts nothing about timing.
func (b *browser) open(ctx context.Context, authURL string) error {
	b.opens.Add(1)
	b.once.Do(func() {
		b.client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	})
	status, loc, err := b.get(ctx, authURL)
	if err != nil {
		return err
	}
	if status != http.StatusFound {
		return fmt.Errorf("the authorization endpoint answered %d", status)
	}
	b.mu.Lock()
	b.first = loc
	b.mu.Unlock()
	visits := []*url.URL{loc}
	if b.visits != nil {
		visits = b.visits(loc)
	}
	for _, u := range visits {
		status, _, err := b.get(ctx, u.String())
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.statuses = append(b.statuses, status)
		b.mu.Unlock()
	}
	return nil
}

func (b *browser) get(ctx context.Context, u string) (int, *url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, errors.New("not a URL")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, nil, errors.New("the browser could not load the page") // the URL holds the state
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	return resp.StatusCode, loc, nil
}

func (b *browser) answers() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.statuses...)
}

func (b *browser) redirect() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// withQuery returns a copy of u with key set to value (removed when
// value is empty).
func withQuery(u *url.URL, key, value string) *url.URL {
	c := *u
	q := c.Query()
	if value == "" {
		q.Del(key)
	} else {
		q.Set(key, value)
	}
	c.RawQuery = q.Encode()
	return &c
}

// pathCounter is a token client's transport that counts requests by path.
type pathCounter struct {
	base  *http.Transport
	mu    sync.Mutex
	paths map[string]int
}

func (p *pathCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	p.mu.Lock()
	p.paths[req.URL.Path]++
	p.mu.Unlock()
	return p.base.RoundTrip(req)
}

func (p *pathCounter) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paths[path]
}

// loginContext carries a token client, as the Transport hands its own to
// a Source, which counts what it sends.
func loginContext(t *testing.T) (context.Context, *pathCounter) {
	t.Helper()
	pc := &pathCounter{base: &http.Transport{}, paths: map[string]int{}}
	t.Cleanup(pc.base.CloseIdleConnections)
	return withTokenClient(context.Background(), newTokenClient(&http.Client{Transport: pc}, false, nil)), pc
}

func interactiveOf(t *testing.T, src Source) interactive {
	t.Helper()
	in, ok := src.(interactive)
	require.True(t, ok, "the Source logs in")
	return in
}

// clientVariants are the ways a client authenticates: none (a public
// client), a secret, a private_key_jwt assertion. Each returns the
// server's options, the config and the source options.
func clientVariants(t *testing.T) map[string]func() ([]oauthtest.Option, func(*oauthtest.Server) *oauth2.Config, []SourceOption) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	return map[string]func() ([]oauthtest.Option, func(*oauthtest.Server) *oauth2.Config, []SourceOption){
		"public": func() ([]oauthtest.Option, func(*oauthtest.Server) *oauth2.Config, []SourceOption) {
			return nil, (*oauthtest.Server).PublicConfig, nil
		},
		"client secret": func() ([]oauthtest.Option, func(*oauthtest.Server) *oauth2.Config, []SourceOption) {
			return nil, (*oauthtest.Server).OAuth2Config, nil
		},
		"private_key_jwt": func() ([]oauthtest.Option, func(*oauthtest.Server) *oauth2.Config, []SourceOption) {
			return []oauthtest.Option{oauthtest.ClientKey(key.Public())}, func(srv *oauthtest.Server) *oauth2.Config {
				cfg := srv.OAuth2Config()
				cfg.ClientSecret = ""
				return cfg
			}, []SourceOption{WithPrivateKeyJWT(key, "")}
		},
	}
}

// unreachableIssuer is an issuer on a loopback port nobody listens on: it
// has no metadata.
func unreachableIssuer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return "http://" + addr
}

func TestLoginTimeoutOption(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{}
	assert.Equal(t, 5*time.Minute, interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open)).loginTimeout())
	assert.Equal(t, time.Second, interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), nil, WithLoginTimeout(time.Second))).loginTimeout())
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open, WithLoginTimeout(0))).login(context.Background())
	require.ErrorIs(t, err, ErrToken)
	assert.Contains(t, err.Error(), "WithLoginTimeout")
	assert.Zero(t, b.opens.Load())
	assert.Empty(t, srv.AuthorizationRequests())
}

// TestPersonGrantSurface: what the refresh protocol reads of a person's
// grant, as of RefreshToken's.
func TestPersonGrantSurface(t *testing.T) {
	t.Parallel()
	cfg := &oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{AuthURL: "https://idp.example/authorize", TokenURL: "https://idp.example/token"}}
	opts := []SourceOption{WithResource("https://api.example/"), WithRotationGrace(time.Minute)}
	src := AuthorizationCode(cfg, func(context.Context, string) error { return nil }, opts...)
	assert.Equal(t, scopeOf(RefreshToken(cfg, nil, opts...)), scopeOf(src), "kept apart by resource like RefreshToken")
	assert.NotEmpty(t, scopeOf(src))
	assert.Equal(t, time.Minute, graceOf(src))
	assert.True(t, spends(src, nil), "it spends a refresh token")
}
