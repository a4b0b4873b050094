package oauthtransport

// The authorization code login over real HTTP against oauthtest, with a
// scripted person: the browser (login_test.go) stops at each redirect and
// visits the loopback redirect the server answers with. Failure messages
// never print a code, a state or a token: booleans instead.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestAuthorizationCodeLogin(t *testing.T) {
	t.Parallel()
	for name, variant := range clientVariants(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srvOpts, config, opts := variant()
			srv := oauthtest.NewServer(t, srvOpts...)
			cfg := config(srv)
			cfg.Scopes = []string{"read", "write"}
			b := &browser{}
			src := AuthorizationCode(cfg, b.open, append(opts, WithResource("https://api.example/a", "https://api.example/b"))...)
			ctx, pc := loginContext(t)

			tok, err := interactiveOf(t, src).login(ctx)
			require.NoError(t, err)
			assert.True(t, srv.Live(tok.AccessToken), "the login's access token is live")
			require.True(t, tok.RefreshToken != "", "a refresh token")
			assert.Equal(t, []int{http.StatusOK}, b.answers())
			assert.EqualValues(t, 1, b.opens.Load())
			assert.EqualValues(t, 1, srv.CodeExchanges())
			passed, failed := srv.PKCEChecks()
			assert.Equal(t, [2]int64{1, 0}, [2]int64{passed, failed})
			assertAuthorizationRequest(t, srv)
			assertExchange(t, srv, name)
			assert.Positive(t, pc.count("/.well-known/openid-configuration"), "discovery through the token client")
			assert.Equal(t, 1, pc.count("/token"), "the exchange through the token client")

			next, err := src.Token(ctx, tok)
			require.NoError(t, err)
			assert.True(t, next.RefreshToken != "" && next.RefreshToken != tok.RefreshToken, "the refresh token rotated")
			assert.True(t, srv.Live(next.AccessToken), "the refreshed access token is live")
			assert.Zero(t, srv.Reuses())
			assert.True(t, src.(RefreshTokenSpender).SpendsRefreshToken())
		})
	}
}

// assertExchange checks the code exchange srv received: the grant's
// parameters, the client authenticated as the variant says.
func assertExchange(t *testing.T, srv *oauthtest.Server, variant string) {
	t.Helper()
	reqs := srv.TokenRequests()
	require.NotEmpty(t, reqs)
	f := reqs[0].Form
	assert.Equal(t, "authorization_code", f.Get("grant_type"))
	assert.Equal(t, srv.AuthorizationRequests()[0].Get("redirect_uri"), f.Get("redirect_uri"))
	assert.True(t, f.Get("code") != "" && f.Get("code_verifier") != "", "the code and its verifier")
	assert.Equal(t, []string{"https://api.example/a", "https://api.example/b"}, f["resource"])
	want := map[string]string{"public": "none", "client secret": "client_secret_basic", "private_key_jwt": "private_key_jwt"}[variant]
	assert.Equal(t, want, reqs[0].AuthMethod)
}

// assertAuthorizationRequest checks the one authorization request srv
// received: S256, a 128-bit state, cfg's scopes, the resources, the
// default redirect URI on a free port.
func assertAuthorizationRequest(t *testing.T, srv *oauthtest.Server) {
	t.Helper()
	reqs := srv.AuthorizationRequests()
	require.Len(t, reqs, 1)
	q := reqs[0]
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.Equal(t, "read write", q.Get("scope"))
	assert.Equal(t, []string{"https://api.example/a", "https://api.example/b"}, q["resource"])
	assert.Len(t, q.Get("state"), 32, "128 random bits, hex")
	redirect, err := url.Parse(q.Get("redirect_uri"))
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", redirect.Hostname())
	assert.Equal(t, "/callback", redirect.Path)
	assert.NotEmpty(t, redirect.Port())
}

func TestAuthorizationCodeTokenNeverAsks(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{}
	src := AuthorizationCode(srv.PublicConfig(), b.open)
	for _, current := range []*oauth2.Token{nil, {AccessToken: "at-expired", Expiry: time.Now().Add(-time.Hour)}} {
		_, err := src.Token(context.Background(), current)
		require.ErrorIs(t, err, errLoginNeeded)
		_, ok := errors.AsType[*TokenError](err)
		assert.True(t, ok, "a *TokenError")
		assert.NotErrorIs(t, err, ErrAuthorizationDenied)
	}
	assert.Zero(t, b.opens.Load(), "Token never asks the person")
	assert.Zero(t, srv.TokenCalls())
	assert.Empty(t, srv.AuthorizationRequests())
}

