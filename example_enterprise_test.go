package oauthtransport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// private_key_jwt: the client proves who it is with a JWT signed by its
// key; no secret is ever sent. The key may live in a KMS (any crypto.Signer).
func ExampleWithPrivateKeyJWT() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New(oauthtest.ClientKey(key.Public())) // the IdP knows the public key
	defer idp.Close()

	cfg := &clientcredentials.Config{ClientID: oauthtest.ClientID, TokenURL: idp.TokenURL} // no ClientSecret
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(cfg, oauthtransport.WithPrivateKeyJWT(key, "key-2026-11")))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	resp, err := tr.Client().Get(idp.APIURL + "things")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	sent := idp.TokenRequests()[0]
	fmt.Println(resp.Status, sent.AuthMethod, "secret sent:", sent.Form.Has("client_secret"))
	// Output: 200 OK private_key_jwt secret sent: false
}

// An assertion from elsewhere: a Kubernetes projected service-account
// token, a CI system's OIDC token. The function runs for every token
// request, so a rotated file is picked up.
func ExampleWithClientAssertion() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New(oauthtest.ClientKey(key.Public()))
	defer idp.Close()
	platformToken := func(context.Context) (string, error) {
		// In production: os.ReadFile("/var/run/secrets/tokens/idp-token")
		signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
		now := time.Now()
		return josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: oauthtest.ClientID, Subject: oauthtest.ClientID,
			Audience: josejwt.Audience{idp.TokenURL}, ID: fmt.Sprint(now.UnixNano()),
			IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	}
	cfg := &clientcredentials.Config{ClientID: oauthtest.ClientID, TokenURL: idp.TokenURL}
	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(cfg, oauthtransport.WithClientAssertion(platformToken)))
	defer tr.Close()
	_, err := tr.Token(context.Background())
	fmt.Println(err, idp.TokenRequests()[0].AuthMethod)
	// Output: <nil> private_key_jwt
}

// DPoP: tokens bound to a key; each request carries a fresh proof. The
// server here demands nonces at the token endpoint and at the API: each
// costs one retry, once.
func ExampleWithDPoP() {
	idp := oauthtest.New(oauthtest.DPoP(true))
	defer idp.Close()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // in production: from your KMS or secret store
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()), oauthtransport.WithDPoP(key))
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	for range 3 {
		resp, err := tr.Client().Get(idp.APIURL + "orders")
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	tok, _ := tr.Token(context.Background())
	asNonces, apiNonces := idp.NonceChallenges()
	fmt.Println("token type:", tok.TokenType, "nonce retries:", asNonces, apiNonces, "token fetches:", tr.Stats().TokenFetches)
	// Output:
	// 200 OK
	// 200 OK
	// 200 OK
	// token type: DPoP nonce retries: 1 1 token fetches: 1
}

// Token exchange (RFC 8693): a service trades the user's token for one
// for another service, acting on the user's behalf.
func ExampleTokenExchange() {
	idp := oauthtest.New()
	defer idp.Close()
	userToken := "the-token-the-user-called-us-with"
	src := oauthtransport.TokenExchange(&oauthtransport.TokenExchangeConfig{
		ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: idp.TokenURL,
		SubjectToken: func(context.Context) (string, string, error) {
			return userToken, oauthtransport.TokenTypeAccessToken, nil
		},
		Audience: []string{"orders-service"},
	})
	tr, _ := oauthtransport.New(src)
	defer tr.Close()
	tok, err := tr.Token(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	sent := idp.TokenRequests()[0].Form
	fmt.Println(sent.Get("grant_type"))
	fmt.Println("audience:", sent.Get("audience"), "issued:", tok.Extra("issued_token_type"))
	// Output:
	// urn:ietf:params:oauth:grant-type:token-exchange
	// audience: orders-service issued: urn:ietf:params:oauth:token-type:access_token
}

// Discovery: the token endpoint and what the server supports, from its
// issuer URL.
func ExampleDiscover() {
	idp := oauthtest.New(oauthtest.DPoP(false))
	defer idp.Close()
	md, err := oauthtransport.Discover(context.Background(), idp.URL)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &oauth2.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, Endpoint: md.Endpoint()}
	tr, _ := oauthtransport.New(oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: idp.IssueRefreshToken()}))
	defer tr.Close()
	_, err = tr.Token(context.Background())
	fmt.Println(md.TokenEndpoint == idp.TokenURL, md.DPoPSigningAlgValuesSupported[0], err)
	// Output: true ES256 <nil>
}

// A step-up challenge (RFC 9470) is for the user, not for the token: no
// refresh, no replay; the error says what to ask the user for.
func ExampleErrStepUpRequired() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_user_authentication", acr_values="urn:example:mfa", max_age="300"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer api.Close()
	idp := oauthtest.New()
	defer idp.Close()
	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
	defer tr.Close()

	_, err := tr.Client().Get(api.URL + "/transfers")
	if ue, ok := errors.AsType[*oauthtransport.UnauthorizedError](err); ok && errors.Is(err, oauthtransport.ErrStepUpRequired) {
		fmt.Println("ask the user to sign in again with", ue.StepUp.ACRValues, "within", ue.StepUp.MaxAge)
	}
	fmt.Println("token fetches:", idp.TokenCalls())
	// Output:
	// ask the user to sign in again with [urn:example:mfa] within 5m0s
	// token fetches: 1
}

// Resource indicators (RFC 8707): a token for one resource; tokens for
// others are kept apart, even under one store key.
func ExampleWithResource() {
	idp := oauthtest.New()
	defer idp.Close()
	src := oauthtransport.ClientCredentials(idp.ClientCredentials(), oauthtransport.WithResource("https://orders.example.com/"))
	tr, _ := oauthtransport.New(src)
	defer tr.Close()
	_, err := tr.Token(context.Background())
	fmt.Println(err, idp.TokenRequests()[0].Form["resource"])
	// Output: <nil> [https://orders.example.com/]
}

// The JWT-bearer grant (RFC 7523 §2.1): a JWT issued elsewhere (here
// signed by a key the IdP trusts) is the grant; a fresh one per request.
func ExampleJWTBearer() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	idp := oauthtest.New(oauthtest.ClientKey(key.Public()))
	defer idp.Close()
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	assertion := func(context.Context) (string, error) {
		now := time.Now()
		return josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: "https://workloads.example.com", Subject: "nightly-export",
			Audience: josejwt.Audience{idp.TokenURL}, ID: fmt.Sprint(now.UnixNano()),
			IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	}
	tr, _ := oauthtransport.New(oauthtransport.JWTBearer(&oauthtransport.JWTBearerConfig{
		ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: idp.TokenURL, Assertion: assertion}))
	defer tr.Close()
	resp, err := tr.Client().Get(idp.APIURL + "exports")
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status, idp.TokenRequests()[0].Form.Get("grant_type"))
	// Output: 200 OK urn:ietf:params:oauth:grant-type:jwt-bearer
}
