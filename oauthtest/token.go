package oauthtest

// The token endpoint: client authentication, the grants that rotate
// refresh tokens, and the issuing of tokens; the revocation endpoint.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"
)

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	s.tokenCalls.Add(1)
	if !s.scripted(w, r) {
		return
	}
	p, ok := s.tokenProof(w, r)
	if !ok {
		return
	}
	client, method, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	s.requests = append(s.requests, TokenRequest{Form: r.PostForm, AuthMethod: method, ClientID: client, DPoP: p != nil})
	s.mu.Unlock()
	grantType := r.PostFormValue("grant_type")
	if method == "none" && confidentialGrants[grantType] {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "a public client may not use this grant")
		return
	}
	if !s.mayUseGrant(client, grantType) {
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "the client did not register this grant type")
		return
	}
	switch grantType {
	case "client_credentials":
		s.issue(w, requested(r, client), p, "")
	case "refresh_token":
		s.refreshGrant(w, r.PostFormValue("refresh_token"), client, p)
	case "authorization_code":
		s.codeGrant(w, r, client, p)
	case deviceGrantType:
		s.deviceGrant(w, r, client, p)
	case "urn:ietf:params:oauth:grant-type:token-exchange":
		s.exchangeGrant(w, r, client, p)
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		s.jwtBearerGrant(w, r, client, p)
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// confidentialGrants are the grants a public client may not use.
var confidentialGrants = map[string]bool{"client_credentials": true,
	"urn:ietf:params:oauth:grant-type:token-exchange": true, "urn:ietf:params:oauth:grant-type:jwt-bearer": true}

// scripted delays the answer by TokenDelay and answers a scripted
// failure; false when it answered (or the client left).
func (s *Server) scripted(w http.ResponseWriter, r *http.Request) bool {
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
			return false
		}
	}
	if fail != nil {
		if fail.Code == "" {
			http.Error(w, "upstream trouble", fail.Status)
			return false
		}
		oauthError(w, fail.Status, fail.Code, "scripted failure")
		return false
	}
	return true
}

// authenticate checks the client: a secret in the header or the body, an
// assertion, or the public client's bare client_id; a client registered
// dynamically as it registered (see register.go). It returns the client
// and the method ("none" for a public client); false when it wrote a 401.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (client, method string, ok bool) {
	if r.PostFormValue("client_assertion") != "" {
		method, err := s.clientAssertion(r)
		if err != nil {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client assertion refused: "+err.Error())
			return "", "", false
		}
		return ClientID, method, true
	}
	id, secret, basic := r.BasicAuth()
	method = "client_secret_basic"
	if !basic {
		id, secret, method = r.PostFormValue("client_id"), r.PostFormValue("client_secret"), "client_secret_post"
	}
	switch {
	case s.postOnly && basic:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "method client_secret_basic is not allowed for this client")
		return "", "", false
	case id == PublicClientID && secret == "" && r.PostFormValue("client_secret") == "":
		return PublicClientID, "none", true
	case id != ClientID && s.registered(id):
		return s.authenticateRegistered(w, r, id, secret, method)
	case id != ClientID || secret != ClientSecret:
		w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret ("+method+")")
		return "", "", false
	}
	return ClientID, method, true
}

func (s *Server) refreshGrant(w http.ResponseWriter, rt, client string, p *proof) {
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
	if fam.client != "" && fam.client != client {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token was issued to another client")
		return
	}
	if _, first := s.refresh[rt]; first {
		delete(s.refresh, rt)
		s.used[rt] = rotated{fam: fam, at: time.Now()}
	}
	s.mu.Unlock()
	s.issue(w, grant{fam: fam, scope: fam.scope, resources: fam.resources, client: client}, p, "")
}

// requested is what a grant without a family asks for: the request's
// scope and resources, for client.
func requested(r *http.Request, client string) grant {
	return grant{scope: r.PostFormValue("scope"), resources: r.PostForm["resource"], client: client}
}

// issue answers with a new access token for g (its family, scope less
// the withheld scopes, resources and client): DPoP-bound when the
// request had a proof, with issued_token_type when given.
func (s *Server) issue(w http.ResponseWriter, g grant, p *proof, issuedType string) {
	at := "at-" + randomHex()
	s.mu.Lock()
	lifetime := s.lifetime
	fam, scope := g.fam, s.grantedLocked(g.scope)
	g.scope = scope
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

// serveRevoke revokes an access token, or a refresh token's family (RFC
// 7009), for the client it was issued to: unknown tokens are not an
// error.
func (s *Server) serveRevoke(w http.ResponseWriter, r *http.Request) {
	s.revocations.Add(1)
	client, _, ok := s.authenticate(w, r)
	if !ok {
		return
	}
	tok := r.PostFormValue("token")
	s.mu.Lock()
	fam, refresh := s.refresh[tok]
	if g, ok := s.access[tok]; ok && !refresh {
		fam = g.fam
	}
	if fam != nil && fam.client != "" && fam.client != client {
		s.mu.Unlock()
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "the token was issued to another client")
		return
	}
	delete(s.access, tok)
	if refresh {
		fam.revoked = true
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
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
