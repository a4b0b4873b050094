package oauthtest

// A protected resource that names its authorization server (RFC 9728, as
// MCP servers do), on a listener of its own, and what the server offers
// it: what an access token was issued for, scopes it withholds, and
// metadata to bend for hostile tests.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MetadataMembers sets members of the server's metadata (RFC 8414, OpenID
// Connect Discovery), replacing those it publishes; a nil value removes
// a member. Use it to list scopes_supported (say with offline_access), or
// to publish a hostile document: another issuer, a file: authorization
// endpoint.
func MetadataMembers(members map[string]any) Option {
	return func(s *Server) {
		if s.members == nil {
			s.members = make(map[string]any, len(members))
		}
		for k, v := range members {
			s.members[k] = v
		}
	}
}

// NoMetadata makes the server publish no metadata: both well-known URLs
// answer 404, as the authorization servers of MCP's 2025-03-26 revision
// may (their clients then use /authorize, /token and /register at the
// server's origin, which this server serves).
func NoMetadata() Option { return func(s *Server) { s.noMetadata = true } }

// WithheldScopes makes the server leave these scopes out of every access
// token it issues, whatever was asked (RFC 6749 §3.3: a person or a
// policy that declines them); the token response's scope says what was
// granted.
func WithheldScopes(scopes ...string) Option {
	return func(s *Server) { s.withheld = append(s.withheld, scopes...) }
}

// grantedLocked is scope without the withheld scopes.
func (s *Server) grantedLocked(scope string) string {
	if len(s.withheld) == 0 {
		return scope
	}
	return strings.Join(slices.DeleteFunc(strings.Fields(scope), func(sc string) bool {
		return slices.Contains(s.withheld, sc)
	}), " ")
}

// Introspection is what the server knows of an access token, as token
// introspection (RFC 7662) would tell a resource.
type Introspection struct {
	// Active reports whether the token would be accepted now (see
	// [Server.Live]); the other fields are zero when it is unknown.
	Active   bool
	Scope    string // the scopes granted, space-separated
	ClientID string // the client it was issued to; empty for some grants
	// Resources are the resource indicators (RFC 8707) it was issued for:
	// those of the token request, else of the authorization request. A
	// token issued without any is for every resource.
	Resources []string
	Expiry    time.Time // zero: it does not expire
}

// Introspect returns what the server knows of accessToken.
func (s *Server) Introspect(accessToken string) Introspection {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.access[accessToken]
	if !ok {
		return Introspection{}
	}
	return Introspection{Active: s.liveLocked(g), Scope: g.scope, ClientID: g.client,
		Resources: slices.Clone(g.resources), Expiry: g.expiry}
}

// Resource is a protected resource, in the manner of an MCP server, on a
// loopback listener of its own, so its origin differs from its
// authorization server's. It publishes its metadata (RFC 9728) at
// MetadataURL, naming its server's URL as its only authorization server,
// and serves ResourceURL (any method): a request with a live Bearer token
// of that server (see [Server.Introspect]), issued for ResourceURL or for
// no resource in particular, with every scope it requires, gets 200 and
// a JSON [ResourceResponse]. Otherwise:
//
//   - no token, or one that is not live or is for another resource: 401
//     with WWW-Authenticate: Bearer resource_metadata="<MetadataURL>"
//     (without it under [NoResourceMetadata]), scope="<ChallengeScopes>"
//     when set, and error="invalid_token" when a token was sent;
//   - a token lacking a scope it requires: 403 with WWW-Authenticate:
//     Bearer error="insufficient_scope", scope="<every scope it
//     requires>", resource_metadata="<MetadataURL>" (RFC 6750 §3.1).
//
// Every other path answers 404. Its methods are safe for concurrent use.
type Resource struct {
	*httptest.Server
	// ResourceURL is the protected endpoint, URL + "/mcp", and the
	// resource identifier its metadata states.
	ResourceURL string
	// MetadataURL is where its metadata is served: URL +
	// "/.well-known/oauth-protected-resource/mcp".
	MetadataURL string

	as            *Server
	metadataCalls atomic.Int64

	mu        sync.Mutex
	supported []string // scopes_supported
	required  []string
	challenge []string // the 401 challenge's scope
	noMeta    bool
	rawMeta   []byte
	metaFunc  http.HandlerFunc
	requests  []ResourceRequest
}

// ResourceOption configures a Resource.
type ResourceOption func(*Resource)

// ResourceScopes lists scopes in the resource's metadata
// (scopes_supported); none by default.
func ResourceScopes(scopes ...string) ResourceOption {
	return func(r *Resource) { r.supported = append(r.supported, scopes...) }
}

// RequireScopes makes the resource require these scopes of every token
// (see [Resource.SetRequiredScopes]); none by default.
func RequireScopes(scopes ...string) ResourceOption {
	return func(r *Resource) { r.required = append(r.required, scopes...) }
}

// ChallengeScopes puts scope="<scopes>" in the resource's 401 challenges
// (MCP clients ask for the challenge's scopes first); none by default.
func ChallengeScopes(scopes ...string) ResourceOption {
	return func(r *Resource) { r.challenge = append(r.challenge, scopes...) }
}

