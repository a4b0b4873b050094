// Command defaultclient sets a Transport as http.DefaultClient's transport,
// limited to the API's host: requests to the API carry the token, requests
// anywhere else go out untouched.
//
//	go run ./examples/defaultclient
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func main() {
	idp := oauthtest.New()
	defer idp.Close()
	// Some other service that must never see our token.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "Authorization header seen by the other service: %q\n", r.Header.Get("Authorization"))
	}))
	defer other.Close()

	api, _ := url.Parse(idp.APIURL)
	tr, err := oauthtransport.New(
		oauthtransport.ClientCredentials(idp.ClientCredentials()),
		oauthtransport.WithAllowedHosts(api.Host),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	http.DefaultClient.Transport = tr

	for _, u := range []string{idp.APIURL + "me", other.URL} {
		resp, err := http.Get(u)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("GET %s -> %s %s", u, resp.Status, body)
	}
}
