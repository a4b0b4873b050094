package oauthtest

// Dynamic client registration (RFC 7591): the registration endpoint, the
// clients it registers (which then work at the authorization and token
// endpoints like the built-in ones), their lifetime, and the knobs that
// make registration fail or forget.

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// RegistrationLifetime makes the secret of each client registered from
// then on expire d after its registration: the registration response's
// client_secret_expires_at says when (in whole seconds, rounded down),
// and from then on the token endpoint answers 401 invalid_client to that
// client. It applies only to clients with a secret (client_secret_basic,
// client_secret_post). By default, and when d is not positive, secrets
// never expire (client_secret_expires_at 0).
func RegistrationLifetime(d time.Duration) Option {
	return func(s *Server) { s.reg.lifetime = d }
}

// ClientMetadata is the client metadata of a registration request (RFC
// 7591 §2), as the client sent it.
type ClientMetadata struct {
	RedirectURIs            []string `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string `json:"grant_types,omitempty"`
	ResponseTypes           []string `json:"response_types,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	// ApplicationType is OpenID Connect Dynamic Client Registration's
	// application_type: "native" for an app on the person's device.
	ApplicationType string `json:"application_type,omitempty"`
	// Raw holds every member sent, these included.
	Raw map[string]any `json:"-"`
}

// Registration is a registration request the registration endpoint
// received, and what it issued.
type Registration struct {
	ClientMetadata
	// ClientID is the client registered; empty when the request was
	// refused.
	ClientID string
	// ClientSecret is its secret; empty for a public client (none). Tests
	// check with it that a secret appears nowhere it should not.
	ClientSecret string
}

// FailRegistrations makes the next registration requests fail, one
// Failure each: Status with the RFC 7591 §3.2.2 error Code (say
// invalid_client_metadata), or a body that is not JSON when Code is
// empty. Nothing is registered for them.
func (s *Server) FailRegistrations(fs ...Failure) {
	s.mu.Lock()
	s.reg.failures = append(s.reg.failures, fs...)
	s.mu.Unlock()
}

// Registrations returns how many requests the registration endpoint
// (RegisterURL) received, failed and refused ones included.
func (s *Server) Registrations() int { return int(s.reg.calls.Load()) }

// RegistrationRequests returns every registration request whose body
// was a JSON object, oldest first, refused ones included (scripted
// failures are not: their body is not read).
func (s *Server) RegistrationRequests() []Registration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reg.requests)
}

// ForgetRegistrations forgets every client registered so far, as a
// server that lost its registrations would: the authorization endpoint
// answers them "unknown client_id", and the token, revocation and device
// authorization endpoints 401 invalid_client. Clients registered later
// are not affected.
func (s *Server) ForgetRegistrations() {
	s.mu.Lock()
	clear(s.reg.clients)
	s.mu.Unlock()
}

// registrationState is the registration endpoint's: guarded by
// Server.mu, but for the counter.
type registrationState struct {
	lifetime time.Duration
	failures []Failure
	clients  map[string]*dynamicClient // by client_id
	requests []Registration
	calls    atomic.Int64
}

// dynamicClient is a client the registration endpoint registered.
type dynamicClient struct {
	secret    string    // empty for a public client (method none)
	method    string    // its token_endpoint_auth_method
	redirects []string  // its redirect_uris
	grants    []string  // its grant_types
	expiry    time.Time // of its secret; zero: never
}

// maxRegistration bounds a registration request's body.
const maxRegistration = 64 << 10

// serveRegister registers a client (RFC 7591 §3): 201 with its client_id,
// and a secret unless its token_endpoint_auth_method is none.
func (s *Server) serveRegister(w http.ResponseWriter, r *http.Request) {
	s.reg.calls.Add(1)
	if s.failRegistration(w) {
		return
	}
	md, err := readClientMetadata(r)
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_client_metadata", "the body is not a JSON object of client metadata")
		return
	}
	sent := *md // before the defaults are filled in
	code, desc := checkClientMetadata(md)
	if code != "" {
		s.mu.Lock()
		s.reg.requests = append(s.reg.requests, Registration{ClientMetadata: sent})
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, code, desc)
		return
	}
	resp := s.registerClient(md, sent)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(resp)
}

