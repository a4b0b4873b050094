package oauthtransport_test

// Rate limits as Yandex Market and Google APIs document them, over real
// HTTP: what is retried, after how long, and the typed error.

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// reply is one scripted answer of quotaAPI.
type quotaReply struct {
	status int
	body   string
	header http.Header
}

// quotaAPI answers with its script, one reply per request, then 200; it
// records when each request arrived. Every answer carries extra, as
// Yandex sends its resource-limit headers on every response.
type quotaAPI struct {
	mu     sync.Mutex
	script []quotaReply
	extra  http.Header
	times  []time.Time
	srv    *httptest.Server
}

func newQuotaAPI(t *testing.T, extra http.Header, script ...quotaReply) *quotaAPI {
	a := &quotaAPI{script: script, extra: extra}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		a.mu.Lock()
		a.times = append(a.times, time.Now())
		rep := quotaReply{status: http.StatusOK, body: `{"status":"OK"}`}
		if len(a.script) > 0 {
			rep, a.script = a.script[0], a.script[1:]
		}
		a.mu.Unlock()
		for k, v := range a.extra {
			w.Header()[k] = v
		}
		for k, v := range rep.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.status)
		_, _ = io.WriteString(w, rep.body)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *quotaAPI) requests() []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.times...)
}

func quotaTransport(t *testing.T, p oauthtransport.RetryPolicy) *oauthtransport.Transport {
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "quota-test-access-token", Expiry: time.Now().Add(time.Hour)}, nil
	})
	return newTransport(t, src, oauthtransport.WithRetry(p))
}

// yandexQuota is what Yandex Market sends on every response.
func yandexQuota(remaining string, until time.Duration) http.Header {
	return http.Header{
		"X-Ratelimit-Resource-Limit":     {"10000"},
		"X-Ratelimit-Resource-Remaining": {remaining},
		"X-Ratelimit-Resource-Until":     {time.Now().Add(until).UTC().Format(http.TimeFormat)},
	}
}

func TestYandexResourceLimitHeaders(t *testing.T) {
	t.Parallel()
	fast := oauthtransport.RetryPolicy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}
	parallel := quotaReply{status: 420, body: `{"status":"ERROR","errors":[{"code":"HIT_RATE_LIMIT","message":"Hit rate limit of 4 parallel requests for campaignId 12345"}]}`}

	t.Run("quota left: a 420 for parallel requests is a short backoff", func(t *testing.T) {
		t.Parallel()
		api := newQuotaAPI(t, yandexQuota("9000", 6*time.Hour), parallel)
		resp, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
		require.NoError(t, err)
		resp.Body.Close()
		got := api.requests()
		require.Len(t, got, 2)
		wait := got[1].Sub(got[0])
		assert.GreaterOrEqual(t, wait, 50*time.Millisecond, "never before the nominal step")
		assert.Less(t, wait, 5*time.Second, "not the quota window")
	})

	t.Run("quota left: a 503 is retried as any 503", func(t *testing.T) {
		t.Parallel()
		unavailable := quotaReply{status: 503, body: `{"status":"ERROR","errors":[{"code":"SERVICE_UNAVAILABLE","message":"Service temporarily unavailable"}]}`}
		api := newQuotaAPI(t, yandexQuota("9000", 6*time.Hour), unavailable, unavailable, unavailable)
		_, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
		var se *oauthtransport.ServerError
		require.ErrorAs(t, err, &se, "a plain 503, not a rate limit")
		assert.Equal(t, 3, se.Attempts)
		assert.Len(t, api.requests(), 3)
	})

	t.Run("quota spent: wait for Until, which is too long: fail fast", func(t *testing.T) {
		t.Parallel()
		spent := yandexQuota("0", 6*time.Hour)
		api := newQuotaAPI(t, spent, quotaReply{status: 420, body: `{"status":"ERROR","errors":[{"code":"HIT_RATE_LIMIT","message":"Hit rate limit of 10000 requests per day"}]}`})
		start := time.Now()
		_, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.Less(t, time.Since(start), 2*time.Second, "no sleeping")
		assert.InDelta(t, (6 * time.Hour).Seconds(), rl.RetryAfter.Seconds(), 5)
		assert.Equal(t, []int{10000, 0}, []int{rl.Limit, rl.Remaining})
		assert.InDelta(t, (6 * time.Hour).Seconds(), rl.Reset.Seconds(), 5)
		assert.Equal(t, 1, rl.Attempts)
	})

	t.Run("a 420 naming the resource limit waits for Until", func(t *testing.T) {
		t.Parallel()
		api := newQuotaAPI(t, http.Header{"X-Ratelimit-Resource-Until": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}},
			quotaReply{status: 420, body: `Hit rate limit for resource /campaigns/{campaignId}/offers`})
		_, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.InDelta(t, time.Hour.Seconds(), rl.RetryAfter.Seconds(), 5)
		assert.Len(t, api.requests(), 1)
	})

	t.Run("quota fields on a final 420", func(t *testing.T) {
		t.Parallel()
		api := newQuotaAPI(t, yandexQuota("17", 2*time.Hour), parallel, parallel, parallel)
		_, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, []int{10000, 17, 3}, []int{rl.Limit, rl.Remaining, rl.Attempts})
		assert.Zero(t, rl.RetryAfter, "no hint: the quota is not spent")
		assert.Contains(t, err.Error(), "Hit rate limit of 4 parallel requests")
	})
}

