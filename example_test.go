package oauthtransport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func Example() {
	idp := oauthtest.New() // an authorization server and API on loopback
	defer idp.Close()

	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	client := tr.Client()

	for range 3 {
		resp, err := client.Get(idp.APIURL + "things")
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Print(resp.Status, " ", string(body))
	}
	fmt.Println("token fetches:", idp.TokenCalls())

	// The server revokes the token: the Transport gets a new one and
	// replays the request once.
	tok, _ := tr.Token(context.Background())
	idp.Revoke(tok.AccessToken)
	resp, err := client.Get(idp.APIURL + "things")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, "after revocation; token fetches:", idp.TokenCalls())
	// Output:
	// 200 OK {"method":"GET","path":"/api/things","body":""}
	// 200 OK {"method":"GET","path":"/api/things","body":""}
	// 200 OK {"method":"GET","path":"/api/things","body":""}
	// token fetches: 1
	// 200 OK after revocation; token fetches: 2
}

func ExampleUnauthorizedError() {
	idp := oauthtest.New(oauthtest.AlwaysReject())
	defer idp.Close()
	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
	defer tr.Close()

	_, err := tr.Client().Get(idp.APIURL + "admin")
	var ue *oauthtransport.UnauthorizedError
	if errors.As(err, &ue) {
		fmt.Println("attempts:", ue.Attempts)
		fmt.Println("challenge:", ue.Challenge.Scheme, ue.Challenge.Error)
	}
	fmt.Println(errors.Is(err, oauthtransport.ErrUnauthorized))
	// Output:
	// attempts: 2
	// challenge: Bearer invalid_token
	// true
}
