package oauthtest

// The authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636)
// through a loopback redirect (RFC 8252 §7.3), with the issuer in the
// redirect (RFC 9207): the authorization endpoint, the scripted person
// who answers it, and the code's exchange at the token endpoint.

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Decision is a scripted person's answer to an authorization request:
// [Approved], or the error code of a refusal (RFC 6749 §4.1.2.1, RFC 8628
// §3.5), such as [Denied]. A refusal with another code, say
// Decision("consent_required"), is answered with that code.
type Decision string

// The decisions of a person.
const (
	Approved Decision = ""              // the person approves
	Denied   Decision = "access_denied" // the person refuses
)

// Approve is a person who approves every request: the server's default.
func Approve(*http.Request) Decision { return Approved }

// Deny is a person who refuses every request (access_denied).
func Deny(*http.Request) Decision { return Denied }

// RedirectURIs registers redirect URIs that the authorization endpoint
// accepts, compared exactly, beside the loopback ones it accepts from any
// client: http://127.0.0.1:PORT/ and http://[::1]:PORT/ with any port and
// path (RFC 8252 §7.3). http://localhost is not loopback here (RFC 8252
// §8.3) unless registered.
func RedirectURIs(uris ...string) Option {
	return func(s *Server) { s.authz.redirects = append(s.authz.redirects, uris...) }
}

// Person sets who answers authorization requests from now on, in place of
// a person at a browser; nil restores the default, [Approve]. decide is
// called without any lock held, once per authorization request that the
// authorization endpoint accepts (a known client, an acceptable redirect
// URI, response_type=code, a state and an S256 code_challenge; r is that
// request, its query the authorization request), and once per
// device code that is decided by a visit to its verification URI or by
// [DeviceDecisionAfter] (r is then the device authorization request: its
// PostForm holds the client_id and the scope).
func (s *Server) Person(decide func(r *http.Request) Decision) {
	s.mu.Lock()
	s.person = decide
	s.mu.Unlock()
}

// AuthorizationRequests returns the query of every request the
// authorization endpoint received, oldest first.
func (s *Server) AuthorizationRequests() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authz.requests)
}

// CodeExchanges returns how many authorization_code grant requests the
// token endpoint received from an authenticated client, refused ones
// included.
func (s *Server) CodeExchanges() int64 { return s.authz.exchanges.Load() }

// CodeReplays returns how many times an authorization code was presented
// again after its first exchange (each revoked the tokens issued for it).
func (s *Server) CodeReplays() int64 { return s.authz.replays.Load() }

// PKCEChecks returns how many code_verifier checks at the token endpoint
// passed and how many failed (a missing, malformed or wrong verifier).
func (s *Server) PKCEChecks() (passed, failed int64) {
	return s.authz.pkcePassed.Load(), s.authz.pkceFailed.Load()
}

// codeLifetime is how long an authorization code can be exchanged.
const codeLifetime = time.Minute

// authorizeState is the authorization endpoint's: guarded by Server.mu,
// but for the counters.
type authorizeState struct {
	redirects []string // registered beside loopback (RedirectURIs)
	requests  []url.Values
	codes     map[string]*authCode

	exchanges, replays, pkcePassed, pkceFailed atomic.Int64
}

// authCode is what an authorization code stands for.
type authCode struct {
	client, redirect, challenge, scope string
	resources                          []string // the authorization request's (RFC 8707)
	expiry                             time.Time
	fam                                *family // set at the first exchange; revoked at the next
}

// personLocked returns who decides now.
func (s *Server) personLocked() func(*http.Request) Decision {
	if s.person == nil {
		return Approve
	}
	return s.person
}

// serveAuthorize answers an authorization request: an error page for an
// unknown client or a redirect URI it cannot trust, else a redirect with
// a code, or with the error, state and iss.
func (s *Server) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	s.authz.requests = append(s.authz.requests, q)
	decide := s.personLocked()
	s.mu.Unlock()
	if problem := s.checkClient(q); problem != "" {
		// Never redirect to a URI that was not verified (RFC 6749 §4.1.2.1).
		http.Error(w, "oauthtest: "+problem, http.StatusBadRequest)
		return
	}
	to := q.Get("redirect_uri")
	if code, desc := checkAuthorizationRequest(q); code != "" {
		s.redirect(w, r, to, url.Values{"error": {code}, "error_description": {desc}})
		return
	}
	if d := decide(r); d != Approved {
		s.redirect(w, r, to, url.Values{"error": {string(d)}, "error_description": {"the person refused"}})
		return
	}
	code := "code-" + randomHex()
	s.mu.Lock()
	s.authz.codes[code] = &authCode{client: q.Get("client_id"), redirect: to, challenge: q.Get("code_challenge"),
		scope: q.Get("scope"), resources: q["resource"], expiry: time.Now().Add(codeLifetime)}
	s.mu.Unlock()
	s.redirect(w, r, to, url.Values{"code": {code}})
}

