package interop

// ProtectedResource against Ory Hydra v2.3.0 (hydra_test.go) with dynamic
// client registration (RFC 7591) enabled: a protected resource on
// loopback (hydraResource) names Hydra in its RFC 9728 metadata and
// accepts only the access tokens Hydra's introspection (RFC 7662, on its
// admin port) says are active; the Source follows its lead from the 401
// to a token: the resource's metadata, Hydra's (OpenID discovery: Hydra
// v2.3.0 publishes no RFC 8414 document), a client registered at Hydra's
// /oauth2/register (a person's) or created beforehand on its admin API (a
// machine's), and the grant: a person's authorization code with PKCE
// through the loopback redirect (the headless person of browser_test.go
// and hydra_test.go's login and consent app), or client credentials.
// Hydra ignores RFC 8707 resource: its tokens name no audience.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// hydraResource is a protected resource on loopback: its metadata (RFC
// 9728) at /.well-known/oauth-protected-resource/mcp names Hydra's issuer
// as Hydra's metadata spells it, with scopes_supported mcp:read; /mcp
// accepts a request whose bearer token Hydra's introspection says is an
// active access token (not a refresh token) with mcp:read; otherwise 401
// with the challenge that names the metadata (and, to a request without
// a token, the scope mcp:read), or 403 insufficient_scope.
type hydraResource struct {
	srv    *httptest.Server
	base   string // http://127.0.0.1:PORT
	url    string // the resource: base + "/mcp"
	issuer string // exactly as Hydra's metadata states it
	admin  string // Hydra's admin port

	write atomic.Bool // mcp:write is required too (a step-up)

	mu        sync.Mutex
	accepted  []introspected // in order
	refused   int            // tokens presented and refused
	anonymous int            // requests without a token
}

// introspected is what Hydra's introspection says of a token.
type introspected struct {
	raw      string
	Active   bool     `json:"active"`
	ClientID string   `json:"client_id"`
	Subject  string   `json:"sub"`
	Scope    string   `json:"scope"`
	TokenUse string   `json:"token_use"`
	Audience []string `json:"aud"`
}

func (i introspected) scopes() []string { return strings.Fields(i.Scope) }

// hydraRegistrationEnv enables dynamic client registration at Hydra's
// public port (/oauth2/register, named registration_endpoint in its
// metadata, which names none without a URL). Hydra's default scope for a
// registered client is kept (openid, offline, offline_access): a client
// may ask only for the scopes it registered, so ProtectedResource
// registers those it will ask for.
func hydraRegistrationEnv(front string) []string {
	return []string{"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=true",
		"WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL=" + front + "/oauth2/register"}
}

// startProtectedHydra starts Hydra with dynamic registration (see
// hydraRegistrationEnv), then the resource naming its issuer as its
// metadata states it.
func startProtectedHydra(t *testing.T) (*hydraServer, *hydraResource) {
	h := startHydraWith(t, hydraRegistrationEnv)
	md := hydraMetadata(t, h.issuer)
	require.Equal(t, h.issuer+"/oauth2/register", md.Registration, "Hydra's metadata names its registration endpoint")
	require.Contains(t, md.PKCE, "S256")
	r := &hydraResource{issuer: md.Issuer, admin: h.admin}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	r.base = r.srv.URL
	r.url = r.base + "/mcp"
	return h, r
}

// hydraDiscovery is what the tests read of Hydra's OpenID metadata.
type hydraDiscovery struct {
	Issuer       string   `json:"issuer"`
	Registration string   `json:"registration_endpoint"`
	PKCE         []string `json:"code_challenge_methods_supported"`
}

// hydraMetadata reads Hydra's OpenID metadata (through the proxy; it has
// no RFC 8414 document).
func hydraMetadata(t *testing.T, issuer string) hydraDiscovery {
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var md hydraDiscovery
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	return md
}

func (r *hydraResource) metadataURL() string { return r.base + wellKnownResource + "/mcp" }

func (r *hydraResource) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	switch req.URL.Path {
	case wellKnownResource + "/mcp":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"resource": r.url, "authorization_servers": []string{r.issuer},
			"scopes_supported": []string{"mcp:read"}, "bearer_methods_supported": []string{"header"}})
	case "/mcp":
		r.serveResource(w, req)
	default:
		http.NotFound(w, req)
	}
}

