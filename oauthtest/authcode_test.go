package oauthtest_test

// The authorization code grant with PKCE, driven by hand with x/oauth2 as
// a native app would, the browser replaced by a client that stops at the
// redirect.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

const loopback = "http://127.0.0.1:53682/callback"

// browse asks for authURL as a browser would and returns where the server
// redirects it, without following.
func browse(t *testing.T, authURL string) *url.URL {
	t.Helper()
	resp := get(t, authURL)
	require.Equal(t, http.StatusFound, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(t, err)
	return loc
}

// get sends a GET without following redirects.
func get(t *testing.T, u string) *http.Response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(u)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// login runs the authorization request of cfg up to the redirect and
// returns the code; the state and the issuer are checked.
func login(t *testing.T, srv *oauthtest.Server, cfg *oauth2.Config, verifier string) string {
	t.Helper()
	loc := browse(t, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)))
	q := loc.Query()
	assert.Equal(t, cfg.RedirectURL, loc.Scheme+"://"+loc.Host+loc.Path, "back to the redirect URI")
	assert.Equal(t, "state-1", q.Get("state"))
	assert.Equal(t, srv.URL, q.Get("iss"), "RFC 9207")
	require.Empty(t, q.Get("error"))
	require.NotEmpty(t, q.Get("code"))
	return q.Get("code")
}

// oauthErrorCode returns the error code of a token endpoint refusal.
func oauthErrorCode(t *testing.T, err error) string {
	t.Helper()
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "a token endpoint refusal, got %v", err)
	return re.ErrorCode
}

func TestCodeFlow(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	for name, cfg := range map[string]*oauth2.Config{"public": srv.PublicConfig(), "confidential": srv.OAuth2Config()} {
		t.Run(name, func(t *testing.T) {
			cfg.RedirectURL, cfg.Scopes = loopback, []string{"read", "write"}
			verifier := oauth2.GenerateVerifier()
			code := login(t, srv, cfg, verifier)

			tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
			require.NoError(t, err)
			assert.True(t, srv.Live(tok.AccessToken))
			assert.Equal(t, "read write", tok.Extra("scope"))
			require.NotEmpty(t, tok.RefreshToken)
			assertAPIAccepts(t, srv, tok.AccessToken)

			// The refresh token rotates, with reuse detection, like any other.
			next, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			require.NoError(t, err)
			assert.True(t, next.RefreshToken != tok.RefreshToken, "the refresh token rotated")
			_, err = cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))
			assert.False(t, srv.Live(next.AccessToken), "reuse revoked the family")
		})
	}
	assert.EqualValues(t, 2, srv.CodeExchanges())
	assert.EqualValues(t, 2, srv.Reuses())
	passed, failed := srv.PKCEChecks()
	assert.Equal(t, [2]int64{2, 0}, [2]int64{passed, failed})
	reqs := srv.AuthorizationRequests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "S256", reqs[0].Get("code_challenge_method"))
	assert.Equal(t, "read write", reqs[0].Get("scope"))
}

func assertAPIAccepts(t *testing.T, srv *oauthtest.Server, accessToken string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.APIURL+"things", nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var got oauthtest.APIResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "/api/things", got.Path)
}

func TestCodeWrongVerifier(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = loopback
	for name, opts := range map[string][]oauth2.AuthCodeOption{
		"wrong":     {oauth2.VerifierOption(oauth2.GenerateVerifier())},
		"missing":   nil,
		"too short": {oauth2.VerifierOption("abc")},
	} {
		code := login(t, srv, cfg, oauth2.GenerateVerifier())
		_, err := cfg.Exchange(context.Background(), code, opts...)
		assert.Equal(t, "invalid_grant", oauthErrorCode(t, err), name)
		assert.False(t, strings.Contains(err.Error(), code), "the error never holds the code")
	}
	passed, failed := srv.PKCEChecks()
	assert.Equal(t, [2]int64{0, 3}, [2]int64{passed, failed})
}

func TestCodeReplayRevokesItsTokens(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = loopback
	verifier := oauth2.GenerateVerifier()
	code := login(t, srv, cfg, verifier)
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	require.NoError(t, err)

	_, err = cfg.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))
	assert.EqualValues(t, 1, srv.CodeReplays())
	assert.False(t, srv.Live(tok.AccessToken), "the tokens of the first exchange are revoked")
	req, _ := http.NewRequest(http.MethodGet, srv.APIURL+"things", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "the API rejects them")
	_, err = cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err))
}

