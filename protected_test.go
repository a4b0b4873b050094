package oauthtransport

// ProtectedResource over real HTTP, against oauthtest's authorization
// server and a resource on another origin: the chain it runs (resource
// metadata, server metadata, dynamic registration, PKCE, RFC 8707
// resources, scopes), the grants (a person's, client credentials,
// private_key_jwt), the registration kept and replaced, step-up, many
// resources on one Transport, and the 2025-03-26 fallbacks.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// mcpEnv is a protected resource, its authorization server on another
// origin, and the browser of the person who logs in.
type mcpEnv struct {
	as  *oauthtest.Server
	res *oauthtest.Resource
	b   *browser
}

func newMCPEnv(t *testing.T, asOpts []oauthtest.Option, resOpts ...oauthtest.ResourceOption) *mcpEnv {
	t.Helper()
	as := oauthtest.NewServer(t, asOpts...)
	return &mcpEnv{as: as, res: oauthtest.NewResource(t, as, resOpts...), b: &browser{}}
}

// person is the config of a client that a person logs in to, registered
// dynamically.
func (e *mcpEnv) person() *ClientConfig { return &ClientConfig{Open: e.b.open} }

// transport is a Transport for e's resource, closed when t ends.
func (e *mcpEnv) transport(t *testing.T, cfg *ClientConfig, opts ...Option) *Transport {
	t.Helper()
	return protectedTransport(t, e.res.ResourceURL, cfg, opts...)
}

func protectedTransport(t *testing.T, resourceURL string, cfg *ClientConfig, opts ...Option) *Transport {
	t.Helper()
	tr, err := New(ProtectedResource(resourceURL, cfg), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// callMCP POSTs a JSON-RPC body (replayable) to u through tr and returns
// the status; the error is RoundTrip's.
func callMCP(ctx context.Context, tr *Transport, u string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		return 0, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// mustCall calls the resource and requires a 200.
func mustCall(t *testing.T, tr *Transport, u string) {
	t.Helper()
	status, err := callMCP(context.Background(), tr, u)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)
}

// tokensSeen are the tokens res accepted or refused, by status.
func tokensSeen(res *oauthtest.Resource) map[string][]int {
	seen := map[string][]int{}
	for _, r := range res.Requests() {
		if r.Token != "" {
			seen[r.Token] = append(seen[r.Token], r.Status)
		}
	}
	return seen
}

// scopeParam is the scope of an authorization request, as a set.
func scopeParam(q url.Values) []string {
	s := strings.Fields(q.Get("scope"))
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return s
}

func TestProtectedResourceChainOnAnotherHost(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read", "mcp:write"))
	require.NotEqual(t, e.as.Listener.Addr().String(), e.res.Listener.Addr().String())
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	q := e.assertNativeRegistration(t)

	// The authorization request: PKCE S256, the resource, the scopes of
	// scopes_supported (the challenge named none).
	assert.Equal(t, "S256", q.Get("code_challenge_method"))
	assert.NotEmpty(t, q.Get("code_challenge"))
	assert.Equal(t, []string{e.res.ResourceURL}, q["resource"])
	assert.Equal(t, []string{"mcp:read", "mcp:write"}, scopeParam(q))
	passed, failed := e.as.PKCEChecks()
	assert.Equal(t, [2]int64{1, 0}, [2]int64{passed, failed})

	// The token request: the code, with the resource, as the registered client.
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "authorization_code", reqs[0].Form.Get("grant_type"))
	assert.Equal(t, []string{e.res.ResourceURL}, reqs[0].Form["resource"])
	assert.Equal(t, "none", reqs[0].AuthMethod)
	clientID := q.Get("client_id")
	assert.Equal(t, clientID, reqs[0].Form.Get("client_id"))

	// What the resource saw: the request without a token (its 401 led the
	// way), then sent once more with one.
	got := e.res.Requests()
	require.Len(t, got, 2)
	assert.Equal(t, oauthtest.ResourceRequest{Method: http.MethodPost, Status: 401}, got[0], "the first request, as MCP clients send it")
	assert.Equal(t, http.StatusOK, got[1].Status)
	info := e.as.Introspect(got[1].Token)
	assert.Equal(t, []string{e.res.ResourceURL}, info.Resources)
	assert.Equal(t, clientID, info.ClientID)

	// The token is tagged with where it came from, in memory and in the store.
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, e.as.URL, tok.Extra(store.IssuerKey))
	assert.Equal(t, clientID, tok.Extra(store.ClientIDKey))
	assert.Equal(t, int64(1), e.b.opens.Load())
}

