package oauthtransport_test

// Hostile token endpoints, APIs and headers, over real HTTP: no secret in
// any error or log line, the IdP never hammered, every answer total.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// assertNoSecret fails if text holds any secret, or any 16-byte piece of
// one (a secret cut short still leaks). It never prints the secret.
func assertNoSecret(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		for j := 0; j+16 <= len(s) || j == 0; j += 8 {
			piece := s[j:min(j+16, len(s))]
			if strings.Contains(text, piece) {
				t.Errorf("%s holds (part of) secret #%d", what, i)
				break
			}
			if j+16 >= len(s) {
				break
			}
		}
	}
}

// idp is a token endpoint that answers every request with handle, and
// counts them.
func idp(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

const clientSecret = "client-secret-0123456789abcdef"

func ccConfig(tokenURL string) *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "c", ClientSecret: clientSecret, TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInHeader}
}

func TestTokenEndpointOverPlainHTTPIsRefused(t *testing.T) {
	t.Parallel()
	// 192.0.2.1 is TEST-NET-1: not loopback. Nothing may be dialled.
	var logs logBuffer
	rt := "refresh-token-0123456789abcdef"
	for _, src := range []oauthtransport.Source{
		oauthtransport.ClientCredentials(ccConfig("http://192.0.2.1/token")),
		oauthtransport.RefreshToken(&oauth2.Config{ClientID: "c", ClientSecret: clientSecret,
			Endpoint: oauth2.Endpoint{TokenURL: "http://192.0.2.1/token", AuthStyle: oauth2.AuthStyleInParams}}, &oauth2.Token{RefreshToken: rt}),
	} {
		tr := newTransport(t, src, oauthtransport.WithLogger(logs.logger()))
		start := time.Now()
		_, err := tr.Token(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrInsecureTransport)
		require.ErrorIs(t, err, oauthtransport.ErrToken)
		assert.NotErrorIs(t, err, oauthtransport.ErrReauthRequired, "nothing was sent, so nothing was spent")
		assert.Less(t, time.Since(start), time.Second, "refused before any connection")
		assertNoSecret(t, "the error", err.Error(), clientSecret, rt)
	}
	assertNoSecret(t, "the log", logs.String(), clientSecret, rt)

	// A client passed the x/oauth2 way keeps the refusal; its transport
	// never sees the request.
	var sent atomic.Int64
	user := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		sent.Add(1)
		return nil, errors.New("unreachable")
	})}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, user)
	_, err := oauthtransport.ClientCredentials(ccConfig("http://192.0.2.1/token")).Token(ctx, nil)
	require.ErrorIs(t, err, oauthtransport.ErrInsecureTransport)
	assert.Zero(t, sent.Load())
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestEchoedAccessTokenIsRedactedBeforeTheCut(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("L0ngT0k3n", 34)[:300]
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: long, Expiry: time.Now().Add(time.Hour)}, nil
	})
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "token " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ") + " lacks access"})
	}))
	t.Cleanup(api.Close)

	var logs logBuffer
	_, err := get(t, newTransport(t, src, oauthtransport.WithLogger(logs.logger())).Client(), api.URL)
	var fe *oauthtransport.ForbiddenError
	require.ErrorAs(t, err, &fe)
	assertNoSecret(t, "the error", err.Error(), long)
	assertNoSecret(t, "the log", logs.String(), long)
	assertNoSecret(t, "the body", string(fe.Body), long)
	assert.Contains(t, fe.Message, "[REDACTED]")

	// WithStatusErrors(false): ErrorFromResponse redacts too.
	resp, err := get(t, newTransport(t, src, oauthtransport.WithStatusErrors(false)).Client(), api.URL)
	require.NoError(t, err)
	err = oauthtransport.ErrorFromResponse(resp)
	require.ErrorAs(t, err, &fe)
	assertNoSecret(t, "ErrorFromResponse", err.Error(), long)
}

func TestTokenEndpointEchoingSecretsIsRedacted(t *testing.T) {
	t.Parallel()
	rt := "refresh-token-0123456789abcdef"
	srv, _ := idp(t, func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant",
			"error_description": "refresh token " + r.PostForm.Get("refresh_token") + " for secret " + r.PostForm.Get("client_secret") + " is revoked"})
	})
	var logs logBuffer
	cfg := &oauth2.Config{ClientID: "c", ClientSecret: clientSecret, Endpoint: oauth2.Endpoint{TokenURL: srv.URL + "/token?api_key=query-secret-123456789", AuthStyle: oauth2.AuthStyleInParams}}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: rt}), oauthtransport.WithLogger(logs.logger()))
	_, err := tr.Token(context.Background())
	var te *oauthtransport.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "invalid_grant", te.Code)
	assert.Contains(t, te.Description, "[REDACTED]")
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	assertNoSecret(t, "the RetrieveError", re.Error(), rt, clientSecret)
	assert.Nil(t, re.Response.Request, "the request, with the client's credentials, is not kept")
	for what, text := range map[string]string{"the error": err.Error(), "the log": logs.String()} {
		assertNoSecret(t, what, text, rt, clientSecret, "query-secret-123456789")
	}
}

