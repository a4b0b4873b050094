package interop

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// fositeServer is ory/fosite run in-process: client credentials, the
// refresh-token grant with rotation and reuse detection, revocation, and a
// protected API that checks tokens by introspection.
type fositeServer struct {
	provider   fosite.OAuth2Provider
	srv        *httptest.Server
	tokenCalls atomic.Int64
	lifetime   time.Duration
}

const (
	fositeClient = "interop-client"
	fositeSecret = "interop-secret-value"
)

func startFosite(t *testing.T, lifetime time.Duration) *fositeServer {
	hash, err := bcrypt.GenerateFromPassword([]byte(fositeSecret), bcrypt.MinCost)
	require.NoError(t, err)
	st := storage.NewMemoryStore()
	st.Clients[fositeClient] = &fosite.DefaultClient{
		ID:            fositeClient,
		Secret:        hash,
		GrantTypes:    []string{"client_credentials", "refresh_token", "password", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		ResponseTypes: []string{"token"},
		Scopes:        []string{"api", "offline"},
	}
	st.Users["alice"] = storage.MemoryUserRelation{Username: "alice", Password: "alice-password"}
	st.IssuerPublicKeys[workloadIssuer] = storage.IssuerPublicKeys{Issuer: workloadIssuer, KeysBySub: map[string]storage.SubjectPublicKeys{
		"nightly-export": {Subject: "nightly-export", Keys: map[string]storage.PublicKeyScopes{
			"w1": {Key: &josev3.JSONWebKey{Key: clientKey.Public(), KeyID: "w1", Algorithm: "ES256", Use: "sig"}, Scopes: []string{"api"}}}},
	}} // JWT-bearer grants (RFC 7523 §2.1) signed by clientKey
	st.Clients["pkjwt-client"] = &fosite.DefaultOpenIDConnectClient{ // private_key_jwt with clientKey (enterprise_test.go)
		DefaultClient: &fosite.DefaultClient{ID: "pkjwt-client", GrantTypes: []string{"client_credentials"},
			ResponseTypes: []string{"token"}, Scopes: []string{"api"}},
		JSONWebKeys:             &josev3.JSONWebKeySet{Keys: []josev3.JSONWebKey{{Key: clientKey.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}},
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlgorithm: "ES256",
	}
	cfg := &fosite.Config{
		AccessTokenLifespan:      lifetime,
		RefreshTokenLifespan:     time.Hour,
		GlobalSecret:             []byte("a-32-byte-global-secret-for-hmac"),
		ScopeStrategy:            fosite.HierarchicScopeStrategy,
		AudienceMatchingStrategy: fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:      &fosite.BCrypt{Config: &fosite.Config{HashCost: bcrypt.MinCost}},
	}
	provider := compose.Compose(cfg, st, compose.NewOAuth2HMACStrategy(cfg),
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		// The password grant is deprecated, and used here only as the
		// shortest way to obtain an initial refresh token in a test.
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory, //lint:ignore SA1019 see above
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.RFC7523AssertionGrantFactory,
	)
	f := &fositeServer{provider: provider, lifetime: lifetime}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /revoke", f.revoke)
	mux.HandleFunc("/api/", f.api)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	cfg.TokenURL = f.srv.URL + "/token" // the audience of client assertions
	return f
}

func (f *fositeServer) token(w http.ResponseWriter, r *http.Request) {
	f.tokenCalls.Add(1)
	ctx := r.Context()
	ar, err := f.provider.NewAccessRequest(ctx, r, &fosite.DefaultSession{Subject: "alice"})
	if err != nil {
		f.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	resp, err := f.provider.NewAccessResponse(ctx, ar)
	if err != nil {
		f.provider.WriteAccessError(ctx, w, ar, err)
		return
	}
	f.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (f *fositeServer) revoke(w http.ResponseWriter, r *http.Request) {
	f.provider.WriteRevocationResponse(r.Context(), w, f.provider.NewRevocationRequest(r.Context(), r))
}

// api accepts a request only if introspection says its token is active.
func (f *fositeServer) api(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		if _, _, err := f.provider.IntrospectToken(r.Context(), tok, fosite.AccessToken, &fosite.DefaultSession{}); err == nil {
			_, _ = w.Write([]byte(`{"ok":true}`))
			return
		}
	}
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	w.WriteHeader(http.StatusUnauthorized)
}

func (f *fositeServer) ClientCredentials() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: fositeClient, ClientSecret: fositeSecret, TokenURL: f.srv.URL + "/token",
		Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInHeader}
}

func (f *fositeServer) RefreshConfig() *oauth2.Config {
	return &oauth2.Config{ClientID: fositeClient, ClientSecret: fositeSecret,
		Endpoint: oauth2.Endpoint{TokenURL: f.srv.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// NewRefreshToken runs the password grant with scope offline, the shortest
// way fosite hands out a refresh token.
func (f *fositeServer) NewRefreshToken(t *testing.T) string {
	cfg := f.RefreshConfig()
	cfg.Scopes = []string{"api", "offline"}
	tok, err := cfg.PasswordCredentialsToken(context.Background(), "alice", "alice-password")
	require.NoError(t, err)
	require.NotEmpty(t, tok.RefreshToken)
	return tok.RefreshToken
}

func (f *fositeServer) Revoke(t *testing.T, cfg *clientcredentials.Config, accessToken string) {
	form := url.Values{"token": {accessToken}, "token_type_hint": {"access_token"}}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/revoke", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(cfg.ClientID), url.QueryEscape(cfg.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

func (f *fositeServer) APIURL() string          { return f.srv.URL + "/api/things" }
func (f *fositeServer) TokenCalls() int64       { return f.tokenCalls.Load() }
func (f *fositeServer) Lifetime() time.Duration { return f.lifetime }

func TestFosite(t *testing.T) {
	t.Parallel()
	runScenarios(t, startFosite(t, 4*time.Second))
}
