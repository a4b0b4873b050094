package wire

// What a protected resource and an authorization server publish for a
// client they have never seen: the resource's metadata (RFC 9728) and a
// dynamic client registration's answer (RFC 7591). Untrusted input, read
// into bounded plain data. Fuzzed in resource_test.go.

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Bounds of what is kept from one document: more is refused.
const (
	maxListed   = 64   // authorization servers, scopes
	maxValueLen = 2048 // one URL, scope or identifier
)

// ResourceMetadata is the part of a protected resource's metadata (RFC
// 9728 §2) a client uses.
type ResourceMetadata struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
	DPoPRequired         bool     `json:"dpop_bound_access_tokens_required"`
}

// ParseResourceMetadata reads a protected resource metadata document. It
// must be a JSON object with a resource; lists and values are bounded.
func ParseResourceMetadata(data []byte) (ResourceMetadata, error) {
	var m ResourceMetadata
	if err := json.Unmarshal(data, &m); err != nil {
		return ResourceMetadata{}, errors.New("not a JSON object of the expected members")
	}
	switch {
	case m.Resource == "":
		return ResourceMetadata{}, errors.New("it names no resource")
	case len(m.Resource) > maxValueLen:
		return ResourceMetadata{}, errors.New("its resource is too long")
	}
	if err := bounded("authorization_servers", m.AuthorizationServers); err != nil {
		return ResourceMetadata{}, err
	}
	if err := bounded("scopes_supported", m.ScopesSupported); err != nil {
		return ResourceMetadata{}, err
	}
	return m, nil
}

// Registration is the part of a client registration response (RFC 7591
// §3.2.1) a client keeps.
type Registration struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt   int64  `json:"client_secret_expires_at,omitempty"`
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
}

// ParseRegistration reads a client registration response: a JSON object
// with a client_id; values are bounded.
func ParseRegistration(data []byte) (Registration, error) {
	var r Registration
	if err := json.Unmarshal(data, &r); err != nil {
		return Registration{}, errors.New("not a JSON object of the expected members")
	}
	switch {
	case r.ClientID == "":
		return Registration{}, errors.New("it has no client_id")
	case len(r.ClientID) > maxValueLen, len(r.ClientSecret) > maxValueLen, len(r.TokenEndpointAuthMethod) > 64:
		return Registration{}, errors.New("a value is too long")
	case r.ClientSecretExpiresAt < 0:
		return Registration{}, errors.New("client_secret_expires_at is negative")
	}
	return r, nil
}

func bounded(name string, list []string) error {
	if len(list) > maxListed {
		return fmt.Errorf("%s lists more than %d entries", name, maxListed)
	}
	for _, v := range list {
		if v == "" || len(v) > maxValueLen {
			return fmt.Errorf("%s has an empty or too long entry", name)
		}
	}
	return nil
}
