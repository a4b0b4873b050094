// Package oauthtest runs an OAuth2 authorization server and a protected
// API in process, on loopback, for your own tests and examples, in the
// manner of net/http/httptest.
//
//	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Minute))
//	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(srv.ClientCredentials()))
//	resp, err := tr.Client().Get(srv.APIURL + "things")
//
// The token endpoint (TokenURL) serves the client-credentials grant and
// the refresh-token grant with rotation and reuse detection (RFC 6749
// §10.4, RFC 9700: presenting a refresh token that was already rotated
// revokes its whole family), optionally with a rotation grace period. The
// revocation endpoint (RevokeURL, RFC 7009) revokes an access token or a
// refresh token's family. The API (APIURL) accepts only live access
// tokens and echoes what it received as JSON (APIResponse).
//
// Knobs inject faults: scripted token endpoint failures (FailTokens), a
// slow token endpoint (TokenDelay), revocation (Revoke, RevokeAll), an API
// that rejects every token (AlwaysReject), clients that must send their
// secret in the body (ClientSecretPostOnly), DPoP-bound tokens only
// (RequireDPoP), workload assertions accepted more than once
// (ReusableAssertions). Counters tell what happened:
// TokenCalls, APICalls, APIRejected, Reuses. Every method is safe for
// concurrent use.
package oauthtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Client credentials the server accepts unless told otherwise.
const (
	ClientID     = "test-client"
	ClientSecret = "test-secret"
)

// Server is an authorization server and protected API. Its methods are safe
// for concurrent use.
type Server struct {
	*httptest.Server
	TokenURL  string // the token endpoint
	RevokeURL string // the RFC 7009 revocation endpoint
	APIURL    string // the protected API; any path below it

	tokenCalls, apiCalls, apiRejected, reuses atomic.Int64
	asNonceChallenges, rsNonceChallenges      atomic.Int64

	mu         sync.Mutex
	lifetime   time.Duration
	tokenDelay time.Duration
	failures   []Failure
	rejectAll  bool
	grace      time.Duration
	postOnly   bool
	access     map[string]grant   // live access tokens
	refresh    map[string]*family // refresh token -> its family
	used       map[string]rotated // rotated-away refresh tokens, for reuse detection

	dpop, requireNonce bool
	dpopRequired       bool // RequireDPoP
	reusableAssertions bool // ReusableAssertions
	asNonce, rsNonce   string
	clientKey          any                 // ClientKey
	jtis               map[string]struct{} // DPoP proofs and assertions seen
	requests           []TokenRequest
}

type rotated struct {
	fam *family
	at  time.Time
}

type grant struct {
	expiry time.Time
	fam    *family
	scope  string
	jkt    string // DPoP-bound to this key
}

type family struct{ revoked bool }

// Failure is a scripted token endpoint failure.
type Failure struct {
	Status int
	Code   string // RFC 6749 §5.2 error code; empty sends a non-JSON body
}

// Option configures a Server.
type Option func(*Server)

// Lifetime sets expires_in of issued access tokens (default 1h). Zero
// omits expires_in.
func Lifetime(d time.Duration) Option { return func(s *Server) { s.lifetime = d } }

// AlwaysReject makes the API answer 401 to every token.
func AlwaysReject() Option { return func(s *Server) { s.rejectAll = true } }

// RotationGrace makes the token endpoint accept a rotated refresh token
// again for d after it was rotated away, as Ory Hydra's
// rotation_grace_period does. Later reuse revokes the family.
func RotationGrace(d time.Duration) Option { return func(s *Server) { s.grace = d } }

// ClientSecretPostOnly makes the token endpoint accept client credentials
// only in the request body (client_secret_post).
func ClientSecretPostOnly() Option { return func(s *Server) { s.postOnly = true } }

// TokenDelay makes the token endpoint answer after d.
func TokenDelay(d time.Duration) Option { return func(s *Server) { s.tokenDelay = d } }

