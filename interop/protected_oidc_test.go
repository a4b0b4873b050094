package interop

// ProtectedResource against oidc-provider, in the variant of
// oidc/server.mjs that OIDC_MCP_RESOURCE starts: a protected resource on
// loopback (mcpResource, an MCP server's endpoint /mcp) names the provider
// in its RFC 9728 metadata and accepts only the JWT access tokens (RFC
// 9068) the provider signed for it; the Source follows its lead from the
// 401 to a token: the resource's metadata, the provider's (RFC 8414 first,
// then OpenID discovery), a client (registered beforehand, a Client ID
// Metadata Document, or dynamic registration, RFC 7591, kept in the
// store), and the grant with resource (RFC 8707): a person's authorization
// code with PKCE through the loopback redirect (the headless person of
// browser_test.go), or client credentials.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// mcpResource is a protected resource on loopback: its metadata (RFC
// 9728) at /.well-known/oauth-protected-resource/mcp names the provider,
// with scopes_supported mcp:read and mcp:write; /mcp answers a GET to a
// token with mcp:read and a POST to one with mcp:write too. It accepts a
// token only if it is a JWT access token (typ at+jwt) signed by the
// provider's keys, issued by it, for this resource (aud), unexpired;
// otherwise 401 with the challenge that names the metadata (and, to a
// request without a token, the scope mcp:read: what a GET needs), and
// 403 insufficient_scope for a POST without mcp:write.
type mcpResource struct {
	srv    *httptest.Server
	base   string // http://127.0.0.1:PORT
	url    string // the resource: base + "/mcp"
	tools  string // another resource alike, at the same origin: base + "/tools"
	issuer string
	keys   jose.JSONWebKeySet // the provider's (its jwks_uri)

	mu        sync.Mutex
	accepted  []acceptedToken // in order
	refused   []string        // why each token presented was refused
	anonymous int             // requests without a token
	held      *barrier        // holds the answers to requests without a token, when set
}

// barrier holds its callers until n have come, for at most 10 s.
type barrier struct {
	left atomic.Int64
	all  chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{all: make(chan struct{})}
	b.left.Store(int64(n))
	return b
}

func (b *barrier) wait() {
	if b.left.Add(-1) == 0 {
		close(b.all)
	}
	select {
	case <-b.all:
	case <-time.After(10 * time.Second):
	}
}

// holdAnonymous makes the next n requests without a token wait for each
// other before their 401: the clients that sent them follow their
// challenges at once.
func (r *mcpResource) holdAnonymous(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.held = newBarrier(n)
}

// acceptedToken is a token a resource accepted, and its claims.
type acceptedToken struct {
	resource string
	raw      string
	claims   accessClaims
}

// accessClaims are the claims of a JWT access token (RFC 9068) the
// resource reads.
type accessClaims struct {
	josejwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

func (c accessClaims) scopes() []string { return strings.Fields(c.Scope) }

// clientDocument is a Client ID Metadata Document on loopback (https, its
// server's certificate trusted by oidc-provider): a public native client
// whose client_id is the document's URL.
type clientDocument struct {
	url     string
	fetches atomic.Int64
}

func (d *clientDocument) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/client.json" {
		http.NotFound(w, req)
		return
	}
	d.fetches.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"client_id": d.url, "client_name": "interop document",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "application_type": "native", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}})
}

// startProtectedOIDC starts the resource and the server of a client's
// metadata document, then oidc-provider in the ProtectedResource variant
// for them (the resource's URL is known before the provider starts; the
// resource serves only once the provider's issuer and keys are known).
func startProtectedOIDC(t *testing.T) (*oidcServer, *mcpResource, *clientDocument) {
	r := &mcpResource{}
	r.srv = httptest.NewUnstartedServer(r)
	t.Cleanup(r.srv.Close)
	r.base = "http://" + r.srv.Listener.Addr().String()
	r.url, r.tools = r.base+"/mcp", r.base+"/tools"

	doc := &clientDocument{}
	docs := httptest.NewTLSServer(doc)
	t.Cleanup(docs.Close)
	doc.url = docs.URL + "/client.json"
	ca := filepath.Join(t.TempDir(), "documents-ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: docs.Certificate().Raw}), 0o600))

	s := startOIDC(t, time.Minute, "OIDC_MCP_RESOURCE="+r.url, "NODE_EXTRA_CA_CERTS="+ca)
	r.issuer = s.issuer
	resp, err := http.Get(s.issuer + "/jwks")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&r.keys))
	require.NotEmpty(t, r.keys.Keys, "the provider's signing keys")
	r.srv.Start()
	return s, r, doc
}

