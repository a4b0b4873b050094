package oauthtransport

// ProtectedResource over real HTTP, against oauthtest's authorization
// server and a resource on another origin: the chain it runs (resource
// metadata, server metadata, dynamic registration, PKCE, RFC 8707
// resources, scopes), the grants (a person's, client credentials,
// private_key_jwt), the tokens' tags, and the 2025-03-26 fallbacks; what
// the other protected_*_test.go files share. The client's identity is
// in protected_registration_test.go, step-ups in
// protected_stepup_test.go, requests at once in
// protected_concurrency_test.go, hostile documents in
// protected_hostile_test.go.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
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

// keyedProtected is a keyed Transport (NewKeyed) whose Source for a key
// is a ProtectedResource for that resource URL, with the config cfg gives
// for it; closed when t ends.
func keyedProtected(t *testing.T, cfg func(key string) *ClientConfig, opts ...Option) *Transport {
	t.Helper()
	tr, err := NewKeyed(func(key string) (Source, error) { return ProtectedResource(key, cfg(key)), nil }, opts...)
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

// callOK calls the resource like callMCP; a status other than 200 is an
// error too.
func callOK(ctx context.Context, tr *Transport, u string) error {
	status, err := callMCP(ctx, tr, u)
	if err == nil && status != http.StatusOK {
		err = errors.New(http.StatusText(status))
	}
	return err
}

// callKeyed calls the resource u through tr, a keyed Transport, with u as
// the key; a status other than 200 is an error too.
func callKeyed(tr *Transport, u string) error {
	return callOK(WithKey(context.Background(), u), tr, u)
}

// together runs call(0) to call(n-1) at once and, when all have returned,
// returns their errors, in that order.
func together(n int, call func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = call(i) })
	}
	wg.Wait()
	return errs
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
