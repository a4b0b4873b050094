package interop

// The SDK's Sources for the grants a person authorizes (issue 21) against
// real authorization servers: AuthorizationCode against oidc-provider and
// Ory Hydra, DeviceAuthorization against oidc-provider (Hydra v2.3.0 has
// no device grant). The headless person of browser_test.go is the open and
// show funcs.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// grant is one of the Sources under test, for a server and a person.
type grant struct {
	name      string
	grantType string // what the person's approval is exchanged with
	source    func(t *testing.T, s personServer, p *person, gate *sync.WaitGroup) oauthtransport.Source
	logins    func(p *person) int64 // how often the person was asked
}

// gated holds a login until gate is done: the callers it waits for are
// all asking by then.
func gated(gate *sync.WaitGroup) {
	if gate != nil {
		gate.Wait()
	}
}

var codeGrant = grant{
	name: "AuthorizationCode", grantType: "authorization_code",
	source: func(_ *testing.T, s personServer, p *person, gate *sync.WaitGroup) oauthtransport.Source {
		open := func(ctx context.Context, authURL string) error { gated(gate); return p.open(ctx, authURL) }
		return oauthtransport.AuthorizationCode(s.NativeConfig("http://127.0.0.1/callback"), open, oauthtransport.WithIssuer(s.Issuer()))
	},
	logins: func(p *person) int64 { return p.opens.Load() },
}

var deviceGrant = grant{
	name: "DeviceAuthorization", grantType: "urn:ietf:params:oauth:grant-type:device_code",
	source: func(t *testing.T, s personServer, p *person, gate *sync.WaitGroup) oauthtransport.Source {
		show := p.show(t)
		gatedShow := func(ctx context.Context, da *oauth2.DeviceAuthResponse) error { gated(gate); return show(ctx, da) }
		return oauthtransport.DeviceAuthorization(s.NativeConfig(""), gatedShow, oauthtransport.WithIssuer(s.Issuer()))
	},
	logins: func(p *person) int64 { return p.shows.Load() },
}

func TestSDKPersonOIDC(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, time.Minute)
	for _, g := range []grant{codeGrant, deviceGrant} {
		t.Run(g.name, func(t *testing.T) { testSDKGrant(t, s, g) })
	}
}

func TestSDKPersonHydra(t *testing.T) {
	t.Parallel()
	testSDKGrant(t, startHydra(t), codeGrant)
}

// testSDKGrant runs the checks one after the other: each reads the
// server's counts before and after.
func testSDKGrant(t *testing.T, s personServer, g grant) {
	t.Run("LoginThenRefresh", func(t *testing.T) { testSDKLoginThenRefresh(t, s, g) })
	t.Run("OneLoginForFiftyCallers", func(t *testing.T) { testSDKOneLogin(t, s, g) })
	t.Run("Revoke", func(t *testing.T) { testSDKRevoke(t, s, g) })
}

// testSDKLoginThenRefresh: the first token asks the person once and costs
// one exchange at the server (its PKCE verified, for the code grant); a
// refresh afterwards asks nobody and exchanges no code again.
func testSDKLoginThenRefresh(t *testing.T, s personServer, g grant) {
	ctx := context.Background()
	p := newPerson(t)
	before, rtBefore := counts(t, s, g.grantType), counts(t, s, "refresh_token")
	tr := newTransport(t, g.source(t, s, p, nil))
	tok, err := tr.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), g.logins(p), "the person was asked once")
	requireActive(t, s, tok.AccessToken, true, "the access token")
	got := counts(t, s, g.grantType)
	require.Equal(t, before.Success+1, got.Success, "one exchange")
	if g.grantType == "authorization_code" {
		require.Equal(t, before.PKCE+1, got.PKCE, "its S256 challenge verified")
		require.Equal(t, before.Error, got.Error, "no failed exchange")
	}

	refreshed, err := tr.Refresh(ctx)
	require.NoError(t, err)
	require.True(t, refreshed.AccessToken != tok.AccessToken, "a new access token")
	requireActive(t, s, refreshed.AccessToken, true, "the refreshed access token")
	require.Equal(t, rtBefore.Success+1, counts(t, s, "refresh_token").Success, "one refresh")
	require.Equal(t, got.Success, counts(t, s, g.grantType).Success, "no second exchange")
	require.Equal(t, int64(1), g.logins(p), "the refresh asked nobody")
}