func TestCodeBoundToClientAndRedirect(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	public, confidential := srv.PublicConfig(), srv.OAuth2Config()
	public.RedirectURL, confidential.RedirectURL = loopback, loopback
	verifier := oauth2.GenerateVerifier()

	code := login(t, srv, public, verifier)
	_, err := confidential.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err), "another client")

	code = login(t, srv, public, verifier)
	other := *public
	other.RedirectURL = "http://127.0.0.1:53683/callback"
	_, err = other.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err), "another redirect URI")

	_, err = public.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	assert.Equal(t, "invalid_grant", oauthErrorCode(t, err), "a code is spent by its first exchange, failed or not")
}

func TestPersonRefuses(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = loopback + "?app=cli"
	srv.Person(oauthtest.Deny)
	loc := browse(t, cfg.AuthCodeURL("state-2", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	q := loc.Query()
	assert.Equal(t, "access_denied", q.Get("error"))
	assert.Equal(t, "state-2", q.Get("state"))
	assert.Equal(t, srv.URL, q.Get("iss"))
	assert.Equal(t, "cli", q.Get("app"), "the redirect URI's own query is kept")
	assert.False(t, q.Has("code"), "no code with a refusal")

	// A person who decides by what is asked.
	srv.Person(func(r *http.Request) oauthtest.Decision {
		if strings.Contains(r.URL.Query().Get("scope"), "admin") {
			return oauthtest.Decision("consent_required")
		}
		return oauthtest.Approved
	})
	cfg.Scopes = []string{"admin"}
	q = browse(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Query()
	assert.Equal(t, "consent_required", q.Get("error"))
	cfg.Scopes = []string{"read"}
	q = browse(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Query()
	assert.True(t, q.Has("code"), "approved")

	srv.Person(nil) // the default again
	q = browse(t, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))).Query()
	assert.True(t, q.Has("code"), "approved")
}

func TestAuthorizationRequestRefused(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	srv.Person(func(*http.Request) oauthtest.Decision {
		t.Error("the person was asked about a refused request")
		return oauthtest.Denied
	})
	challenge := oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())
	base := url.Values{"response_type": {"code"}, "client_id": {oauthtest.PublicClientID}, "redirect_uri": {loopback},
		"state": {"st"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for name, tc := range map[string]struct {
		set  map[string]string
		want string
	}{
		"no PKCE":           {map[string]string{"code_challenge": "", "code_challenge_method": ""}, "invalid_request"},
		"plain PKCE":        {map[string]string{"code_challenge": "x" + strings.Repeat("a", 42), "code_challenge_method": "plain"}, "invalid_request"},
		"no method (plain)": {map[string]string{"code_challenge_method": ""}, "invalid_request"},
		"not a hash":        {map[string]string{"code_challenge": "short"}, "invalid_request"},
		"no state":          {map[string]string{"state": ""}, "invalid_request"},
		"implicit":          {map[string]string{"response_type": "token"}, "unsupported_response_type"},
		"no response_type":  {map[string]string{"response_type": ""}, "invalid_request"},
	} {
		q := url.Values{}
		for k, v := range base {
			q[k] = v
		}
		for k, v := range tc.set {
			q.Set(k, v)
		}
		loc := browse(t, srv.AuthURL+"?"+q.Encode())
		assert.Equal(t, tc.want, loc.Query().Get("error"), name)
		assert.False(t, loc.Query().Has("code"), "no code with a refusal: %s", name)
		assert.Equal(t, srv.URL, loc.Query().Get("iss"), name)
	}
}

func TestRedirectURIs(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.RedirectURIs("https://app.example/callback"))
	cfg := srv.PublicConfig()
	auth := func(redirect string) *http.Response {
		c := *cfg
		c.RedirectURL = redirect
		return get(t, c.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	}
	for _, ok := range []string{"http://127.0.0.1:1/cb", "http://127.0.0.1:65535/a/b?x=1", "http://127.0.0.1/cb",
		"http://[::1]:8080/callback", "https://app.example/callback"} {
		resp := auth(ok)
		assert.Equal(t, http.StatusFound, resp.StatusCode, ok)
		assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), strings.Split(ok, "?")[0]+"?"), ok)
	}
	for _, bad := range []string{"", "http://localhost:8080/cb", "https://127.0.0.1:8080/cb", "http://127.0.0.2:8080/cb",
		"http://127.0.0.1:8080/cb#frag", "http://user@127.0.0.1:8080/cb", "http://127.0.0.1:0/cb", "http://127.0.0.1:99999/cb",
		"https://app.example/callback/other", "http://127.0.0.1.evil.example/cb", "javascript:alert(1)"} {
		resp := auth(bad)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%q gets an error page", bad)
		assert.True(t, resp.Header.Get("Location") == "", "%q is never redirected to", bad)
	}

	// An unknown client is never redirected either.
	c := *cfg
	c.ClientID, c.RedirectURL = "someone-else", loopback
	resp := get(t, c.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.True(t, resp.Header.Get("Location") == "", "no redirect for an unknown client")
}
