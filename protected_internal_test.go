package oauthtransport

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

func TestResourceMatches(t *testing.T) {
	called, _ := url.Parse("https://mcp.example.com/tenant/mcp")
	for resource, want := range map[string]bool{
		"https://mcp.example.com/tenant/mcp":   true,
		"https://mcp.example.com/tenant/mcp/":  true,
		"https://mcp.example.com/tenant":       true, // a whole-segment prefix
		"https://mcp.example.com":              true,
		"https://MCP.example.com:443/tenant":   true,
		"https://mcp.example.com/ten":          false, // not at a segment boundary
		"https://mcp.example.com/tenant/mcp/x": false,
		"https://evil.example.com/tenant/mcp":  false,
		"http://mcp.example.com/tenant/mcp":    false,
		"https://mcp.example.com:8443/tenant":  false,
		"https://mcp.example.com/tenant?x=1":   false,
		"https://u@mcp.example.com/tenant/mcp": false,
		"/tenant/mcp":                          false,
	} {
		assert.Equal(t, want, resourceMatches(resource, called), resource)
	}
}

func TestWellKnownOrder(t *testing.T) {
	u, _ := url.Parse("https://mcp.example.com/a/mcp/")
	assert.Equal(t, []string{"https://mcp.example.com/.well-known/oauth-protected-resource/a/mcp",
		"https://mcp.example.com/.well-known/oauth-protected-resource"}, wellKnown(u, "/.well-known/oauth-protected-resource"))
	u, _ = url.Parse("https://mcp.example.com")
	assert.Equal(t, []string{"https://mcp.example.com/.well-known/oauth-protected-resource"}, wellKnown(u, "/.well-known/oauth-protected-resource"))
}

// metadataServer serves md at exactly one path and records every path asked.
type metadataServer struct {
	*httptest.Server
	mu    sync.Mutex
	asked []string
}

func newMetadataServer(t *testing.T, at string, md func(base string) map[string]any) *metadataServer {
	s := &metadataServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.asked = append(s.asked, r.URL.Path)
		s.mu.Unlock()
		if r.URL.Path != at {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(md(s.URL))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *metadataServer) paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.asked...)
}

// The MCP order for an issuer with a path: RFC 8414 path-inserted, OpenID
// path-inserted, OpenID path-appended; never the root.
func TestDiscoverServerOrder(t *testing.T) {
	s := newMetadataServer(t, "/tenant1/.well-known/openid-configuration", func(base string) map[string]any {
		return map[string]any{"issuer": base + "/tenant1", "token_endpoint": base + "/tenant1/token", "authorization_endpoint": base + "/tenant1/authorize"}
	})
	md, err := discoverServer(context.Background(), s.URL+"/tenant1", false)
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/tenant1/token", md.TokenEndpoint)
	assert.Equal(t, []string{"/.well-known/oauth-authorization-server/tenant1", "/.well-known/openid-configuration/tenant1",
		"/tenant1/.well-known/openid-configuration"}, s.paths())
}

func TestDiscoverServerRefusals(t *testing.T) {
	for name, md := range map[string]func(base string) map[string]any{
		"an issuer with a trailing slash": func(base string) map[string]any {
			return map[string]any{"issuer": base + "/", "token_endpoint": base + "/token"}
		},
		"a file: authorization endpoint": func(base string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": base + "/token", "authorization_endpoint": "file:///etc/passwd"}
		},
		"a javascript: registration endpoint": func(base string) map[string]any {
			return map[string]any{"issuer": base, "token_endpoint": base + "/token", "registration_endpoint": "javascript:alert(1)"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := newMetadataServer(t, "/.well-known/oauth-authorization-server", md)
			_, err := discoverServer(context.Background(), s.URL, false)
			var me *MetadataError
			require.True(t, errors.As(err, &me), "a *MetadataError: %v", err)
			assert.Equal(t, docServer, me.Document)
			assert.NotContains(t, err.Error(), "/etc/passwd")
		})
	}
}

