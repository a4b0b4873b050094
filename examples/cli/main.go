// Command cli signs a person in with the device grant (RFC 8628), keeps
// the grant in a file under the user's config directory, and on later
// runs uses and refreshes it without asking; "logout" signs out (RFC
// 7009) so that no later run uses it.
//
//	go run ./examples/cli     # a demo against an in-process authorization server
//
// Against your identity provider (a public client allowed the device
// grant; the endpoints come from its metadata):
//
//	go run ./examples/cli -issuer https://idp.example.com -client-id my-cli -scopes "openid offline_access" call https://api.example.com/me
//	go run ./examples/cli -issuer https://idp.example.com -client-id my-cli logout
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func main() {
	issuer := flag.String("issuer", "", "your identity provider's issuer URL (empty: a demo against an in-process one)")
	clientID := flag.String("client-id", "", "the CLI's client ID at the identity provider")
	scopes := flag.String("scopes", "openid offline_access", "the scopes to ask for, space-separated")
	flag.Parse()
	if *issuer == "" {
		demo()
		return
	}
	cfg, err := configFor(*issuer, *clientID, strings.Fields(*scopes))
	if err != nil {
		log.Fatal(err)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		log.Fatal(err)
	}
	tr, err := signedIn(cfg, filepath.Join(dir, "oauthtransport-cli"), *issuer)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	if err := run(tr, flag.Args()); err != nil {
		log.Fatal(err)
	}
}

// signedIn is the CLI's Transport: the device grant, the grant kept in a
// file (mode 0600) that every run of the CLI shares.
func signedIn(cfg *oauth2.Config, dir, issuer string) (*oauthtransport.Transport, error) {
	src := oauthtransport.DeviceAuthorization(cfg, show, oauthtransport.WithIssuer(issuer))
	return oauthtransport.New(src, oauthtransport.WithStore(store.NewFile(dir), "me"))
}

// show tells the person where to sign in.
func show(_ context.Context, da *oauth2.DeviceAuthResponse) error {
	fmt.Printf("To sign in, open %s and enter the code %s\n", da.VerificationURI, da.UserCode)
	return nil
}

// run carries out one command: "call URL" (the default) or "logout".
func run(tr *oauthtransport.Transport, args []string) error {
	ctx := context.Background()
	if len(args) > 0 && args[0] == "logout" {
		err := tr.Revoke(ctx)
		fmt.Println("signed out")
		return err
	}
	if len(args) < 2 || args[0] != "call" {
		return errors.New(`usage: cli [flags] call URL | logout`)
	}
	resp, err := tr.Client().Get(args[1])
	if errors.Is(err, oauthtransport.ErrAuthorizationDenied) {
		return errors.New("the sign-in was refused or not finished in time")
	}
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status)
	return nil
}

// configFor reads the issuer's metadata for the CLI's endpoints.
func configFor(issuer, clientID string, scopes []string) (*oauth2.Config, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	md, err := oauthtransport.Discover(ctx, issuer)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{ClientID: clientID, Endpoint: md.Endpoint(), Scopes: scopes}, nil
}

// demo runs the CLI three times against an in-process authorization server
// whose person approves the sign-in: the first run asks, the second uses
// the grant from the file, and after logout the third asks again.
func demo() {
	idp := oauthtest.New(oauthtest.DeviceDecisionAfter(1), oauthtest.DeviceInterval(200*time.Millisecond))
	defer idp.Close()
	dir, err := os.MkdirTemp("", "cli-config") // stands in for the user's config directory
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for i, args := range [][]string{{"call", idp.APIURL + "me"}, {"call", idp.APIURL + "me"}, {"logout"}, {"call", idp.APIURL + "me"}} {
		tr, err := signedIn(idp.PublicConfig(), dir, idp.URL)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("run %d: cli %s\n", i+1, args[0])
		if err := run(tr, args); err != nil {
			log.Fatal(err)
		}
		_ = tr.Close()
	}
	fmt.Printf("the person was asked %d times; the server revoked %d grant(s)\n", len(idp.DeviceAuthorizations()), idp.RevokeCalls())
}
