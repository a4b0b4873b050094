package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// A Kubernetes pod authenticates with its projected service-account token,
// which the kubelet keeps fresh in a file: no client secret anywhere.
func ExampleAssertionFromFile() {
	platformKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New(oauthtest.ClientKey(platformKey.Public())) // the IdP trusts the platform's tokens
	defer idp.Close()
	dir, _ := os.MkdirTemp("", "pod")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "token") // in the pod: /var/run/secrets/tokens/idp-token
	_ = os.WriteFile(path, []byte(platformToken(platformKey, oauthtest.ClientID, oauthtest.ClientID, idp.TokenURL)), 0o600)

	cfg := &clientcredentials.Config{ClientID: oauthtest.ClientID, TokenURL: idp.TokenURL} // no ClientSecret
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(cfg,
		oauthtransport.WithClientAssertion(oauthtransport.AssertionFromFile(path))))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	resp, err := tr.Client().Get(idp.APIURL + "things")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, idp.TokenRequests()[0].Form.Get("client_assertion_type"))
	// Output: 200 OK urn:ietf:params:oauth:client-assertion-type:jwt-bearer
}

// A GitHub Actions job (with `permissions: id-token: write`) presents its
// OIDC token as a JWT-bearer grant. Here a stand-in answers as the
// runner's endpoint does.
func ExampleAssertionFromGitHubActions() {
	platformKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New(oauthtest.ClientKey(platformKey.Public()))
	defer idp.Close()
	runner := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer runner-request-token" {
			http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		}
		tok := platformToken(platformKey, "https://token.actions.githubusercontent.com",
			"repo:octo-org/octo-repo:ref:refs/heads/main", r.URL.Query().Get("audience"))
		_ = json.NewEncoder(w).Encode(map[string]any{"count": 1, "value": tok})
	}))
	defer runner.Close()
	os.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", runner.URL+"/idtoken?api-version=2.0") // GitHub sets both in the job
	os.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "runner-request-token")
	defer os.Unsetenv("ACTIONS_ID_TOKEN_REQUEST_URL")
	defer os.Unsetenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN")

	tr, err := oauthtransport.New(oauthtransport.JWTBearer(&oauthtransport.JWTBearerConfig{
		ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: idp.TokenURL,
		Assertion: oauthtransport.AssertionFromGitHubActions(idp.TokenURL), // the audience the IdP expects
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	resp, err := tr.Client().Get(idp.APIURL + "deployments")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, idp.TokenRequests()[0].Form.Get("grant_type"))
	// Output: 200 OK urn:ietf:params:oauth:grant-type:jwt-bearer
}

// A program prints the workload's identity token, here exchanged for an
// access token (RFC 8693). In production the program is a cloud CLI
// ("gcloud", "auth", "print-identity-token") or a vault client; cat
// stands in for it.
func ExampleAssertionFromCommand() {
	platformKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New()
	defer idp.Close()
	dir, _ := os.MkdirTemp("", "cli")
	defer os.RemoveAll(dir)
	printed := filepath.Join(dir, "identity-token")
	_ = os.WriteFile(printed, []byte(platformToken(platformKey, "https://accounts.example.com", "nightly-export", "https://sts.example.com")+"\n"), 0o600)

	tr, err := oauthtransport.New(oauthtransport.TokenExchange(&oauthtransport.TokenExchangeConfig{
		ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: idp.TokenURL,
		SubjectToken: oauthtransport.AssertionFromCommand("cat", printed).OfType(oauthtransport.TokenTypeJWT),
	}))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	_, err = tr.Token(context.Background())
	fmt.Println(err, idp.TokenRequests()[0].Form.Get("subject_token_type"))
	// Output: <nil> urn:ietf:params:oauth:token-type:jwt
}

// A DPoP key kept in the store beside the tokens it binds, encrypted: a
// restarted process finds both, and goes on with its DPoP-bound token
// without asking for another.
func ExampleDPoPKeyFromStore() {
	idp := oauthtest.New(oauthtest.DPoP(true))
	defer idp.Close()
	dir, _ := os.MkdirTemp("", "svc")
	defer os.RemoveAll(dir)
	aesKey := []byte("a 32-byte key from a secret mgr!") // store.Encrypted needs 32 bytes
	var thumbprints []string
	for range 2 { // two lives of one process
		s := store.Encrypted(store.NewFile(dir), aesKey)
		key, err := oauthtransport.DPoPKeyFromStore(context.Background(), s, "svc")
		if err != nil {
			log.Fatal(err)
		}
		tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()),
			oauthtransport.WithDPoP(key), oauthtransport.WithStore(s, "svc"))
		if err != nil {
			log.Fatal(err)
		}
		resp, err := tr.Client().Get(idp.APIURL + "things")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		tr.Close()
		tp, _ := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
		thumbprints = append(thumbprints, fmt.Sprintf("%x", tp))
	}
	fmt.Println(thumbprints[0] == thumbprints[1], len(idp.TokenRequests()), idp.TokenRequests()[0].DPoP)
	// Output: true 1 true
}

// platformToken is what a platform issues a workload: a JWT signed by
// its key, from iss for sub, to aud, living 4 minutes.
func platformToken(key *ecdsa.PrivateKey, iss, sub, aud string) string {
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	now := time.Now()
	tok, _ := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: iss, Subject: sub, Audience: josejwt.Audience{aud},
		ID: fmt.Sprint(now.UnixNano()), IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(4 * time.Minute))}).Serialize()
	return tok
}
