package interop

// What enterprise IdPs require, against oidc-provider: private_key_jwt,
// client_secret_jwt, DPoP with nonces at the token endpoint and at an API
// that checks proofs, resource indicators, discovery.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

// clientKey is pkjwt-client's key; the provider gets its public half.
var clientKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

func clientJWKS() string {
	jwk := jose.JSONWebKey{Key: clientKey.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}
	b, _ := json.Marshal(map[string]any{"keys": []jose.JSONWebKey{jwk}})
	return string(b)
}

func (s *oidcServer) config(clientID, secret string) *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: s.issuer + "/token", Scopes: []string{"api"}}
}

// introspect asks the provider about tok, as the resource server.
func (s *oidcServer) introspect(tok string) (map[string]any, error) {
	req, _ := http.NewRequest(http.MethodPost, s.issuer+"/token/introspection", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("resource-server", "rs-secret-value")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

func TestOIDCProviderEnterprise(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, 30*time.Second)
	get := func(t *testing.T, tr *oauthtransport.Transport, u string) {
		t.Helper()
		resp, err := tr.Client().Get(u)
		require.NoError(t, err)
		resp.Body.Close()
	}
	t.Run("PrivateKeyJWT", func(t *testing.T) {
		tr := newTransport(t, oauthtransport.ClientCredentials(s.config("pkjwt-client", ""), oauthtransport.WithPrivateKeyJWT(clientKey, "k1")))
		get(t, tr, s.APIURL())
		_, err := tr.Refresh(context.Background())
		require.NoError(t, err, "a second assertion, with a new jti")

		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		bad := newTransport(t, oauthtransport.ClientCredentials(s.config("pkjwt-client", ""), oauthtransport.WithPrivateKeyJWT(other, "k1")))
		_, err = bad.Token(context.Background())
		te, ok := errors.AsType[*oauthtransport.TokenError](err)
		require.True(t, ok, "a wrong key: err = %v", err)
		assert.Equal(t, "invalid_client", te.Code)
	})
	t.Run("ClientSecretJWT", func(t *testing.T) {
		cfg := s.config("csjwt-client", "csjwt-secret-value-long-enough-for-hs256")
		tr := newTransport(t, oauthtransport.ClientCredentials(cfg, oauthtransport.WithClientSecretJWT()))
		get(t, tr, s.APIURL())
	})
	t.Run("DPoPWithNonces", func(t *testing.T) { testDPoP(t, s) })
	t.Run("ReplayAfterRevocation", func(t *testing.T) {
		cfg := s.config("pkjwt-client", "")
		tr := newTransport(t, oauthtransport.ClientCredentials(cfg, oauthtransport.WithPrivateKeyJWT(clientKey, "k1")))
		get(t, tr, s.APIURL())
		tok, _ := tr.Token(context.Background())
		s.denied.Store(tok.AccessToken, true) // the API stops accepting it
		get(t, tr, s.APIURL())
		st := tr.Stats()
		assert.Equal(t, int64(1), st.Replays, "the 401 was replayed once with a new token")
		assert.Equal(t, int64(2), st.TokenFetches)
	})
	t.Run("ResourceIndicators", func(t *testing.T) {
		const resource = "https://orders.example.com/"
		tr := newTransport(t, oauthtransport.ClientCredentials(s.config("cc-client", "cc-secret-value"), oauthtransport.WithResource(resource)))
		tok, err := tr.Token(context.Background())
		require.NoError(t, err)
		in, err := s.introspect(tok.AccessToken)
		require.NoError(t, err)
		assert.Equal(t, true, in["active"])
		assert.Equal(t, resource, in["aud"], "the token is for the resource asked for")
	})
	t.Run("Discovery", func(t *testing.T) {
		md, err := oauthtransport.Discover(context.Background(), s.issuer)
		require.NoError(t, err)
		assert.Equal(t, s.issuer+"/token", md.TokenEndpoint)
		assert.Contains(t, md.DPoPSigningAlgValuesSupported, "ES256")
		assert.Contains(t, md.TokenEndpointAuthMethodsSupported, "private_key_jwt")
		cfg := s.config("cc-client", "cc-secret-value")
		cfg.TokenURL, cfg.AuthStyle = md.Endpoint().TokenURL, md.Endpoint().AuthStyle
		get(t, newTransport(t, oauthtransport.ClientCredentials(cfg)), s.APIURL())
	})
}

// Tokens refreshed in the background before they expire, with an
// assertion and with DPoP proofs, from a provider issuing 2-second tokens.
func TestOIDCProviderEnterpriseBackgroundRefresh(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, 2*time.Second)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	api := httptest.NewServer(&dpopAPI{s: s, nonce: "n"})
	t.Cleanup(api.Close)
	for name, c := range map[string]struct {
		tr  *oauthtransport.Transport
		api string
	}{
		"PrivateKeyJWT": {newTransport(t, oauthtransport.ClientCredentials(s.config("pkjwt-client", ""),
			oauthtransport.WithPrivateKeyJWT(clientKey, "k1"))), s.APIURL()},
		"DPoP": {newTransport(t, oauthtransport.ClientCredentials(s.config("dpop-client", "dpop-secret-value")),
			oauthtransport.WithDPoP(key)), api.URL},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			call := func() {
				resp, err := c.tr.Client().Get(c.api)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode)
			}
			call()
			first, _ := c.tr.Token(context.Background())
			require.Eventually(t, func() bool {
				call() // once the token is stale, a request starts the background refresh
				return c.tr.Stats().BackgroundRefreshes >= 1
			}, 10*time.Second, 50*time.Millisecond)
			second, _ := c.tr.Token(context.Background())
			assert.NotEqual(t, first.AccessToken, second.AccessToken)
		})
	}
}

