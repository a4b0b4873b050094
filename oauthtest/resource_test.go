package oauthtest_test

// Dynamic client registration and the protected resource: what a client
// registered works for, what a resource answers, and the knobs.

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// register posts metadata to the registration endpoint and returns the
// status and the JSON answer.
func register(t *testing.T, srv *oauthtest.Server, metadata map[string]any) (int, map[string]any) {
	t.Helper()
	body, err := json.Marshal(metadata)
	require.NoError(t, err)
	resp, err := http.Post(srv.RegisterURL, "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	var answer map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&answer)
	return resp.StatusCode, answer
}

func nativeApp() map[string]any {
	return map[string]any{"client_name": "app", "redirect_uris": []string{loopback}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}, "application_type": "native"}
}

func machine(method string) map[string]any {
	return map[string]any{"client_name": "job", "token_endpoint_auth_method": method, "grant_types": []string{"client_credentials"}}
}

func TestRegisteredPublicClientLogsIn(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.RegistrationLifetime(time.Hour))
	status, reg := register(t, srv, nativeApp())
	require.Equal(t, http.StatusCreated, status)
	assert.NotContains(t, reg, "client_secret", "a public client gets no secret")
	assert.NotContains(t, reg, "client_secret_expires_at", "nor an expiry of one")
	assert.Equal(t, "none", reg["token_endpoint_auth_method"])
	assert.Equal(t, "native", reg["application_type"], "the metadata sent is echoed")

	cfg := &oauth2.Config{ClientID: reg["client_id"].(string), RedirectURL: loopback, Scopes: []string{"mcp"},
		Endpoint: oauth2.Endpoint{AuthURL: srv.AuthURL, TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	verifier := oauth2.GenerateVerifier()
	tok, err := cfg.Exchange(context.Background(), login(t, srv, cfg, verifier), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "mcp", srv.Introspect(tok.AccessToken).Scope)
	assert.Equal(t, cfg.ClientID, srv.Introspect(tok.AccessToken).ClientID)

	_, err = (&clientcredentials.Config{ClientID: cfg.ClientID, TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInParams}).Token(context.Background())
	assert.Equal(t, "unauthorized_client", oauthErrorCode(t, err), "a public client may not use client_credentials")

	other := *cfg
	other.RedirectURL = "http://127.0.0.1:1/elsewhere"
	resp := get(t, other.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "a redirect URI it did not register (but for the port) is refused")
}

func TestRegisteredConfidentialClient(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"client_secret_basic", "client_secret_post"} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t)
			status, reg := register(t, srv, machine(method))
			require.Equal(t, http.StatusCreated, status)
			require.NotEmpty(t, reg["client_secret"])
			assert.EqualValues(t, 0, reg["client_secret_expires_at"], "it never expires by default")
			kept := srv.RegistrationRequests()
			require.Len(t, kept, 1)
			assert.Equal(t, reg["client_id"], kept[0].ClientID)
			assert.Equal(t, reg["client_secret"], kept[0].ClientSecret)
			assert.Equal(t, method, kept[0].TokenEndpointAuthMethod)
			style := map[string]oauth2.AuthStyle{"client_secret_basic": oauth2.AuthStyleInHeader, "client_secret_post": oauth2.AuthStyleInParams}
			cc := &clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string),
				TokenURL: srv.TokenURL, AuthStyle: style[method], Scopes: []string{"a"},
				EndpointParams: map[string][]string{"resource": {"https://mcp.example/mcp"}}}
			tok, err := cc.Token(context.Background())
			require.NoError(t, err)
			info := srv.Introspect(tok.AccessToken)
			assert.Equal(t, oauthtest.Introspection{Active: true, Scope: "a", ClientID: cc.ClientID,
				Resources: []string{"https://mcp.example/mcp"}, Expiry: info.Expiry}, info)

			cc.AuthStyle = style[map[string]string{"client_secret_basic": "client_secret_post", "client_secret_post": "client_secret_basic"}[method]]
			_, err = cc.Token(context.Background())
			assert.Equal(t, "invalid_client", oauthErrorCode(t, err), "only with the method it registered")

			srv.ForgetRegistrations()
			cc.AuthStyle = style[method]
			_, err = cc.Token(context.Background())
			assert.Equal(t, "invalid_client", oauthErrorCode(t, err), "forgotten")
			assert.Equal(t, 1, srv.Registrations())
		})
	}
}