// New starts a server on loopback. Close it when done.
func New(opts ...Option) *Server {
	s := &Server{
		lifetime: time.Hour,
		access:   make(map[string]grant),
		refresh:  make(map[string]*family),
		used:     make(map[string]rotated),
		jtis:     make(map[string]struct{}),
		asNonce:  "as-" + randomHex(),
		rsNonce:  "rs-" + randomHex(),
	}
	for _, o := range opts {
		o(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.serveToken)
	mux.HandleFunc("POST /revoke", s.serveRevoke)
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.serveMetadata)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.serveMetadata)
	s.Server = httptest.NewServer(mux)
	s.TokenURL = s.URL + "/token"
	s.RevokeURL = s.URL + "/revoke"
	s.APIURL = s.URL + "/api/"
	return s
}

// NewServer starts a server that is closed when t ends.
func NewServer(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := New(opts...)
	t.Cleanup(s.Close)
	return s
}

// ClientCredentials returns a config for the client-credentials grant.
func (s *Server) ClientCredentials() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: ClientID, ClientSecret: ClientSecret, TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
}

// OAuth2Config returns a config for the refresh-token grant.
func (s *Server) OAuth2Config() *oauth2.Config {
	return &oauth2.Config{ClientID: ClientID, ClientSecret: ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: s.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
}

// IssueRefreshToken returns a new refresh token, as an authorization-code
// grant would have.
func (s *Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "rt-" + randomHex()
	s.refresh[rt] = &family{}
	return rt
}

// TokenCalls returns how many requests the token endpoint received.
func (s *Server) TokenCalls() int64 { return s.tokenCalls.Load() }

// APICalls returns how many requests the API received.
func (s *Server) APICalls() int64 { return s.apiCalls.Load() }

// Reuses returns how many times a rotated-away refresh token was
// presented outside the grace period (each revoked its family).
func (s *Server) Reuses() int64 { return s.reuses.Load() }

// APIRejected returns how many API requests were answered 401.
func (s *Server) APIRejected() int64 { return s.apiRejected.Load() }

// FailTokens makes the next token requests fail, one Failure each.
func (s *Server) FailTokens(fs ...Failure) {
	s.mu.Lock()
	s.failures = append(s.failures, fs...)
	s.mu.Unlock()
}

// SetLifetime changes expires_in of tokens issued from now on.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	s.lifetime = d
	s.mu.Unlock()
}

// Revoke makes the API reject an access token. It reports whether the
// token was live.
func (s *Server) Revoke(accessToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.access[accessToken]
	delete(s.access, accessToken)
	return ok
}

// RevokeAll makes the API reject every access token issued so far.
func (s *Server) RevokeAll() {
	s.mu.Lock()
	clear(s.access)
	s.mu.Unlock()
}

// Live reports whether an access token would be accepted now.
func (s *Server) Live(accessToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.access[accessToken]
	return ok && s.liveLocked(g)
}

func (s *Server) liveLocked(g grant) bool {
	return (g.expiry.IsZero() || time.Now().Before(g.expiry)) && (g.fam == nil || !g.fam.revoked)
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	s.mu.Lock()
	delay := s.tokenDelay
	var fail *Failure
	if len(s.failures) > 0 {
		fail = &s.failures[0]
		s.failures = s.failures[1:]
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if fail != nil {
		if fail.Code == "" {
			http.Error(w, "upstream trouble", fail.Status)
			return
		}
		oauthError(w, fail.Status, fail.Code, "scripted failure")
		return
	}
	p, ok := s.tokenProof(w, r)
	if !ok {
		return
	}
	method, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, TokenRequest{Form: r.PostForm, AuthMethod: method, DPoP: p != nil})
	s.mu.Unlock()
	switch r.PostFormValue("grant_type") {
	case "client_credentials":
		s.issue(w, nil, r.PostFormValue("scope"), p, "")
	case "refresh_token":
		s.refreshGrant(w, r.PostFormValue("refresh_token"), p)
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		s.exchangeGrant(w, r, p)
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		s.jwtBearerGrant(w, r, p)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// authenticate checks the client: a secret in the header or the body, or
// an assertion. It returns the method; false when it wrote a 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.PostFormValue("client_assertion") != "" {
		method, err := s.clientAssertion(r)
		if err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client assertion refused: "+err.Error())
			return "", false
		}
		return method, true
	}
	id, secret, basic := r.BasicAuth()
	method := "client_secret_basic"
	if !basic {
		id, secret, method = r.PostFormValue("client_id"), r.PostFormValue("client_secret"), "client_secret_post"
	}
	switch {
	case s.postOnly && basic:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "method client_secret_basic is not allowed for this client")
		return "", false
	case id != ClientID || secret != ClientSecret:
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret ("+method+")")
		return "", false
	}
	return method, true
}

