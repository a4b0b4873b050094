package oauthtest

// Client authentication by JWT (private_key_jwt, client_secret_jwt), and
// the grants that carry a token or an assertion (RFC 8693, RFC 7523).

import (
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// JWTSecret is a client secret long enough for client_secret_jwt (HS256):
// the token endpoint accepts ClientID's assertions signed with it.
const JWTSecret = "test-client-secret-long-enough-for-hs256"

// ClientKey makes the token endpoint accept ClientID's private_key_jwt
// assertions signed by pub's private key, and JWT-bearer grant assertions
// (RFC 7523 §2.1) signed by it.
func ClientKey(pub crypto.PublicKey) Option { return func(s *Server) { s.clientKey = pub } }

// ReusableAssertions makes the token endpoint accept an assertion (a
// client assertion, a JWT-bearer grant) more than once while it is valid,
// as servers that federate workload identities do (a Kubernetes or CI
// token is presented until it expires). By default an assertion's jti is
// accepted once.
func ReusableAssertions() Option { return func(s *Server) { s.reusableAssertions = true } }

// TokenRequest is one request the token endpoint received.
type TokenRequest struct {
	Form       url.Values // the form as sent, client secrets and assertions included
	AuthMethod string     // client_secret_basic, client_secret_post, private_key_jwt, client_secret_jwt, or none (a public client)
	ClientID   string     // the client it authenticated as
	DPoP       bool       // it carried a valid DPoP proof
}

// TokenRequests returns the requests the token endpoint accepted the
// client of, oldest first.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

var assertionAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.HS256}

// clientAssertion verifies a client_assertion and returns the method.
func (s *Server) clientAssertion(r *http.Request) (string, error) {
	if r.PostFormValue("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		return "", errors.New("unknown client_assertion_type")
	}
	if id := r.PostFormValue("client_id"); id != "" && id != ClientID {
		return "", errors.New("client_id does not match")
	}
	if r.PostFormValue("client_secret") != "" {
		return "", errors.New("a client secret beside an assertion")
	}
	alg, iss, sub, err := s.verifyJWT(r.PostFormValue("client_assertion"))
	switch {
	case err != nil:
		return "", err
	case iss != ClientID || sub != ClientID:
		return "", fmt.Errorf("iss %q sub %q, want the client ID", iss, sub)
	case alg == string(jose.HS256):
		return "client_secret_jwt", nil
	}
	return "private_key_jwt", nil
}

// verifyJWT checks an assertion's signature (HS256 with JWTSecret, else
// the client key), audience, lifetime and jti; it returns alg, iss, sub.
func (s *Server) verifyJWT(raw string) (alg, iss, sub string, err error) {
	jws, err := jose.ParseSignedCompact(raw, assertionAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return "", "", "", fmt.Errorf("not a JWS: %v", err)
	}
	alg = jws.Signatures[0].Header.Algorithm
	var key any = s.clientKey
	if alg == string(jose.HS256) {
		key = []byte(JWTSecret)
	}
	if key == nil {
		return "", "", "", errors.New("no key registered for the client (ClientKey)")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return "", "", "", fmt.Errorf("signature: %v", err)
	}
	var c struct {
		Iss, Sub, JTI string
		Aud           any
		Exp, IAT      int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", "", "", err
	}
	return alg, c.Iss, c.Sub, s.checkAssertionClaims(c.Aud, c.JTI, c.Exp)
}

func (s *Server) checkAssertionClaims(aud any, jti string, exp int64) error {
	auds, _ := aud.([]any)
	if a, ok := aud.(string); ok {
		auds = []any{a}
	}
	if !slices.Contains(auds, any(s.TokenURL)) && !slices.Contains(auds, any(s.URL)) {
		return fmt.Errorf("aud %v is neither the token endpoint nor the issuer", aud)
	}
	if until := time.Until(time.Unix(exp, 0)); until <= 0 || until > 5*time.Minute {
		return errors.New("exp in the past or more than 5 minutes away")
	}
	if s.reusableAssertions && jti != "" {
		return nil
	}
	return s.firstUse(jti)
}

// firstUse records jti (of a DPoP proof or an assertion), refusing one
// missing or seen before.
func (s *Server) firstUse(jti string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.jtis[jti]; seen || jti == "" {
		return errors.New("jti missing or replayed")
	}
	s.jtis[jti] = struct{}{}
	return nil
}

// exchangeGrant serves RFC 8693 token exchange: any non-empty subject
// token of a declared type gets a token; the request is recorded.
func (s *Server) exchangeGrant(w http.ResponseWriter, r *http.Request, client string, p *proof) {
	if r.PostFormValue("subject_token") == "" || r.PostFormValue("subject_token_type") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "subject_token and subject_token_type are required")
		return
	}
	if r.PostFormValue("actor_token") != "" && r.PostFormValue("actor_token_type") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "actor_token_type is required with actor_token")
		return
	}
	s.issue(w, requested(r, client), p, "urn:ietf:params:oauth:token-type:access_token")
}

// jwtBearerGrant serves RFC 7523 §2.1: an assertion signed by the client
// key, for the token endpoint.
func (s *Server) jwtBearerGrant(w http.ResponseWriter, r *http.Request, client string, p *proof) {
	if _, _, sub, err := s.verifyJWT(r.PostFormValue("assertion")); err != nil || sub == "" {
		oauthError(w, http.StatusBadRequest, "invalid_grant", fmt.Sprintf("assertion refused: %v", err))
		return
	}
	s.issue(w, requested(r, client), p, "")
}