func TestRegistrationLifetime(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.RegistrationLifetime(time.Hour))
	before := time.Now()
	status, reg := register(t, srv, machine("client_secret_basic"))
	require.Equal(t, http.StatusCreated, status)
	expires := time.Unix(int64(reg["client_secret_expires_at"].(float64)), 0)
	assert.WithinDuration(t, before.Add(time.Hour), expires, 2*time.Second)

	// A lifetime shorter than the time to the next request: refused.
	srv = oauthtest.NewServer(t, oauthtest.RegistrationLifetime(time.Nanosecond))
	_, reg = register(t, srv, machine("client_secret_basic"))
	cc := &clientcredentials.Config{ClientID: reg["client_id"].(string), ClientSecret: reg["client_secret"].(string), TokenURL: srv.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
	_, err := cc.Token(context.Background())
	assert.Equal(t, "invalid_client", oauthErrorCode(t, err))
}

func TestRegistrationRefused(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	for name, tc := range map[string]struct {
		metadata map[string]any
		code     string
	}{
		"no redirect URI":          {map[string]any{"token_endpoint_auth_method": "none"}, "invalid_redirect_uri"},
		"plain http remote":        {map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"http://app.example/cb"}}, "invalid_redirect_uri"},
		"javascript":               {map[string]any{"token_endpoint_auth_method": "none", "redirect_uris": []string{"javascript:alert(1)"}}, "invalid_redirect_uri"},
		"public client_credentals": {machine("none"), "invalid_client_metadata"},
		"private_key_jwt":          {machine("private_key_jwt"), "invalid_client_metadata"},
		"unknown grant":            {map[string]any{"grant_types": []string{"password"}}, "invalid_client_metadata"},
	} {
		status, answer := register(t, srv, tc.metadata)
		assert.Equal(t, http.StatusBadRequest, status, name)
		assert.Equal(t, tc.code, answer["error"], name)
	}
	resp, err := http.Post(srv.RegisterURL, "application/json", strings.NewReader("[1]"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "not an object")
	assert.Equal(t, 7, srv.Registrations())
	kept := srv.RegistrationRequests()
	assert.Len(t, kept, 6, "the bodies that were objects")
	for _, r := range kept {
		assert.Empty(t, r.ClientID, "nothing registered")
		if r.Raw["token_endpoint_auth_method"] == nil {
			assert.Empty(t, r.TokenEndpointAuthMethod, "as sent: no default filled in")
		}
	}
}

func TestFailRegistrations(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	srv.FailRegistrations(oauthtest.Failure{Status: 500}, oauthtest.Failure{Status: 400, Code: "invalid_client_metadata"})
	status, answer := register(t, srv, nativeApp())
	assert.Equal(t, 500, status)
	assert.Nil(t, answer, "not JSON")
	status, answer = register(t, srv, nativeApp())
	assert.Equal(t, 400, status)
	assert.Equal(t, "invalid_client_metadata", answer["error"])
	status, _ = register(t, srv, nativeApp())
	assert.Equal(t, http.StatusCreated, status)
	assert.Equal(t, 3, srv.Registrations())
}

func TestMetadataKnobs(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.MetadataMembers(map[string]any{"scopes_supported": []string{"mcp", "offline_access"}, "revocation_endpoint": nil}))
	md := metadata(t, srv.URL+"/.well-known/oauth-authorization-server")
	assert.Equal(t, srv.RegisterURL, md["registration_endpoint"])
	assert.Equal(t, []any{"mcp", "offline_access"}, md["scopes_supported"])
	assert.NotContains(t, md, "revocation_endpoint")

	srv = oauthtest.NewServer(t, oauthtest.NoMetadata())
	resp := get(t, srv.URL+"/.well-known/oauth-authorization-server")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func metadata(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var md map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
	return md
}