func TestGoogleRateLimitBodies(t *testing.T) {
	t.Parallel()
	fast := oauthtransport.RetryPolicy{InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second}
	for _, tt := range []struct {
		name string
		rep  quotaReply
	}{
		{"403 rateLimitExceeded", quotaReply{status: 403, body: `{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"message":"Rate Limit Exceeded","domain":"usageLimits","reason":"rateLimitExceeded"}]}}`}},
		{"403 userRateLimitExceeded", quotaReply{status: 403, body: `{"error":{"code":403,"message":"User Rate Limit Exceeded","errors":[{"message":"User Rate Limit Exceeded","domain":"usageLimits","reason":"userRateLimitExceeded"}]}}`}},
		{"429 RESOURCE_EXHAUSTED", quotaReply{status: 429, body: `{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newQuotaAPI(t, nil, tt.rep, tt.rep)
			resp, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
			require.NoError(t, err, "retried until it passed")
			resp.Body.Close()
			got := api.requests()
			require.Len(t, got, 3)
			assert.GreaterOrEqual(t, got[1].Sub(got[0]), 50*time.Millisecond, "the first step")
			assert.GreaterOrEqual(t, got[2].Sub(got[1]), 100*time.Millisecond, "the second step, doubled")

			api = newQuotaAPI(t, nil, tt.rep, tt.rep, tt.rep)
			_, err = get(t, quotaTransport(t, fast).Client(), api.srv.URL)
			var rl *oauthtransport.RateLimitError
			require.ErrorAs(t, err, &rl)
			assert.Equal(t, 3, rl.Attempts)
		})
	}
}

func TestGitHubAndGoogleLimitsSentAs403(t *testing.T) {
	t.Parallel()
	fast := oauthtransport.RetryPolicy{InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	for _, tt := range []struct {
		name    string
		rep     quotaReply
		retried bool
	}{
		{"GitHub secondary limit, Retry-After", quotaReply{status: 403, header: http.Header{"Retry-After": {"0"}},
			body: `{"message":"You have exceeded a secondary rate limit.","documentation_url":"https://docs.github.com/rest"}`}, true},
		{"GitHub secondary limit, the documented message", quotaReply{status: 403,
			body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`}, true},
		{"GitHub abuse detection (older wording)", quotaReply{status: 403, body: `{"message":"You have triggered an abuse detection mechanism."}`}, true},
		{"Google quotaExceeded", quotaReply{status: 403, body: `{"error":{"code":403,"message":"Quota exceeded","errors":[{"domain":"usageLimits","reason":"quotaExceeded"}]}}`}, true},
		{"Google dailyLimitExceeded", quotaReply{status: 403, body: `{"error":{"code":403,"message":"Daily Limit Exceeded","errors":[{"domain":"usageLimits","reason":"dailyLimitExceeded"}]}}`}, false},
		{"a plain 403", quotaReply{status: 403, body: `{"message":"Must have admin rights to Repository."}`}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			api := newQuotaAPI(t, nil, tt.rep, tt.rep, tt.rep)
			_, err := get(t, quotaTransport(t, fast).Client(), api.srv.URL)
			if tt.rep.body == `{"message":"Must have admin rights to Repository."}` {
				require.ErrorIs(t, err, oauthtransport.ErrForbidden)
				assert.Len(t, api.requests(), 1)
				return
			}
			var rl *oauthtransport.RateLimitError
			require.ErrorAs(t, err, &rl)
			if tt.retried {
				assert.Equal(t, 3, rl.Attempts, "retried within MaxAttempts")
			} else {
				assert.Equal(t, 1, rl.Attempts, "not retried: the quota is gone for the day")
			}
		})
	}
}

// TestLongWaitIsLoggedAtInfo runs in a bubble: the 2 s the server asks
// for pass at once, over an in-memory base that answers 429 once.
func TestLongWaitIsLoggedAtInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sends atomic.Int64
		base := roundTripFunc(func(req *http.Request) (*http.Response, error) {
			resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}
			if sends.Add(1) == 1 {
				resp.StatusCode, resp.Header = http.StatusTooManyRequests, http.Header{"Retry-After": {"2"}}
			}
			return resp, nil
		})
		var logs logBuffer
		src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			return &oauth2.Token{AccessToken: "long-wait-token-value", Expiry: time.Now().Add(time.Hour)}, nil
		})
		tr := newTransport(t, src, oauthtransport.WithLogger(logs.logger()), oauthtransport.WithBase(base))
		start := time.Now()
		resp, err := get(t, tr.Client(), "https://api.example/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "the server's hint was waited for")
		assert.Equal(t, int64(2), sends.Load())
		assert.Contains(t, logs.String(), `"level":"INFO","msg":"oauthtransport: retrying"`)
		assert.Contains(t, logs.String(), `"hint_header":"Retry-After: 2"`)
		require.NoError(t, tr.Close())
	})
}
