package oauthtransport_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
)

// Each caller of Discover gets its own copy of the metadata: what one
// changes, down to a slice element or a nested member of Raw, no other
// caller sees; the server is asked once.
func TestDiscoverReturnsACopy(t *testing.T) {
	t.Parallel()
	srv, hits := metadataServer(t, "/.well-known/openid-configuration", func(base string) map[string]any {
		return map[string]any{"issuer": base, "token_endpoint": base + "/token",
			"grant_types_supported":  []string{"client_credentials"},
			"mtls_endpoint_aliases":  map[string]string{"token_endpoint": base + "/mtls/token"},
			"x_custom":               map[string]any{"list": []string{"a"}},
			"x_dpop_nonce_endpoints": []any{map[string]any{"url": base + "/nonce"}}}
	})
	first, err := oauthtransport.Discover(context.Background(), srv.URL)
	require.NoError(t, err)
	first.TokenEndpoint = "https://evil.example/token"
	first.GrantTypesSupported[0] = "password"
	first.MTLSEndpointAliases["token_endpoint"] = "https://evil.example/mtls"
	first.Raw["token_endpoint"] = "https://evil.example/token"
	first.Raw["x_custom"].(map[string]any)["list"].([]any)[0] = "changed"
	first.Raw["x_dpop_nonce_endpoints"].([]any)[0].(map[string]any)["url"] = "changed"
	delete(first.Raw, "issuer")

	second, err := oauthtransport.Discover(context.Background(), srv.URL)
	require.NoError(t, err)
	assert.Equal(t, int64(1), hits.Load(), "fetched once, then cached")
	assert.Equal(t, srv.URL+"/token", second.TokenEndpoint)
	assert.Equal(t, []string{"client_credentials"}, second.GrantTypesSupported)
	assert.Equal(t, map[string]string{"token_endpoint": srv.URL + "/mtls/token"}, second.MTLSEndpointAliases)
	assert.Equal(t, srv.URL+"/token", second.Raw["token_endpoint"])
	assert.Equal(t, srv.URL, second.Raw["issuer"])
	assert.Equal(t, map[string]any{"list": []any{"a"}}, second.Raw["x_custom"])
	assert.Equal(t, []any{map[string]any{"url": srv.URL + "/nonce"}}, second.Raw["x_dpop_nonce_endpoints"])
}

// Discover keeps at most 100 issuers: past that, the one fetched longest
// ago is fetched again, the newest are still cached. Not parallel: the
// cache is the process's, and filling it would evict other tests' issuers.
func TestDiscoverCacheIsBounded(t *testing.T) {
	var mu sync.Mutex
	hits := make(map[string]int)
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, ok := strings.CutPrefix(r.URL.Path, "/.well-known/oauth-authorization-server/")
		if !ok {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		hits[tenant]++
		mu.Unlock()
		fmt.Fprintf(w, `{"issuer":%q,"token_endpoint":%q}`, srv.URL+"/"+tenant, srv.URL+"/"+tenant+"/token")
	}))
	t.Cleanup(srv.Close)
	discover := func(i int) {
		t.Helper()
		_, err := oauthtransport.Discover(context.Background(), fmt.Sprintf("%s/tenant-%d", srv.URL, i))
		require.NoError(t, err)
	}
	for i := range 101 {
		discover(i)
	}
	discover(100)
	discover(1)
	discover(0)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, hits["tenant-100"], "the newest issuer is cached")
	assert.Equal(t, 1, hits["tenant-1"], "the 100 newest are kept")
	assert.Equal(t, 2, hits["tenant-0"], "the oldest was dropped for the 101st")
}
