package oauthtransport

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestProtectedResourceSmoke(t *testing.T) {
	as := oauthtest.NewServer(t)
	var res *httptest.Server
	res = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-protected-resource/mcp":
			_ = json.NewEncoder(w).Encode(map[string]any{"resource": res.URL + "/mcp", "authorization_servers": []string{as.URL}, "scopes_supported": []string{"mcp"}})
		case "/mcp":
			_, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
			if !as.Live(tok) {
				w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+res.URL+`/.well-known/oauth-protected-resource/mcp"`)
				w.WriteHeader(401)
				return
			}
			_, _ = w.Write([]byte("ok"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(res.Close)
	b := &browser{}
	tr, err := New(ProtectedResource(res.URL+"/mcp", &ClientConfig{Registered: map[string]RegisteredClient{"": {ClientID: oauthtest.PublicClientID}}, Open: b.open}))
	require.NoError(t, err)
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr}).Get(res.URL + "/mcp")
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	resp.Body.Close()
	t.Log(as.AuthorizationRequests())
}