// assertNativeRegistration checks the one registration: a native app
// with the loopback redirect its one authorization request then used,
// which it returns.
func (e *mcpEnv) assertNativeRegistration(t *testing.T) url.Values {
	t.Helper()
	require.Equal(t, 1, e.as.Registrations())
	reg := e.as.RegistrationRequests()[0]
	assert.Equal(t, "none", reg.TokenEndpointAuthMethod, "a person's client is public")
	assert.Equal(t, "native", reg.ApplicationType)
	assert.Subset(t, reg.GrantTypes, []string{"authorization_code", "refresh_token"})
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 1)
	q := asked[0]
	assert.Equal(t, []string{q.Get("redirect_uri")}, reg.RedirectURIs, "the redirect registered is the one used")
	assert.Equal(t, reg.ClientID, q.Get("client_id"))
	back := e.b.redirect()
	require.NotNil(t, back)
	assert.Equal(t, q.Get("redirect_uri"), back.Scheme+"://"+back.Host+back.Path, "and the browser came back to it")
	assert.True(t, loopbackRedirectURI(q.Get("redirect_uri")), "a loopback redirect: %s", q.Get("redirect_uri"))
	return q
}

func loopbackRedirectURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "http" && u.Hostname() == "127.0.0.1" && u.Port() != ""
}

func TestProtectedResourceScopes(t *testing.T) {
	t.Parallel()
	offline := oauthtest.MetadataMembers(map[string]any{"scopes_supported": []string{"mcp:read", "mcp:write", "offline_access"}})
	for name, tc := range map[string]struct {
		as   []oauthtest.Option
		res  []oauthtest.ResourceOption
		want []string
	}{
		"the challenge's":                   {res: []oauthtest.ResourceOption{oauthtest.ChallengeScopes("mcp:read"), oauthtest.ResourceScopes("mcp:read", "mcp:write")}, want: []string{"mcp:read"}},
		"scopes_supported":                  {res: []oauthtest.ResourceOption{oauthtest.ResourceScopes("mcp:read", "mcp:write")}, want: []string{"mcp:read", "mcp:write"}},
		"none":                              {},
		"offline_access when listed":        {as: []oauthtest.Option{offline}, res: []oauthtest.ResourceOption{oauthtest.ChallengeScopes("mcp:write")}, want: []string{"mcp:write", "offline_access"}},
		"offline_access alone when listed":  {as: []oauthtest.Option{offline}, want: []string{"offline_access"}},
		"no offline_access when not listed": {res: []oauthtest.ResourceOption{oauthtest.ChallengeScopes("mcp:write")}, want: []string{"mcp:write"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, tc.as, tc.res...)
			mustCall(t, e.transport(t, e.person()), e.res.ResourceURL)
			asked := e.as.AuthorizationRequests()
			require.Len(t, asked, 1)
			assert.Equal(t, tc.want, scopeParam(asked[0]))
			_, present := asked[0]["scope"]
			assert.Equal(t, len(tc.want) > 0, present, "no scope parameter when there is none to ask")
		})
	}
}

func TestProtectedResourceMachineClients(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	offline := oauthtest.MetadataMembers(map[string]any{"scopes_supported": []string{"mcp:read", "offline_access"}})
	for name, tc := range map[string]struct {
		as     []oauthtest.Option
		client func(issuer string) *ClientConfig
		method string
		regs   int
	}{
		"registered with a secret, for any issuer": {method: "client_secret_basic", client: func(string) *ClientConfig {
			return &ClientConfig{Registered: map[string]RegisteredClient{"": {ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret}}}
		}},
		"private_key_jwt, for this issuer": {as: []oauthtest.Option{oauthtest.ClientKey(key.Public())}, method: "private_key_jwt", client: func(issuer string) *ClientConfig {
			return &ClientConfig{Registered: map[string]RegisteredClient{issuer: {ClientID: oauthtest.ClientID, Key: key}, "": {ClientID: "not-this-one"}}}
		}},
		"registered dynamically": {method: "client_secret_basic", regs: 1, client: func(string) *ClientConfig { return &ClientConfig{} }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, append(tc.as, offline), oauthtest.ChallengeScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
			tr := e.transport(t, tc.client(e.as.URL))
			mustCall(t, tr, e.res.ResourceURL)
			reqs := e.as.TokenRequests()
			require.Len(t, reqs, 1)
			assert.Equal(t, "client_credentials", reqs[0].Form.Get("grant_type"))
			assert.Equal(t, tc.method, reqs[0].AuthMethod)
			assert.Equal(t, []string{e.res.ResourceURL}, reqs[0].Form["resource"])
			assert.Equal(t, "mcp:read", reqs[0].Form.Get("scope"), "a machine's grant never asks offline_access")
			assert.Equal(t, tc.regs, e.as.Registrations())
			assert.Empty(t, e.as.AuthorizationRequests())
			if tc.regs == 1 {
				reg := e.as.RegistrationRequests()[0]
				assert.Equal(t, []string{"client_credentials"}, reg.GrantTypes)
				assert.Empty(t, reg.RedirectURIs)
				assert.Equal(t, "client_secret_basic", reg.TokenEndpointAuthMethod)
			}
		})
	}
}

