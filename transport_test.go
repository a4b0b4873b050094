package oauthtransport_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

func ccTransport(t testing.TB, srv *oauthtest.Server, opts ...oauthtransport.Option) *oauthtransport.Transport {
	return newTransport(t, oauthtransport.ClientCredentials(srv.ClientCredentials()), opts...)
}

func TestConcurrentFirstRequestsFetchOnce(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.TokenDelay(50*time.Millisecond))
	tr := ccTransport(t, srv)
	client := tr.Client()

	const n = 500
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { mustGet(t, client, srv.APIURL+"things") })
	}
	wg.Wait()
	assert.Equal(t, int64(1), srv.TokenCalls(), "token endpoint calls")
	assert.Equal(t, int64(n), srv.APICalls(), "API calls")
	assert.Zero(t, srv.APIRejected(), "API rejections")
}

func TestRevokedTokenReplacedOnceForAllInFlight(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv)
	client := tr.Client()
	mustGet(t, client, srv.APIURL)
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	require.True(t, srv.Revoke(tok.AccessToken))

	const n = 100
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { mustGet(t, client, srv.APIURL+"after-revoke") })
	}
	wg.Wait()
	assert.Equal(t, int64(2), srv.TokenCalls(), "one extra fetch for all in-flight requests")
	st := tr.Stats()
	assert.Equal(t, int64(1), st.Invalidations)
	assert.LessOrEqual(t, st.Replays, int64(n))
	assert.Equal(t, srv.APIRejected(), st.Replays, "every rejected request replayed exactly once")
}

func TestAlwaysRejectReplaysExactlyOnce(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.AlwaysReject())
	tr := ccTransport(t, srv)

	_, err := get(t, tr.Client(), srv.APIURL+"x?secret=1")
	require.ErrorIs(t, err, oauthtransport.ErrUnauthorized)
	var ue *oauthtransport.UnauthorizedError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, 2, ue.Attempts)
	assert.Equal(t, "invalid_token", ue.Challenge.Error)
	assert.Equal(t, "api", ue.Challenge.Realm)
	var re *oauthtransport.ResponseError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, http.StatusUnauthorized, re.StatusCode)
	assert.Equal(t, int64(2), srv.TokenCalls(), "first token and one replacement")
	assert.Equal(t, int64(2), srv.APICalls(), "the request and one replay")
	assert.Contains(t, err.Error(), "GET "+srv.APIURL+"x: 401 Unauthorized")
	assert.NotContains(t, ue.Error(), "secret=1")
}

func TestChallengeForAnotherSchemeIsFinal(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="legacy"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(api.Close)
	tr := ccTransport(t, srv)

	_, err := get(t, tr.Client(), api.URL)
	var ue *oauthtransport.UnauthorizedError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, "Basic", ue.Challenge.Scheme)
	assert.Equal(t, 1, ue.Attempts)
	assert.Equal(t, int64(1), calls.Load(), "no replay")
	assert.Equal(t, int64(1), srv.TokenCalls(), "the token was not thrown away")
}

// echoAPI records every body the API received, answering 401 to the first
// request only.
type echoAPI struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newEchoAPI(t *testing.T, reject func(n int) bool) *echoAPI {
	e := &echoAPI{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.bodies = append(e.bodies, string(b))
		n := len(e.bodies)
		e.mu.Unlock()
		if reject(n) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *echoAPI) received() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.bodies...)
}

func TestReplayResendsBodyByteForByte(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	api := newEchoAPI(t, func(n int) bool { return n == 1 })
	tr := ccTransport(t, srv)

	payload := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 10_000)
	resp, err := tr.Client().Post(api.srv.URL, "application/octet-stream", bytes.NewReader(payload))
	require.NoError(t, err)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.True(t, bytes.Equal(payload, got), "echoed body differs from what was sent")
	bodies := api.received()
	require.Len(t, bodies, 2)
	assert.True(t, bodies[0] == string(payload) && bodies[1] == string(payload), "the replay must send the same bytes")
	assert.Equal(t, int64(2), srv.TokenCalls())
}

type onceReader struct {
	io.Reader
	closed atomic.Bool
}

func (r *onceReader) Close() error { r.closed.Store(true); return nil }

func TestUnrewindableBodyIsNotSentTwice(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	api := newEchoAPI(t, func(n int) bool { return n == 1 })
	tr := ccTransport(t, srv)

	body := &onceReader{Reader: strings.NewReader("pay once")}
	req, err := http.NewRequest(http.MethodPost, api.srv.URL, body)
	require.NoError(t, err)
	require.Nil(t, req.GetBody)
	_, err = tr.Client().Do(req)
	require.ErrorIs(t, err, oauthtransport.ErrBodyNotRewindable)
	var ue *oauthtransport.UnauthorizedError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, 1, ue.Attempts)
	assert.Equal(t, []string{"pay once"}, api.received(), "the body went out exactly once")
	assert.True(t, body.closed.Load(), "the request body was closed")

	// The rejected token was dropped: the next request gets a new one.
	mustGet(t, tr.Client(), api.srv.URL)
	assert.Equal(t, int64(2), srv.TokenCalls())
}