// serveResource serves /mcp to a token Hydra says is an active access
// token with mcp:read.
func (r *hydraResource) serveResource(w http.ResponseWriter, req *http.Request) {
	_, _ = io.Copy(io.Discard, req.Body)
	challenge := `Bearer resource_metadata="` + r.metadataURL() + `"`
	raw, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
	if !ok {
		r.mu.Lock()
		r.anonymous++
		r.mu.Unlock()
		w.Header().Set("WWW-Authenticate", challenge+`, scope="mcp:read"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	got, err := r.introspect(req.Context(), raw)
	if err != nil || !got.Active || got.TokenUse != "access_token" {
		r.mu.Lock()
		r.refused++
		r.mu.Unlock()
		w.Header().Set("WWW-Authenticate", challenge+`, error="invalid_token"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if need := r.required(); !subset(need, got.scopes()) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+strings.Join(need, " ")+`", resource_metadata="`+r.metadataURL()+`"`)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, got)
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
}

// introspect asks Hydra's admin port what token is (RFC 7662).
func (r *hydraResource) introspect(ctx context.Context, token string) (introspected, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.admin+"/admin/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return introspected{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return introspected{}, redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return introspected{}, fmt.Errorf("introspection answered %d", resp.StatusCode)
	}
	out := introspected{raw: token}
	return out, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out)
}

// last returns how many tokens the resource accepted so far, and the last.
func (r *hydraResource) last() (int, introspected) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.accepted) == 0 {
		return 0, introspected{}
	}
	return len(r.accepted), r.accepted[len(r.accepted)-1]
}

// anonymousCalls returns how many requests came without a token, so far.
func (r *hydraResource) anonymousCalls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.anonymous
}

// get GETs the resource through c and returns the status.
func (r *hydraResource) get(t *testing.T, c *http.Client) int {
	t.Helper()
	resp, err := c.Get(r.url)
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// getWith GETs the resource with token as the bearer token and returns
// the status.
func (r *hydraResource) getWith(t *testing.T, token string) int {
	t.Helper()
	return r.get(t, &http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token})}})
}

// hydraClientInfo is an OAuth 2.0 client as Hydra's admin API lists it.
type hydraClientInfo struct {
	ClientID      string   `json:"client_id"`
	ClientName    string   `json:"client_name"`
	AuthMethod    string   `json:"token_endpoint_auth_method"`
	GrantTypes    []string `json:"grant_types"`
	ResponseTypes []string `json:"response_types"`
	RedirectURIs  []string `json:"redirect_uris"`
	Scope         string   `json:"scope"`
}

// clients lists Hydra's clients on its admin API, by client_id.
func (h *hydraServer) clients(t *testing.T) map[string]hydraClientInfo {
	t.Helper()
	var list []hydraClientInfo
	require.NoError(t, h.adminJSON(context.Background(), http.MethodGet, "/admin/clients?page_size=500", nil, &list))
	out := make(map[string]hydraClientInfo, len(list))
	for _, c := range list {
		out[c.ClientID] = c
	}
	return out
}