// failRegistration answers the next scripted failure, if any.
func (s *Server) failRegistration(w http.ResponseWriter) bool {
	s.mu.Lock()
	var fail *Failure
	if len(s.reg.failures) > 0 {
		fail = &s.reg.failures[0]
		s.reg.failures = s.reg.failures[1:]
	}
	s.mu.Unlock()
	switch {
	case fail == nil:
		return false
	case fail.Code == "":
		http.Error(w, "upstream trouble", fail.Status)
	default:
		oauthError(w, fail.Status, fail.Code, "scripted failure")
	}
	return true
}

func readClientMetadata(r *http.Request) (*ClientMetadata, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxRegistration))
	if err != nil {
		return nil, err
	}
	var md ClientMetadata
	if err := json.Unmarshal(data, &md.Raw); err != nil || md.Raw == nil {
		return nil, io.ErrUnexpectedEOF
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, err
	}
	return &md, nil
}

// checkClientMetadata returns the RFC 7591 §3.2.2 error code and
// description for metadata this server refuses: an authentication method
// other than none, client_secret_basic and client_secret_post; a grant
// type it does not serve, or client_credentials for a public client; and,
// for the authorization code grant, no redirect URI, or one that is not
// https, loopback http (RFC 8252 §7.3) or a private-use scheme (§7.1).
// It fills in the RFC 7591 defaults.
func checkClientMetadata(md *ClientMetadata) (code, desc string) {
	if md.TokenEndpointAuthMethod == "" {
		md.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{"authorization_code"}
	}
	switch md.TokenEndpointAuthMethod {
	case "none", "client_secret_basic", "client_secret_post":
	default:
		return "invalid_client_metadata", "token_endpoint_auth_method must be none, client_secret_basic or client_secret_post"
	}
	for _, g := range md.GrantTypes {
		if !slices.Contains(registrableGrants, g) {
			return "invalid_client_metadata", "unsupported grant type in grant_types"
		}
		if g == "client_credentials" && md.TokenEndpointAuthMethod == "none" {
			return "invalid_client_metadata", "a public client (none) may not use client_credentials"
		}
	}
	if !slices.Contains(md.GrantTypes, "authorization_code") {
		return "", ""
	}
	if len(md.RedirectURIs) == 0 {
		return "invalid_redirect_uri", "redirect_uris is required for the authorization code grant"
	}
	for _, uri := range md.RedirectURIs {
		if !acceptableRedirect(uri) {
			return "invalid_redirect_uri", "a redirect URI is neither https, nor loopback http, nor a private-use scheme"
		}
	}
	return "", ""
}

var registrableGrants = []string{"authorization_code", "refresh_token", "client_credentials", deviceGrantType}

// acceptableRedirect reports whether a client may register uri: https,
// loopback http, or a private-use (reverse domain) scheme, with no
// fragment.
func acceptableRedirect(uri string) bool {
	u, err := url.Parse(uri)
	switch {
	case err != nil || u.Fragment != "" || strings.Contains(uri, "#"):
		return false
	case u.Scheme == "https":
		return u.Host != ""
	case u.Scheme == "http":
		return loopbackRedirect(uri)
	}
	return strings.Contains(u.Scheme, ".")
}

