package oauthtransport

// The device login over real HTTP against oauthtest, with a scripted
// person. oauthtest announces an interval of whole seconds, so a login
// takes a second or more per poll; nothing asserts its timing.

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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

// screen is a scripted device screen: it counts what show is called with,
// then does what the person does (nil: nothing).
type screen struct {
	shown  atomic.Int64
	last   atomic.Pointer[oauth2.DeviceAuthResponse]
	person func(da *oauth2.DeviceAuthResponse) error
}

func (s *screen) show(_ context.Context, da *oauth2.DeviceAuthResponse) error {
	s.shown.Add(1)
	c := *da
	s.last.Store(&c)
	if s.person != nil {
		return s.person(da)
	}
	return nil
}

func TestDeviceAuthorizationLogin(t *testing.T) {
	t.Parallel()
	for name, variant := range clientVariants(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srvOpts, config, opts := variant()
			srv := oauthtest.NewServer(t, append(srvOpts, oauthtest.DeviceDecisionAfter(2))...)
			cfg := config(srv)
			cfg.Scopes = []string{"read"}
			sc := &screen{}
			src := DeviceAuthorization(cfg, sc.show, opts...)
			ctx, pc := loginContext(t)

			tok, err := interactiveOf(t, src).login(ctx)
			require.NoError(t, err)
			assert.True(t, srv.Live(tok.AccessToken))
			assert.Equal(t, "read", tok.Extra("scope"))
			assert.EqualValues(t, 1, sc.shown.Load(), "show is called once")
			da := sc.last.Load()
			require.NotNil(t, da)
			assert.NotEmpty(t, da.UserCode)
			assert.Equal(t, srv.URL+"/device", da.VerificationURI)
			assert.Equal(t, da.VerificationURI+"?"+url.Values{"user_code": {da.UserCode}}.Encode(), da.VerificationURIComplete)
			assert.EqualValues(t, 3, srv.DevicePolls(), "two pending, then the tokens")
			assert.Zero(t, srv.SlowDowns(), "the interval is honoured")
			assert.Equal(t, 1, pc.count("/device_authorization"), "through the token client")
			assert.Equal(t, 3, pc.count("/token"), "through the token client")
			want := map[string]string{"public": "none", "client secret": "client_secret_basic", "private_key_jwt": "private_key_jwt"}[name]
			for _, r := range srv.TokenRequests() {
				assert.Equal(t, want, r.AuthMethod)
			}

			next, err := src.Token(ctx, tok)
			require.NoError(t, err)
			assert.True(t, next.RefreshToken != "" && next.RefreshToken != tok.RefreshToken, "the refresh token rotated")
			assert.Zero(t, srv.Reuses())
		})
	}
}

// TestDeviceAuthorizationSlowDown: another client polls the device code
// at once (too fast: slow_down, and the code's interval grows by 5 s), so
// the login's first poll a second later is too fast as well; it then
// polls 5 s slower and gets the tokens (about 7 s in all).
func TestDeviceAuthorizationSlowDown(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DeviceInterval(time.Second), oauthtest.DeviceDecisionAfter(0))
	sc := &screen{person: func(da *oauth2.DeviceAuthResponse) error {
		form := url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}, "client_id": {oauthtest.PublicClientID}}
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := client.PostForm(srv.TokenURL, form)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}}
	ctx, _ := loginContext(t)
	tok, err := interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), sc.show)).login(ctx)
	require.NoError(t, err)
	assert.True(t, srv.Live(tok.AccessToken))
	assert.EqualValues(t, 2, srv.SlowDowns(), "the other client's poll, then the login's first")
	assert.EqualValues(t, 3, srv.DevicePolls())
}

func TestDeviceAuthorizationRefused(t *testing.T) {
	t.Parallel()
	for code, tc := range map[string]struct {
		opts   []oauthtest.Option
		person func(srv *oauthtest.Server) func(*oauth2.DeviceAuthResponse) error
	}{
		"access_denied": {person: func(srv *oauthtest.Server) func(*oauth2.DeviceAuthResponse) error {
			return func(da *oauth2.DeviceAuthResponse) error {
				if !srv.DenyDevice(da.UserCode) {
					return errors.New("no such user code")
				}
				return nil
			}
		}},
		// The server's expired_token: the person never decides, and the
		// screen drops the expiry so that the login polls past it.
		"expired_token": {opts: []oauthtest.Option{oauthtest.DeviceCodeLifetime(time.Second)},
			person: func(*oauthtest.Server) func(*oauth2.DeviceAuthResponse) error {
				return func(da *oauth2.DeviceAuthResponse) error { da.Expiry = time.Time{}; return nil }
			}},
	} {
		t.Run(code, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t, tc.opts...)
			sc := &screen{person: tc.person(srv)}
			ctx, _ := loginContext(t)
			_, err := interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), sc.show)).login(ctx)
			require.ErrorIs(t, err, ErrAuthorizationDenied)
			te, ok := errors.AsType[*TokenError](err)
			require.True(t, ok)
			assert.Equal(t, code, te.Code)
			assert.EqualValues(t, 1, srv.DevicePolls())
			da := sc.last.Load()
			require.NotNil(t, da)
			assert.False(t, strings.Contains(err.Error(), da.DeviceCode), "the error never holds the device code")
		})
	}
}