// NoResourceMetadata makes the resource publish no metadata, as MCP
// servers of the 2025-03-26 revision did: MetadataURL answers 404 and
// its challenges have no resource_metadata. A client then takes the
// resource's origin for its authorization server.
func NoResourceMetadata() ResourceOption { return func(r *Resource) { r.noMeta = true } }

// MetadataDocument makes the resource serve doc at MetadataURL, as is,
// in place of its metadata (application/json), for hostile tests: too
// large, not JSON, naming another resource or server.
func MetadataDocument(doc []byte) ResourceOption { return func(r *Resource) { r.rawMeta = doc } }

// MetadataHandler makes the resource answer requests for MetadataURL with
// h, in place of its metadata: a redirect, a document that changes, a
// hang until the client gives up. It takes precedence over
// MetadataDocument and NoResourceMetadata; with the latter, the
// challenges still name no metadata, so a client finds h's document only
// at the well-known URL.
func MetadataHandler(h http.HandlerFunc) ResourceOption {
	return func(r *Resource) { r.metaFunc = h }
}

// ResourceRequest is a request the resource received at ResourceURL.
type ResourceRequest struct {
	Method string
	Token  string // the Bearer token it carried; empty when none
	Status int    // the resource's answer: 200, 401 or 403
}

// ResourceResponse is what the resource answers to an accepted request.
type ResourceResponse struct {
	Method   string `json:"method"`
	Resource string `json:"resource"` // ResourceURL
	Scope    string `json:"scope"`    // the token's scopes
	ClientID string `json:"client_id"`
}

// NewResource starts a protected resource whose authorization server is
// as, closed when t ends.
func NewResource(t testing.TB, as *Server, opts ...ResourceOption) *Resource {
	t.Helper()
	r := StartResource(as, opts...)
	t.Cleanup(r.Close)
	return r
}

// StartResource starts a protected resource whose authorization server is
// as, on loopback, as [New] starts a server: Close it when done.
func StartResource(as *Server, opts ...ResourceOption) *Resource {
	r := &Resource{as: as}
	for _, o := range opts {
		o(r)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", r.serveResource)
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", r.serveMetadata)
	r.Server = httptest.NewServer(mux)
	r.ResourceURL = r.URL + "/mcp"
	r.MetadataURL = r.URL + "/.well-known/oauth-protected-resource/mcp"
	return r
}

// SetRequiredScopes changes the scopes the resource requires of the
// tokens of requests from now on: a step-up.
func (r *Resource) SetRequiredScopes(scopes ...string) {
	r.mu.Lock()
	r.required = slices.Clone(scopes)
	r.mu.Unlock()
}

// Requests returns the requests ResourceURL received, oldest first.
func (r *Resource) Requests() []ResourceRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// MetadataCalls returns how many requests MetadataURL received.
func (r *Resource) MetadataCalls() int64 { return r.metadataCalls.Load() }

func (r *Resource) serveMetadata(w http.ResponseWriter, req *http.Request) {
	r.metadataCalls.Add(1)
	r.mu.Lock()
	h, raw, none := r.metaFunc, r.rawMeta, r.noMeta
	md := map[string]any{"resource": r.ResourceURL, "authorization_servers": []string{r.as.URL},
		"bearer_methods_supported": []string{"header"}}
	if len(r.supported) > 0 {
		md["scopes_supported"] = slices.Clone(r.supported)
	}
	r.mu.Unlock()
	switch {
	case h != nil:
		h(w, req)
	case none:
		http.NotFound(w, req)
	case raw != nil:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(raw)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(md)
	}
}

func (r *Resource) serveResource(w http.ResponseWriter, req *http.Request) {
	scheme, tok, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		tok = ""
	}
	info := r.as.Introspect(tok)
	r.mu.Lock()
	required, challenge, noMeta := slices.Clone(r.required), r.challenge, r.noMeta
	r.mu.Unlock()
	status := http.StatusOK
	switch {
	case tok == "" || !info.Active || (len(info.Resources) > 0 && !slices.Contains(info.Resources, r.ResourceURL)):
		status = http.StatusUnauthorized
		w.Header().Set("WWW-Authenticate", r.challenge401(tok != "", challenge, noMeta))
	case !subset(required, strings.Fields(info.Scope)):
		status = http.StatusForbidden
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+strings.Join(required, " ")+
			`", resource_metadata="`+r.MetadataURL+`"`)
	}
	r.mu.Lock()
	r.requests = append(r.requests, ResourceRequest{Method: req.Method, Token: tok, Status: status})
	r.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		_ = json.NewEncoder(w).Encode(ResourceResponse{Method: req.Method, Resource: r.ResourceURL, Scope: info.Scope, ClientID: info.ClientID})
		return
	}
	_, _ = w.Write([]byte(`{"error":"` + map[int]string{401: "invalid_token", 403: "insufficient_scope"}[status] + `"}`))
}

// challenge401 is the WWW-Authenticate of a 401.
func (r *Resource) challenge401(sent bool, scopes []string, noMeta bool) string {
	var params []string
	if sent {
		params = append(params, `error="invalid_token"`)
	}
	if len(scopes) > 0 {
		params = append(params, `scope="`+strings.Join(scopes, " ")+`"`)
	}
	if !noMeta {
		params = append(params, `resource_metadata="`+r.MetadataURL+`"`)
	}
	if len(params) == 0 {
		return "Bearer"
	}
	return "Bearer " + strings.Join(params, ", ")
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}
