package oauthtransport_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestStatusErrors(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/forbidden":
			w.Header().Set("WWW-Authenticate", `Bearer realm="api", error="insufficient_scope", scope="write:things"`)
			w.WriteHeader(http.StatusForbidden)
		case "/limited":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/calm":
			w.WriteHeader(420)
		case "/down":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"type":"https://example.com/probs/down","title":"Down for maintenance","status":503,"detail":"back soon"}`)
		case "/busy":
			w.Header().Set("Retry-After", "3600")
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(api.Close)
	tr := ccTransport(t, srv, oauthtransport.WithRetry(oauthtransport.RetryPolicy{MaxAttempts: 1}))
	client := tr.Client()

	_, err := get(t, client, api.URL+"/forbidden?q=secret")
	require.ErrorIs(t, err, oauthtransport.ErrForbidden)
	var fe *oauthtransport.ForbiddenError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "write:things", fe.Scope)
	assert.Equal(t, "oauthtransport: GET "+api.URL+`/forbidden: 403 Forbidden: insufficient_scope (needs "write:things")`, fe.Error())

	_, err = get(t, client, api.URL+"/limited")
	var rl *oauthtransport.RateLimitError
	require.ErrorAs(t, err, &rl)
	assert.Equal(t, 120*time.Second, rl.RetryAfter)
	require.ErrorIs(t, err, oauthtransport.ErrRateLimited)

	_, err = get(t, client, api.URL+"/calm")
	require.ErrorIs(t, err, oauthtransport.ErrRateLimited, "420 is a rate limit")

	_, err = get(t, client, api.URL+"/down")
	var se *oauthtransport.ServerError
	require.ErrorAs(t, err, &se)
	require.NotNil(t, se.Problem)
	assert.Equal(t, "Down for maintenance", se.Problem.Title)
	assert.Equal(t, 503, se.Problem.Status)
	assert.Contains(t, se.Error(), "503 Service Unavailable: Down for maintenance: back soon")
	var re *oauthtransport.ResponseError
	require.ErrorAs(t, err, &re)
	var ue *url.Error
	require.ErrorAs(t, err, &ue, "http.Client wraps it")

	_, err = get(t, client, api.URL+"/busy")
	require.ErrorAs(t, err, &rl, "503 with a hint the transport would not wait for")
	assert.Equal(t, time.Hour, rl.RetryAfter)

	resp, err := get(t, client, api.URL+"/missing")
	require.NoError(t, err, "404 is a response, not a status error")
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func TestWithStatusErrorsFalseReturnsResponses(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.AlwaysReject())
	tr := ccTransport(t, srv, oauthtransport.WithStatusErrors(false))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, string(body), "invalid_token", "the body is handed back unread")
	assert.Equal(t, int64(2), srv.APICalls(), "the replay still happened")

	err = oauthtransport.ErrorFromResponse(&http.Response{StatusCode: 500, Header: http.Header{}, Body: io.NopCloser(strings.NewReader(`{"error":{"message":"boom"}}`))})
	require.ErrorIs(t, err, oauthtransport.ErrServer)
	assert.Contains(t, err.Error(), "boom")
	assert.NoError(t, oauthtransport.ErrorFromResponse(&http.Response{StatusCode: 200}))
}

func TestTokenErrors(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	cfg := srv.ClientCredentials()
	cfg.ClientSecret = "bad-secret-value"
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg))
	for range 50 {
		_, err := get(t, tr.Client(), srv.APIURL)
		require.ErrorIs(t, err, oauthtransport.ErrToken)
		var te *oauthtransport.TokenError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "invalid_client", te.Code)
		assert.Equal(t, http.StatusUnauthorized, te.StatusCode)
		assert.False(t, te.Temporary())
		assert.NotContains(t, err.Error(), "bad-secret-value")
	}
	assert.Equal(t, int64(1), srv.TokenCalls(), "a broken credential is not retried on every request")
	assert.Zero(t, srv.APICalls(), "nothing was sent without a token")
}

func TestTransientTokenFailuresAreRetried(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	srv.FailTokens(oauthtest.Failure{Status: 503}, oauthtest.Failure{Status: 500, Code: "server_error"})
	tr := ccTransport(t, srv)
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(3), srv.TokenCalls())
}

func TestLostRefreshResponseIsNotRetried(t *testing.T) {
	t.Parallel()
	// The token endpoint reads the refresh request, then the connection
	// dies: the server may have rotated the refresh token, so sending the
	// old one again could trip reuse detection. One attempt only, and the
	// grant is reported dead (no WithRotationGrace was declared).
	var calls atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(idp.Close)
	cfg := &oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{TokenURL: idp.URL, AuthStyle: oauth2.AuthStyleInParams}}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "r"}))

	body := &onceReader{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, "https://api.example.invalid/", body)
	_, err := tr.RoundTrip(req)
	var te *oauthtransport.TokenError
	require.ErrorAs(t, err, &te)
	assert.Zero(t, te.StatusCode, "no response came back")
	assert.False(t, te.Temporary())
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	assert.Contains(t, err.Error(), "answer to the refresh was lost")
	assert.Equal(t, int64(1), calls.Load(), "a refresh whose response was lost is not sent again")
	assert.True(t, body.closed.Load(), "the request body was closed")

	_, err = tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	assert.Equal(t, int64(1), calls.Load(), "nor by a later caller")
}
