package oauthtransport

import (
	"net/url"
	"testing"
)

// FuzzParseMetadata reads metadata documents from untrusted servers: it
// never panics, and what it accepts names the issuer asked for and an
// https (or loopback http) token endpoint.
func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`{"issuer":"https://idp.example.com","token_endpoint":"https://idp.example.com/token"}`), "https://idp.example.com")
	f.Add([]byte(`{"issuer":"https://idp.example.com","token_endpoint":"http://idp.example.com/token"}`), "https://idp.example.com")
	f.Add([]byte(`{"issuer":"http://127.0.0.1:8080","token_endpoint":"http://127.0.0.1:8080/t","dpop_signing_alg_values_supported":["ES256"],"mtls_endpoint_aliases":{"token_endpoint":"https://mtls/t"}}`), "http://127.0.0.1:8080")
	f.Add([]byte(`{"issuer":["x"]}`), "x")
	f.Add([]byte(`[]`), "")
	f.Fuzz(func(t *testing.T, data []byte, issuer string) {
		md, err := parseMetadata(data, issuer)
		if err != nil {
			return
		}
		if md.Issuer != issuer {
			t.Fatalf("accepted issuer %q for %q", md.Issuer, issuer)
		}
		u, err := url.Parse(md.TokenEndpoint)
		if err != nil || (u.Scheme != "https" && !insecureOK(u)) {
			t.Fatalf("accepted token endpoint %q", md.TokenEndpoint)
		}
	})
}