// newClients returns the clients in after that are not in before.
func newClients(before, after map[string]hydraClientInfo) []hydraClientInfo {
	var out []hydraClientInfo
	for id, c := range after {
		if _, ok := before[id]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// namedResource counts the successful token requests of a grant type
// that named resource (RFC 8707), so far.
func (h *hydraServer) namedResource(grantType, resource string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.named[[2]string{grantType, resource}]
}

// TestProtectedHydra runs its subtests one after the other: each compares
// Hydra's clients and counts before and after.
func TestProtectedHydra(t *testing.T) {
	t.Parallel()
	h, r := startProtectedHydra(t)
	t.Run("IssuerAsPublished", func(t *testing.T) { testHydraIssuer(t, h, r) })
	t.Run("PersonRegistersLogsInRefreshes", func(t *testing.T) { testProtectedHydraPerson(t, h, r) })
	t.Run("SharedStoreKeepsRegistration", func(t *testing.T) { testProtectedHydraSharedStore(t, h, r) })
	t.Run("ClientCredentials", func(t *testing.T) { testProtectedHydraMachine(t, h, r) })
}

// testHydraIssuer checks the harness: the resource names Hydra's issuer
// as Hydra's metadata states it, and challenges a request without a token
// with its metadata's URL.
func testHydraIssuer(t *testing.T, h *hydraServer, r *hydraResource) {
	require.Equal(t, hydraMetadata(t, h.issuer).Issuer, r.issuer)
	t.Logf("Hydra's issuer: %s", r.issuer)
	resp, err := http.Get(r.url)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	require.Equal(t, `Bearer resource_metadata="`+r.metadataURL()+`", scope="mcp:read"`, resp.Header.Get("WWW-Authenticate"))
}

// authURLs wraps a person's open func and keeps the authorization URLs it
// was given.
type authURLs struct {
	mu   sync.Mutex
	urls []string
}

func (a *authURLs) wrap(open func(context.Context, string) error) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		a.mu.Lock()
		a.urls = append(a.urls, authURL)
		a.mu.Unlock()
		return open(ctx, authURL)
	}
}

func (a *authURLs) last() url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.urls) == 0 {
		return nil
	}
	u, err := url.Parse(a.urls[len(a.urls)-1])
	if err != nil {
		return nil
	}
	return u.Query()
}

// testProtectedHydraPerson: from nothing but the resource's URL, a
// person's first request goes without a token; its 401 leads to Hydra,
// where the Source registers a client (once: a public client with a
// loopback redirect), the person logs in and consents, and the code is
// exchanged with PKCE; the resource accepts the token: active, the
// registered client's, the person's, with mcp:read (and refuses the
// refresh token). A forced refresh rotates the refresh token and brings
// an access token the resource accepts too, asking nobody; the old access
// token is refused from then on (Hydra revoked it).
func testProtectedHydraPerson(t *testing.T, h *hydraServer, r *hydraResource) {
	ctx := context.Background()
	before, anon := h.clients(t), r.anonymousCalls()
	code, _ := h.Exchanges(ctx, "authorization_code")
	named := h.namedResource("authorization_code", r.url)
	p, opened := newPerson(t), &authURLs{}
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{ClientName: "interop person", Open: opened.wrap(p.open)}),
		oauthtransport.WithStore(store.NewFile(t.TempDir()), "me"))
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	require.Equal(t, int64(1), p.opens.Load(), "the person was asked once")
	require.Equal(t, anon+1, r.anonymousCalls(), "the first request went without a token, its 401 led the way")
	reg := requireHydraRegistration(t, before, h.clients(t))
	require.Equal(t, r.url, opened.last().Get("resource"), "resource named in the authorization request")
	require.Equal(t, "S256", opened.last().Get("code_challenge_method"))
	after, _ := h.Exchanges(ctx, "authorization_code")
	require.Equal(t, code.PKCE+1, after.PKCE, "one code exchange, its S256 challenge verified")
	require.Equal(t, named+1, h.namedResource("authorization_code", r.url), "resource named at the token endpoint")

	n, got := r.last()
	require.Equal(t, reg.ClientID, got.ClientID, "the token is the registered client's")
	require.Equal(t, "person-1", got.Subject, "the person's")
	require.ElementsMatch(t, []string{"mcp:read", "offline_access"}, got.scopes(), "the challenge's scope, and offline_access")
	assert.Empty(t, got.Audience, "Hydra ignores RFC 8707 resource: no audience")
	first, err := tr.Token(ctx)
	require.NoError(t, err)
	require.True(t, got.raw == first.AccessToken, "the token the resource accepted is the Transport's")
	require.NotEmpty(t, first.RefreshToken, "the login brought a refresh token")
	require.Equal(t, http.StatusUnauthorized, r.getWith(t, first.RefreshToken), "the resource refuses a refresh token")

	refreshed := requireHydraRotated(t, h, tr, first, r.url)
	require.Equal(t, http.StatusUnauthorized, r.getWith(t, first.AccessToken), "Hydra revoked the refreshed grant's old access token")
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	m, got := r.last()
	require.Equal(t, n+1, m)
	require.True(t, refreshed.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, reg.ClientID, got.ClientID)
	require.Equal(t, int64(1), p.opens.Load(), "the refresh asked nobody")
	require.Len(t, h.clients(t), len(before)+1, "no second registration")
	require.Equal(t, anon+1, r.anonymousCalls(), "one request without a token in all")
}