// checkClient returns what is wrong with the client_id or the
// redirect_uri, empty when nothing is.
func (s *Server) checkClient(q url.Values) string {
	id := q.Get("client_id")
	switch {
	case id == "":
		return "client_id is missing"
	case id != ClientID && id != PublicClientID && !s.registered(id):
		return "unknown client_id"
	}
	to := q.Get("redirect_uri")
	if id != ClientID && id != PublicClientID {
		return s.checkRegisteredRedirect(id, to)
	}
	s.mu.Lock()
	registered := slices.Contains(s.authz.redirects, to)
	s.mu.Unlock()
	switch {
	case to == "":
		return "redirect_uri is missing"
	case !registered && !loopbackRedirect(to):
		return "redirect_uri is neither a loopback one (http://127.0.0.1:PORT/ or http://[::1]:PORT/) nor registered"
	}
	return ""
}

// loopbackRedirect reports whether uri is an http redirect to a loopback
// IP literal, any port (RFC 8252 §7.3), without user info or fragment.
func loopbackRedirect(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "http" || u.User != nil || strings.Contains(uri, "#") || u.Opaque != "" {
		return false
	}
	host := u.Host
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return false
		}
		host = strings.TrimSuffix(host, ":"+port)
	}
	return host == "127.0.0.1" || host == "[::1]"
}

// checkAuthorizationRequest returns the error code and description for
// an authorization request this server refuses: a response_type other
// than code, no state, no S256 code_challenge (RFC 7636 §4.4.1).
func checkAuthorizationRequest(q url.Values) (code, desc string) {
	switch rt := q.Get("response_type"); {
	case rt == "":
		return "invalid_request", "response_type is missing"
	case rt != "code":
		return "unsupported_response_type", "only response_type=code is supported"
	case q.Get("state") == "":
		return "invalid_request", "state is missing"
	case q.Get("code_challenge") == "":
		return "invalid_request", "PKCE is required: code_challenge is missing"
	case q.Get("code_challenge_method") != "S256":
		return "invalid_request", "PKCE transform algorithm not supported: code_challenge_method must be S256"
	}
	if b, err := base64.RawURLEncoding.DecodeString(q.Get("code_challenge")); err != nil || len(b) != sha256.Size {
		return "invalid_request", "code_challenge is not a base64url SHA-256 hash"
	}
	return "", ""
}

// redirect sends the browser back to the client's redirect URI (which
// was checked), with params, the request's state and iss (RFC 9207).
func (s *Server) redirect(w http.ResponseWriter, r *http.Request, to string, params url.Values) {
	u, _ := url.Parse(to)
	q := u.Query() // the redirect URI's own query is kept (RFC 6749 §3.1.2)
	for k, v := range params {
		q[k] = v
	}
	if state := r.URL.Query().Get("state"); state != "" {
		q.Set("state", state)
	}
	q.Set("iss", s.URL)
	u.RawQuery = q.Encode()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// codeGrant exchanges an authorization code: once, before it expires, for
// the client and redirect URI it was issued for, with the code_verifier
// of its challenge. A code presented again revokes the tokens it gave
// (RFC 6749 §4.1.2).
func (s *Server) codeGrant(w http.ResponseWriter, r *http.Request, client string, p *proof) {
	s.authz.exchanges.Add(1)
	s.mu.Lock()
	c, known := s.authz.codes[r.PostFormValue("code")]
	replayed := known && c.fam != nil
	if replayed {
		c.fam.revoked = true
		s.authz.replays.Add(1)
	} else if known {
		c.fam = &family{client: client, scope: c.scope, resources: c.resources} // spent now, whatever follows
	}
	s.mu.Unlock()
	problem := ""
	switch {
	case !known:
		problem = "unknown authorization code"
	case replayed:
		problem = "authorization code was already used; the tokens issued for it are revoked"
	case time.Now().After(c.expiry):
		problem = "authorization code expired"
	case c.client != client:
		problem = "authorization code was issued to another client"
	case r.PostFormValue("redirect_uri") != c.redirect:
		problem = "redirect_uri differs from the authorization request's"
	case !s.verifierMatches(r.PostFormValue("code_verifier"), c.challenge):
		problem = "code_verifier is missing or does not match the code_challenge"
	}
	if problem != "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", problem)
		return
	}
	g := grant{fam: c.fam, scope: c.scope, resources: c.resources, client: client}
	if asked := r.PostForm["resource"]; len(asked) > 0 {
		g.resources = asked // RFC 8707 §2.2: the token request names the resource the token is for
	}
	s.issue(w, g, p, "")
}

// verifierMatches checks a code_verifier (RFC 7636 §4.1, §4.6) against
// an S256 challenge, and counts the check.
func (s *Server) verifierMatches(verifier, challenge string) bool {
	ok := len(verifier) >= 43 && len(verifier) <= 128 && !strings.ContainsFunc(verifier, func(r rune) bool {
		return !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || strings.ContainsRune("-._~", r))
	})
	if ok {
		sum := sha256.Sum256([]byte(verifier))
		ok = subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
	}
	if ok {
		s.authz.pkcePassed.Add(1)
	} else {
		s.authz.pkceFailed.Add(1)
	}
	return ok
}
