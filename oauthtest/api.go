package oauthtest

// The protected API and the server's metadata.

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// serveMetadata serves the server's metadata (RFC 8414, OpenID Connect
// Discovery), with MetadataMembers applied; the issuer is the server's
// URL. Under NoMetadata it answers 404.
func (s *Server) serveMetadata(w http.ResponseWriter, r *http.Request) {
	if s.noMetadata {
		http.NotFound(w, r)
		return
	}
	md := map[string]any{
		"issuer": s.URL, "token_endpoint": s.TokenURL, "revocation_endpoint": s.RevokeURL, "registration_endpoint": s.RegisterURL,
		"authorization_endpoint": s.AuthURL, "device_authorization_endpoint": s.DeviceAuthURL,
		"response_types_supported":                       []string{"code"},
		"code_challenge_methods_supported":               []string{"S256"},
		"authorization_response_iss_parameter_supported": true,
		"grant_types_supported": []string{"authorization_code", "refresh_token", deviceGrantType, "client_credentials",
			"urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"token_endpoint_auth_methods_supported":            []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"RS256", "PS256", "ES256", "EdDSA", "HS256"},
		"revocation_endpoint_auth_methods_supported":       []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "client_secret_jwt", "none"},
	}
	if s.dpop {
		md["dpop_signing_alg_values_supported"] = []string{"ES256", "EdDSA", "RS256", "PS256"}
	}
	if s.dpopRequired {
		md["dpop_bound_access_tokens_required"] = true
	}
	for k, v := range s.members {
		if v == nil {
			delete(md, k)
		} else {
			md[k] = v
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(md)
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
