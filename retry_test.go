package oauthtransport_test

import (
	"bytes"
	"context"
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

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// scripted is an in-memory base that answers from a script, then 200s.
type scripted struct {
	mu     sync.Mutex
	script []reply
	calls  int
	bodies []string
}

type reply struct {
	status int
	header http.Header
	body   string
	err    error
}

func (s *scripted) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		req.Body.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.bodies = append(s.bodies, string(body))
	r := reply{status: http.StatusOK}
	if len(s.script) > 0 {
		r = s.script[0]
		if len(s.script) > 1 {
			s.script = s.script[1:]
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	h := r.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	return &http.Response{StatusCode: r.status, Header: h, Body: io.NopCloser(strings.NewReader(r.body)), Request: req}, nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func then(rs ...reply) []reply { return append(rs, reply{status: http.StatusOK}) }

func retryTransport(t *testing.T, base http.RoundTripper, p oauthtransport.RetryPolicy) *oauthtransport.Transport {
	return newTransport(t, &fakeSource{lifetime: time.Hour}, oauthtransport.WithBase(base), oauthtransport.WithRetry(p))
}

func send(tr *oauthtransport.Transport, ctx context.Context, method string, body io.Reader, header ...string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "https://api.example/v1/things?secret=s", body)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func TestRetriedStatuses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, code := range []int{408, 429, 420, 500, 502, 503, 504} {
			base := &scripted{script: then(reply{status: code})}
			tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
			_, err := send(tr, context.Background(), http.MethodGet, nil)
			require.NoError(t, err, "%d", code)
			assert.Equal(t, 2, base.count(), "%d is retried", code)
		}
		for _, code := range []int{400, 404, 409, 501, 505} {
			base := &scripted{script: then(reply{status: code})}
			tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
			_, _ = send(tr, context.Background(), http.MethodGet, nil)
			assert.Equal(t, 1, base.count(), "%d is not retried", code)
		}
	})
}

func TestRetryByMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		retryAfter := http.Header{"Retry-After": {"1"}}
		tests := []struct {
			name    string
			policy  oauthtransport.RetryPolicy
			method  string
			header  []string
			reply   reply
			retried bool
		}{
			{"PUT 500", oauthtransport.RetryPolicy{}, http.MethodPut, nil, reply{status: 500}, true},
			{"DELETE 502", oauthtransport.RetryPolicy{}, http.MethodDelete, nil, reply{status: 502}, true},
			{"POST 500", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{status: 500}, false},
			{"PATCH 504", oauthtransport.RetryPolicy{}, http.MethodPatch, nil, reply{status: 504}, false},
			{"POST 500 with key", oauthtransport.RetryPolicy{}, http.MethodPost, []string{"Idempotency-Key", "k1"}, reply{status: 500}, true},
			{"POST 500 by policy", oauthtransport.RetryPolicy{RetryNonIdempotent: true}, http.MethodPost, nil, reply{status: 500}, true},
			{"POST 429", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{status: 429}, true},
			{"POST 420", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{status: 420}, true},
			{"POST 503 with hint", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{status: 503, header: retryAfter}, true},
			{"POST 503 without", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{status: 503}, false},
			{"POST reset", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{err: syscallErr("read", "connection reset by peer")}, false},
			{"GET reset", oauthtransport.RetryPolicy{}, http.MethodGet, nil, reply{err: syscallErr("read", "connection reset by peer")}, true},
			{"POST refused", oauthtransport.RetryPolicy{}, http.MethodPost, nil, reply{err: syscallErr("dial", "connection refused")}, true},
			{"GET cancelled", oauthtransport.RetryPolicy{}, http.MethodGet, nil, reply{err: context.Canceled}, false},
			{"GET, one attempt", oauthtransport.RetryPolicy{MaxAttempts: 1}, http.MethodGet, nil, reply{status: 503}, false},
		}
		for _, tt := range tests {
			base := &scripted{script: then(tt.reply)}
			tr := retryTransport(t, base, tt.policy)
			_, err := send(tr, context.Background(), tt.method, strings.NewReader("x"), tt.header...)
			want := 1
			if tt.retried {
				want = 2
				assert.NoError(t, err, tt.name)
			} else {
				assert.Error(t, err, tt.name)
			}
			assert.Equal(t, want, base.count(), tt.name)
		}
	})
}

func syscallErr(op, msg string) error {
	return &net.OpError{Op: op, Net: "tcp", Err: fakeErrno(msg)}
}

type fakeErrno string

