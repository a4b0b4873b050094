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
// A person's grants are served too: the authorization code grant with
// PKCE through a loopback redirect (AuthURL, RFC 8252, with the RFC 9207
// iss in the redirect) and the device grant (DeviceAuthURL, RFC 8628).
// No browser is needed: a scripted person (Person, Approve, Deny,
// ApproveDevice, DeviceDecisionAfter) answers in place of one, and the
// tokens these grants issue refresh like any other.
//
// Knobs inject faults: scripted token endpoint failures (FailTokens), a
// slow token endpoint (TokenDelay), revocation (Revoke, RevokeAll), an API
// that rejects every token (AlwaysReject), clients that must send their
// secret in the body (ClientSecretPostOnly), DPoP-bound tokens only
// (RequireDPoP), workload assertions accepted more than once
// (ReusableAssertions). Counters tell what happened: TokenCalls, APICalls,
// APIRejected, Reuses, and for a person's grants AuthorizationRequests,
// CodeExchanges, PKCEChecks, DevicePolls. Every method is safe for
// concurrent use.
//
// For protected resources that name their authorization server (RFC
// 9728, as MCP servers do), NewResource starts one on another origin,
// with the scopes it requires (SetRequiredScopes for a step-up) and its
// metadata to bend (MetadataDocument, MetadataHandler,
// NoResourceMetadata). The server registers clients dynamically (RFC
// 7591, RegisterURL), which then work at its endpoints like the built-in
// ones (RegistrationLifetime, FailRegistrations, ForgetRegistrations,
// Registrations), remembers what each token was issued for (Introspect),
// and bends its own metadata (MetadataMembers, NoMetadata) and grants
// (WithheldScopes).
package oauthtest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Clients the server knows. ClientID is a confidential client that
// authenticates with ClientSecret (or an assertion, see ClientKey and
// JWTSecret). PublicClientID is a public client, a native app without a
// secret (RFC 8252): it sends only its client_id, and may use the
// authorization code grant, the device grant and the refresh-token grant,
// not the client-credentials grant.
const (
	ClientID       = "test-client"
	ClientSecret   = "test-secret"
	PublicClientID = "test-public-client"
)

// Server is an authorization server and protected API. Its methods are safe
// for concurrent use.
type Server struct {
	*httptest.Server
	TokenURL  string // the token endpoint
	RevokeURL string // the RFC 7009 revocation endpoint
	APIURL    string // the protected API; any path below it
	// AuthURL is the authorization endpoint of the authorization code
	// grant with PKCE (see [Server.Person]).
	AuthURL string
	// DeviceAuthURL is the device authorization endpoint (RFC 8628). A
	// confidential client authenticates there as at the token endpoint;
	// x/oauth2's DeviceAuth sends only the client_id, so give it
	// oauth2.SetAuthURLParam("client_secret", ClientSecret), or use the
	// public client ([Server.PublicConfig]).
	DeviceAuthURL string
	// RegisterURL is the dynamic client registration endpoint (RFC 7591),
	// the registration_endpoint of the metadata: see
	// [Server.Registrations].
	RegisterURL string

	tokenCalls, apiCalls, apiRejected, reuses atomic.Int64
	revocations                               atomic.Int64
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

	person func(*http.Request) Decision // nil: Approve
	authz  authorizeState
	device deviceState
	reg    registrationState

	members    map[string]any // MetadataMembers
	noMetadata bool           // NoMetadata
	withheld   []string       // WithheldScopes
}

type rotated struct {
	fam *family
	at  time.Time
}

type grant struct {
	expiry    time.Time
	fam       *family
	scope     string
	resources []string // RFC 8707 resource indicators; empty: any
	client    string
	jkt       string // DPoP-bound to this key
}

// family is the tokens a grant gave, refreshed from one another.
type family struct {
	revoked   bool
	client    string   // the client it was issued to, the only one that may refresh it
	scope     string   // what the grant asked for: every token of the family gets it
	resources []string // the grant's resource indicators
}

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
		authz:    authorizeState{codes: make(map[string]*authCode)},
		reg:      registrationState{clients: make(map[string]*dynamicClient)},
		device:   newDeviceState(),
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
	mux.HandleFunc("GET /authorize", s.serveAuthorize)
	mux.HandleFunc("POST /device_authorization", s.serveDeviceAuthorization)
	mux.HandleFunc("GET /device", s.serveVerification)
	mux.HandleFunc("POST /register", s.serveRegister)
	s.Server = httptest.NewServer(mux)
	s.TokenURL = s.URL + "/token"
	s.RevokeURL = s.URL + "/revoke"
	s.APIURL = s.URL + "/api/"
	s.AuthURL = s.URL + "/authorize"
	s.DeviceAuthURL = s.URL + "/device_authorization"
	s.RegisterURL = s.URL + "/register"
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

// OAuth2Config returns a config for the confidential client ClientID,
// with every endpoint: for the refresh-token grant, the authorization code
// grant (set RedirectURL) and the device grant (see DeviceAuthURL).
func (s *Server) OAuth2Config() *oauth2.Config {
	return &oauth2.Config{ClientID: ClientID, ClientSecret: ClientSecret, Endpoint: s.endpoint(oauth2.AuthStyleInHeader)}
}

// PublicConfig returns a config for the public client PublicClientID (no
// secret; the client_id in the body), with every endpoint, for the grants
// a person authorizes and the refresh-token grant. Set RedirectURL for the
// authorization code grant.
func (s *Server) PublicConfig() *oauth2.Config {
	return &oauth2.Config{ClientID: PublicClientID, Endpoint: s.endpoint(oauth2.AuthStyleInParams)}
}

func (s *Server) endpoint(style oauth2.AuthStyle) oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: s.AuthURL, DeviceAuthURL: s.DeviceAuthURL, TokenURL: s.TokenURL, AuthStyle: style}
}

// IssueRefreshToken returns a new refresh token for ClientID, as an
// authorization-code grant would have.
func (s *Server) IssueRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "rt-" + randomHex()
	s.refresh[rt] = &family{client: ClientID}
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

// RevokeCalls returns how many requests the revocation endpoint received.
func (s *Server) RevokeCalls() int64 { return s.revocations.Load() }

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