// testSDKOneLogin: fifty callers ask for a token before the first login
// ends (the login waits for all of them to be asking); the person is
// asked once, and the server sees one exchange.
func testSDKOneLogin(t *testing.T, s personServer, g grant) {
	p := newPerson(t)
	var asking sync.WaitGroup
	asking.Add(50)
	tr := newTransport(t, g.source(t, s, p, &asking))
	before := counts(t, s, g.grantType)
	var callers sync.WaitGroup
	for range 50 {
		callers.Go(func() {
			asking.Done()
			if _, err := tr.Token(context.Background()); err != nil {
				t.Errorf("a caller: %v", err)
			}
		})
	}
	callers.Wait()
	require.Equal(t, int64(1), g.logins(p), "one login for fifty callers")
	require.Equal(t, before.Success+1, counts(t, s, g.grantType).Success, "one exchange")
}

// testSDKRevoke: Revoke ends the grant at the server (introspection says
// inactive) and in the store; a peer sharing the store with a RefreshToken
// source configured with the revoked refresh token gets ErrReauthRequired
// without presenting it, an interactive peer asks its person again, and
// the first Transport never presents the revoked token.
func testSDKRevoke(t *testing.T, s personServer, g grant) {
	ctx, dir := context.Background(), t.TempDir()
	a := newTransport(t, g.source(t, s, newPerson(t), nil), oauthtransport.WithStore(store.NewFile(dir), "me"))
	_, err := a.Token(ctx)
	require.NoError(t, err)
	revoked, err := store.NewFile(dir).Load(ctx, "me")
	require.NoError(t, err)
	require.True(t, revoked.RefreshToken != "", "the login brought a refresh token")
	rtBefore := counts(t, s, "refresh_token")

	require.NoError(t, a.Revoke(ctx))
	requireActive(t, s, revoked.AccessToken, false, "the revoked access token")
	requireActive(t, s, revoked.RefreshToken, false, "the revoked refresh token")
	left, err := store.NewFile(dir).Load(ctx, "me")
	require.True(t, errors.Is(err, store.ErrNotFound) || (err == nil && left.AccessToken == "" && left.RefreshToken == ""),
		"no usable token left in the store (err %v)", err)

	b := newTransport(t, oauthtransport.RefreshToken(s.NativeConfig(""), &oauth2.Token{RefreshToken: revoked.RefreshToken}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	_, err = b.Token(ctx)
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)

	q := newPerson(t)
	c := newTransport(t, g.source(t, s, q, nil), oauthtransport.WithStore(store.NewFile(dir), "me"))
	fresh, err := c.Token(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), g.logins(q), "the peer's person was asked to sign in")
	require.True(t, fresh.AccessToken != revoked.AccessToken, "a new grant's token")
	requireActive(t, s, fresh.AccessToken, true, "the new grant's access token")
	require.Equal(t, rtBefore, counts(t, s, "refresh_token"), "the revoked refresh token was never presented")

	again, err := a.Token(ctx)
	require.NoError(t, err)
	require.True(t, again.AccessToken != revoked.AccessToken, "the first Transport does not present the revoked token")
}

func counts(t *testing.T, s personServer, grantType string) exchanges {
	t.Helper()
	e, err := s.Exchanges(context.Background(), grantType)
	require.NoError(t, err)
	return e
}

// requireActive checks what introspection says of token; what names it
// in a failure, never its value.
func requireActive(t *testing.T, s personServer, token string, want bool, what string) {
	t.Helper()
	active, err := s.Active(context.Background(), token)
	require.NoError(t, err)
	require.True(t, active == want, "%s: introspection says active=%v, want %v", what, active, want)
}
