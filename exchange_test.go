package oauthtransport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestTokenExchangeSendsWhatRFC8693Says(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	subjects := 0
	cfg := &oauthtransport.TokenExchangeConfig{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL,
		SubjectToken: func(context.Context) (string, string, error) { subjects++; return "the-users-token", "", nil },
		ActorToken: func(context.Context) (string, string, error) {
			return "the-services-jwt", oauthtransport.TokenTypeJWT, nil
		},
		RequestedTokenType: oauthtransport.TokenTypeAccessToken, Audience: []string{"orders"},
		Resource: []string{"https://orders.example.com/", "https://billing.example.com/"}, Scopes: []string{"read", "write"}}
	tr := newTransport(t, oauthtransport.TokenExchange(cfg))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, subjects, "the subject token is asked for each exchange")
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 2)
	f := reqs[0].Form
	assert.Equal(t, "urn:ietf:params:oauth:grant-type:token-exchange", f.Get("grant_type"))
	assert.Equal(t, "the-users-token", f.Get("subject_token"))
	assert.Equal(t, oauthtransport.TokenTypeAccessToken, f.Get("subject_token_type"))
	assert.Equal(t, "the-services-jwt", f.Get("actor_token"))
	assert.Equal(t, oauthtransport.TokenTypeJWT, f.Get("actor_token_type"))
	assert.Equal(t, oauthtransport.TokenTypeAccessToken, f.Get("requested_token_type"))
	assert.Equal(t, []string{"orders"}, f["audience"])
	assert.Equal(t, []string{"https://orders.example.com/", "https://billing.example.com/"}, f["resource"])
	assert.Equal(t, "read write", f.Get("scope"))
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, oauthtransport.TokenTypeAccessToken, tok.Extra("issued_token_type"))
}

// On a keyed Transport each user's token is the subject (on-behalf-of).
func TestTokenExchangeOnBehalfOfEachKey(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	userTokens := map[string]string{"alice": "alices-token", "bob": "bobs-token"}
	tr, err := oauthtransport.NewKeyed(func(user string) (oauthtransport.Source, error) {
		return oauthtransport.TokenExchange(&oauthtransport.TokenExchangeConfig{ClientID: oauthtest.ClientID,
			ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL, Audience: []string{"orders"},
			SubjectToken: func(context.Context) (string, string, error) { return userTokens[user], "", nil }}), nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	for _, user := range []string{"alice", "bob", "alice"} {
		resp, err := keyedGet(t, tr, user, srv.APIURL)
		require.NoError(t, err)
		resp.Body.Close()
	}
	var subjects []string
	for _, r := range srv.TokenRequests() {
		subjects = append(subjects, r.Form.Get("subject_token"))
	}
	assert.ElementsMatch(t, []string{"alices-token", "bobs-token"}, subjects, "one exchange per user")
}

// A token endpoint that echoes the request in its error: the subject and
// actor tokens never reach the error.
func TestTokenExchangeErrorsHoldNoToken(t *testing.T) {
	t.Parallel()
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request", "error_description": "bad request: " + r.PostForm.Encode()})
	}))
	defer idp.Close()
	cfg := &oauthtransport.TokenExchangeConfig{ClientID: "c", ClientSecret: "s", TokenURL: idp.URL,
		SubjectToken: func(context.Context) (string, string, error) { return "subject-token-0123456789abcdef", "", nil },
		ActorToken:   func(context.Context) (string, string, error) { return "actor-token-0123456789abcdef", "", nil }}
	tr := newTransport(t, oauthtransport.TokenExchange(cfg))
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assertNoSecret(t, "error", err.Error(), "subject-token-0123456789abcdef", "actor-token-0123456789abcdef")
}

func TestJWTBearerGrant(t *testing.T) {
	t.Parallel()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(key.Public()))
	signer, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, nil)
	minted := 0
	assertion := func(context.Context) (string, error) {
		minted++
		now := time.Now()
		return josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: "https://workload.example", Subject: "job-42",
			ID: now.String(), Audience: josejwt.Audience{srv.TokenURL},
			IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(time.Minute))}).Serialize()
	}
	cfg := &oauthtransport.JWTBearerConfig{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL,
		Assertion: assertion, Scopes: []string{"api"}}
	tr := newTransport(t, oauthtransport.JWTBearer(cfg))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, minted, "a fresh assertion per token request")
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "urn:ietf:params:oauth:grant-type:jwt-bearer", reqs[0].Form.Get("grant_type"))
	assert.NotEmpty(t, reqs[0].Form.Get("assertion"))
	assert.Equal(t, "api", reqs[0].Form.Get("scope"))
}