func TestProtectedResourceRegistrationReplaced(t *testing.T) {
	t.Parallel()
	t.Run("machine", func(t *testing.T) {
		t.Parallel()
		e := newMCPEnv(t, nil)
		tr := e.transport(t, &ClientConfig{})
		mustCall(t, tr, e.res.ResourceURL)
		e.as.ForgetRegistrations()
		e.as.RevokeAll() // the resource refuses the token: a new one is needed
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "registered again exactly once")
		assert.EqualValues(t, 3, e.as.TokenCalls(), "the token, the refused one, the one of the new registration")
		reqs := e.as.TokenRequests()
		require.Len(t, reqs, 2, "the refused request's client was not authenticated")
		assert.NotEqual(t, reqs[0].ClientID, reqs[1].ClientID, "the new registration")
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "and kept")
	})
	t.Run("person", func(t *testing.T) {
		t.Parallel()
		e := newMCPEnv(t, nil)
		tr := e.transport(t, e.person())
		mustCall(t, tr, e.res.ResourceURL)
		e.as.ForgetRegistrations()
		e.as.RevokeAll()
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "registered again exactly once")
		assert.Equal(t, int64(2), e.b.opens.Load(), "the refresh was refused (invalid_client): the person logs in with the new client")
		asked := e.as.AuthorizationRequests()
		require.Len(t, asked, 2)
		assert.NotEqual(t, asked[0].Get("client_id"), asked[1].Get("client_id"))
	})
}

func TestProtectedResourceRegistrationExpiresAtOnce(t *testing.T) {
	t.Parallel()
	// Every secret expires before it can be used: the client registers
	// again once per token it needs, and fails, never in a loop.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.RegistrationLifetime(time.Nanosecond)})
	tr := e.transport(t, &ClientConfig{})
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	te, ok := errors.AsType[*TokenError](err)
	require.True(t, ok, "a *TokenError, got %v", err)
	assert.Equal(t, "invalid_client", te.Code)
	assert.Equal(t, 2, e.as.Registrations(), "the first registration, and one more after invalid_client")
	assert.EqualValues(t, 2, e.as.TokenCalls())
	secrets := registeredSecrets(t, e.as)
	secretFree(t, "the error", err.Error(), secrets...)
	assert.Len(t, tokensSeen(e.res), 0, "no token reached the resource")
}

// registeredSecrets are the secrets of the clients registered at as.
func registeredSecrets(t *testing.T, as *oauthtest.Server) []string {
	t.Helper()
	var secrets []string
	for _, r := range as.RegistrationRequests() {
		if r.ClientSecret != "" {
			secrets = append(secrets, r.ClientSecret)
		}
	}
	require.NotEmpty(t, secrets)
	return secrets
}

// secretFree fails if text holds any secret, or any 16-byte piece of one
// (as hostile_test.go's assertNoSecret, for this package's tests).
func secretFree(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		for j := 0; j == 0 || j+16 <= len(s); j += 8 {
			if strings.Contains(text, s[j:min(j+16, len(s))]) {
				t.Errorf("%s holds (part of) secret #%d", what, i)
				break
			}
		}
	}
}

func TestProtectedResourceRegistrationKeptInTheStore(t *testing.T) {
	t.Parallel()
	for name, st := range map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return store.NewMemory() },
		"file":   func(t *testing.T) store.Store { return store.NewFile(t.TempDir()) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			other := oauthtest.NewResource(t, e.as) // another resource of the same server
			s := st(t)
			first := e.transport(t, e.person(), WithStore(s, "app"))
			mustCall(t, first, e.res.ResourceURL)
			require.NoError(t, first.Close())

			// Another process: the same store, a resource it never used.
			second := protectedTransport(t, other.ResourceURL, e.person(), WithStore(s, "app"))
			mustCall(t, second, other.ResourceURL)
			assert.Equal(t, 1, e.as.Registrations(), "the registration was kept, by issuer")
			asked := e.as.AuthorizationRequests()
			require.Len(t, asked, 2)
			assert.Equal(t, asked[0].Get("client_id"), asked[1].Get("client_id"))
			assert.Equal(t, asked[0].Get("redirect_uri"), asked[1].Get("redirect_uri"), "with its redirect URI")
			assert.Equal(t, []string{other.ResourceURL}, asked[1]["resource"])

			// A third on the first resource: its token is in the store.
			third := e.transport(t, e.person(), WithStore(s, "app"))
			mustCall(t, third, e.res.ResourceURL)
			assert.Equal(t, int64(2), e.b.opens.Load(), "no login for a token kept")
			assert.Equal(t, 1, e.as.Registrations())
		})
	}
}