func (e fakeErrno) Error() string { return string(e) }
func (e fakeErrno) Is(target error) bool {
	return strings.Contains(string(e), "reset") && target.Error() == "connection reset by peer"
}

func TestRateLimit403IsRetriedThenRateLimitError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		github := reply{status: 403, header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Limit": {"60"}, "X-Ratelimit-Reset-After": {"2"}}}
		google := reply{status: 403, header: http.Header{"Content-Type": {"application/json"}},
			body: `{"error":{"code":403,"message":"Rate Limit Exceeded","errors":[{"reason":"rateLimitExceeded"}]}}`}
		for name, r := range map[string]reply{"github": github, "google": google} {
			base := &scripted{script: []reply{r}}
			tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
			_, err := send(tr, context.Background(), http.MethodGet, nil)
			var rl *oauthtransport.RateLimitError
			require.ErrorAs(t, err, &rl, name)
			assert.False(t, errors.Is(err, oauthtransport.ErrForbidden), name)
			assert.Equal(t, 3, rl.Attempts, name)
			assert.Equal(t, 3, base.count(), name)
		}
		base := &scripted{script: []reply{github}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{MaxAttempts: 1})
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, 2*time.Second, rl.RetryAfter)
		assert.Equal(t, 60, rl.Limit)
		assert.Equal(t, 0, rl.Remaining)

		// A plain 403 is permission, not rate: not retried.
		plain := &scripted{script: []reply{{status: 403, body: `{"error":{"errors":[{"reason":"forbidden"}]}}`}}}
		tr = retryTransport(t, plain, oauthtransport.RetryPolicy{})
		_, err = send(tr, context.Background(), http.MethodGet, nil)
		require.ErrorIs(t, err, oauthtransport.ErrForbidden)
		assert.Equal(t, 1, plain.count())
	})
}

func TestServerHintWinsOverBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: then(reply{status: 429, header: http.Header{"Retry-After": {"7"}}})}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond})
		start := time.Now()
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		require.NoError(t, err)
		assert.Equal(t, 7*time.Second, time.Since(start), "waited exactly the server's hint")
	})
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: []reply{{status: 503}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{MaxAttempts: 5, InitialBackoff: time.Second, MaxBackoff: 3 * time.Second})
		start := time.Now()
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		var se *oauthtransport.ServerError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 5, se.Attempts)
		// Four waits: steps of 1, 2, 3 (capped) and 3 s, each plus up to
		// 1 s of jitter, never less than the step.
		assert.GreaterOrEqual(t, time.Since(start), 9*time.Second)
		assert.Less(t, time.Since(start), 13*time.Second)
	})
}

func TestLongHintFailsFast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Longer than MaxRetryAfter.
		base := &scripted{script: []reply{{status: 429, header: http.Header{"Retry-After": {"120"}}}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
		start := time.Now()
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		var rl *oauthtransport.RateLimitError
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, 2*time.Minute, rl.RetryAfter)
		assert.Equal(t, 1, rl.Attempts)
		assert.Zero(t, time.Since(start), "no sleeping")

		// Longer than the caller's deadline allows.
		base = &scripted{script: []reply{{status: 429, header: http.Header{"Retry-After": {"10"}}}}}
		tr = retryTransport(t, base, oauthtransport.RetryPolicy{})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = send(tr, ctx, http.MethodGet, nil)
		require.ErrorAs(t, err, &rl)
		assert.Equal(t, 10*time.Second, rl.RetryAfter)
		assert.Zero(t, time.Since(start), "no sleeping")
		assert.Equal(t, 1, base.count())
	})
}

func TestCancelDuringRetryWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: []reply{{status: 503, header: http.Header{"Retry-After": {"30"}}}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Second, cancel)
		start := time.Now()
		_, err := send(tr, ctx, http.MethodGet, nil)
		require.ErrorIs(t, err, context.Canceled)
		assert.Equal(t, time.Second, time.Since(start))
		assert.Equal(t, 1, base.count())
	})
}

func TestUnreplayableBodyIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: []reply{{status: 503}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{})
		req, _ := http.NewRequest(http.MethodPut, "https://api.example/", io.NopCloser(strings.NewReader("once")))
		_, err := tr.RoundTrip(req)
		require.ErrorIs(t, err, oauthtransport.ErrBodyNotRewindable)
		require.ErrorIs(t, err, oauthtransport.ErrServer)
		assert.Contains(t, err.Error(), "cannot be replayed")
		assert.Equal(t, 1, base.count())
	})
}

