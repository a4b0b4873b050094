package wire

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseResourceMetadata(t *testing.T) {
	m, err := ParseResourceMetadata([]byte(`{"resource":"https://mcp.example/mcp","authorization_servers":["https://as.example"],"scopes_supported":["a","b"],"extra":1}`))
	require.NoError(t, err)
	assert.Equal(t, "https://mcp.example/mcp", m.Resource)
	assert.Equal(t, []string{"https://as.example"}, m.AuthorizationServers)
	assert.Equal(t, []string{"a", "b"}, m.ScopesSupported)

	for name, doc := range map[string]string{
		"not JSON":       `<html>`,
		"an array":       `[]`,
		"no resource":    `{"authorization_servers":["https://as.example"]}`,
		"a number":       `{"resource":5}`,
		"too many":       `{"resource":"https://r","scopes_supported":[` + strings.Repeat(`"s",`, 64) + `"s"]}`,
		"an empty entry": `{"resource":"https://r","authorization_servers":[""]}`,
		"a long entry":   `{"resource":"https://r","authorization_servers":["` + strings.Repeat("a", 3000) + `"]}`,
	} {
		_, err := ParseResourceMetadata([]byte(doc))
		assert.Error(t, err, name)
	}
}

func TestParseRegistration(t *testing.T) {
	r, err := ParseRegistration([]byte(`{"client_id":"c1","client_secret":"s","client_secret_expires_at":0,"token_endpoint_auth_method":"client_secret_post","redirect_uris":["x"]}`))
	require.NoError(t, err)
	assert.Equal(t, Registration{ClientID: "c1", ClientSecret: "s", TokenEndpointAuthMethod: "client_secret_post"}, r)
	for name, doc := range map[string]string{
		"not JSON":     `oops`,
		"no client_id": `{"client_secret":"s"}`,
		"negative":     `{"client_id":"c","client_secret_expires_at":-1}`,
		"long":         `{"client_id":"` + strings.Repeat("c", 3000) + `"}`,
	} {
		_, err := ParseRegistration([]byte(doc))
		assert.Error(t, err, name)
	}
}

// The parsers never panic, and what they accept is bounded.
func FuzzParseResourceMetadata(f *testing.F) {
	f.Add([]byte(`{"resource":"https://mcp.example/mcp","authorization_servers":["https://as.example"],"scopes_supported":["mcp:read"]}`))
	f.Add([]byte(`{"resource":""}`))
	f.Add([]byte(`{"client_id":"c","client_secret":"s","client_secret_expires_at":17}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if m, err := ParseResourceMetadata(data); err == nil {
			if m.Resource == "" || len(m.AuthorizationServers) > maxListed || len(m.ScopesSupported) > maxListed {
				t.Fatalf("accepted unbounded metadata")
			}
		}
		if r, err := ParseRegistration(data); err == nil && (r.ClientID == "" || len(r.ClientID) > maxValueLen) {
			t.Fatalf("accepted a registration without a bounded client_id")
		}
	})
}
