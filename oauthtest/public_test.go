package oauthtest_test

// The public client: no secret, the grants a person authorizes, and the
// revocation of its own tokens.

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestPublicClientMayNotUseClientCredentials(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cc := &clientcredentials.Config{ClientID: oauthtest.PublicClientID, TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams}
	_, err := cc.Token(context.Background())
	assert.Equal(t, "unauthorized_client", oauthErrorCode(t, err))

	cc.ClientSecret = "guess"
	_, err = cc.Token(context.Background())
	assert.Equal(t, "invalid_client", oauthErrorCode(t, err), "a public client has no secret")
}

func TestRefreshTokenBoundToItsClient(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	rt := srv.IssueRefreshToken() // ClientID's
	_, err := srv.PublicConfig().TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))
	_, err = srv.OAuth2Config().TokenSource(context.Background(), &oauth2.Token{RefreshToken: rt}).Token()
	assert.NoError(t, err, "the refused attempt did not spend it")
}

func TestPublicClientRevokes(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = loopback
	verifier := oauth2.GenerateVerifier()
	tok, err := cfg.Exchange(context.Background(), login(t, srv, cfg, verifier), oauth2.VerifierOption(verifier))
	require.NoError(t, err)

	revoke := func(client url.Values) int {
		form := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
		for k, v := range client {
			form[k] = v
		}
		resp, err := http.PostForm(srv.RevokeURL, form)
		require.NoError(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, revoke(url.Values{"client_id": {oauthtest.ClientID}, "client_secret": {oauthtest.ClientSecret}}),
		"another client's token")
	assert.True(t, srv.Live(tok.AccessToken))
	assert.Equal(t, http.StatusOK, revoke(url.Values{"client_id": {oauthtest.PublicClientID}}))
	assert.False(t, srv.Live(tok.AccessToken), "the family is revoked")
	assert.EqualValues(t, 2, srv.RevokeCalls())
}