func TestProtectedResourcesOnOneTransport(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("a"), oauthtest.RequireScopes("a"))
	two := oauthtest.NewResource(t, e.as, oauthtest.ResourceScopes("b"), oauthtest.RequireScopes("b"))
	cfg := e.person()
	tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, cfg), nil })
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	for range 2 {
		for _, res := range []*oauthtest.Resource{e.res, two} {
			status, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, status)
		}
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "one login per resource")
	assert.Equal(t, 1, e.as.Registrations(), "one client at their common server")
	one, other := tokensSeen(e.res), tokensSeen(two)
	require.Len(t, one, 1)
	require.Len(t, other, 1)
	for tok := range one {
		assert.NotContains(t, other, tok, "a token is never sent to the other resource")
		assert.Equal(t, []string{e.res.ResourceURL}, e.as.Introspect(tok).Resources)
		assert.Equal(t, "a", e.as.Introspect(tok).Scope)
	}
	for tok := range other {
		assert.Equal(t, []string{two.ResourceURL}, e.as.Introspect(tok).Resources)
		assert.Equal(t, "b", e.as.Introspect(tok).Scope)
	}
	for _, r := range e.as.TokenRequests() {
		assert.Len(t, r.Form["resource"], 1, "each token request names its one resource")
	}
}

func TestProtectedResourceStepUp(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	before := len(e.res.Requests())

	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the person is asked once more")
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.Equal(t, []string{"mcp:read", "mcp:write"}, scopeParam(asked[1]), "for the union of the scopes")
	assert.Equal(t, []string{e.res.ResourceURL}, asked[1]["resource"])
	got := e.res.Requests()[before:]
	require.Len(t, got, 2, "the request, replayed once")
	assert.Equal(t, http.StatusForbidden, got[0].Status)
	assert.Equal(t, http.StatusOK, got[1].Status)
	assert.Equal(t, "mcp:read mcp:write", e.as.Introspect(got[1].Token).Scope)

	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the new token serves from then on")
}

func TestProtectedResourceStepUpIsBounded(t *testing.T) {
	t.Parallel()
	// The server never grants mcp:admin: the resource keeps answering 403
	// for it.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.WithheldScopes("mcp:admin")},
		oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	before := len(e.res.Requests())

	e.res.SetRequiredScopes("mcp:read", "mcp:admin")
	for i := range 3 {
		_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
		fe, ok := errors.AsType[*ForbiddenError](err)
		require.True(t, ok, "call %d: a *ForbiddenError, got %v", i, err)
		require.ErrorIs(t, err, ErrForbidden)
		secretFree(t, "the error", err.Error(), accessTokens(e.res)...)
		assert.Equal(t, http.StatusForbidden, fe.StatusCode)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "at most one more login")
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.Equal(t, []string{"mcp:admin", "mcp:read"}, scopeParam(asked[1]))
	assert.Len(t, e.res.Requests()[before:], 4, "the first call replayed once, the others sent once")
}

// accessTokens are the tokens res received.
func accessTokens(res *oauthtest.Resource) []string {
	var toks []string
	for tok := range tokensSeen(res) {
		toks = append(toks, tok)
	}
	return toks
}

func TestProtectedResourceTokenOfAnotherIssuer(t *testing.T) {
	t.Parallel()
	for name, expiry := range map[string]time.Duration{"expired": -time.Minute, "live": time.Hour} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			foreign := oauthtest.NewServer(t)
			tr := e.transport(t, e.person(), WithStore(store.NewMemory(), "app"))

			// A token of another issuer, with its refresh token, kept for
			// this resource (say, before the resource moved to e.as).
			rt := foreign.IssueRefreshToken()
			stale := (&oauth2.Token{AccessToken: "at-foreign-0123456789abcdef", RefreshToken: rt, TokenType: "Bearer", Expiry: time.Now().Add(expiry)}).
				WithExtra(map[string]any{store.IssuerKey: foreign.URL, store.ClientIDKey: oauthtest.ClientID})
			require.NoError(t, tr.SetToken(context.Background(), stale))

			mustCall(t, tr, e.res.ResourceURL)
			assert.Equal(t, int64(1), e.b.opens.Load(), "the person logs in instead")
			assert.Zero(t, foreign.TokenCalls(), "the other issuer is never asked")
			for _, r := range e.as.TokenRequests() {
				assert.NotEqual(t, "refresh_token", r.Form.Get("grant_type"), "nor is its refresh token presented here")
				for _, vs := range r.Form {
					assert.NotContains(t, vs, rt)
				}
			}
			tok, err := tr.Token(context.Background())
			require.NoError(t, err)
			assert.Equal(t, e.as.URL, tok.Extra(store.IssuerKey), "the new token is tagged with its issuer")
			assert.NotEqual(t, rt, tok.RefreshToken)
		})
	}
}