// A 2025-03-26 server: its root metadata may name an issuer with a path
// of its origin, never of another.
func TestDiscoverServerLegacy(t *testing.T) {
	s := newMetadataServer(t, "/.well-known/oauth-authorization-server", func(base string) map[string]any {
		return map[string]any{"issuer": base + "/oauth", "token_endpoint": base + "/oauth/token"}
	})
	md, err := discoverServer(context.Background(), s.URL, true)
	require.NoError(t, err)
	assert.Equal(t, s.URL+"/oauth", md.Issuer)
	_, err = discoverServer(context.Background(), s.URL, false)
	assert.Error(t, err, "not for a server a resource's metadata named")

	other := newMetadataServer(t, "/.well-known/oauth-authorization-server", func(string) map[string]any {
		return map[string]any{"issuer": s.URL + "/oauth", "token_endpoint": s.URL + "/oauth/token"}
	})
	_, err = discoverServer(context.Background(), other.URL, true)
	assert.Error(t, err, "an issuer of another origin")

	none := newMetadataServer(t, "/nothing", nil)
	md, err = discoverServer(context.Background(), none.URL, true)
	require.NoError(t, err)
	assert.Equal(t, none.URL+"/token", md.TokenEndpoint)
	assert.Equal(t, none.URL+"/authorize", md.AuthorizationEndpoint)
	assert.Equal(t, none.URL+"/register", stringMember(md.Raw, "registration_endpoint"))
	assert.True(t, supportsS256(md))
}

func TestRegistrationMethod(t *testing.T) {
	assert.Equal(t, "none", registrationMethod(nil, true))
	assert.Equal(t, "client_secret_basic", registrationMethod(nil, false))
	assert.Equal(t, "none", registrationMethod([]string{"client_secret_post", "none"}, true))
	assert.Equal(t, "client_secret_post", registrationMethod([]string{"client_secret_post", "none"}, false))
	assert.Equal(t, "private_key_jwt", registrationMethod([]string{"private_key_jwt"}, false))
}

// A 403 insufficient_scope is followed while it adds scopes, at most
// maxScopes of them; a 401 always.
func TestFollowChallengeBounded(t *testing.T) {
	p := newProtectedResource("https://mcp.example/mcp", &ClientConfig{}, nil).(*protectedResource)
	forbid := func(scope string, tok ...string) *ResourceChallenge {
		c := &ResourceChallenge{StatusCode: 403, Challenges: []Challenge{{Scheme: "Bearer", Error: "insufficient_scope", Scope: scope}}}
		if len(tok) > 0 {
			c.Token = &oauth2.Token{AccessToken: tok[0]}
		}
		return c
	}
	looks := 0
	empty := func() bool { looks++; return false }
	assert.True(t, p.challengeFirst(empty))
	assert.True(t, p.challengeFirst(empty))
	assert.Equal(t, 1, looks, "the store is looked at once")
	assert.True(t, p.FollowChallenge(&ResourceChallenge{StatusCode: 401, Challenges: []Challenge{{Scheme: "Bearer", Scope: "a",
		Params: map[string]string{"resource_metadata": "https://mcp.example/.well-known/oauth-protected-resource/mcp"}}}}))
	assert.False(t, p.challengeFirst(empty), "a challenge came")
	assert.Equal(t, "https://mcp.example/.well-known/oauth-protected-resource/mcp", p.named)
	assert.True(t, p.FollowChallenge(forbid("a b", "old")))
	assert.Equal(t, []string{"a", "b"}, p.asked)
	assert.True(t, p.FollowChallenge(forbid("b a", "old")), "the step-up is under way: its token will do")
	_, err := p.obtained(&session{md: &ServerMetadata{Issuer: "https://as.example"}, scopes: []string{"a", "b"}}, &oauth2.Token{AccessToken: "new"}, nil, true)
	require.NoError(t, err)
	assert.True(t, p.FollowChallenge(forbid("b a", "old")), "a token from before the step-up: the newer one will do")
	assert.False(t, p.FollowChallenge(forbid("b a", "new")), "the newest token refused for the same scopes: final")
	assert.False(t, p.FollowChallenge(forbid("b")), "nothing new")
	assert.False(t, p.FollowChallenge(&ResourceChallenge{StatusCode: 403, Challenges: []Challenge{{Scheme: "Bearer"}}}), "not insufficient_scope")
	assert.False(t, p.FollowChallenge(&ResourceChallenge{StatusCode: 401, Challenges: []Challenge{{Scheme: "Bearer", Error: "insufficient_user_authentication"}}}))
	many := make([]string, maxScopes)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	assert.False(t, p.FollowChallenge(forbid(strings.Join(many, " "))), "past maxScopes")
	assert.True(t, p.FollowChallenge(&ResourceChallenge{StatusCode: 401, Challenges: []Challenge{{Scheme: "Bearer", Error: "invalid_token"}}}))
	assert.False(t, p.stepUp)

	// A 401 whose scopes go beyond the grant's asks for a new grant: a
	// refresh would keep the old scopes.
	person := newProtectedResource("https://mcp.example/mcp", &ClientConfig{Open: OpenBrowser}, nil).(personResource)
	person.sess = &session{md: &ServerMetadata{Issuer: "https://as.example"}, scopes: []string{"a"}}
	held := person.sess.tag(&oauth2.Token{AccessToken: "t", RefreshToken: "r"})
	assert.False(t, person.wantsLogin(held))
	assert.True(t, person.FollowChallenge(&ResourceChallenge{StatusCode: 401, Challenges: []Challenge{{Scheme: "Bearer", Scope: "a"}}}))
	assert.False(t, person.wantsLogin(held), "no scope beyond the grant's")
	assert.True(t, person.FollowChallenge(&ResourceChallenge{StatusCode: 401, Challenges: []Challenge{{Scheme: "Bearer", Scope: "a c"}}}))
	assert.True(t, person.wantsLogin(held), "c is beyond the grant's scopes")
}

