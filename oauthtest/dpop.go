package oauthtest

// DPoP (RFC 9449) on the token endpoint and the API: proofs checked,
// tokens bound to the proof's key, nonces demanded when asked.

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DPoP makes the server check DPoP proofs: a token request with a proof
// gets a DPoP-bound token (token_type DPoP), which the API then accepts
// only as "Authorization: DPoP" with a valid proof from the same key.
// With requireNonce, the token endpoint and the API each demand their
// current nonce (400 use_dpop_nonce, 401 with error="use_dpop_nonce"),
// sending it in DPoP-Nonce; every API response carries the API's nonce.
func DPoP(requireNonce bool) Option {
	return func(s *Server) { s.dpop, s.requireNonce = true, requireNonce }
}

// RequireDPoP makes the server issue DPoP-bound tokens only (DPoP with
// nonces not required): a token request without a proof gets 400
// invalid_dpop_proof, and the metadata says
// dpop_bound_access_tokens_required.
func RequireDPoP() Option {
	return func(s *Server) { s.dpop, s.dpopRequired = true, true }
}

// RotateNonces makes the token endpoint and the API demand new DPoP
// nonces from now on.
func (s *Server) RotateNonces() {
	s.mu.Lock()
	s.asNonce, s.rsNonce = "as-"+randomHex(), "rs-"+randomHex()
	s.mu.Unlock()
}

// NonceChallenges returns how many times the token endpoint and the API
// answered use_dpop_nonce.
func (s *Server) NonceChallenges() (token, api int64) {
	return s.asNonceChallenges.Load(), s.rsNonceChallenges.Load()
}

var proofAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.EdDSA, jose.RS256, jose.PS256}

// proof is what a valid DPoP proof says.
type proof struct {
	jkt   string // the key's thumbprint
	nonce string
}

// checkProof verifies r's DPoP proof for the target uri and, on the API,
// the access token's hash. It returns nil, nil when there is no proof.
func (s *Server) checkProof(r *http.Request, uri, accessToken string) (*proof, error) {
	values := r.Header.Values("DPoP")
	if len(values) == 0 {
		return nil, nil
	}
	if len(values) > 1 {
		return nil, errors.New("more than one DPoP header")
	}
	jws, err := jose.ParseSignedCompact(values[0], proofAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("not a JWS: %v", err)
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders["typ"].(string); typ != "dpop+jwt" || h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() {
		return nil, errors.New("typ is not dpop+jwt, or no public jwk")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, fmt.Errorf("signature: %v", err)
	}
	var c struct {
		JTI, HTM, HTU, ATH, Nonce string
		IAT                       int64
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, err
	}
	if err := s.checkClaims(r, uri, accessToken, c.JTI, c.HTM, c.HTU, c.ATH, c.IAT); err != nil {
		return nil, err
	}
	tp, _ := h.JSONWebKey.Thumbprint(crypto.SHA256)
	return &proof{jkt: base64.RawURLEncoding.EncodeToString(tp), nonce: c.Nonce}, nil
}

func (s *Server) checkClaims(r *http.Request, uri, accessToken, jti, htm, htu, ath string, iat int64) error {
	switch {
	case htm != r.Method || htu != uri:
		return fmt.Errorf("htm %q htu %q, want %q %q", htm, htu, r.Method, uri)
	case time.Since(time.Unix(iat, 0)).Abs() > time.Minute:
		return errors.New("iat too far from now")
	case accessToken != "" && ath != tokenHash(accessToken):
		return errors.New("ath is not the token's hash")
	case accessToken == "" && ath != "":
		return errors.New("ath on a token request")
	}
	return s.firstUse(jti)
}

func tokenHash(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenProof checks a token request's proof: nil when there is none; ok
// false when the answer was written (a bad proof, or a nonce demanded).
func (s *Server) tokenProof(w http.ResponseWriter, r *http.Request) (p *proof, ok bool) {
	if !s.dpop {
		return nil, true
	}
	p, err := s.checkProof(r, s.TokenURL, "")
	if err == nil && p == nil && s.dpopRequired {
		err = errors.New("DPoP proof required")
	}
	if err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", err.Error())
		return nil, false
	}
	s.mu.Lock()
	nonce := s.asNonce
	s.mu.Unlock()
	if p != nil && s.requireNonce && p.nonce != nonce {
		s.asNonceChallenges.Add(1)
		w.Header().Set("DPoP-Nonce", nonce)
		oauthError(w, http.StatusBadRequest, "use_dpop_nonce", "Authorization server requires nonce in DPoP proof")
		return nil, false
	}
	return p, true
}

// apiProof checks an API request for a DPoP-bound token: false when the
// answer (401) was written.
func (s *Server) apiProof(w http.ResponseWriter, r *http.Request, scheme, tok, jkt string) bool {
	uri := "http://" + r.Host + strings.SplitN(r.URL.RequestURI(), "?", 2)[0]
	p, err := s.checkProof(r, uri, tok)
	s.mu.Lock()
	nonce := s.rsNonce
	s.mu.Unlock()
	switch {
	case !strings.EqualFold(scheme, "DPoP") || err != nil || p == nil || p.jkt != jkt:
		s.reject(w, `DPoP algs="ES256 EdDSA", error="invalid_token", error_description="DPoP-bound token without a valid proof"`)
		return false
	case s.requireNonce && p.nonce != nonce:
		s.rsNonceChallenges.Add(1)
		w.Header().Set("DPoP-Nonce", nonce)
		s.reject(w, `DPoP algs="ES256 EdDSA", error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"`)
		return false
	}
	if s.requireNonce {
		w.Header().Set("DPoP-Nonce", nonce)
	}
	return true
}