func (s *Server) refreshGrant(w http.ResponseWriter, rt string, p *proof) {
	s.mu.Lock()
	fam, live := s.refresh[rt]
	if old, reused := s.used[rt]; !live && reused && !old.fam.revoked && time.Since(old.at) < s.grace {
		fam, live = old.fam, true // within the grace period
	}
	if !live {
		if old, reused := s.used[rt]; reused {
			old.fam.revoked = true // reuse of a rotated token: revoke the family
			s.reuses.Add(1)
		}
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token is invalid, expired or was already used")
		return
	}
	if fam.revoked {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token family revoked")
		return
	}
	if _, first := s.refresh[rt]; first {
		delete(s.refresh, rt)
		s.used[rt] = rotated{fam: fam, at: time.Now()}
	}
	s.mu.Unlock()
	s.issue(w, fam, "", p, "")
}

// issue answers with a new access token: DPoP-bound when the request had
// a proof, with issued_token_type when given.
func (s *Server) issue(w http.ResponseWriter, fam *family, scope string, p *proof, issuedType string) {
	at := "at-" + randomHex()
	s.mu.Lock()
	lifetime := s.lifetime
	g := grant{fam: fam, scope: scope}
	if lifetime > 0 {
		g.expiry = time.Now().Add(lifetime)
	}
	resp := map[string]any{"access_token": at, "token_type": "Bearer"}
	if p != nil {
		g.jkt, resp["token_type"] = p.jkt, "DPoP"
	}
	if issuedType != "" {
		resp["issued_token_type"] = issuedType
	}
	s.access[at] = g
	if lifetime > 0 {
		resp["expires_in"] = int64((lifetime + time.Second - 1) / time.Second)
	}
	if fam != nil {
		rt := "rt-" + randomHex()
		s.refresh[rt] = fam
		resp["refresh_token"] = rt
	}
	if scope != "" {
		resp["scope"] = scope
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

// serveMetadata serves the server's metadata (RFC 8414, OpenID Connect
// Discovery); the issuer is the server's URL.
func (s *Server) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	md := map[string]any{
		"issuer": s.URL, "token_endpoint": s.TokenURL, "revocation_endpoint": s.RevokeURL,
		"grant_types_supported": []string{"client_credentials", "refresh_token",
			"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "EdDSA", "HS256"},
	}
	if s.dpop {
		md["dpop_signing_alg_values_supported"] = []string{"ES256", "EdDSA", "RS256", "PS256"}
	}
	if s.dpopRequired {
		md["dpop_bound_access_tokens_required"] = true
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(md)
}

// serveRevoke revokes an access token, or a refresh token's family (RFC
// 7009): unknown tokens are not an error.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if id, secret, ok := r.BasicAuth(); !ok || id != ClientID || secret != ClientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	tok := r.PostFormValue("token")
	s.mu.Lock()
	delete(s.access, tok)
	if fam, ok := s.refresh[tok]; ok {
		fam.revoked = true
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// APIResponse is what the API answers to an accepted request.
type APIResponse struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body"`
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	s.apiCalls.Add(1)
	body, _ := io.ReadAll(r.Body)
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	s.mu.Lock()
	g, known := s.access[tok]
	accepted := (strings.EqualFold(scheme, "Bearer") || strings.EqualFold(scheme, "DPoP")) && known && s.liveLocked(g) && !s.rejectAll
	s.mu.Unlock()
	if !accepted {
		s.reject(w, `Bearer realm="api", error="invalid_token", error_description="the access token is invalid"`)
		return
	}
	if g.jkt != "" && !s.apiProof(w, r, scheme, tok, g.jkt) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(APIResponse{Method: r.Method, Path: r.URL.Path, Body: string(body)})
}

// reject answers 401 with challenge.
func (s *Server) reject(w http.ResponseWriter, challenge string) {
	s.apiRejected.Add(1)
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, `{"error":"invalid_token","error_description":"the access token is invalid"}`)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func randomHex() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