const wellKnownResource = "/.well-known/oauth-protected-resource"

func (r *mcpResource) metadataURL() string { return r.base + wellKnownResource + "/mcp" }

func (r *mcpResource) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch p := req.URL.Path; p {
	case wellKnownResource + "/mcp", wellKnownResource + "/tools":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": r.base + strings.TrimPrefix(p, wellKnownResource),
			"authorization_servers": []string{r.issuer},
			"scopes_supported":      []string{"mcp:read", "mcp:write"}, "bearer_methods_supported": []string{"header"}})
	case "/mcp", "/tools":
		r.serveResource(w, req)
	default:
		http.NotFound(w, req)
	}
}

// serveResource serves /mcp and /tools, each a resource of its own.
func (r *mcpResource) serveResource(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	resource, metadata := r.base+req.URL.Path, r.base+wellKnownResource+req.URL.Path
	challenge := `Bearer resource_metadata="` + metadata + `"`
	raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		r.mu.Lock()
		r.anonymous++
		held := r.held
		r.mu.Unlock()
		if held != nil {
			held.wait()
		}
		w.Header().Set("WWW-Authenticate", challenge+`, scope="mcp:read"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	claims, err := r.verify(raw, resource)
	if err != nil {
		r.mu.Lock()
		r.refused = append(r.refused, err.Error())
		r.mu.Unlock()
		w.Header().Set("WWW-Authenticate", challenge+`, error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	need := []string{"mcp:read"}
	if req.Method != http.MethodGet {
		need = append(need, "mcp:write")
	}
	for _, sc := range need {
		if !slices.Contains(claims.scopes(), sc) {
			w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+strings.Join(need, " ")+
				`", resource_metadata="`+metadata+`"`)
			w.WriteHeader(http.StatusForbidden)
			return
		}
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, acceptedToken{resource: resource, raw: raw, claims: *claims})
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
}

// verify checks a JWT access token as RFC 9068 asks of a resource server:
// typ at+jwt, a signature by the provider's keys, its issuer, resource in
// aud, not expired.
func (r *mcpResource) verify(raw, resource string) (*accessClaims, error) {
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.PS256})
	if err != nil {
		return nil, errors.New("not a signed JWT")
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, "at+jwt") {
		return nil, fmt.Errorf("typ %q, not at+jwt", typ)
	}
	var c accessClaims
	if err := tok.Claims(r.keys, &c); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if err := c.ValidateWithLeeway(josejwt.Expected{Issuer: r.issuer, AnyAudience: josejwt.Audience{resource}, Time: time.Now()}, 0); err != nil {
		return nil, fmt.Errorf("claims (aud %v): %w", c.Audience, err)
	}
	return &c, nil
}

// accepts returns how many tokens the resource accepted so far, and the
// last one.
func (r *mcpResource) accepts() (int, acceptedToken) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.accepted) == 0 {
		return 0, acceptedToken{}
	}
	return len(r.accepted), r.accepted[len(r.accepted)-1]
}

// anonymousCalls returns how many requests came without a token, so far.
func (r *mcpResource) anonymousCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.anonymous
}

// refusals returns why the tokens presented were refused, so far.
func (r *mcpResource) refusals() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refused)
}

// call sends a request to the resource (/mcp) and returns its status.
func (r *mcpResource) call(t *testing.T, c *http.Client, method string) int {
	t.Helper()
	return r.callAt(context.Background(), t, c, method, r.url)
}