// registerClient keeps a new client of metadata md (the defaults filled
// in) and records the request (sent); it returns the registration
// response: the metadata sent, with its client_id and, unless it is
// public, its secret and when the secret expires.
func (s *Server) registerClient(md *ClientMetadata, sent ClientMetadata) map[string]any {
	now := time.Now()
	id := "dyn-" + randomHex()
	c := &dynamicClient{method: md.TokenEndpointAuthMethod, redirects: md.RedirectURIs, grants: md.GrantTypes}
	resp := make(map[string]any, len(md.Raw)+6)
	for k, v := range md.Raw {
		resp[k] = v
	}
	resp["client_id"], resp["client_id_issued_at"] = id, now.Unix()
	resp["token_endpoint_auth_method"], resp["grant_types"] = c.method, c.grants
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.method != "none" {
		c.secret = "dyn-secret-" + randomHex()
		resp["client_secret"], resp["client_secret_expires_at"] = c.secret, int64(0)
		if d := s.reg.lifetime; d > 0 {
			c.expiry = now.Add(d)
			resp["client_secret_expires_at"] = c.expiry.Unix()
		}
	}
	s.reg.clients[id] = c
	s.reg.requests = append(s.reg.requests, Registration{ClientMetadata: sent, ClientID: id, ClientSecret: c.secret})
	return resp
}

// registered reports whether id is a client registered dynamically and
// not forgotten.
func (s *Server) registered(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reg.clients[id] != nil
}

// authenticateRegistered checks a registered client at the token
// endpoint: with the method it registered, its secret unexpired, or its
// bare client_id when it is public.
func (s *Server) authenticateRegistered(w http.ResponseWriter, r *http.Request, id, secret, method string) (string, string, bool) {
	s.mu.Lock()
	c := s.reg.clients[id]
	s.mu.Unlock()
	problem := ""
	switch {
	case c == nil:
		problem = "unknown client"
	case c.method == "none" && (secret != "" || r.PostFormValue("client_secret") != ""):
		problem = "a public client has no secret"
	case c.method == "none":
		return id, "none", true
	case method != c.method:
		problem = "method " + method + " is not the client's registered token_endpoint_auth_method"
	case subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1:
		problem = "wrong secret (" + method + ")"
	case !c.expiry.IsZero() && !time.Now().Before(c.expiry):
		problem = "the client secret expired (client_secret_expires_at)"
	}
	if problem != "" {
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", problem)
		return "", "", false
	}
	return id, method, true
}

// mayUseGrant reports whether client may use grantType: a registered
// client only the grant types it registered (refresh_token with the
// grants that issue refresh tokens); the built-in clients any.
func (s *Server) mayUseGrant(client, grantType string) bool {
	s.mu.Lock()
	c := s.reg.clients[client]
	s.mu.Unlock()
	if c == nil {
		return true
	}
	if grantType == "refresh_token" && (slices.Contains(c.grants, "authorization_code") || slices.Contains(c.grants, deviceGrantType)) {
		return true
	}
	return slices.Contains(c.grants, grantType)
}

// checkRegisteredRedirect returns what is wrong with the redirect URI of
// a registered client's authorization request, empty when nothing is: it
// must be one it registered, or differ from a registered loopback one
// only by its port (RFC 8252 §7.3).
func (s *Server) checkRegisteredRedirect(id, to string) string {
	s.mu.Lock()
	c := s.reg.clients[id]
	s.mu.Unlock()
	switch {
	case c == nil:
		return "unknown client_id"
	case to == "":
		return "redirect_uri is missing"
	case slices.Contains(c.redirects, to):
		return ""
	case loopbackRedirect(to) && slices.ContainsFunc(c.redirects, func(r string) bool { return samePortless(r, to) }):
		return ""
	}
	return "redirect_uri is not one the client registered"
}

// samePortless reports whether two loopback redirect URIs differ at most
// by their port.
func samePortless(registered, to string) bool {
	a, errA := url.Parse(registered)
	b, errB := url.Parse(to)
	return errA == nil && errB == nil && loopbackRedirect(registered) &&
		a.Hostname() == b.Hostname() && a.EscapedPath() == b.EscapedPath() && a.RawQuery == b.RawQuery
}