func TestProtectedResourceWithoutMetadata(t *testing.T) {
	t.Parallel()
	// MCP 2025-03-26: the server is its own authorization server, and
	// publishes no resource metadata; its API (oauthtest's /api/) answers a
	// bare 401.
	for name, opts := range map[string][]oauthtest.Option{
		"server metadata at the root": nil,
		"no metadata at all":          {oauthtest.NoMetadata()},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			as := oauthtest.NewServer(t, opts...)
			b := &browser{}
			resource := as.APIURL + "mcp"
			tr := protectedTransport(t, resource, &ClientConfig{Open: b.open})
			mustCall(t, tr, resource)
			assert.Equal(t, 1, as.Registrations(), "at /register")
			asked := as.AuthorizationRequests()
			require.Len(t, asked, 1, "at /authorize")
			assert.Equal(t, []string{resource}, asked[0]["resource"])
			assert.Equal(t, "S256", asked[0].Get("code_challenge_method"))
			reqs := as.TokenRequests()
			require.Len(t, reqs, 1, "at /token")
			assert.Equal(t, []string{resource}, reqs[0].Form["resource"])
			tok, err := tr.Token(context.Background())
			require.NoError(t, err)
			assert.Equal(t, as.URL, tok.Extra(store.IssuerKey), "its origin is the issuer")
		})
	}
}

func TestProtectedResourceMachineStepUp(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, &ClientConfig{})
	mustCall(t, tr, e.res.ResourceURL)
	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	mustCall(t, tr, e.res.ResourceURL)
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.ElementsMatch(t, []string{"mcp:read", "mcp:write"}, strings.Fields(reqs[1].Form.Get("scope")), "the union")
	assert.Equal(t, 1, e.as.Registrations())
}

func TestProtectedResourceOneLoginForConcurrentCallers(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	tr := e.transport(t, e.person())
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			status, err := callMCP(context.Background(), tr, e.res.ResourceURL)
			if err == nil && status != http.StatusOK {
				err = errors.New(http.StatusText(status))
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, int64(1), e.b.opens.Load())
	assert.Equal(t, 1, e.as.Registrations())
	assert.EqualValues(t, 1, e.as.TokenCalls())
}

func TestProtectedResourceKeptRegistrationExpired(t *testing.T) {
	t.Parallel()
	// A registration kept in the store whose secret has expired
	// (client_secret_expires_at passed) is replaced before it is presented.
	e := newMCPEnv(t, nil)
	s := store.NewMemory()
	old := identity{ClientID: "dyn-expired", Secret: "expired-secret-0123456789abcdef", Method: "client_secret_basic",
		Expires: time.Now().Add(-time.Minute).Unix(), Dynamic: true}
	require.NoError(t, registry{s: s, prefix: "app"}.save(context.Background(), e.as.URL, old))
	tr := e.transport(t, &ClientConfig{}, WithStore(s, "app"))
	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, 1, e.as.Registrations())
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.NotEqual(t, old.ClientID, reqs[0].ClientID)
	assert.EqualValues(t, 1, e.as.TokenCalls(), "the expired secret was never presented")
}

func TestProtectedResourceConfidentialPersonClient(t *testing.T) {
	t.Parallel()
	// A server that takes no public clients: the person's client registers
	// with a secret, which it sends as registered.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"token_endpoint_auth_methods_supported": []string{"client_secret_post"}})})
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	require.Equal(t, 1, e.as.Registrations())
	assert.Equal(t, "client_secret_post", e.as.RegistrationRequests()[0].TokenEndpointAuthMethod)
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "client_secret_post", reqs[0].AuthMethod)
}