// callAt sends a request to a resource, with ctx, and returns its status.
func (r *mcpResource) callAt(ctx context.Context, t *testing.T, c *http.Client, method, resource string) int {
	t.Helper()
	var body io.Reader
	if method != http.MethodGet {
		body = strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call"}`)
	}
	req, err := http.NewRequestWithContext(ctx, method, resource, body)
	require.NoError(t, err)
	resp, err := c.Do(req)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// providerStats is oidc-provider's /test/stats.
type providerStats struct {
	TokenCalls         int64                    `json:"token_calls"`
	Grants             map[string]grantCounts   `json:"grants"`
	Registrations      []clientRegistration     `json:"registrations"`
	RegistrationErrors []map[string]interface{} `json:"registration_errors"`
}

// refused are the registrations the provider refused for another reason
// than their scope. The SDK registers the scopes it will ask for (Ory
// Hydra lets a client ask only for those), and registers again without
// them when a server refuses scopes it does not list, as oidc-provider
// does for resource scopes.
func (s providerStats) refused() []map[string]interface{} {
	var other []map[string]interface{}
	for _, e := range s.RegistrationErrors {
		if desc, _ := e["error_description"].(string); !strings.Contains(desc, "scope") {
			other = append(other, e)
		}
	}
	return other
}

// grantCounts are a grant type's token requests at the provider.
type grantCounts struct {
	Success   int64            `json:"success"`
	Error     int64            `json:"error"`
	PKCE      int64            `json:"pkce_s256"`
	Resources map[string]int64 `json:"resources"` // successes by the resource they named
}

// clientRegistration is a client the provider registered dynamically, as
// registered.
type clientRegistration struct {
	ClientID        string   `json:"client_id"`
	ClientName      string   `json:"client_name"`
	AuthMethod      string   `json:"token_endpoint_auth_method"`
	ApplicationType string   `json:"application_type"`
	GrantTypes      []string `json:"grant_types"`
	ResponseTypes   []string `json:"response_types"`
	RedirectURIs    []string `json:"redirect_uris"`
}

func (s *oidcServer) stats(t *testing.T) providerStats {
	t.Helper()
	resp, err := s.client.Get(s.issuer + "/test/stats")
	require.NoError(t, err)
	defer resp.Body.Close()
	var out providerStats
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// TestProtectedOIDC runs its subtests one after the other: each compares
// the provider's counts before and after.
func TestProtectedOIDC(t *testing.T) {
	t.Parallel()
	s, r, doc := startProtectedOIDC(t)
	t.Run("ResourceAcceptsOnlyItsTokens", func(t *testing.T) { testResourceAcceptsOnlyItsTokens(t, s, r) })
	t.Run("PersonRegistersLogsInRefreshes", func(t *testing.T) { testProtectedPerson(t, s, r) })
	t.Run("SharedStoreKeepsRegistration", func(t *testing.T) { testProtectedSharedStore(t, s, r) })
	t.Run("StepUp", func(t *testing.T) { testProtectedStepUp(t, s, r) })
	t.Run("ClientForgotten", func(t *testing.T) { testProtectedClientForgotten(t, s, r) })
	t.Run("ClientMetadataDocument", func(t *testing.T) { testProtectedMetadataDocument(t, s, r, doc) })
	t.Run("TwoResourcesOneIssuer", func(t *testing.T) { testProtectedTwoResources(t, s, r, false) })
	t.Run("TwoLoginsAtOnce", func(t *testing.T) {
		testProtectedTwoLogins(t, s, r)
	})
	t.Run("TwoResourcesAtOnce", func(t *testing.T) {
		testProtectedTwoResources(t, s, r, true)
	})
	t.Run("ClientCredentials", func(t *testing.T) {
		testProtectedMachine(t, s, r, "mcp-cc-client", map[string]oauthtransport.RegisteredClient{
			s.issuer: {ClientID: "mcp-cc-client", ClientSecret: "mcp-cc-secret-value"}}, false)
	})
	t.Run("PrivateKeyJWT", func(t *testing.T) {
		testProtectedMachine(t, s, r, "mcp-pkjwt-client", map[string]oauthtransport.RegisteredClient{
			"": {ClientID: "mcp-pkjwt-client", Key: clientKey, KeyID: "k1"}}, true)
	})
	t.Run("MachineRegisters", func(t *testing.T) { testProtectedMachineRegistration(t, s, r) })
}

// testResourceAcceptsOnlyItsTokens checks the harness: the resource
// challenges a request without a token with its metadata's URL, names the
// provider there, accepts a token the provider issued for it, and refuses
// one the provider signed for another resource at the same origin.
func testResourceAcceptsOnlyItsTokens(t *testing.T, s *oidcServer, r *mcpResource) {
	ctx := context.Background()
	resp, err := http.Get(r.url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Bearer resource_metadata="`+r.metadataURL()+`", scope="mcp:read"`, resp.Header.Get("WWW-Authenticate"))

	resp, err = http.Get(r.metadataURL())
	require.NoError(t, err)
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	resp.Body.Close()
	require.Equal(t, r.url, md.Resource)
	require.Equal(t, []string{s.issuer}, md.AuthorizationServers)

	tokenFor := func(resource string) string {
		cfg := &clientcredentials.Config{ClientID: "mcp-cc-client", ClientSecret: "mcp-cc-secret-value", TokenURL: s.issuer + "/token",
			Scopes: []string{"mcp:read"}, EndpointParams: url.Values{"resource": {resource}}, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cfg.Token(ctx)
		require.NoError(t, err)
		require.Equal(t, 2, strings.Count(tok.AccessToken, "."), "a JWT access token")
		return tok.AccessToken
	}
	withToken := func(tok string) *http.Client {
		return &http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok})}}
	}
	refusedBefore := len(r.refusals())
	require.Equal(t, http.StatusUnauthorized, r.call(t, withToken(tokenFor(r.base+"/other")), http.MethodGet),
		"a token the provider signed for another resource")
	refusals := r.refusals()
	require.Len(t, refusals, refusedBefore+1)
	require.Contains(t, refusals[len(refusals)-1], "aud", "refused for its audience")
	require.Equal(t, http.StatusOK, r.call(t, withToken(tokenFor(r.url)), http.MethodGet), "a token for the resource")
	require.Equal(t, http.StatusForbidden, r.call(t, withToken(tokenFor(r.url)), http.MethodPost), "a POST needs mcp:write")
}

// testProtectedPerson: from nothing but the resource's URL, a person's
// first request registers a client (once, a native public client with the
// loopback redirect), logs the person in with the code grant and PKCE,
// and gets a token the resource accepts: issued for the resource, to the
// registered client. A forced refresh (rotation on) brings a token the
// resource accepts too, and asks nobody.
func testProtectedPerson(t *testing.T, s *oidcServer, r *mcpResource) {
	ctx := context.Background()
	before, anon := s.stats(t), r.anonymousCalls()
	p := newPerson(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{ClientName: "interop person", Open: p.open}),
		oauthtransport.WithStore(store.NewFile(t.TempDir()), "me"))
	c := tr.Client()
	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	require.Equal(t, int64(1), p.opens.Load(), "the person was asked once")
	require.Equal(t, anon+1, r.anonymousCalls(), "the first request went without a token, its 401 led the way")

	after := s.stats(t)
	reg := requireNativeRegistration(t, before, after)
	code, codeBefore := after.Grants["authorization_code"], before.Grants["authorization_code"]
	require.Equal(t, codeBefore.Success+1, code.Success, "one code exchange")
	require.Equal(t, codeBefore.PKCE+1, code.PKCE, "its S256 challenge verified")
	require.Equal(t, codeBefore.Resources[r.url]+1, code.Resources[r.url], "resource named at the token endpoint")

	n, got := r.accepts()
	require.Equal(t, reg.ClientID, got.claims.ClientID, "the token is the registered client's")
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience, "the token is for the resource")
	require.Equal(t, []string{"mcp:read"}, got.claims.scopes(), "the challenge's scope (not all of scopes_supported)")
	require.Equal(t, "person-1", got.claims.Subject, "the person's")

	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	require.Equal(t, after.TokenCalls, s.stats(t).TokenCalls, "the second call reuses the token")

	first, err := tr.Token(ctx)
	require.NoError(t, err)
	require.True(t, got.raw == first.AccessToken, "the token the resource accepted is the Transport's")
	require.NotEmpty(t, first.RefreshToken, "the login brought a refresh token")
	refreshed := requireRotated(t, s, tr, first, before, r.url)

	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	m, got := r.accepts()
	require.Equal(t, n+2, m)
	require.True(t, refreshed.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, reg.ClientID, got.claims.ClientID)
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience)
	require.Equal(t, int64(1), p.opens.Load(), "the refresh asked nobody")
	require.Len(t, s.stats(t).Registrations, len(after.Registrations), "no second registration")
	require.Equal(t, anon+1, r.anonymousCalls(), "one request without a token in all")
}

// requireNativeRegistration checks the one registration made between
// before and after: a public native client with a loopback redirect.
func requireNativeRegistration(t *testing.T, before, after providerStats) clientRegistration {
	t.Helper()
	require.Empty(t, after.refused(), "no registration refused but for its scopes")
	require.Len(t, after.Registrations, len(before.Registrations)+1, "one registration")
	reg := after.Registrations[len(after.Registrations)-1]
	assert.Equal(t, "interop person", reg.ClientName)
	assert.Equal(t, "none", reg.AuthMethod, "a public client")
	assert.Equal(t, "native", reg.ApplicationType)
	assert.ElementsMatch(t, []string{"authorization_code", "refresh_token"}, reg.GrantTypes)
	assert.Equal(t, []string{"code"}, reg.ResponseTypes)
	require.Len(t, reg.RedirectURIs, 1)
	redirect, err := url.Parse(reg.RedirectURIs[0])
	require.NoError(t, err)
	assert.True(t, redirect.Scheme == "http" && redirect.Hostname() == "127.0.0.1" && redirect.Port() != "" && redirect.Path == "/callback",
		"a loopback redirect on a port of its own (RFC 8252), got %s", redirect)
	return reg
}

// requireRotated refreshes tr's token (first) and checks that the refresh
// token rotated, the old one is inactive at the provider, and the refresh
// named the resource.
func requireRotated(t *testing.T, s *oidcServer, tr *oauthtransport.Transport, first *oauth2.Token, before providerStats, resource string) *oauth2.Token {
	t.Helper()
	refreshed, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	require.True(t, first.AccessToken != refreshed.AccessToken, "a new access token")
	require.True(t, refreshed.RefreshToken != "" && refreshed.RefreshToken != first.RefreshToken, "the refresh token rotated")
	requireActive(t, s, first.RefreshToken, false, "the rotated-out refresh token")
	requireActive(t, s, refreshed.RefreshToken, true, "the new refresh token")
	rt, rtBefore := s.stats(t).Grants["refresh_token"], before.Grants["refresh_token"]
	require.Equal(t, rtBefore.Success+1, rt.Success, "one refresh")
	require.Equal(t, rtBefore.Resources[resource]+1, rt.Resources[resource], "resource named on the refresh")
	return refreshed
}

// testProtectedSharedStore: a second Transport sharing the first one's
// store.File neither registers nor asks its person: it adopts the token
// the store holds, and refreshes it as the client registered by the
// first (the refresh token is bound to that client). The first adopts
// that refresh from the store, then refreshes with the store's rotated
// refresh token, never presenting the one the second rotated out
// (oidc-provider revokes the grant of a refresh token presented again).
func testProtectedSharedStore(t *testing.T, s *oidcServer, r *mcpResource) {
	ctx, dir := context.Background(), t.TempDir()
	pa, pb := newPerson(t), newPerson(t)
	a := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: pa.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	require.Equal(t, http.StatusOK, r.call(t, a.Client(), http.MethodGet))
	st := s.stats(t)
	require.NotEmpty(t, st.Registrations)
	clientID := st.Registrations[len(st.Registrations)-1].ClientID
	tokA, err := a.Token(ctx)
	require.NoError(t, err)

	anon := r.anonymousCalls()
	b := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: pb.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	require.Equal(t, http.StatusOK, r.call(t, b.Client(), http.MethodGet))
	_, got := r.accepts()
	require.True(t, tokA.AccessToken == got.raw, "the second Transport adopted the stored token")
	require.Equal(t, anon, r.anonymousCalls(), "and sent it with its first request")
	require.Equal(t, st.TokenCalls, s.stats(t).TokenCalls, "without a token request")

	refreshed, err := b.Refresh(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.call(t, b.Client(), http.MethodGet))
	_, got = r.accepts()
	require.True(t, refreshed.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, clientID, got.claims.ClientID, "refreshed as the client the first Transport registered")
	mid := s.stats(t)
	require.Len(t, mid.Registrations, len(st.Registrations), "the second Transport did not register")
	require.Empty(t, mid.refused())
	require.Equal(t, st.Grants["refresh_token"].Success+1, mid.Grants["refresh_token"].Success, "one refresh")
	require.Equal(t, int64(0), pb.opens.Load(), "the second Transport's person was never asked")

	adopted, err := a.Refresh(ctx)
	require.NoError(t, err)
	require.True(t, refreshed.AccessToken == adopted.AccessToken, "the first Transport adopted the second's refresh from the store")
	require.Equal(t, mid.TokenCalls, s.stats(t).TokenCalls, "without a token request")
	again, err := a.Refresh(ctx)
	require.NoError(t, err)
	require.True(t, adopted.AccessToken != again.AccessToken, "a new access token")
	require.Equal(t, http.StatusOK, r.call(t, a.Client(), http.MethodGet))
	_, got = r.accepts()
	require.True(t, again.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, clientID, got.claims.ClientID)
	end := s.stats(t)
	require.Equal(t, mid.Grants["refresh_token"].Success+1, end.Grants["refresh_token"].Success, "one more refresh")
	require.Equal(t, st.Grants["refresh_token"].Error, end.Grants["refresh_token"].Error, "no rotated-out refresh token was presented")
	requireActive(t, s, again.RefreshToken, true, "the grant is alive (a rotated-out token presented would have revoked it)")
	require.Equal(t, int64(1), pa.opens.Load(), "the first Transport's person was asked once")
	require.Len(t, end.Registrations, len(st.Registrations))
}

// testProtectedStepUp: a POST the resource answers 403 insufficient_scope
// (it needs mcp:write; the login asked for the metadata's mcp:read) makes
// the person log in again for both scopes, and the request is sent once
// more with the new token, which the resource accepts.
func testProtectedStepUp(t *testing.T, s *oidcServer, r *mcpResource) {
	before := s.stats(t)
	p := newPerson(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: p.open}))
	c := tr.Client()
	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	_, got := r.accepts()
	require.Equal(t, []string{"mcp:read"}, got.claims.scopes())

	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodPost), "the POST went through after the step-up")
	require.Equal(t, int64(2), p.opens.Load(), "the person was asked again")
	_, got = r.accepts()
	require.ElementsMatch(t, []string{"mcp:read", "mcp:write"}, got.claims.scopes())
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience)
	after := s.stats(t)
	require.Len(t, after.Registrations, len(before.Registrations)+1, "one registration for both logins")
	require.Equal(t, after.Registrations[len(after.Registrations)-1].ClientID, got.claims.ClientID)
	require.Equal(t, before.Grants["authorization_code"].Success+2, after.Grants["authorization_code"].Success, "two logins")
	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodPost))
	require.Equal(t, int64(2), p.opens.Load(), "the stepped-up token serves the next POST")
}

// testProtectedMachine: client credentials for the resource with a client
// registered beforehand: no registration, one token request naming the
// resource, and a token the resource accepts, issued to that client. Led
// by the first request's 401, it asks for the challenge's scope; asked
// for a token first (tokenFirst), before any request, it finds the
// resource's metadata at its well-known URL and asks for its
// scopes_supported.
func testProtectedMachine(t *testing.T, s *oidcServer, r *mcpResource, clientID string, registered map[string]oauthtransport.RegisteredClient, tokenFirst bool) {
	before, anon := s.stats(t), r.anonymousCalls()
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Registered: registered}))
	scopes, anonymous := []string{"mcp:read"}, 1
	if tokenFirst {
		_, err := tr.Token(context.Background())
		require.NoError(t, err)
		scopes, anonymous = []string{"mcp:read", "mcp:write"}, 0
	}
	c := tr.Client()
	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	require.Equal(t, http.StatusOK, r.call(t, c, http.MethodGet))
	require.Equal(t, anon+anonymous, r.anonymousCalls(), "requests without a token")
	_, got := r.accepts()
	require.Equal(t, clientID, got.claims.ClientID)
	require.Equal(t, clientID, got.claims.Subject)
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience, "the token is for the resource")
	require.Equal(t, scopes, got.claims.scopes())
	after := s.stats(t)
	cc, ccBefore := after.Grants["client_credentials"], before.Grants["client_credentials"]
	require.Equal(t, ccBefore.Success+1, cc.Success, "one token request for both calls")
	require.Equal(t, ccBefore.Resources[r.url]+1, cc.Resources[r.url], "naming the resource")
	require.Equal(t, ccBefore.Error, cc.Error)
	require.Len(t, after.Registrations, len(before.Registrations), "no registration")
}

// testProtectedMachineRegistration: a machine client with no client for
// the issuer registers one for client credentials (a confidential client:
// a secret, no redirect, no response type) and gets a token for the
// resource as that client; when the provider forgets the client, the
// next token request is refused (invalid_client), and the Source
// registers again, once, and gets a token as the new client.
func testProtectedMachineRegistration(t *testing.T, s *oidcServer, r *mcpResource) {
	before := s.stats(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{ClientName: "interop machine"}),
		oauthtransport.WithStore(store.NewFile(t.TempDir()), "svc"))
	status := r.call(t, tr.Client(), http.MethodGet)
	after := s.stats(t)
	require.Equal(t, before.refused(), after.refused(), "no registration refused but for its scopes")
	require.Equal(t, http.StatusOK, status)
	require.Len(t, after.Registrations, len(before.Registrations)+1, "one registration")
	reg := after.Registrations[len(after.Registrations)-1]
	assert.Equal(t, "interop machine", reg.ClientName)
	assert.Equal(t, "client_secret_basic", reg.AuthMethod)
	assert.Equal(t, []string{"client_credentials"}, reg.GrantTypes)
	assert.Empty(t, reg.ResponseTypes)
	_, got := r.accepts()
	require.Equal(t, reg.ClientID, got.claims.ClientID, "the token is the registered client's")
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience)
	require.Equal(t, before.Grants["client_credentials"].Resources[r.url]+1, after.Grants["client_credentials"].Resources[r.url])

	s.forgetClient(t, reg.ClientID)
	_, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	end := s.stats(t)
	require.Len(t, end.Registrations, len(after.Registrations)+1, "registered again, once, when the server forgot the client")
	require.Equal(t, after.Grants["client_credentials"].Error+1, end.Grants["client_credentials"].Error, "refused once (invalid_client)")
	require.Equal(t, http.StatusOK, r.call(t, tr.Client(), http.MethodGet))
	_, got = r.accepts()
	require.Equal(t, end.Registrations[len(end.Registrations)-1].ClientID, got.claims.ClientID, "the new client's token")
}

// forgetClient makes the provider forget a client it registered
// dynamically, as a server restarted without its registrations would.
func (s *oidcServer) forgetClient(t *testing.T, clientID string) {
	t.Helper()
	resp, err := s.client.Post(s.issuer+"/test/forget-client?client_id="+url.QueryEscape(clientID), "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// testProtectedClientForgotten: the provider forgets the client a
// person's Transport registered; the next refresh is refused
// (invalid_client), the Source registers again, once, and the person logs
// in with the new client, whose token the resource accepts. A Transport
// sharing the store afterwards uses the new registration.
func testProtectedClientForgotten(t *testing.T, s *oidcServer, r *mcpResource) {
	ctx, dir := context.Background(), t.TempDir()
	p := newPerson(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: p.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	require.Equal(t, http.StatusOK, r.call(t, tr.Client(), http.MethodGet))
	before := s.stats(t)
	oldID := before.Registrations[len(before.Registrations)-1].ClientID
	s.forgetClient(t, oldID)

	tok, err := tr.Refresh(ctx)
	require.NoError(t, err)
	after := s.stats(t)
	require.Len(t, after.Registrations, len(before.Registrations)+1, "registered again, once")
	newID := after.Registrations[len(after.Registrations)-1].ClientID
	require.NotEqual(t, oldID, newID)
	require.Equal(t, int64(2), p.opens.Load(), "the person logged in again")
	require.Equal(t, before.Grants["refresh_token"].Error+1, after.Grants["refresh_token"].Error, "the refresh refused once")
	require.Equal(t, http.StatusOK, r.call(t, tr.Client(), http.MethodGet))
	_, got := r.accepts()
	require.True(t, tok.AccessToken == got.raw, "the new login's token was accepted")
	require.Equal(t, newID, got.claims.ClientID, "the new client's token")

	q := newPerson(t)
	b := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: q.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	require.Equal(t, http.StatusOK, r.call(t, b.Client(), http.MethodGet))
	_, got = r.accepts()
	require.True(t, got.raw == tok.AccessToken, "the peer adopted the stored token")
	refreshed, err := b.Refresh(ctx)
	require.NoError(t, err)
	require.True(t, refreshed.AccessToken != tok.AccessToken, "a new access token")
	require.Equal(t, http.StatusOK, r.call(t, b.Client(), http.MethodGet))
	_, got = r.accepts()
	require.True(t, got.raw == refreshed.AccessToken, "the refreshed token was accepted")
	require.Equal(t, newID, got.claims.ClientID, "the peer refreshed as the new client")
	require.Len(t, s.stats(t).Registrations, len(after.Registrations), "the peer did not register")
	require.Equal(t, int64(0), q.opens.Load())
}

// testProtectedMetadataDocument: with a Client ID Metadata Document and a
// provider that supports them (client_id_metadata_document_supported),
// the person's login uses the document's URL as client_id: no
// registration; the provider fetched the document; the token, and the
// refreshed one, are the document's client's, for the resource.
func testProtectedMetadataDocument(t *testing.T, s *oidcServer, r *mcpResource, doc *clientDocument) {
	ctx := context.Background()
	before := s.stats(t)
	p := newPerson(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{MetadataDocument: doc.url, Open: p.open,
		RedirectURL: "http://127.0.0.1/callback"}))
	require.Equal(t, http.StatusOK, r.call(t, tr.Client(), http.MethodGet))
	require.Equal(t, int64(1), p.opens.Load(), "the person was asked once")
	require.Positive(t, doc.fetches.Load(), "the provider fetched the document")
	_, got := r.accepts()
	require.Equal(t, doc.url, got.claims.ClientID, "the document's URL is the client_id")
	require.Equal(t, josejwt.Audience{r.url}, got.claims.Audience)
	after := s.stats(t)
	require.Len(t, after.Registrations, len(before.Registrations), "no registration")
	require.Equal(t, before.Grants["authorization_code"].PKCE+1, after.Grants["authorization_code"].PKCE, "one exchange, its S256 challenge verified")

	refreshed, err := tr.Refresh(ctx)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.call(t, tr.Client(), http.MethodGet))
	_, got = r.accepts()
	require.True(t, refreshed.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, doc.url, got.claims.ClientID)
	require.Equal(t, int64(1), p.opens.Load(), "the refresh asked nobody")
}

// testProtectedTwoResources: a keyed Transport (NewKeyed, a
// ProtectedResource per key, the key the resource's URL) for two
// resources at one issuer, /mcp and /tools, first used one after the
// other or at once (their first requests' 401s held until both came):
// one registration for both (kept by issuer), a login per resource, each
// token for its resource as the one client. After a restart (a new
// Transport on the store), each resource's token refreshes as that client
// and nobody is asked.
func testProtectedTwoResources(t *testing.T, s *oidcServer, r *mcpResource, atOnce bool) {
	dir, resources := t.TempDir(), []string{r.url, r.tools}
	before := s.stats(t)
	p := newPerson(t)
	tr := keyedTransport(t, dir, p)
	require.Equal(t, []int{http.StatusOK, http.StatusOK}, r.sendEach(tr, resources, atOnce))
	require.Equal(t, int64(2), p.opens.Load(), "a login per resource")
	after := s.stats(t)
	require.Len(t, after.Registrations, len(before.Registrations)+1, "one registration for both resources")
	clientID := after.Registrations[len(after.Registrations)-1].ClientID
	for _, res := range resources {
		got := r.lastAt(res)
		require.Equal(t, josejwt.Audience{res}, got.claims.Audience, "a token for each resource")
		require.Equal(t, clientID, got.claims.ClientID)
	}

	q := newPerson(t)
	again := keyedTransport(t, dir, q)
	for _, res := range resources {
		ctx := oauthtransport.WithKey(context.Background(), res)
		require.Equal(t, http.StatusOK, send(again.Client(), ctx, res))
		_, err := again.Refresh(ctx)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, send(again.Client(), ctx, res))
		got := r.lastAt(res)
		require.Equal(t, clientID, got.claims.ClientID, "refreshed as the one client after the restart")
	}
	require.Equal(t, int64(0), q.opens.Load(), "nobody was asked after the restart")
	require.Len(t, s.stats(t).Registrations, len(after.Registrations))
}

// keyedTransport is a keyed Transport (NewKeyed) whose key is a
// resource's URL and whose Source for it is a ProtectedResource for p,
// on the store.File in dir; closed when t ends.
func keyedTransport(t *testing.T, dir string, p *person) *oauthtransport.Transport {
	t.Helper()
	tr, err := oauthtransport.NewKeyed(func(resource string) (oauthtransport.Source, error) {
		return oauthtransport.ProtectedResource(resource, &oauthtransport.ClientConfig{Open: p.open}), nil
	}, oauthtransport.WithStore(store.NewFile(dir), "app"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// sendEach GETs each resource through tr, keyed by the resource, and
// returns the statuses: one after the other, or at once (atOnce), their
// first requests' 401s held until all came.
func (r *mcpResource) sendEach(tr *oauthtransport.Transport, resources []string, atOnce bool) []int {
	statuses := make([]int, len(resources))
	sendOne := func(i int) {
		statuses[i] = send(tr.Client(), oauthtransport.WithKey(context.Background(), resources[i]), resources[i])
	}
	if !atOnce {
		for i := range resources {
			sendOne(i)
		}
		return statuses
	}
	r.holdAnonymous(len(resources))
	var wg sync.WaitGroup
	for i := range resources {
		wg.Go(func() { sendOne(i) })
	}
	wg.Wait()
	return statuses
}

// send GETs resource with ctx and returns the status, 0 on an error.
func send(c *http.Client, ctx context.Context, resource string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, resource, nil)
	if err != nil {
		return 0
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// lastAt is the last token resource accepted.
func (r *mcpResource) lastAt(resource string) acceptedToken {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.accepted) - 1; i >= 0; i-- {
		if r.accepted[i].resource == resource {
			return r.accepted[i]
		}
	}
	return acceptedToken{}
}

// testProtectedTwoLogins: with a registration kept (by a first Transport,
// whose grant was then revoked), a keyed Transport's two resources at that
// issuer log in at once (their first requests' 401s held until both
// came): both logins succeed, with the kept client, and nothing is
// registered.
func testProtectedTwoLogins(t *testing.T, s *oidcServer, r *mcpResource) {
	dir := t.TempDir()
	first := keyedTransport(t, dir, newPerson(t))
	ctx := oauthtransport.WithKey(context.Background(), r.url)
	require.Equal(t, http.StatusOK, send(first.Client(), ctx, r.url))
	require.NoError(t, first.Revoke(ctx))
	require.NoError(t, first.Close())
	before := s.stats(t)
	clientID := before.Registrations[len(before.Registrations)-1].ClientID

	p := newPerson(t)
	tr := keyedTransport(t, dir, p)
	resources := []string{r.url, r.tools}
	require.Equal(t, []int{http.StatusOK, http.StatusOK}, r.sendEach(tr, resources, true))
	require.Equal(t, int64(2), p.opens.Load(), "a login per resource")
	for _, res := range resources {
		require.Equal(t, clientID, r.lastAt(res).claims.ClientID, "the kept client")
	}
	require.Len(t, s.stats(t).Registrations, len(before.Registrations), "no registration")
}
