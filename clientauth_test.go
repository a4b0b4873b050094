package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// noSecret is the client-credentials config of a client that has no
// secret: it authenticates with an assertion.
func noSecret(srv *oauthtest.Server) *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: oauthtest.ClientID, TokenURL: srv.TokenURL}
}

// assertionClaims reads the client assertion a token request carried.
func assertionClaims(t *testing.T, req oauthtest.TokenRequest, pub crypto.PublicKey) (jose.Header, josejwt.Claims) {
	t.Helper()
	tok, err := josejwt.ParseSigned(req.Form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA, jose.HS256})
	require.NoError(t, err)
	var c josejwt.Claims
	require.NoError(t, tok.Claims(pub, &c))
	return tok.Headers[0], c
}

func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []struct {
		alg string
		key crypto.Signer
		set string // WithAssertionAlgorithm
	}{{"ES256", ec, ""}, {"ES384", ec384, ""}, {"RS256", rs, ""}, {"PS256", rs, "PS256"}, {"EdDSA", ed, ""}} {
		t.Run(k.alg, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t, oauthtest.ClientKey(k.key.Public()))
			opts := []oauthtransport.SourceOption{oauthtransport.WithPrivateKeyJWT(k.key, "key-1")}
			if k.set != "" {
				opts = append(opts, oauthtransport.WithAssertionAlgorithm(k.set))
			}
			tr := newTransport(t, oauthtransport.ClientCredentials(noSecret(srv), opts...))
			_, err := tr.Token(context.Background())
			require.NoError(t, err)
			_, err = tr.Refresh(context.Background())
			require.NoError(t, err)
			reqs := srv.TokenRequests()
			require.Len(t, reqs, 2)
			assert.Equal(t, "private_key_jwt", reqs[0].AuthMethod)
			assert.Empty(t, reqs[0].Form.Get("client_secret"))
			h, c := assertionClaims(t, reqs[0], k.key.Public())
			assert.Equal(t, k.alg, h.Algorithm)
			assert.Equal(t, "key-1", h.KeyID)
			assert.Equal(t, oauthtest.ClientID, c.Issuer)
			assert.Equal(t, oauthtest.ClientID, c.Subject)
			assert.Equal(t, josejwt.Audience{srv.TokenURL}, c.Audience)
			assert.LessOrEqual(t, c.Expiry.Time().Sub(c.IssuedAt.Time()), time.Minute)
			_, c2 := assertionClaims(t, reqs[1], k.key.Public())
			assert.NotEqual(t, c.ID, c2.ID, "each token request gets a fresh assertion")
		})
	}
}

func TestPrivateKeyJWTWithRefreshTokens(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(key.Public()))
	cfg := &oauth2.Config{ClientID: oauthtest.ClientID, Endpoint: oauth2.Endpoint{TokenURL: srv.TokenURL}}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()},
		oauthtransport.WithPrivateKeyJWT(key, "")))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	for _, r := range srv.TokenRequests() {
		assert.Equal(t, "refresh_token", r.Form.Get("grant_type"))
		assert.Equal(t, "private_key_jwt", r.AuthMethod)
	}
	assert.Zero(t, srv.Reuses())
}

func TestWrongKeyIsATokenError(t *testing.T) {
	t.Parallel()
	registered, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(registered.Public()))
	tr := newTransport(t, oauthtransport.ClientCredentials(noSecret(srv), oauthtransport.WithPrivateKeyJWT(other, "")))
	_, err := tr.Token(context.Background())
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "err = %v", err)
	assert.Equal(t, "invalid_client", te.Code)
	assert.False(t, te.Temporary())
	assert.Empty(t, srv.TokenRequests(), "the server accepted no request")
}

func TestAssertionAlgorithmTheKeyCannotUse(t *testing.T) {
	t.Parallel()
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(ec.Public()))
	tr := newTransport(t, oauthtransport.ClientCredentials(noSecret(srv), oauthtransport.WithPrivateKeyJWT(ec, ""),
		oauthtransport.WithAssertionAlgorithm("PS256")))
	_, err := tr.Token(context.Background())
	require.ErrorContains(t, err, "PS256")
	assert.Zero(t, srv.TokenCalls(), "nothing sent")
}

func TestClientSecretJWT(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := &clientcredentials.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.JWTSecret, TokenURL: srv.TokenURL}
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg, oauthtransport.WithClientSecretJWT()))
	_, err := tr.Token(context.Background())
	require.NoError(t, err)
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "client_secret_jwt", reqs[0].AuthMethod)
	assert.Empty(t, reqs[0].Form.Get("client_secret"), "the secret itself is never sent")
	h, _ := assertionClaims(t, reqs[0], []byte(oauthtest.JWTSecret))
	assert.Equal(t, "HS256", h.Algorithm)

	short := &clientcredentials.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL}
	tr = newTransport(t, oauthtransport.ClientCredentials(short, oauthtransport.WithClientSecretJWT()))
	calls := srv.TokenCalls()
	_, err = tr.Token(context.Background())
	require.ErrorContains(t, err, "at least 32")
	assert.Equal(t, calls, srv.TokenCalls(), "nothing sent")
	assert.NotContains(t, err.Error(), oauthtest.ClientSecret)
}

// A workload identity: the assertion is read from a file for each token
// request (a Kubernetes projected service-account token), never logged.
func TestClientAssertionFromAFile(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(key.Public()))
	path := filepath.Join(t.TempDir(), "token")
	mint := func() string { // what the platform writes, signed by its key
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
		now := time.Now()
		a, _ := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: oauthtest.ClientID, Subject: oauthtest.ClientID, ID: now.String(),
			Audience: josejwt.Audience{srv.TokenURL}, IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
		require.NoError(t, os.WriteFile(path, []byte(a), 0o600))
		return a
	}
	first := mint()
	var logs logBuffer
	readFile := func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		return string(b), err
	}
	tr := newTransport(t, oauthtransport.ClientCredentials(noSecret(srv), oauthtransport.WithClientAssertion(readFile)),
		oauthtransport.WithLogger(logs.logger()))
	_, err := tr.Token(context.Background())
	require.NoError(t, err)
	second := mint()
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, first, reqs[0].Form.Get("client_assertion"))
	assert.Equal(t, second, reqs[1].Form.Get("client_assertion"), "read again for each request")

	// The platform's token is replayed (the server refuses a jti twice):
	// the error names the problem, never the assertion.
	_, err = tr.Refresh(context.Background())
	require.Error(t, err)
	assertNoSecret(t, "error", err.Error(), second)
	assertNoSecret(t, "logs", logs.String(), first, second)

	require.NoError(t, os.Remove(path))
	tr = newTransport(t, oauthtransport.ClientCredentials(noSecret(srv), oauthtransport.WithClientAssertion(readFile)))
	calls := srv.TokenCalls()
	_, err = tr.Token(context.Background())
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.Equal(t, calls, srv.TokenCalls(), "nothing sent without an assertion")
}