func TestProtectedResourcesOfDifferentGrantsAtOneServer(t *testing.T) {
	t.Parallel()
	// One Transport, one store key: a person's resource and a machine's,
	// at the same server. Each needs a client registered for its grant.
	for name, personFirst := range map[string]bool{"person first": true, "machine first": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			jobs := oauthtest.NewResource(t, e.as)
			tr, err := NewKeyed(func(key string) (Source, error) {
				if key == jobs.ResourceURL {
					return ProtectedResource(key, &ClientConfig{}), nil
				}
				return ProtectedResource(key, e.person()), nil
			}, WithStore(store.NewMemory(), "app"))
			require.NoError(t, err)
			t.Cleanup(func() { _ = tr.Close() })
			order := []*oauthtest.Resource{e.res, jobs}
			if !personFirst {
				order = []*oauthtest.Resource{jobs, e.res}
			}
			for _, res := range order {
				status, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
				require.NoError(t, err, res.ResourceURL)
				require.Equal(t, http.StatusOK, status)
			}
			assert.Equal(t, 2, e.as.Registrations())
		})
	}
}

func TestProtectedResourcesFirstUsedTogether(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{e.res, oauthtest.NewResource(t, e.as), oauthtest.NewResource(t, e.as)}
	// Registrations that would be sent together are held until they all
	// arrive, so that each sees none kept: a client that registers once per
	// issuer sends only one, which goes on after a second.
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: len(resources), wait: 250 * time.Millisecond, all: make(chan struct{})}
	tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, &ClientConfig{}), nil },
		WithTokenClient(&http.Client{Transport: gate}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	errs := make(chan error, len(resources))
	for _, res := range resources {
		go func() {
			_, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
			errs <- err
		}()
	}
	for range resources {
		require.NoError(t, <-errs)
	}
	assert.Equal(t, 1, e.as.Registrations(), "one client at their server, however many resources start at once")
}

// gathering holds the requests to path until n have arrived, or until
// wait has passed since one was held (then every one goes on).
type gathering struct {
	base    http.RoundTripper
	path    string
	n       int
	wait    time.Duration
	mu      sync.Mutex
	arrived int
	all     chan struct{}
	once    sync.Once
	late    atomic.Bool // the wait passed before the n requests arrived
}

func (g *gathering) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == g.path {
		release := func() { g.once.Do(func() { close(g.all) }) }
		g.mu.Lock()
		if g.arrived++; g.arrived == g.n {
			release()
		}
		g.mu.Unlock()
		timer := time.NewTimer(g.wait)
		defer timer.Stop()
		select {
		case <-g.all:
		case <-timer.C:
			g.late.Store(true)
			release()
		case <-req.Context().Done():
		}
	}
	return g.base.RoundTrip(req)
}

func TestProtectedResourceMetadataAtTheWellKnownURL(t *testing.T) {
	t.Parallel()
	// The challenge names no metadata: it is found at the path-aware
	// well-known URL (RFC 9728 §3.1).
	sw := &switchable{}
	sw.good.Store(true)
	e := newMCPEnv(t, nil, oauthtest.NoResourceMetadata(), oauthtest.MetadataHandler(sw.serve))
	sw.doc = func() any {
		return map[string]any{"resource": e.res.ResourceURL, "authorization_servers": []string{e.as.URL}, "scopes_supported": []string{"tools"}}
	}
	mustCall(t, e.transport(t, e.person()), e.res.ResourceURL)
	assert.EqualValues(t, 1, e.res.MetadataCalls())
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 1)
	assert.Equal(t, []string{"tools"}, scopeParam(asked[0]))
}

func TestProtectedResourceFirstRequestNotReplayable(t *testing.T) {
	t.Parallel()
	// A body that cannot be sent twice: the first request waits for a
	// token, found by the well-known URL, with the scopes the resource
	// lists.
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("tools"), oauthtest.ChallengeScopes("never-seen"))
	tr := e.transport(t, e.person())
	req, err := http.NewRequest(http.MethodPost, e.res.ResourceURL, io.NopCloser(strings.NewReader(`{}`)))
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got := e.res.Requests()
	require.Len(t, got, 1, "sent once, with a token")
	assert.NotEmpty(t, got[0].Token)
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 1)
	assert.Equal(t, []string{"tools"}, scopeParam(asked[0]))
}