// firstRequestAPI is a resource (metadata naming as, a client-credentials
// server answering the token "cc") that records the Authorization of
// each API request, and needs a token unless open.
type firstRequestAPI struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
	open bool
}

func newFirstRequestAPI(t *testing.T) *firstRequestAPI {
	a := &firstRequestAPI{}
	as := newMetadataServer(t, "/.well-known/oauth-authorization-server", func(base string) map[string]any {
		return map[string]any{"issuer": base, "token_endpoint": base + "/token"}
	})
	as.Config.Handler = withToken(as.Config.Handler)
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-protected-resource/mcp" {
			_ = json.NewEncoder(w).Encode(map[string]any{"resource": a.URL + "/mcp", "authorization_servers": []string{as.URL}})
			return
		}
		a.mu.Lock()
		a.seen = append(a.seen, r.Header.Get("Authorization"))
		free := a.open
		a.mu.Unlock()
		if !free && r.Header.Get("Authorization") != "Bearer cc" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(401)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(a.Close)
	return a
}

// took returns the Authorization headers seen since the last call, and
// sets whether the API needs a token from now on.
func (a *firstRequestAPI) took(open bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	seen := a.seen
	a.seen, a.open = nil, open
	return seen
}

func (a *firstRequestAPI) transport(t *testing.T, opts ...Option) *Transport {
	tr, err := New(ProtectedResource(a.URL+"/mcp", &ClientConfig{Registered: map[string]RegisteredClient{"": {ClientID: "c", ClientSecret: "s"}}}), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func (a *firstRequestAPI) post(t *testing.T, tr *Transport) {
	resp, err := tr.Client().Post(a.URL+"/mcp", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	resp.Body.Close()
}

// The first request goes out without a token when its body can be sent
// again; one whose body cannot gets a token first. A resource that asks
// for no token gets none.
func TestChallengeFirstRequest(t *testing.T) {
	a := newFirstRequestAPI(t)
	unreadable := &http.Request{Method: http.MethodPost, URL: mustURL(t, a.URL+"/mcp"), Header: http.Header{},
		Body: nopCloser{strings.NewReader("{}")}, ContentLength: 2}
	resp, err := a.transport(t).RoundTrip(unreadable.WithContext(context.Background()))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{"Bearer cc"}, a.took(true), "a body that cannot be sent again: a token first")

	tr := a.transport(t)
	resp, err = tr.Client().Get(a.URL + "/mcp")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, []string{""}, a.took(false), "no token asked for, none sent")
	a.post(t, tr)
	assert.Equal(t, []string{"", "Bearer cc"}, a.took(false), "without a token, then once more with one")
}

// A process that finds a token in the store sends it at once.
func TestChallengeFirstRequestAfterARestart(t *testing.T) {
	a := newFirstRequestAPI(t)
	shared := store.NewMemory()
	a.post(t, a.transport(t, WithStore(shared, "mcp")))
	assert.Equal(t, []string{"", "Bearer cc"}, a.took(false))
	a.post(t, a.transport(t, WithStore(shared, "mcp")))
	assert.Equal(t, []string{"Bearer cc"}, a.took(false))
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

func mustURL(t *testing.T, raw string) *url.URL {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u
}

// withToken answers POST /token with the access token "cc".
func withToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" && r.Method == http.MethodPost {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"cc","token_type":"Bearer","expires_in":3600}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// A registration names the scopes the client will ask for (a server may
// allow only those); one that a server refuses for them (400) is sent
// again without them, once; other refusals are not retried.
func TestRegisterScopes(t *testing.T) {
	var mu sync.Mutex
	var bodies []map[string]any
	refuseScoped, refuseAll := true, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		bodies = append(bodies, body)
		_, scoped := body["scope"]
		refuse := refuseAll || refuseScoped && scoped
		mu.Unlock()
		if refuse {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_client_metadata"}`))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"client_id":"c1"}`))
	}))
	t.Cleanup(srv.Close)
	md := &ServerMetadata{Issuer: srv.URL, Raw: map[string]any{"registration_endpoint": srv.URL + "/register"}}

	id, err := register(context.Background(), md, "app", "", "client_credentials", []string{"mcp:read", "mcp:write"})
	require.NoError(t, err)
	assert.Equal(t, "c1", id.ClientID)
	require.Len(t, bodies, 2)
	assert.Equal(t, "mcp:read mcp:write", bodies[0]["scope"])
	assert.NotContains(t, bodies[1], "scope", "sent again without the scopes")

	mu.Lock()
	bodies, refuseScoped = nil, false
	mu.Unlock()
	_, err = register(context.Background(), md, "app", "", "client_credentials", []string{"mcp:read"})
	require.NoError(t, err)
	assert.Len(t, bodies, 1, "accepted with its scopes")

	mu.Lock()
	bodies, refuseAll = nil, true
	mu.Unlock()
	_, err = register(context.Background(), md, "app", "", "client_credentials", nil)
	var me *MetadataError
	require.True(t, errors.As(err, &me), "a *MetadataError: %v", err)
	assert.Len(t, bodies, 1, "a refusal without scopes is not retried")
}

// resourceMatches reads an untrusted resource value: it never panics, and
// a match is always of the URL's own origin.
func FuzzResourceMatches(f *testing.F) {
	f.Add("https://mcp.example.com/tenant", "https://mcp.example.com/tenant/mcp")
	f.Add("https://evil.example.com/mcp", "https://mcp.example.com/mcp")
	f.Add("http://[::1]:80/a/../b", "http://[::1]/b")
	f.Add("https://mcp.example.com/%2e%2e/", "https://mcp.example.com/x")
	f.Fuzz(func(t *testing.T, resource, called string) {
		c, err := url.Parse(called)
		if err != nil || c.Host == "" {
			return
		}
		if resourceMatches(resource, c) {
			r, err := url.Parse(resource)
			if err != nil || !sameOrigin(r, c) {
				t.Fatalf("a match of another origin")
			}
		}
	})
}