func TestTokenURLQueryNeverShown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close() // connections are refused
	var logs logBuffer
	tr := newTransport(t, oauthtransport.ClientCredentials(ccConfig("http://user:pw-123456789012345@"+addr+"/token?api_key=query-secret-123456789#frag")),
		oauthtransport.WithLogger(logs.logger()))
	_, err = tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.Contains(t, err.Error(), addr+"/token", "the URL, without its secrets")
	for what, text := range map[string]string{"the error": err.Error(), "the log": logs.String()} {
		assertNoSecret(t, what, text, "query-secret-123456789", "pw-123456789012345", clientSecret)
		assert.NotContains(t, text, "frag", what)
	}
}

func jwtWithExp(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(fmt.Sprintf(`{"exp":%d}`, exp.Unix()))) + ".sig"
}

func TestTokenThatArrivesExpiredIsUsed(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]map[string]any{
		"negative expires_in": {"access_token": "expired-on-arrival", "token_type": "Bearer", "expires_in": -5},
		"JWT exp in the past": {"access_token": jwtWithExp(time.Now().Add(-10 * time.Minute)), "token_type": "Bearer"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, calls := idp(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, 200, body) })
			api := newEchoAPI(t, func(int) bool { return false })
			var logs logBuffer
			tr := newTransport(t, oauthtransport.ClientCredentials(ccConfig(srv.URL)), oauthtransport.WithLogger(logs.logger()))
			for range 20 {
				mustGet(t, tr.Client(), api.srv.URL)
			}
			assert.LessOrEqual(t, calls.Load(), int64(3), "not one fetch per request")
			assert.Contains(t, logs.String(), "arrived already expired")
		})
	}
}

func TestTokenEndpointRetryAfterIsSharedByAllWaiters(t *testing.T) {
	t.Parallel()
	srv, calls := idp(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "30")
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"error": "slow_down"})
	})
	tr := newTransport(t, oauthtransport.ClientCredentials(ccConfig(srv.URL)))
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			_, err := get(t, tr.Client(), "http://127.0.0.1:1/never-sent")
			var te *oauthtransport.TokenError
			if assert.ErrorAs(t, err, &te) {
				assert.Equal(t, 30*time.Second, te.RetryAfter)
				assert.True(t, te.Temporary())
			}
		})
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	assert.Equal(t, int64(1), calls.Load(), "the hint holds every caller")
}

func TestAPIRejectingEveryTokenIsNotHammered(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.AlwaysReject())
	tr := ccTransport(t, srv)
	for range 30 {
		_, err := get(t, tr.Client(), srv.APIURL)
		require.ErrorIs(t, err, oauthtransport.ErrUnauthorized)
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			_, err := get(t, tr.Client(), srv.APIURL)
			assert.ErrorIs(t, err, oauthtransport.ErrUnauthorized)
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, srv.TokenCalls(), int64(3), "renewals of tokens never accepted are spaced out")

	// A token that was accepted and then revoked is still replaced at once.
	ok := oauthtest.NewServer(t)
	tr = ccTransport(t, ok)
	for range 5 {
		mustRotate(t, ok, tr)
	}
	assert.Equal(t, int64(6), ok.TokenCalls())
}

// TestOnlyTerminalCodesCoolDownForLong runs in a bubble; the Source
// answers as a token endpoint would (a RetrieveError with the status and
// code), since a bubble's clock cannot wait on a socket.
func TestOnlyTerminalCodesCoolDownForLong(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var code atomic.Value
		code.Store("")
		var calls atomic.Int64
		src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			calls.Add(1)
			return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}},
				ErrorCode: code.Load().(string), Body: []byte("<html>bad gateway page</html>")}
		})
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
		_, err := tr.Token(context.Background())
		var te *oauthtransport.TokenError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, 400, te.StatusCode)
		time.Sleep(700 * time.Millisecond) // a transient cool-down (500 to 625 ms) has passed
		_, _ = tr.Token(context.Background())
		assert.Equal(t, int64(2), calls.Load(), "a 400 without a terminal code is asked again soon")

		code.Store("invalid_client")
		time.Sleep(1500 * time.Millisecond) // past the second transient cool-down
		_, _ = tr.Token(context.Background())
		require.Equal(t, int64(3), calls.Load())
		time.Sleep(700 * time.Millisecond)
		_, err = tr.Token(context.Background())
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "invalid_client", te.Code)
		assert.Equal(t, int64(3), calls.Load(), "a terminal code holds longer")
		require.NoError(t, tr.Close())
	})
}

