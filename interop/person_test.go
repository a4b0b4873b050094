package interop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
)

// personServer is what the tests of the grants a person authorizes (issue
// 21) need of a real authorization server: its public native client, its
// revocation endpoint (RFC 7009), introspection (RFC 7662) and its record
// of code exchanges.
type personServer interface {
	Issuer() string
	// NativeConfig is the public client (no secret, PKCE required) with
	// the loopback redirect redirectURL (any port) and the scopes that
	// bring a refresh token; its Endpoint has DeviceAuthURL when the
	// server has the device grant.
	NativeConfig(redirectURL string) *oauth2.Config
	RevocationURL() string
	// Active reports what introspection says of a token.
	Active(ctx context.Context, token string) (bool, error)
	// Exchanges counts the token requests of a grant type so far.
	Exchanges(ctx context.Context, grantType string) (exchanges, error)
}

// exchanges counts a grant type's token requests: those that succeeded,
// failed, and (for the code grant) succeeded with an S256 challenge
// verified.
type exchanges struct {
	Success int64 `json:"success"`
	Error   int64 `json:"error"`
	PKCE    int64 `json:"pkce_s256"`
}

// callbackCatcher is a stand-in for a Source's loopback listener: it
// answers /callback and keeps the last query it received.
func callbackCatcher(t *testing.T) (redirectURL string, last func() url.Values) {
	got := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-got:
		default:
		}
		got <- r.URL.Query()
		_, _ = io.WriteString(w, "You may close this window.")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/callback", func() url.Values {
		select {
		case q := <-got:
			return q
		default:
			return nil
		}
	}
}

// authorize runs the front channel of the code grant with PKCE through
// the person's browser and the loopback redirect, and returns the query
// the redirect delivered.
func authorize(t *testing.T, p *person, cfg *oauth2.Config, state, verifier string, last func() url.Values) url.Values {
	t.Helper()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	require.NoError(t, p.open(context.Background(), authURL))
	q := last()
	require.NotNil(t, q, "the loopback redirect was not delivered")
	return q
}

// revokeToken revokes token at url as the public client (RFC 7009).
func revokeToken(ctx context.Context, revocationURL, clientID, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation answered %d", resp.StatusCode)
	}
	return nil
}

// introspect asks endpoint whether token is active, with the request
// authenticated by auth (a resource server's credentials, or none).
func introspect(ctx context.Context, endpoint, token string, auth func(*http.Request)) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != nil {
		auth(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("introspection answered %d", resp.StatusCode)
	}
	var out struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return false, fmt.Errorf("introspection: %w", err)
	}
	return out.Active, nil
}

// testCodeFlow: the code grant with PKCE through a loopback redirect, with
// x/oauth2 alone: state (and iss when the server sends it) come back, one
// exchange with the challenge verified, then refresh and revocation.
func testCodeFlow(t *testing.T, s personServer, sendsIss bool) {
	ctx := context.Background()
	redirect, last := callbackCatcher(t)
	cfg := s.NativeConfig(redirect)
	before, err := s.Exchanges(ctx, "authorization_code")
	require.NoError(t, err)
	state, verifier := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	q := authorize(t, newPerson(t), cfg, state, verifier, last)
	require.True(t, q.Get("state") == state, "the state came back")
	require.True(t, q.Get("code") != "", "a code, not an error (%q)", q.Get("error"))
	if sendsIss {
		require.Equal(t, s.Issuer(), q.Get("iss"), "iss in the authorization response (RFC 9207)")
	} else {
		require.Empty(t, q.Get("iss"), "this server sends no iss")
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	require.NoError(t, err)
	require.True(t, tok.AccessToken != "" && tok.RefreshToken != "", "an access token and a refresh token")
	after, err := s.Exchanges(ctx, "authorization_code")
	require.NoError(t, err)
	require.Equal(t, before.Success+1, after.Success, "one code exchange")
	require.Equal(t, before.PKCE+1, after.PKCE, "its S256 challenge verified")
	refreshThenRevoke(t, s, cfg, tok)
}

// testPKCERequired: the public client cannot leave PKCE out, nor exchange
// a code with another verifier.
func testPKCERequired(t *testing.T, s personServer) {
	ctx := context.Background()
	redirect, last := callbackCatcher(t)
	cfg := s.NativeConfig(redirect)
	p := newPerson(t)
	require.NoError(t, p.open(ctx, cfg.AuthCodeURL("state-without-pkce")))
	q := last()
	require.True(t, q != nil && q.Get("code") == "", "no code without a challenge")
	require.Equal(t, "invalid_request", q.Get("error"))

	q = authorize(t, p, cfg, "state-with-pkce", oauth2.GenerateVerifier(), last)
	require.True(t, q.Get("code") != "", "a code, not an error (%q)", q.Get("error"))
	_, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	require.True(t, ok, "a token error, got %v", err)
	require.Equal(t, "invalid_grant", re.ErrorCode)
}

// testDeviceFlow: the device grant with x/oauth2 alone: the person types
// the user code in while the device polls, then refresh and revocation.
func testDeviceFlow(t *testing.T, s personServer) {
	ctx := context.Background()
	cfg := s.NativeConfig("")
	da, err := cfg.DeviceAuth(ctx)
	require.NoError(t, err)
	require.True(t, da.UserCode != "" && da.VerificationURI != "", "a user code and where to type it")
	p := newPerson(t)
	require.NoError(t, p.show(t)(ctx, da))
	pollCtx, cancel := context.WithTimeout(ctx, time.Minute) // a loose bound, not a timing assertion
	defer cancel()
	tok, err := cfg.DeviceAccessToken(pollCtx, da)
	require.NoError(t, err)
	require.True(t, tok.AccessToken != "" && tok.RefreshToken != "", "an access token and a refresh token")
	refreshThenRevoke(t, s, cfg, tok)
}

// refreshThenRevoke refreshes tok's grant, revokes its refresh token (RFC
// 7009), and checks with introspection that no token of it is active and
// that it refreshes no more.
func refreshThenRevoke(t *testing.T, s personServer, cfg *oauth2.Config, tok *oauth2.Token) {
	ctx := context.Background()
	refreshed, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	require.NoError(t, err)
	require.True(t, refreshed.AccessToken != tok.AccessToken, "a new access token")
	active, err := s.Active(ctx, refreshed.AccessToken)
	require.NoError(t, err)
	require.True(t, active, "the refreshed access token is active")

	rt := refreshed.RefreshToken // rotated, or the same
	require.NoError(t, revokeToken(ctx, s.RevocationURL(), cfg.ClientID, rt, "refresh_token"))
	for name, token := range map[string]string{"refresh token": rt, "access token": refreshed.AccessToken} {
		active, err := s.Active(ctx, token)
		require.NoError(t, err)
		require.False(t, active, "the revoked grant's %s is inactive", name)
	}
	_, err = cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	require.True(t, ok, "a token error, got %v", err)
	require.Equal(t, "invalid_grant", re.ErrorCode)
}