func TestAuthorizationCodeState(t *testing.T) {
	t.Parallel()
	for name, tamper := range map[string]func(*url.URL) *url.URL{
		"wrong state":   func(u *url.URL) *url.URL { return withQuery(u, "state", "forged") },
		"missing state": func(u *url.URL) *url.URL { return withQuery(u, "state", "") },
	} {
		t.Run(name+", then the right redirect", func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t)
			b := &browser{visits: func(loc *url.URL) []*url.URL { return []*url.URL{tamper(loc), loc} }}
			ctx, _ := loginContext(t)
			tok, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open)).login(ctx)
			require.NoError(t, err, "an attacker cannot end the login")
			assert.True(t, srv.Live(tok.AccessToken))
			assert.Equal(t, []int{http.StatusBadRequest, http.StatusOK}, b.answers())
			assert.EqualValues(t, 1, srv.CodeExchanges())
		})
		t.Run(name+" only", func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t)
			b := &browser{visits: func(loc *url.URL) []*url.URL { return []*url.URL{tamper(loc)} }}
			ctx, _ := loginContext(t)
			_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open, WithLoginTimeout(200*time.Millisecond))).login(ctx)
			require.ErrorIs(t, err, ErrAuthorizationDenied, "the login timed out")
			assert.Contains(t, err.Error(), "1 requests to the redirect URI refused")
			assert.Equal(t, []int{http.StatusBadRequest}, b.answers())
			assert.Zero(t, srv.CodeExchanges())
			assertNoSecret(t, err, b.redirect())
		})
	}
}

// assertNoSecret checks that err's text holds none of the redirect's
// code and state.
func assertNoSecret(t *testing.T, err error, redirect *url.URL) {
	t.Helper()
	require.NotNil(t, redirect)
	for _, key := range []string{"code", "state"} {
		if v := redirect.Query().Get(key); v != "" {
			assert.False(t, strings.Contains(err.Error(), v), "the error never holds the %s", key)
		}
	}
}

func TestAuthorizationCodeIssuer(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		tamper  func(srv *oauthtest.Server, loc *url.URL) *url.URL
		want    string
		withIss func(t *testing.T) string // WithIssuer's issuer; nil: none
	}{
		"another issuer": {tamper: func(_ *oauthtest.Server, loc *url.URL) *url.URL {
			return withQuery(loc, "iss", "https://evil.example")
		}, want: "names another issuer"},
		"missing iss, the metadata says it is sent": {tamper: func(_ *oauthtest.Server, loc *url.URL) *url.URL {
			return withQuery(loc, "iss", "")
		}, want: "has no iss"},
		"no metadata, WithIssuer's issuer differs": {tamper: func(_ *oauthtest.Server, loc *url.URL) *url.URL { return loc },
			want: "names another issuer", withIss: unreachableIssuer},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t)
			b := &browser{visits: func(loc *url.URL) []*url.URL { return []*url.URL{tc.tamper(srv, loc)} }}
			var opts []SourceOption
			if tc.withIss != nil {
				opts = append(opts, WithIssuer(tc.withIss(t)))
			}
			ctx, _ := loginContext(t)
			_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open, opts...)).login(ctx)
			require.ErrorIs(t, err, ErrToken)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotErrorIs(t, err, ErrAuthorizationDenied, "a mix-up, not a refusal")
			assert.Equal(t, []int{http.StatusBadRequest}, b.answers())
			assert.Zero(t, srv.CodeExchanges(), "no exchange")
			assertNoSecret(t, err, b.redirect())
		})
	}
}

func TestAuthorizationCodeNoMetadataMissingIss(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{visits: func(loc *url.URL) []*url.URL { return []*url.URL{withQuery(loc, "iss", "")} }}
	ctx, _ := loginContext(t)
	tok, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open, WithIssuer(unreachableIssuer(t)))).login(ctx)
	require.NoError(t, err, "without metadata, a missing iss is accepted")
	assert.True(t, srv.Live(tok.AccessToken))
}