// requireHydraRegistration checks the one client registered between
// before and after: a public client for the code and refresh grants with
// a loopback redirect on a port of its own.
func requireHydraRegistration(t *testing.T, before, after map[string]hydraClientInfo) hydraClientInfo {
	t.Helper()
	added := newClients(before, after)
	require.Len(t, added, 1, "one registration")
	reg := added[0]
	assert.Equal(t, "interop person", reg.ClientName)
	assert.Equal(t, "none", reg.AuthMethod, "a public client")
	assert.ElementsMatch(t, []string{"authorization_code", "refresh_token"}, reg.GrantTypes)
	assert.Equal(t, []string{"code"}, reg.ResponseTypes)
	require.Len(t, reg.RedirectURIs, 1)
	redirect, err := url.Parse(reg.RedirectURIs[0])
	require.NoError(t, err)
	assert.True(t, redirect.Scheme == "http" && redirect.Hostname() == "127.0.0.1" && redirect.Port() != "" && redirect.Path == "/callback",
		"a loopback redirect on a port of its own (RFC 8252), got %s", redirect)
	return reg
}

// requireHydraRotated refreshes tr's token (first) and checks that the
// refresh token rotated (the old one inactive at Hydra, the new one
// active) and that the refresh named the resource.
func requireHydraRotated(t *testing.T, h *hydraServer, tr *oauthtransport.Transport, first *oauth2.Token, resource string) *oauth2.Token {
	t.Helper()
	ctx := context.Background()
	rt, _ := h.Exchanges(ctx, "refresh_token")
	named := h.namedResource("refresh_token", resource)
	refreshed, err := tr.Refresh(ctx)
	require.NoError(t, err)
	require.True(t, first.AccessToken != refreshed.AccessToken, "a new access token")
	require.True(t, refreshed.RefreshToken != "" && refreshed.RefreshToken != first.RefreshToken, "the refresh token rotated")
	requireActive(t, h, first.RefreshToken, false, "the rotated-out refresh token")
	requireActive(t, h, refreshed.RefreshToken, true, "the new refresh token")
	after, _ := h.Exchanges(ctx, "refresh_token")
	require.Equal(t, rt.Success+1, after.Success, "one refresh")
	require.Equal(t, rt.Error, after.Error, "none refused")
	require.Equal(t, named+1, h.namedResource("refresh_token", resource), "resource named on the refresh")
	return refreshed
}

// testProtectedHydraSharedStore: a second Transport sharing the first
// one's store.File neither registers nor asks its person: it sends the
// stored token with its first request (no request without a token, no
// token request), and refreshes it as the client the first registered.
func testProtectedHydraSharedStore(t *testing.T, h *hydraServer, r *hydraResource) {
	ctx, dir := context.Background(), t.TempDir()
	pa, pb := newPerson(t), newPerson(t)
	a := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{ClientName: "interop person", Open: pa.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	before := h.clients(t)
	require.Equal(t, http.StatusOK, r.get(t, a.Client()))
	clients := h.clients(t)
	reg := requireHydraRegistration(t, before, clients)
	tokA, err := a.Token(ctx)
	require.NoError(t, err)

	anon, code := r.anonymousCalls(), h.tokenRequests(ctx)
	b := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{ClientName: "interop person", Open: pb.open}),
		oauthtransport.WithStore(store.NewFile(dir), "me"))
	require.Equal(t, http.StatusOK, r.get(t, b.Client()))
	_, got := r.last()
	require.True(t, tokA.AccessToken == got.raw, "the second Transport sent the stored token")
	require.Equal(t, anon, r.anonymousCalls(), "with its first request")
	require.Equal(t, code, h.tokenRequests(ctx), "without a token request")
	require.Len(t, h.clients(t), len(clients), "the second Transport did not register")

	refreshed := requireHydraRotated(t, h, b, tokA, r.url)
	require.Equal(t, http.StatusOK, r.get(t, b.Client()))
	_, got = r.last()
	require.True(t, refreshed.AccessToken == got.raw, "the refreshed token was accepted")
	require.Equal(t, reg.ClientID, got.ClientID, "refreshed as the client the first Transport registered")
	require.Equal(t, int64(0), pb.opens.Load(), "the second Transport's person was never asked")
	require.Equal(t, int64(1), pa.opens.Load())
	require.Len(t, h.clients(t), len(clients))
}

