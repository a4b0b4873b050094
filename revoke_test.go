package oauthtransport

// Revocation (RFC 7009) of the built-in sources that hold a grant, against
// oauthtest's revocation endpoint.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func revokerOf(t *testing.T, src Source) revoker {
	t.Helper()
	r, ok := src.(revoker)
	require.True(t, ok, "the Source revokes")
	return r
}

func TestRefreshTokenRevoke(t *testing.T) {
	t.Parallel()
	for name, style := range map[string]oauth2.AuthStyle{"header": oauth2.AuthStyleInHeader, "body": oauth2.AuthStyleInParams,
		"auto-detected": oauth2.AuthStyleAutoDetect} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t)
			cfg := srv.OAuth2Config()
			cfg.Endpoint.AuthStyle = style
			src := RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}, WithIssuer(srv.URL))
			ctx, pc := loginContext(t)
			tok, err := src.Token(ctx, nil)
			require.NoError(t, err)
			require.True(t, srv.Live(tok.AccessToken))

			require.NoError(t, revokerOf(t, src).revoke(ctx, tok))
			assert.EqualValues(t, 1, srv.RevokeCalls())
			assert.Equal(t, 1, pc.count("/revoke"), "through the token client")
			assert.False(t, srv.Live(tok.AccessToken), "the API rejects the grant's tokens")
			_, err = src.Token(ctx, tok)
			assert.Equal(t, "invalid_grant", tokenErrorCode(err), "the refresh token is revoked")
		})
	}
}

func TestRefreshTokenRevokeWithoutIssuer(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	src := RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: srv.IssueRefreshToken()})
	err := revokerOf(t, src).revoke(context.Background(), &oauth2.Token{RefreshToken: "rt"})
	require.ErrorIs(t, err, errNoRevocationEndpoint)
	assert.Zero(t, srv.RevokeCalls())

	// An issuer without metadata: no endpoint either, and the cause kept.
	src = RefreshToken(srv.OAuth2Config(), nil, WithIssuer(unreachableIssuer(t)))
	err = revokerOf(t, src).revoke(context.Background(), &oauth2.Token{RefreshToken: "rt"})
	require.ErrorIs(t, err, errNoRevocationEndpoint)
	assert.Contains(t, err.Error(), "discovery")
}

func TestAuthorizationCodeRevoke(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	b := &browser{}
	src := AuthorizationCode(srv.PublicConfig(), b.open)
	ctx, _ := loginContext(t)
	tok, err := interactiveOf(t, src).login(ctx)
	require.NoError(t, err)

	// Revoking only an access token leaves the grant's refresh token.
	access := &oauth2.Token{AccessToken: tok.AccessToken}
	require.NoError(t, revokerOf(t, src).revoke(ctx, access))
	assert.False(t, srv.Live(tok.AccessToken))
	next, err := src.Token(ctx, tok)
	require.NoError(t, err)

	require.NoError(t, revokerOf(t, src).revoke(ctx, next), "the metadata found at the endpoints' origin")
	assert.EqualValues(t, 2, srv.RevokeCalls())
	assert.False(t, srv.Live(next.AccessToken), "revoking the refresh token revokes the grant")
	_, err = src.Token(ctx, next)
	assert.Equal(t, "invalid_grant", tokenErrorCode(err), "the refresh token is revoked")
}

func TestRevokeRefused(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.OAuth2Config()
	cfg.ClientSecret = "wrong-secret"
	src := DeviceAuthorization(cfg, func(context.Context, *oauth2.DeviceAuthResponse) error { return nil })
	err := revokerOf(t, src).revoke(context.Background(), &oauth2.Token{RefreshToken: "rt-secret"})
	require.Error(t, err)
	assert.NotErrorIs(t, err, errNoRevocationEndpoint)
	assert.Contains(t, err.Error(), "401")
	assert.Contains(t, err.Error(), "invalid_client")
	assert.False(t, strings.Contains(err.Error(), "rt-secret") || strings.Contains(err.Error(), "wrong-secret"),
		"the error holds neither the token nor the secret")
	assert.EqualValues(t, 1, srv.RevokeCalls())

	err = revokerOf(t, src).revoke(context.Background(), &oauth2.Token{})
	assert.ErrorContains(t, err, "no token to revoke")
	assert.EqualValues(t, 1, srv.RevokeCalls())
}

func TestRevokeWithAssertion(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(key.Public()), oauthtest.DeviceDecisionAfter(0))
	cfg := srv.OAuth2Config()
	cfg.ClientSecret = ""
	src := DeviceAuthorization(cfg, func(context.Context, *oauth2.DeviceAuthResponse) error { return nil }, WithPrivateKeyJWT(key, ""),
		WithIssuer(srv.URL))
	ctx, _ := loginContext(t)
	tok, err := interactiveOf(t, src).login(ctx)
	require.NoError(t, err)
	require.NoError(t, revokerOf(t, src).revoke(ctx, tok), "the client authenticated by private_key_jwt")
	assert.EqualValues(t, 1, srv.RevokeCalls())
	assert.False(t, srv.Live(tok.AccessToken))
}