func TestProtectedResourceTokensTagged(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	s := store.NewMemory()
	tr := e.transport(t, e.person(), WithStore(s, "app"))
	mustCall(t, tr, e.res.ResourceURL)
	first, err := tr.Token(context.Background())
	require.NoError(t, err)
	refreshed, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	require.NotEqual(t, first.AccessToken, refreshed.AccessToken)
	clientID := e.as.AuthorizationRequests()[0].Get("client_id")

	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "refresh_token", reqs[1].Form.Get("grant_type"))
	assert.Equal(t, []string{e.res.ResourceURL}, reqs[1].Form["resource"], "a refresh names the resource too")
	for _, tok := range []*oauth2.Token{first, refreshed} {
		assert.Equal(t, e.as.URL, tok.Extra(store.IssuerKey))
		assert.Equal(t, clientID, tok.Extra(store.ClientIDKey))
	}

	// In the store: the token, tagged, and the registration beside it.
	var tagged, others int
	for key, err := range s.Keys(context.Background(), "app") {
		require.NoError(t, err)
		kept, err := s.Load(context.Background(), key)
		require.NoError(t, err)
		if kept.AccessToken == refreshed.AccessToken {
			tagged++
			assert.Equal(t, e.as.URL, kept.Extra(store.IssuerKey), key)
			assert.Equal(t, clientID, kept.Extra(store.ClientIDKey), key)
		} else {
			others++
		}
	}
	assert.Equal(t, 1, tagged)
	assert.Equal(t, 1, others, "the registration")
}

func TestProtectedResourceRevoke(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil)
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	require.NoError(t, tr.Revoke(context.Background()))
	assert.EqualValues(t, 1, e.as.RevokeCalls(), "at the server's revocation endpoint, as the registered client")
	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the person signs in again")
	assert.Equal(t, 1, e.as.Registrations())
}

func TestProtectedResourceWithoutRegistration(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		as     []oauthtest.Option
		client func(*mcpEnv) *ClientConfig
	}{
		"NoRegistration": {client: func(e *mcpEnv) *ClientConfig { return &ClientConfig{Open: e.b.open, NoRegistration: true} }},
		"a server without a registration endpoint": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"registration_endpoint": nil})},
			client: func(e *mcpEnv) *ClientConfig { return e.person() }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, tc.as)
			_, err := callMCP(context.Background(), e.transport(t, tc.client(e)), e.res.ResourceURL)
			me, ok := errors.AsType[*MetadataError](err)
			require.True(t, ok, "a *MetadataError, got %v", err)
			assert.Equal(t, "client registration", me.Document)
			assert.Zero(t, e.as.Registrations())
			assert.Zero(t, e.b.opens.Load())
		})
	}
}

func TestProtectedResourceClientIDMetadataDocument(t *testing.T) {
	t.Parallel()
	// The server takes Client ID Metadata Documents: the document's URL is
	// the client_id, and nothing is registered. (oauthtest does not fetch
	// the document, so its authorization endpoint refuses the client.)
	const doc = "https://app.example/oauth/client.json"
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"client_id_metadata_document_supported": true})})
	_, err := callMCP(context.Background(), e.transport(t, &ClientConfig{Open: e.b.open, MetadataDocument: doc}), e.res.ResourceURL)
	require.ErrorIs(t, err, ErrToken)
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 1)
	assert.Equal(t, doc, asked[0].Get("client_id"))
	assert.Zero(t, e.as.Registrations())
}

func TestProtectedResourcesFirstUsedTogetherThenRestart(t *testing.T) {
	t.Parallel()
	// A person signs in to two resources of one server at once; after a
	// restart, their grants refresh without asking them again.
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{e.res, oauthtest.NewResource(t, e.as)}
	s := store.NewMemory()
	keyed := func(opts ...Option) *Transport {
		tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, e.person()), nil }, append(opts, WithStore(s, "app"))...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: len(resources), wait: 250 * time.Millisecond, all: make(chan struct{})}
	first := keyed(WithTokenClient(&http.Client{Transport: gate}))
	errs := make(chan error, len(resources))
	for _, res := range resources {
		go func() {
			_, err := callMCP(WithKey(context.Background(), res.ResourceURL), first, res.ResourceURL)
			errs <- err
		}()
	}
	for range resources {
		require.NoError(t, <-errs)
	}
	require.NoError(t, first.Close())
	require.Equal(t, int64(2), e.b.opens.Load())

	second := keyed()
	for _, res := range resources {
		ctx := WithKey(context.Background(), res.ResourceURL)
		kept, err := second.Token(ctx) // the token kept, as it was
		require.NoError(t, err, res.ResourceURL)
		refreshed, err := second.Refresh(ctx)
		require.NoError(t, err, res.ResourceURL)
		assert.NotEqual(t, kept.AccessToken, refreshed.AccessToken)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "no grant is from a client other than the one kept")
}

