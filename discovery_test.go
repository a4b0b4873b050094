package oauthtransport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestDiscoverAndUseTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	md, err := oauthtransport.Discover(context.Background(), srv.URL)
	require.NoError(t, err)
	assert.Equal(t, srv.TokenURL, md.TokenEndpoint)
	assert.Contains(t, md.DPoPSigningAlgValuesSupported, "ES256")
	assert.Contains(t, md.TokenEndpointAuthMethodsSupported, "private_key_jwt")
	assert.Equal(t, oauth2.AuthStyleInHeader, md.Endpoint().AuthStyle)
	assert.NotEmpty(t, md.Raw["grant_types_supported"])

	ep := md.Endpoint()
	cfg := &oauth2.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, Endpoint: ep}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
}

// metadataServer serves doc at path, counting requests.
func metadataServer(t *testing.T, path string, doc func(issuer string) map[string]any) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		_ = json.NewEncoder(w).Encode(doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// RFC 8414 puts the well-known part before the issuer's path; the
// result is kept.
func TestDiscoverRFC8414PathAndCache(t *testing.T) {
	t.Parallel()
	srv, hits := metadataServer(t, "/.well-known/oauth-authorization-server/tenant-1", func(base string) map[string]any {
		return map[string]any{"issuer": base + "/tenant-1", "token_endpoint": base + "/tenant-1/token",
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt"}}
	})
	for range 3 {
		md, err := oauthtransport.Discover(context.Background(), srv.URL+"/tenant-1")
		require.NoError(t, err)
		assert.Equal(t, srv.URL+"/tenant-1/token", md.TokenEndpoint)
		assert.Equal(t, oauth2.AuthStyleInParams, md.Endpoint().AuthStyle)
	}
	assert.Equal(t, int64(1), hits.Load(), "fetched once, then cached")
}

func TestDiscoverChecksWhatItReads(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]func(string) map[string]any{
		"another issuer": func(b string) map[string]any {
			return map[string]any{"issuer": "https://evil.example", "token_endpoint": b + "/token"}
		},
		"plain-http endpoint": func(b string) map[string]any {
			return map[string]any{"issuer": b, "token_endpoint": "http://idp.example.com/token"}
		},
		"no token endpoint":    func(b string) map[string]any { return map[string]any{"issuer": b} },
		"issuer of wrong type": func(b string) map[string]any { return map[string]any{"issuer": 42, "token_endpoint": b + "/token"} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := metadataServer(t, "/.well-known/openid-configuration", doc)
			_, err := oauthtransport.Discover(context.Background(), srv.URL)
			require.Error(t, err)
		})
	}
	_, err := oauthtransport.Discover(context.Background(), "http://idp.example.com")
	require.ErrorContains(t, err, "https", "plain http to a remote issuer is refused before dialling")
	_, err = oauthtransport.Discover(context.Background(), "https://user:pw@idp.example.com")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "pw")
}