func TestRefreshTokenRotationIsSaved(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	first := srv.IssueRefreshToken()
	st := newMemoryStore()
	tr := newTransport(t, oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: first}),
		oauthtransport.WithStore(st, "user-1"))
	mustGet(t, tr.Client(), srv.APIURL)
	saved, err := st.Load(context.Background(), "user-1")
	require.NoError(t, err)
	assert.True(t, saved.RefreshToken != "" && saved.RefreshToken != first, "the rotated refresh token was saved")

	// Revoke: the transport refreshes with the rotated token, never the
	// first one (which would trip reuse detection and kill the family).
	tok, _ := tr.Token(context.Background())
	srv.Revoke(tok.AccessToken)
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(2), srv.TokenCalls())
	again, _ := st.Load(context.Background(), "user-1")
	assert.True(t, again.RefreshToken != saved.RefreshToken, "rotated again")
}

func TestRefreshTokenKeptWhenResponseHasNone(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		if r.PostForm.Get("refresh_token") != "keep-me" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"a","token_type":"bearer","expires_in":"3600"}`)
	}))
	t.Cleanup(idp.Close)
	cfg := &oauth2.Config{ClientID: "c", Endpoint: oauth2.Endpoint{TokenURL: idp.URL, AuthStyle: oauth2.AuthStyleInParams}}
	st := newMemoryStore()
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "keep-me"}), oauthtransport.WithStore(st, "k"))
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now().Add(time.Hour), tok.Expiry, time.Minute, "expires_in sent as a string")
	saved, _ := st.Load(context.Background(), "k")
	assert.True(t, saved.RefreshToken == "keep-me", "old refresh token kept")
}

func TestTokenReturnsACopy(t *testing.T) {
	t.Parallel()
	src := &fakeSource{lifetime: time.Hour}
	base := &memBase{}
	tr := newTransport(t, src, oauthtransport.WithBase(base))
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	tok.AccessToken = "mutated"
	resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
	require.NoError(t, err)
	resp.Body.Close()
	assert.True(t, base.lastAuth() == "Bearer tok-1", "the base received another Authorization value")
}

func TestCallerRequestNotModified(t *testing.T) {
	t.Parallel()
	base := &memBase{}
	tr := newTransport(t, &fakeSource{lifetime: time.Hour}, oauthtransport.WithBase(base))
	req := httptest.NewRequest(http.MethodGet, "https://api.example/", nil)
	req.Header.Set("X-Keep", "1")
	req.Header["authorization"] = []string{"lower-case stale value"}
	before := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, before, req.Header)
	assert.Same(t, req, resp.Request, "the response points at the caller's request, not the copy holding the token")
	assert.True(t, base.lastAuth() == "Bearer tok-1", "the base received another Authorization value")
}

func TestWithAuthorization(t *testing.T) {
	t.Parallel()
	base := &memBase{}
	src := &fakeSource{lifetime: time.Hour}
	var calls atomic.Int64
	tr := newTransport(t, src, oauthtransport.WithBase(base), oauthtransport.WithAuthorization(func(tok *oauth2.Token) string {
		calls.Add(1)
		return "token " + tok.AccessToken
	}))
	for range 10 {
		resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
		require.NoError(t, err)
		resp.Body.Close()
	}
	assert.True(t, base.lastAuth() == "token tok-1", "the base received another Authorization value")
	assert.Equal(t, int64(1), calls.Load(), "computed once per token")
}

func TestCancelledWaiterLeavesRefreshRunning(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.TokenDelay(time.Second))
	tr := ccTransport(t, srv)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.APIURL, nil)
	start := time.Now()
	_, err := tr.Client().Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 800*time.Millisecond, "the caller left before the token endpoint answered")

	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(1), srv.TokenCalls(), "the refresh the cancelled caller started served the next one")
	assert.Zero(t, srv.APIRejected())
}

func TestCloseIsIdempotentAndTransportStillWorks(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(srv.ClientCredentials()))
	require.NoError(t, err)
	mustGet(t, tr.Client(), srv.APIURL)
	require.NoError(t, tr.Close())
	require.NoError(t, tr.Close())
	tok, _ := tr.Token(context.Background())
	srv.Revoke(tok.AccessToken)
	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(2), srv.TokenCalls(), "refreshed on demand after Close")
}

func TestInvalidOptions(t *testing.T) {
	t.Parallel()
	src := &fakeSource{}
	for name, opt := range map[string]oauthtransport.Option{
		"nil base":       oauthtransport.WithBase(nil),
		"nil store":      oauthtransport.WithStore(nil, "k"),
		"empty key":      oauthtransport.WithStore(newMemoryStore(), ""),
		"negative skew":  oauthtransport.WithExpirySkew(-time.Second),
		"negative win":   oauthtransport.WithRefreshWindow(-time.Second),
		"url as host":    oauthtransport.WithAllowedHosts("https://api.example.com"),
		"no hosts":       oauthtransport.WithAllowedHosts(),
		"attempts":       oauthtransport.WithRetry(oauthtransport.RetryPolicy{MaxAttempts: -1}),
		"nil logger":     oauthtransport.WithLogger(nil),
		"nil authorizer": oauthtransport.WithAuthorization(nil),
	} {
		_, err := oauthtransport.New(src, opt)
		assert.Error(t, err, name)
	}
	_, err := oauthtransport.New(nil)
	assert.Error(t, err)
}
