package oauthtransport

// The loopback listener of a login, over real HTTP: where it listens,
// which redirect URI it names, what it answers.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	require.NoError(t, ln.Close())
	return port
}

func TestAuthorizationCodeRedirectURL(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	for name, redirect := range map[string]string{
		"127.0.0.1 on a port": "http://127.0.0.1:" + port + "/oauth/done",
		"localhost":           "http://localhost:" + freePort(t) + "/cb",
		"no port":             "http://127.0.0.1/cb",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := oauthtest.NewServer(t, oauthtest.RedirectURIs(redirect))
			cfg := srv.PublicConfig()
			cfg.RedirectURL = redirect
			b := &browser{}
			ctx, _ := loginContext(t)
			tok, err := interactiveOf(t, AuthorizationCode(cfg, b.open)).login(ctx)
			require.NoError(t, err)
			assert.True(t, srv.Live(tok.AccessToken))
			sent := srv.AuthorizationRequests()[0].Get("redirect_uri")
			u, err := url.Parse(sent)
			require.NoError(t, err)
			if name == "no port" {
				assert.Equal(t, "/cb", u.Path)
				assert.NotEmpty(t, u.Port(), "the free port is in the redirect URI")
			} else {
				assert.Equal(t, redirect, sent, "the redirect URI as configured")
			}
			assert.Equal(t, []int{http.StatusOK}, b.answers())
		})
	}
}

func TestAuthorizationCodeIPv6Redirect(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	require.NoError(t, ln.Close())
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = "http://[::1]/callback"
	b := &browser{}
	ctx, _ := loginContext(t)
	_, err = interactiveOf(t, AuthorizationCode(cfg, b.open)).login(ctx)
	require.NoError(t, err)
	u, err := url.Parse(srv.AuthorizationRequests()[0].Get("redirect_uri"))
	require.NoError(t, err)
	assert.Equal(t, "::1", u.Hostname())
}

func TestAuthorizationCodePortInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	srv := oauthtest.NewServer(t)
	cfg := srv.PublicConfig()
	cfg.RedirectURL = "http://127.0.0.1:" + port + "/callback"
	b := &browser{}
	_, err = interactiveOf(t, AuthorizationCode(cfg, b.open)).login(context.Background())
	require.ErrorIs(t, err, ErrToken)
	assert.Contains(t, err.Error(), "port "+port, "the error names the port")
	assert.Contains(t, err.Error(), "in use")
	assert.Zero(t, b.opens.Load())
	assert.Empty(t, srv.AuthorizationRequests())
}

func TestRedirectURLRefused(t *testing.T) {
	t.Parallel()
	for _, redirect := range []string{"https://127.0.0.1/cb", "http://example.com/cb", "http://10.0.0.1/cb",
		"http://user@127.0.0.1/cb", "http://127.0.0.1/cb#frag", "myapp:/cb"} {
		_, err := listenLoopback(redirect, "state", issuerCheck{})
		assert.Error(t, err, redirect)
	}
}

// TestLoopbackListener drives the listener itself: its answers, its page,
// and that it stops listening when closed.
func TestLoopbackListener(t *testing.T) {
	t.Parallel()
	l, err := listenLoopback("", "the-state", issuerCheck{issuer: "https://idp.example"})
	require.NoError(t, err)
	u, err := url.Parse(l.uri)
	require.NoError(t, err)
	assert.Equal(t, "/callback", u.Path)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	visit := func(method, path string, q url.Values) (int, string, http.Header) {
		req, err := http.NewRequest(method, "http://"+u.Host+path+"?"+q.Encode(), nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body), resp.Header
	}
	marker := "<script>marker-in-the-query</script>"
	status, body, _ := visit(http.MethodGet, "/callback", url.Values{"state": {"forged"}, "code": {marker}})
	assert.Equal(t, http.StatusBadRequest, status)
	assert.False(t, strings.Contains(body, "marker-in-the-query"), "nothing from the query in the page")
	status, _, _ = visit(http.MethodPost, "/callback", url.Values{"state": {"the-state"}, "code": {"c"}})
	assert.Equal(t, http.StatusMethodNotAllowed, status)
	status, _, _ = visit(http.MethodGet, "/other", url.Values{"state": {"the-state"}, "code": {"c"}})
	assert.Equal(t, http.StatusNotFound, status)

	status, body, h := visit(http.MethodGet, "/callback", url.Values{"state": {"the-state"}, "code": {marker},
		"iss": {"https://idp.example"}})
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "You can close this tab")
	assert.False(t, strings.Contains(body, "marker-in-the-query"), "nothing from the query in the page")
	assert.Equal(t, "no-store", h.Get("Cache-Control"))
	assert.Equal(t, "no-referrer", h.Get("Referrer-Policy"))
	code, err := l.wait(context.Background())
	require.NoError(t, err)
	assert.True(t, code == marker, "the code of the first response with the state")
	assert.EqualValues(t, 1, l.refused.Load())

	l.close()
	_, err = client.Get(l.uri)
	var op *net.OpError
	assert.True(t, errors.As(err, &op), "nothing listens after the login")
}

func TestLoopbackServerError(t *testing.T) {
	t.Parallel()
	l, err := listenLoopback("", "s", issuerCheck{})
	require.NoError(t, err)
	defer l.close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(l.uri + "?" + url.Values{"state": {"s"}, "error": {"consent_required"},
		"error_description": {"line one\nline two"}}.Encode())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	_, err = l.wait(context.Background())
	te, ok := errors.AsType[*TokenError](err)
	require.True(t, ok)
	assert.Equal(t, "consent_required", te.Code)
	assert.Equal(t, "line one line two", te.Description)
	assert.NotErrorIs(t, err, ErrAuthorizationDenied)
}
