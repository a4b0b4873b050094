package oauthtransport_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestNoTokenOnRedirectToAnotherOrigin(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var otherAuth atomic.Value
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth.Store(r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	var sameAuth atomic.Value
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/landing", http.StatusFound)
		case "/landing":
			sameAuth.Store(r.Header.Get("Authorization"))
		case "/away":
			http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
		case "/otherport":
			// Same host name, another port: another origin, though
			// net/http itself would keep sensitive headers.
			u, _ := url.Parse(other.URL)
			http.Redirect(w, r, "http://127.0.0.1:"+u.Port()+"/port", http.StatusFound)
		}
	}))
	t.Cleanup(origin.Close)
	tr := ccTransport(t, srv)
	client := tr.Client()

	mustGet(t, client, origin.URL+"/same")
	assert.True(t, strings.HasPrefix(sameAuth.Load().(string), "Bearer "), "a same-origin hop keeps the token")

	mustGet(t, client, origin.URL+"/away")
	assert.Equal(t, "", otherAuth.Load(), "no token for another origin")
	otherAuth.Store("unset")
	mustGet(t, client, origin.URL+"/otherport")
	assert.Equal(t, "", otherAuth.Load(), "no token for another port")
}

func TestAllowedHostsPassOthersThroughUntouched(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var got http.Header
	var mu sync.Mutex
	stranger := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r.Header.Clone()
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "stranger's error")
	}))
	t.Cleanup(stranger.Close)
	apiURL, _ := url.Parse(srv.APIURL)
	tr := ccTransport(t, srv, oauthtransport.WithAllowedHosts("EXAMPLE.invalid", apiURL.Host))

	req, _ := http.NewRequest(http.MethodGet, strings.Replace(stranger.URL, "127.0.0.1", "localhost", 1), nil)
	req.Header.Set("Authorization", "Basic dXNlcjpwYXNz")
	resp, err := tr.Client().Do(req)
	require.NoError(t, err, "no status error for a host that is not ours")
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Equal(t, "stranger's error", string(b))
	mu.Lock()
	assert.Equal(t, "Basic dXNlcjpwYXNz", got.Get("Authorization"), "the caller's own header is left alone")
	mu.Unlock()
	assert.Zero(t, srv.TokenCalls(), "no token was even fetched")

	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(1), srv.TokenCalls())
}

type countingBase struct{ calls atomic.Int64 }

func (b *countingBase) RoundTrip(*http.Request) (*http.Response, error) {
	b.calls.Add(1)
	return nil, errors.New("must not be called")
}

func TestPlainHTTPToRemoteHostRefused(t *testing.T) {
	t.Parallel()
	src := &fakeSource{lifetime: time.Hour}
	base := &countingBase{}
	tr := newTransport(t, src, oauthtransport.WithBase(base))

	for _, u := range []string{"http://api.example.com/v1?token=x", "http://10.0.0.1:8080/", "HTTP://[2001:db8::1]/"} {
		body := &onceReader{Reader: strings.NewReader("data")}
		req, err := http.NewRequest(http.MethodPost, u, body)
		require.NoError(t, err)
		_, err = tr.RoundTrip(req)
		require.ErrorIs(t, err, oauthtransport.ErrInsecureTransport, u)
		assert.True(t, body.closed.Load(), "body closed for %s", u)
		assert.NotContains(t, err.Error(), "token=x")
	}
	assert.Zero(t, base.calls.Load(), "nothing sent")
	assert.Zero(t, src.calls.Load(), "no token fetched")

	// Loopback is allowed, and WithInsecureHTTP allows the rest.
	mb := &memBase{}
	loop := newTransport(t, src, oauthtransport.WithBase(mb))
	for _, u := range []string{"http://localhost:1/", "http://127.0.0.2/", "http://[::1]:8/"} {
		resp, err := loop.RoundTrip(httptest.NewRequest(http.MethodGet, u, nil))
		require.NoError(t, err, u)
		resp.Body.Close()
	}
	insecure := newTransport(t, src, oauthtransport.WithBase(mb), oauthtransport.WithInsecureHTTP())
	resp, err := insecure.RoundTrip(httptest.NewRequest(http.MethodGet, "http://api.example.com/", nil))
	require.NoError(t, err)
	resp.Body.Close()
}

func TestTokenEndpointRedirectToAnotherOriginNotFollowed(t *testing.T) {
	t.Parallel()
	var stolen atomic.Int64
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { stolen.Add(1) }))
	t.Cleanup(thief.Close)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, thief.URL+"/token", http.StatusPermanentRedirect)
	}))
	t.Cleanup(idp.Close)
	cfg := &oauth2.Config{ClientID: "c", ClientSecret: "s", Endpoint: oauth2.Endpoint{TokenURL: idp.URL + "/token"}}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "r"}))
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.Zero(t, stolen.Load(), "the refresh token never reached another origin")
}

func TestNoTokenInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var logs logBuffer
	var sent atomic.Value
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		sent.Store(auth)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "access_denied", "error_description": "token " + strings.TrimPrefix(auth, "Bearer ") + " lacks rights"})
	}))
	t.Cleanup(api.Close)
	tr := ccTransport(t, srv, oauthtransport.WithLogger(logs.logger()))
	mustGet(t, tr.Client(), srv.APIURL)
	tok, _ := tr.Token(context.Background())
	srv.Revoke(tok.AccessToken)
	mustGet(t, tr.Client(), srv.APIURL)
	_, err := get(t, tr.Client(), api.URL)
	require.ErrorIs(t, err, oauthtransport.ErrForbidden)

	last, _ := tr.Token(context.Background())
	for _, secret := range []string{tok.AccessToken, last.AccessToken, oauthtest.ClientSecret} {
		assert.False(t, strings.Contains(err.Error(), secret), "error text holds a secret")
		assert.False(t, strings.Contains(logs.String(), secret), "a log line holds a secret")
	}
	assert.Contains(t, err.Error(), "[REDACTED]")
	assert.Contains(t, logs.String(), "token rejected")
	assert.Contains(t, logs.String(), "sha256:")
}
