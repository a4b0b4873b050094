package oauthtransport_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// A resource the program has never seen names its authorization server
// in its metadata (RFC 9728); the Transport's first request goes without
// a token, and the 401 leads the Source to the server, where a client
// registered beforehand gets a token for the resource.
func ExampleProtectedResource() {
	as := oauthtest.New() // an authorization server, with its metadata (RFC 8414)
	defer as.Close()
	mux := http.NewServeMux()
	resource := httptest.NewServer(mux)
	defer resource.Close()
	metadata := resource.URL + "/.well-known/oauth-protected-resource/mcp"
	mux.HandleFunc("GET /.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"resource": %q, "authorization_servers": [%q]}`, resource.URL+"/mcp", as.URL)
	})
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) {
		if !as.Live(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")) {
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+metadata+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "hello")
	})

	// A machine client (no Open: client credentials), registered at the
	// server beforehand; a person's client would set Open and could
	// register itself.
	tr, err := oauthtransport.New(oauthtransport.ProtectedResource(resource.URL+"/mcp", &oauthtransport.ClientConfig{
		Registered: map[string]oauthtransport.RegisteredClient{
			as.URL: {ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret},
		},
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	resp, err := tr.Client().Get(resource.URL + "/mcp")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.StatusCode, string(body))
	// Output: 200 hello
}