// testDPoP: the provider demands a nonce on the first token request (one
// retry), issues DPoP-bound tokens; an API that checks proofs against the
// token's cnf.jkt demands its own nonce (one replay, the token kept).
func testDPoP(t *testing.T, s *oidcServer) {
	api := &dpopAPI{s: s, nonce: "rs-nonce-1"}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	before := s.TokenCalls()
	tr := newTransport(t, oauthtransport.ClientCredentials(s.config("dpop-client", "dpop-secret-value")), oauthtransport.WithDPoP(key))
	for range 3 {
		resp, err := tr.Client().Get(srv.URL + "/orders?page=1")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	assert.Equal(t, int64(2), s.TokenCalls()-before, "one token request and one nonce retry")
	assert.Equal(t, int64(1), api.challenges.Load(), "one nonce replay at the API")
	assert.Equal(t, int64(1), tr.Stats().TokenFetches, "the token was kept")

	_, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(3), s.TokenCalls()-before, "the cached nonce: no second retry")
	tok, _ := tr.Token(context.Background())
	assert.Equal(t, "DPoP", tok.TokenType)
}

// dpopAPI accepts a DPoP-bound token with a valid proof from its key and
// its current nonce (RFC 9449 §7), checked through introspection.
type dpopAPI struct {
	s          *oidcServer
	nonce      string
	challenges atomic.Int64
}

func (a *dpopAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	in, err := a.s.introspect(tok)
	cnf, _ := in["cnf"].(map[string]any)
	if scheme != "DPoP" || err != nil || in["active"] != true || cnf["jkt"] == nil {
		w.Header().Set("WWW-Authenticate", `DPoP error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	nonce, err := checkProof(r, tok, cnf["jkt"].(string))
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.Header().Set("DPoP-Nonce", a.nonce)
	if nonce != a.nonce {
		a.challenges.Add(1)
		w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

// checkProof verifies r's DPoP proof for tok and key jkt; it returns the
// proof's nonce.
func checkProof(r *http.Request, tok, jkt string) (string, error) {
	jws, err := jose.ParseSignedCompact(r.Header.Get("DPoP"), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return "", err
	}
	h := jws.Signatures[0].Header
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return "", err
	}
	tp, _ := h.JSONWebKey.Thumbprint(crypto.SHA256)
	var c struct{ HTM, HTU, ATH, Nonce string }
	_ = json.Unmarshal(payload, &c)
	sum := sha256.Sum256([]byte(tok))
	switch {
	case base64.RawURLEncoding.EncodeToString(tp) != jkt:
		return "", errors.New("proof from another key")
	case c.HTM != r.Method || c.HTU != "http://"+r.Host+r.URL.Path:
		return "", errors.New("htm or htu")
	case c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]):
		return "", errors.New("ath")
	}
	return c.Nonce, nil
}

// fosite supports private_key_jwt (not client_secret_jwt nor DPoP).
func TestFositePrivateKeyJWT(t *testing.T) {
	t.Parallel()
	f := startFosite(t, 2*time.Second)
	cfg := &clientcredentials.Config{ClientID: "pkjwt-client", TokenURL: f.srv.URL + "/token", Scopes: []string{"api"}}
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg, oauthtransport.WithPrivateKeyJWT(clientKey, "k1")))
	call := func() {
		resp, err := tr.Client().Get(f.srv.URL + "/api/things")
		require.NoError(t, err)
		resp.Body.Close()
	}
	call()
	require.Eventually(t, func() bool { call(); return tr.Stats().BackgroundRefreshes >= 1 }, 10*time.Second, 50*time.Millisecond,
		"a background refresh with a second assertion (fosite refuses a jti twice)")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	bad := newTransport(t, oauthtransport.ClientCredentials(cfg, oauthtransport.WithPrivateKeyJWT(other, "k1")))
	_, err := bad.Token(context.Background())
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "a wrong key: err = %v", err)
	assert.Equal(t, "invalid_client", te.Code)
}

// workloadIssuer issues the JWTs fosite accepts as grants.
const workloadIssuer = "https://workloads.example"

// fosite's RFC 7523 §2.1 handler: a JWT from a trusted issuer is the grant.
func TestFositeJWTBearer(t *testing.T) {
	t.Parallel()
	f := startFosite(t, 30*time.Second)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: clientKey}, (&jose.SignerOptions{}).WithHeader("kid", "w1"))
	require.NoError(t, err)
	assertion := func(context.Context) (string, error) {
		now := time.Now()
		return josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: workloadIssuer, Subject: "nightly-export",
			Audience: josejwt.Audience{f.srv.URL + "/token"}, ID: randomJTI(), IssuedAt: josejwt.NewNumericDate(now),
			Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	}
	tr := newTransport(t, oauthtransport.JWTBearer(&oauthtransport.JWTBearerConfig{ClientID: fositeClient, ClientSecret: fositeSecret,
		TokenURL: f.srv.URL + "/token", Assertion: assertion, Scopes: []string{"api"}}))
	resp, err := tr.Client().Get(f.srv.URL + "/api/exports")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err, "a second grant with a fresh assertion")
}

func randomJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