func TestDeviceAuthorizationCodeExpiresLocally(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DeviceCodeLifetime(time.Second))
	sc := &screen{}
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), sc.show)).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied)
	// The code's second ends here or at the server first, whichever clock
	// is ahead: either way the login ends, and nothing polls after it.
	te, _ := errors.AsType[*TokenError](err)
	assert.True(t, errors.Is(err, errDeviceCodeExpired) || (te != nil && te.Code == "expired_token"), "the device code expired")
	assert.LessOrEqual(t, srv.DevicePolls(), int64(1), "no poll after the expiry")
}

func TestDeviceAuthorizationLoginTimeout(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t) // nobody ever decides
	sc := &screen{}
	start := time.Now()
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), sc.show, WithLoginTimeout(200*time.Millisecond))).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied)
	assert.Contains(t, err.Error(), "the login timed out")
	assert.Less(t, time.Since(start), 30*time.Second, "bounded by the login timeout (loosely)")
	assert.EqualValues(t, 1, sc.shown.Load())
}

func TestDeviceAuthorizationShowFails(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	noScreen := errors.New("no screen")
	sc := &screen{person: func(*oauth2.DeviceAuthResponse) error { return noScreen }}
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), sc.show)).login(ctx)
	require.ErrorIs(t, err, noScreen)
	_, ok := errors.AsType[*TokenError](err)
	assert.True(t, ok, "inside a *TokenError")
	assert.Zero(t, srv.DevicePolls(), "no poll")
	assert.EqualValues(t, 1, sc.shown.Load())

	_, err = interactiveOf(t, DeviceAuthorization(srv.PublicConfig(), nil)).login(ctx)
	assert.ErrorContains(t, err, "no show function")
}

func TestDeviceAuthorizationTokenNeverAsks(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	sc := &screen{}
	_, err := DeviceAuthorization(srv.PublicConfig(), sc.show).Token(context.Background(), nil)
	require.ErrorIs(t, err, errLoginNeeded)
	assert.Zero(t, sc.shown.Load())
	assert.Empty(t, srv.DeviceAuthorizations())
}

func TestCheckDeviceAuth(t *testing.T) {
	t.Parallel()
	ok := oauth2.DeviceAuthResponse{DeviceCode: "dc", UserCode: "uc", VerificationURI: "https://idp.example/device"}
	require.NoError(t, checkDeviceAuth(&ok))
	for name, mutate := range map[string]func(*oauth2.DeviceAuthResponse){
		"no device code":     func(da *oauth2.DeviceAuthResponse) { da.DeviceCode = "" },
		"no user code":       func(da *oauth2.DeviceAuthResponse) { da.UserCode = "" },
		"javascript: URI":    func(da *oauth2.DeviceAuthResponse) { da.VerificationURI = "javascript:alert(1)" },
		"file: complete URI": func(da *oauth2.DeviceAuthResponse) { da.VerificationURIComplete = "file:///etc/passwd" },
		"no URI":             func(da *oauth2.DeviceAuthResponse) { da.VerificationURI = "" },
	} {
		da := ok
		mutate(&da)
		assert.Error(t, checkDeviceAuth(&da), name)
	}
}

// TestDeviceAuthorizationEndpointHangs: x/oauth2 sends the device
// authorization request without the context; the login's timeout still
// ends it.
func TestDeviceAuthorizationEndpointHangs(t *testing.T) {
	t.Parallel()
	released := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-released:
		}
	}))
	defer hang.Close()
	defer close(released) // before Close, which waits for the handler
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.Endpoint.DeviceAuthURL = hang.URL + "/device_authorization"
	sc := &screen{}
	start := time.Now()
	ctx, _ := loginContext(t)
	_, err := interactiveOf(t, DeviceAuthorization(cfg, sc.show, WithLoginTimeout(200*time.Millisecond))).login(ctx)
	require.ErrorIs(t, err, ErrAuthorizationDenied, "the login timed out")
	assert.Less(t, time.Since(start), 30*time.Second, "bounded by the login timeout (loosely)")
	assert.Zero(t, sc.shown.Load())
}