func TestReplayAfter401DoesNotCountAsRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &memBase{}
		base.rejectToken("tok-1")
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{MaxAttempts: 1})
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		require.NoError(t, err)
		assert.Equal(t, int64(2), base.calls.Load())
	})
}

func TestRetryBudgetStopsOutageAmplification(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: []reply{{status: 503}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{InitialBackoff: 10 * time.Millisecond})
		for range 20 { // warm-up
			_, _ = send(tr, context.Background(), http.MethodGet, nil)
		}
		before := base.count()
		const calls = 200
		for range calls {
			_, err := send(tr, context.Background(), http.MethodGet, nil)
			require.ErrorIs(t, err, oauthtransport.ErrServer)
		}
		perCall := float64(base.count()-before) / calls
		t.Logf("requests per call during a total outage: %.2f", perCall)
		assert.LessOrEqual(t, perCall, 1.2)

		// Once the upstream is back, successes refill the budget and an
		// isolated blip is retried again.
		base.mu.Lock()
		base.script = []reply{{status: 200}}
		base.mu.Unlock()
		for range 100 {
			_, err := send(tr, context.Background(), http.MethodGet, nil)
			require.NoError(t, err)
		}
		base.mu.Lock()
		base.script = then(reply{status: 502})
		base.mu.Unlock()
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		require.NoError(t, err, "the blip was retried")
	})
}

func TestRetryBudgetRefillsWithTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// A quiet client: an outage spends its budget (4 here; retries need
		// more than half of it),
		// then nothing happens for a while. Time alone brings retries back.
		base := &scripted{script: []reply{{status: 503}}}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond, RetryBudget: 4, RetryBudgetRefill: 5 * time.Second})
		for range 3 {
			_, _ = send(tr, context.Background(), http.MethodGet, nil)
		}
		before := base.count()
		_, err := send(tr, context.Background(), http.MethodGet, nil)
		require.ErrorIs(t, err, oauthtransport.ErrServer)
		assert.Equal(t, 1, base.count()-before, "budget spent: no retry")

		time.Sleep(20 * time.Second) // no traffic: four refills
		base.mu.Lock()
		base.script = then(reply{status: 502})
		base.mu.Unlock()
		_, err = send(tr, context.Background(), http.MethodGet, nil)
		require.NoError(t, err, "the budget refilled with time: the blip was retried")
	})
}

func TestRetriesOverRealHTTPReuseConnectionsAndReplayBodies(t *testing.T) {
	t.Parallel()
	var newConns atomic.Int64
	var mu sync.Mutex
	var bodies []string
	var n atomic.Int64
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		if n.Add(1) <= 2 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"title":"busy","detail":"`+strings.Repeat("x", 2000)+`"}`)
			return
		}
		_, _ = w.Write(b)
	}))
	api.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	api.Start()
	t.Cleanup(api.Close)
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv, oauthtransport.WithBase(base),
		oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}))

	payload := bytes.Repeat([]byte("payload-"), 4096)
	req, _ := http.NewRequest(http.MethodPost, api.URL, bytes.NewReader(payload))
	req.Header.Set("Idempotency-Key", "order-7")
	resp, err := tr.Client().Do(req)
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.True(t, bytes.Equal(payload, got))
	mu.Lock()
	require.Len(t, bodies, 3)
	for i, b := range bodies {
		assert.True(t, b == string(payload), "attempt %d sent other bytes", i+1)
	}
	mu.Unlock()
	assert.Equal(t, int64(1), newConns.Load(), "one connection served every attempt")
}

func TestConnectionRefusedIsRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv, oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}))
	resp, err := tr.Client().Post("http://"+addr+"/x", "text/plain", strings.NewReader("b"))
	if resp != nil {
		resp.Body.Close()
	}
	require.Error(t, err)
	assert.Contains(t, err.Error(), "after 3 attempt(s)")
}

func TestSuccessfulRequestAllocatesNothingForRetries(t *testing.T) {
	allocs := func(p oauthtransport.RetryPolicy) float64 {
		tr := retryTransport(t, okBase{header: http.Header{}}, p)
		req := benchRequest()
		return testing.AllocsPerRun(1000, func() {
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		})
	}
	with, without := allocs(oauthtransport.RetryPolicy{MaxAttempts: 5}), allocs(oauthtransport.RetryPolicy{MaxAttempts: 1})
	assert.Equal(t, without, with)
	assert.LessOrEqual(t, with, 6.0)
}