func TestWithheldScopesAndRefreshKeepsScope(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.WithheldScopes("admin"))
	cfg := srv.PublicConfig()
	cfg.RedirectURL, cfg.Scopes = loopback, []string{"read", "admin"}
	verifier := oauth2.GenerateVerifier()
	tok, err := cfg.Exchange(context.Background(), login(t, srv, cfg, verifier), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	assert.Equal(t, "read", tok.Extra("scope"), "the response says what was granted")
	tok.Expiry = time.Now().Add(-time.Minute)
	refreshed, err := cfg.TokenSource(context.Background(), tok).Token()
	require.NoError(t, err)
	require.NotEqual(t, tok.AccessToken, refreshed.AccessToken)
	assert.Equal(t, "read", srv.Introspect(refreshed.AccessToken).Scope, "a refreshed token keeps the grant's scope")
}

// call sends a request to the resource with token (none when empty) and
// returns the status and WWW-Authenticate.
func call(t *testing.T, res *oauthtest.Resource, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, res.ResourceURL, strings.NewReader("{}"))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate")
}

func TestResource(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	res := oauthtest.NewResource(t, srv, oauthtest.ResourceScopes("mcp:read", "mcp:write"), oauthtest.RequireScopes("mcp:read"), oauthtest.ChallengeScopes("mcp:read"))
	assert.NotEqual(t, srv.Listener.Addr().String(), res.Listener.Addr().String(), "another origin")

	md := metadata(t, res.MetadataURL)
	assert.Equal(t, map[string]any{"resource": res.ResourceURL, "authorization_servers": []any{srv.URL},
		"scopes_supported": []any{"mcp:read", "mcp:write"}, "bearer_methods_supported": []any{"header"}}, md)

	status, challenge := call(t, res, "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, `Bearer scope="mcp:read", resource_metadata="`+res.MetadataURL+`"`, challenge)

	token := func(scope, resource string) string {
		cc := srv.ClientCredentials()
		cc.Scopes = strings.Fields(scope)
		if resource != "" {
			cc.EndpointParams = map[string][]string{"resource": {resource}}
		}
		tok, err := cc.Token(context.Background())
		require.NoError(t, err)
		return tok.AccessToken
	}
	read := token("mcp:read", res.ResourceURL)
	status, _ = call(t, res, read)
	assert.Equal(t, http.StatusOK, status)
	status, _ = call(t, res, token("mcp:read", ""))
	assert.Equal(t, http.StatusOK, status, "a token for no resource in particular")
	status, challenge = call(t, res, token("mcp:read", "https://other.example/mcp"))
	assert.Equal(t, http.StatusUnauthorized, status, "a token for another resource")
	assert.Contains(t, challenge, `error="invalid_token"`)

	res.SetRequiredScopes("mcp:read", "mcp:write")
	status, challenge = call(t, res, read)
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, `Bearer error="insufficient_scope", scope="mcp:read mcp:write", resource_metadata="`+res.MetadataURL+`"`, challenge)

	got := res.Requests()
	require.Len(t, got, 5)
	assert.Equal(t, oauthtest.ResourceRequest{Method: http.MethodPost, Status: 401}, got[0])
	assert.Equal(t, oauthtest.ResourceRequest{Method: http.MethodPost, Token: read, Status: 403}, got[4])
	assert.EqualValues(t, 1, res.MetadataCalls())
}

func TestResourceMetadataKnobs(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	res := oauthtest.NewResource(t, srv, oauthtest.NoResourceMetadata())
	status, challenge := call(t, res, "")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "Bearer", challenge, "no resource_metadata")
	assert.Equal(t, http.StatusNotFound, get(t, res.MetadataURL).StatusCode)

	res = oauthtest.NewResource(t, srv, oauthtest.MetadataDocument([]byte(`{"resource":"elsewhere"}`)))
	assert.Equal(t, map[string]any{"resource": "elsewhere"}, metadata(t, res.MetadataURL))

	res = oauthtest.NewResource(t, srv, oauthtest.MetadataHandler(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "teapot", http.StatusTeapot)
	}))
	assert.Equal(t, http.StatusTeapot, get(t, res.MetadataURL).StatusCode)
	assert.EqualValues(t, 1, res.MetadataCalls())
}