func TestAuthorizationCodeRedirectReplayed(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{visits: func(loc *url.URL) []*url.URL { return []*url.URL{loc, loc} }}
	ctx, _ := loginContext(t)
	tok, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open)).login(ctx)
	require.NoError(t, err)
	assert.True(t, srv.Live(tok.AccessToken), "the code was exchanged once: no replay revoked it")
	assert.Equal(t, []int{http.StatusOK, http.StatusBadRequest}, b.answers())
	assert.EqualValues(t, 1, srv.CodeExchanges())
	assert.Zero(t, srv.CodeReplays())
}

func TestAuthorizationCodeOtherPath(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{visits: func(loc *url.URL) []*url.URL {
		other := *loc
		other.Path = "/favicon.ico"
		return []*url.URL{&other, loc}
	}}
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open)).login(ctx)
	require.NoError(t, err)
	assert.Equal(t, []int{http.StatusNotFound, http.StatusOK}, b.answers())
	assert.EqualValues(t, 1, srv.CodeExchanges())
}

func TestAuthorizationCodeRefusesEndpoint(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	for authURL, want := range map[string]string{
		"javascript:alert(document.cookie)": `"javascript"`,
		"file:///etc/passwd":                `"file"`,
		"http://idp.example/authorize":      "plain http",
		"":                                  "no authorization endpoint",
	} {
		cfg := srv.PublicConfig()
		cfg.Endpoint.AuthURL = authURL
		b := &browser{}
		_, err := interactiveOf(t, AuthorizationCode(cfg, b.open)).login(context.Background())
		require.ErrorIs(t, err, ErrToken, authURL)
		assert.Contains(t, err.Error(), want)
		assert.Zero(t, b.opens.Load(), "refused before open: %s", authURL)
	}
	assert.Empty(t, srv.AuthorizationRequests())
}

func TestAuthorizationCodeDenied(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	srv.Person(oauthtest.Deny)
	b := &browser{}
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), b.open)).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied)
	te, ok := errors.AsType[*TokenError](err)
	require.True(t, ok)
	assert.Equal(t, "access_denied", te.Code)
	assert.False(t, te.Temporary())
	assert.Equal(t, []int{http.StatusForbidden}, b.answers())
	assert.Zero(t, srv.CodeExchanges())
}

func TestAuthorizationCodeNeverComesBack(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var opens atomic.Int64
	idle := func(context.Context, string) error { opens.Add(1); return nil } // the person closes the tab
	start := time.Now()
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), idle, WithLoginTimeout(200*time.Millisecond))).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied)
	assert.Contains(t, err.Error(), "the login timed out")
	assert.Less(t, time.Since(start), 30*time.Second, "bounded by the login timeout (loosely)")
	assert.EqualValues(t, 1, opens.Load())

	cancelled, cancel := context.WithCancel(ctx)
	abandon := func(context.Context, string) error { cancel(); return nil }
	_, err = interactiveOf(t, AuthorizationCode(srv.PublicConfig(), abandon)).login(cancelled)
	require.ErrorIs(t, err, context.Canceled, "the caller's context ends the login")
	assert.NotErrorIs(t, err, ErrAuthorizationDenied)
	assert.Zero(t, srv.CodeExchanges())
}

func TestAuthorizationCodeOpenFails(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	noBrowser := errors.New("no browser here")
	fail := func(context.Context, string) error { return noBrowser }
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), fail)).login(ctx)
	require.ErrorIs(t, err, noBrowser)
	_, ok := errors.AsType[*TokenError](err)
	assert.True(t, ok, "inside a *TokenError")
	assert.NotErrorIs(t, err, ErrAuthorizationDenied)

	_, err = interactiveOf(t, AuthorizationCode(srv.PublicConfig(), nil)).login(ctx)
	assert.ErrorContains(t, err, "no open function")
}

// A refusal that reaches the listener before open returns with an error
// (a scripted browser that treats the refusal page as a failure) is the
// login's error: the server's code, not open's.
func TestAuthorizationCodeDeniedBeforeOpenReturns(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	srv.Person(oauthtest.Deny)
	open := func(ctx context.Context, authURL string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req) // follows the refusal to the listener
		if err != nil {
			return err
		}
		resp.Body.Close()
		return fmt.Errorf("the page answered %d", resp.StatusCode)
	}
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, AuthorizationCode(srv.PublicConfig(), open)).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied)
	te, ok := errors.AsType[*TokenError](err)
	require.True(t, ok)
	assert.Equal(t, "access_denied", te.Code)
}