func TestTokenAHeaderCannotCarryIsRefused(t *testing.T) {
	t.Parallel()
	srv, _ := idp(t, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, 200, map[string]any{"access_token": "abc\r\nX-Injected: 1", "token_type": "Bearer", "expires_in": 3600})
	})
	api := newEchoAPI(t, func(int) bool { return false })
	var logs logBuffer
	_, err := get(t, newTransport(t, oauthtransport.ClientCredentials(ccConfig(srv.URL)), oauthtransport.WithLogger(logs.logger())).Client(), api.srv.URL)
	var te *oauthtransport.TokenError
	require.ErrorAs(t, err, &te)
	assert.Contains(t, err.Error(), "cannot be sent in an Authorization header")
	assert.NotContains(t, err.Error(), "X-Injected")
	assertNoSecret(t, "the log", logs.String(), clientSecret)
	assert.NotContains(t, logs.String(), "X-Injected")
	assert.Empty(t, api.received(), "nothing sent")
}

func TestBearerChallengeAfterManyOthersIsSeen(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var calls atomic.Int64
	others := make([]string, 40)
	for i := range others {
		others[i] = fmt.Sprintf(`Scheme%d realm="r%d"`, i, i)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("WWW-Authenticate", strings.Join(others, ", ")+`, Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(api.Close)
	mustGet(t, ccTransport(t, srv).Client(), api.URL)
	assert.Equal(t, int64(2), calls.Load(), "replayed after the Bearer challenge")
	assert.Equal(t, int64(2), srv.TokenCalls())
}

func TestLongAndMillisecondHintsFailFast(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.Header{
		"Retry-After of 8 days":       {"Retry-After": {"691200"}},
		"X-RateLimit-Reset epoch ms":  {"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {fmt.Sprint(time.Now().Add(time.Hour).UnixMilli())}},
		"X-RateLimit-Reset fractions": {"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {fmt.Sprintf("%d.5", time.Now().Add(time.Hour).Unix())}},
	} {
		api := newQuotaAPI(t, nil, quotaReply{status: 429, header: h})
		_, err := get(t, quotaTransport(t, oauthtransport.RetryPolicy{}).Client(), api.srv.URL)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl, name)
		assert.Greater(t, rl.RetryAfter, 59*time.Minute, name)
		assert.Equal(t, 1, rl.Attempts, name)
	}
}

func TestBaseReturningNothingIsAnError(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, &fakeSource{lifetime: time.Hour},
		oauthtransport.WithBase(roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, nil })))
	_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "neither a response nor an error")
}

func TestStalledBodiesNeverBlock(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		status := http.StatusForbidden
		if r.URL.Path == "/401" && calls.Add(1) == 1 {
			status = http.StatusUnauthorized
		} else if r.URL.Path == "/401" {
			status = http.StatusOK
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"error":`)
		w.(http.Flusher).Flush()
		select { // the rest of the body stalls
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, `{"errors":[{"reason":"forbidden"}]}}`)
	}))
	t.Cleanup(func() {
		close(release)
		api.Close()
	})
	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv, oauthtransport.WithStatusErrors(false))

	start := time.Now()
	resp, err := get(t, tr.Client(), api.URL+"/403")
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Less(t, time.Since(start), 3*time.Second, "the 403's stalled body did not hold RoundTrip")
	resp.Body.Close()

	start = time.Now()
	resp, err = get(t, tr.Client(), api.URL+"/401")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "replayed")
	assert.Less(t, time.Since(start), 3*time.Second, "the 401's stalled body did not delay the replay")
	resp.Body.Close()
}

func TestNewFailsOnAMisconfiguredStore(t *testing.T) {
	t.Parallel()
	_, err := oauthtransport.New(&fakeSource{}, oauthtransport.WithStore(store.Encrypted(store.NewMemory(), []byte("short")), "k"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "32-byte")
}

func TestCustomSourceEchoingTheStoredRefreshTokenIsRedacted(t *testing.T) {
	t.Parallel()
	// The refresh token comes from the store, not from anything this process
	// fetched; a custom Source's errors quote it (5xx first, so the retry is
	// logged too).
	rt := "stored-refresh-token-0123456789"
	mem := store.NewMemory()
	require.NoError(t, mem.Save(context.Background(), "k", &oauth2.Token{AccessToken: "stored-access-token-0123456789",
		RefreshToken: rt, Expiry: time.Now().Add(-time.Hour)}))
	src := oauthtransport.SourceFunc(func(_ context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}, ErrorCode: "temporarily_unavailable",
			ErrorDescription: "cannot refresh " + cur.RefreshToken}
	})
	var logs logBuffer
	tr := newTransport(t, src, oauthtransport.WithStore(mem, "k"), oauthtransport.WithLogger(logs.logger()))
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assertNoSecret(t, "the error", err.Error(), rt)
	assertNoSecret(t, "the log", logs.String(), rt)
	assert.Contains(t, logs.String(), "token fetch failed; retrying")
}