func TestProtectedResourcesLoginsTogether(t *testing.T) {
	t.Parallel()
	// Two resources of one server, whose client is registered already
	// (with its loopback redirect), each need the person at once.
	e := newMCPEnv(t, nil)
	resources := []*oauthtest.Resource{oauthtest.NewResource(t, e.as), oauthtest.NewResource(t, e.as)}
	browser := &gatheredOpen{open: e.b.open, wait: 250 * time.Millisecond}
	cfg := &ClientConfig{Open: browser.Open}
	tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, cfg), nil })
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	status, err := callMCP(WithKey(context.Background(), e.res.ResourceURL), tr, e.res.ResourceURL)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, status)

	browser.gather(len(resources)) // both logins are under way before the person answers either
	errs := make(chan error, len(resources))
	for _, res := range resources {
		go func() {
			_, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
			errs <- err
		}()
	}
	for range resources {
		assert.NoError(t, <-errs)
	}
	assert.Equal(t, 1, e.as.Registrations())
	assert.Equal(t, int64(3), e.b.opens.Load())
}

// gatheredOpen is an Open that, once told to gather n calls, holds each
// until the n have been made, or until wait has passed since one was
// held (then every call goes on), and opens the browser.
type gatheredOpen struct {
	open    func(ctx context.Context, authURL string) error
	wait    time.Duration
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{} // nil: calls are not held
	release func()        // closes all, once
	late    atomic.Bool   // the wait passed before the n calls were made
}

func (g *gatheredOpen) gather(n int) {
	g.mu.Lock()
	all := make(chan struct{})
	g.n, g.arrived, g.all, g.release = n, 0, all, sync.OnceFunc(func() { close(all) })
	g.mu.Unlock()
}

func (g *gatheredOpen) Open(ctx context.Context, authURL string) error {
	g.mu.Lock()
	all, release := g.all, g.release
	if all != nil {
		if g.arrived++; g.arrived == g.n {
			release()
		}
	}
	g.mu.Unlock()
	if all != nil {
		timer := time.NewTimer(g.wait)
		defer timer.Stop()
		select {
		case <-all:
		case <-timer.C:
			g.late.Store(true)
			release()
		case <-ctx.Done():
		}
	}
	return g.open(ctx, authURL)
}

func TestProtectedResourcesLoginsOnDifferentRedirectsTogether(t *testing.T) {
	t.Parallel()
	// Logins on different redirect URIs never wait for each other: 33
	// resources, each with a client registered beforehand and a redirect
	// port of its own, need the person at once, and all 33 logins reach
	// the browser before the person answers any.
	const n = 33
	e := newMCPEnv(t, nil)
	var resources []*oauthtest.Resource
	for range n {
		resources = append(resources, oauthtest.NewResource(t, e.as))
	}
	redirects := map[string]string{}
	var held []net.Listener // n distinct ports, free again just before the logins
	for _, res := range resources {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		held = append(held, l)
		redirects[res.ResourceURL] = "http://" + l.Addr().String() + "/callback"
	}
	for _, l := range held {
		require.NoError(t, l.Close())
	}
	browser := &gatheredOpen{open: e.b.open, wait: time.Second}
	browser.gather(n)
	tr, err := NewKeyed(func(key string) (Source, error) {
		return ProtectedResource(key, &ClientConfig{Registered: map[string]RegisteredClient{"": {ClientID: oauthtest.PublicClientID}},
			RedirectURL: redirects[key], Open: browser.Open}), nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	errs := make(chan error, n)
	for resource := range redirects {
		go func() {
			_, err := callMCP(WithKey(context.Background(), resource), tr, resource)
			errs <- err
		}()
	}
	for range n {
		assert.NoError(t, <-errs)
	}
	assert.False(t, browser.late.Load(), "a login waited for another one on another redirect URI")
	assert.Equal(t, int64(n), e.b.opens.Load())
}

func TestProtectedResourcesRegistrationsAtDifferentServersTogether(t *testing.T) {
	t.Parallel()
	// Registrations at different servers never wait for each other: 33
	// resources, each of its own server, first used at once, all register
	// together.
	const n = 33
	var resources []*oauthtest.Resource
	for range n {
		resources = append(resources, oauthtest.NewResource(t, oauthtest.NewServer(t)))
	}
	gate := &gathering{base: http.DefaultTransport, path: "/register", n: n, wait: time.Second, all: make(chan struct{})}
	tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, &ClientConfig{}), nil },
		WithTokenClient(&http.Client{Transport: gate}))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	errs := make(chan error, n)
	for _, res := range resources {
		go func() {
			_, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
			errs <- err
		}()
	}
	for range n {
		assert.NoError(t, <-errs)
	}
	assert.False(t, gate.late.Load(), "a registration waited for another one at another server")
}

func TestProtectedResourceStepUpForConcurrentCallers(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	errs := make(chan error, 6)
	for range cap(errs) {
		go func() {
			status, err := callMCP(context.Background(), tr, e.res.ResourceURL)
			if err == nil && status != http.StatusOK {
				err = errors.New(http.StatusText(status))
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		assert.NoError(t, <-errs)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "one step-up login for them all")
}