// tokenRequests counts the token requests of every grant type so far.
func (h *hydraServer) tokenRequests(ctx context.Context) int64 {
	var n int64
	for _, g := range []string{"authorization_code", "refresh_token", "client_credentials"} {
		e, _ := h.Exchanges(ctx, g)
		n += e.Success + e.Error
	}
	return n
}

// testProtectedHydraMachine: client credentials with a client created
// beforehand on Hydra's admin API (client_secret_basic), named in
// Registered under Hydra's issuer exactly as its metadata states it: no
// registration, one token request naming the resource (which Hydra
// ignores), and a token the resource accepts, the client's, with the
// challenge's scope.
func testProtectedHydraMachine(t *testing.T, h *hydraServer, r *hydraResource) {
	ctx := context.Background()
	const id, secret = "mcp-cc-client", "mcp-cc-secret-value"
	require.NoError(t, h.adminJSON(ctx, http.MethodPost, "/admin/clients", map[string]any{
		"client_id": id, "client_secret": secret, "token_endpoint_auth_method": "client_secret_basic",
		"grant_types": []string{"client_credentials"}, "response_types": []string{"token"}, "scope": "mcp:read"}, nil))
	before, anon := h.clients(t), r.anonymousCalls()
	cc, _ := h.Exchanges(ctx, "client_credentials")
	named := h.namedResource("client_credentials", r.url)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{
		Registered: map[string]oauthtransport.RegisteredClient{r.issuer: {ClientID: id, ClientSecret: secret}}}))
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	require.Equal(t, anon+1, r.anonymousCalls(), "one request without a token: its 401 led the way")
	_, got := r.last()
	require.Equal(t, id, got.ClientID)
	require.Equal(t, id, got.Subject)
	require.Equal(t, []string{"mcp:read"}, got.scopes(), "the challenge's scope")
	after, _ := h.Exchanges(ctx, "client_credentials")
	require.Equal(t, cc.Success+1, after.Success, "one token request for both calls")
	require.Equal(t, cc.Error, after.Error)
	require.Equal(t, named+1, h.namedResource("client_credentials", r.url), "naming the resource")
	require.Equal(t, before, h.clients(t), "no registration")
}

// required are the scopes the resource requires now.
func (r *hydraResource) required() []string {
	if r.write.Load() {
		return []string{"mcp:read", "mcp:write"}
	}
	return []string{"mcp:read"}
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// TestProtectedHydraStepUp: the resource starts requiring mcp:write. Hydra
// lets a dynamic client ask only for the scopes it registered, so the
// step-up's login is refused (invalid_scope) before the person is asked;
// the client registers again with every scope asked, and the person logs
// in once more: the request then goes through.
func TestProtectedHydraStepUp(t *testing.T) {
	t.Parallel()
	h, r := startProtectedHydra(t)
	p := newPerson(t)
	before := h.clients(t)
	tr := newTransport(t, oauthtransport.ProtectedResource(r.url, &oauthtransport.ClientConfig{Open: p.open}))
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	require.Len(t, newClients(before, h.clients(t)), 1)

	r.write.Store(true)
	require.Equal(t, http.StatusOK, r.get(t, tr.Client()))
	_, got := r.last()
	assert.Subset(t, got.scopes(), []string{"mcp:read", "mcp:write"})
	clients := newClients(before, h.clients(t))
	require.Len(t, clients, 2, "registered again for the added scope")
	scopes := strings.Fields(clients[0].Scope + " " + clients[1].Scope)
	assert.Contains(t, scopes, "mcp:write", "one of them registered mcp:write")
}
