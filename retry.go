package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// RetryPolicy says how a [Transport] retries requests that failed in a way a
// retry can fix. A zero field means its default.
//
// What is retried: 408, 429, 420, 500, 502, 503, 504, rate limits sent as
// 403 (GitHub's X-RateLimit-Remaining: 0 and secondary limits, Google's
// rateLimitExceeded, userRateLimitExceeded and quotaExceeded; Google's
// dailyLimitExceeded is a *RateLimitError at once), and
// transport failures where no response came back, never a cancelled or
// expired context. GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried on
// all of them. POST, PATCH and other methods are retried where the server
// did not act (429, 420, rate-limit 403, 503 with a retry hint, a refused
// connection), and on the rest only with an Idempotency-Key header or
// RetryNonIdempotent. Only bodies that can be replayed (GetBody, nil,
// http.NoBody) are retried.
//
// How long to wait: exponential backoff, InitialBackoff × 2ⁿ for retry n
// (n = 0 first) capped at MaxBackoff, plus a random jitter of up to
// InitialBackoff (the truncated exponential backoff Google documents for
// its APIs; a retry never comes before its step, unlike AWS's "full
// jitter", which lets one come almost at once), or the server's hint (Retry-After,
// retry-after-ms, RateLimit, X-RateLimit-Reset and kin) when that is
// longer. A hint longer than MaxRetryAfter, or a wait that would
// end after the request's context deadline, is not slept: the typed error
// returns at once with the hint in RateLimitError.RetryAfter.
//
// Retries are throttled by a budget per Transport: failures drain it,
// successes and time refill it, and retries stop while it is less than
// half full, so during an outage each request costs about one attempt
// (see RetryBudget).
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 disables
	// retries. Default 3.
	MaxAttempts int
	// InitialBackoff is the first computed delay. Default 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps the exponential step of a computed delay; the
	// jitter (up to InitialBackoff) comes on top. Default 30s.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest server hint (Retry-After and the like)
	// the transport waits for; a longer one fails fast with a
	// *RateLimitError. Default 60s.
	MaxRetryAfter time.Duration
	// RetryNonIdempotent retries POST and PATCH on 5xx and network errors
	// even without an Idempotency-Key header.
	RetryNonIdempotent bool
	// RetryBudget is how many retries a Transport holds in reserve;
	// retries stop while fewer than half remain (so a budget under 3
	// allows none). Each retryable failure spends one; each success earns
	// back a tenth, and each RetryBudgetRefill one. Default 10.
	RetryBudget int
	// RetryBudgetRefill is how long the budget takes to earn back one
	// retry by itself. Default 1s.
	RetryBudgetRefill time.Duration
}

// Retry defaults; see [RetryPolicy].
const (
	DefaultMaxAttempts       = 3
	DefaultInitialBackoff    = time.Second
	DefaultMaxBackoff        = 30 * time.Second
	DefaultMaxRetryAfter     = 60 * time.Second
	DefaultRetryBudget       = 10
	DefaultRetryBudgetRefill = time.Second
	// Deprecated: use DefaultRetryBudgetRefill, the same value.
	DefaultBudgetRefill = DefaultRetryBudgetRefill
)

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = DefaultMaxAttempts
	}
	if p.InitialBackoff == 0 {
		p.InitialBackoff = DefaultInitialBackoff
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(DefaultMaxBackoff, p.InitialBackoff)
	}
	if p.MaxRetryAfter == 0 {
		p.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if p.RetryBudget == 0 {
		p.RetryBudget = DefaultRetryBudget
	}
	if p.RetryBudgetRefill == 0 {
		p.RetryBudgetRefill = DefaultRetryBudgetRefill
	}
	return p
}

func (p RetryPolicy) validate() error {
	var errs []error
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("RetryPolicy.MaxAttempts: %d is negative (1 disables retries)", p.MaxAttempts))
	}
	if p.RetryBudget < 0 {
		errs = append(errs, fmt.Errorf("RetryPolicy.RetryBudget: %d is negative", p.RetryBudget))
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.MaxRetryAfter < 0 || p.RetryBudgetRefill < 0 {
		errs = append(errs, errors.New("RetryPolicy: negative duration"))
	}
	if p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff {
		errs = append(errs, fmt.Errorf("RetryPolicy: InitialBackoff %v exceeds MaxBackoff %v", p.InitialBackoff, p.MaxBackoff))
	}
	return errors.Join(errs...)
}

// retryBudget throttles retries per Transport in the manner of gRPC's retry
// throttling: every retryable failure drains a token, every success earns
// back a tenth of one and every refill period a whole one, and retries are
// allowed only while more than half the tokens remain. An isolated blip is
// retried; during an outage each request costs about one attempt, so
// retries never amplify it; a quiet client has its retries back soon
// after the outage ends.
type retryBudget struct {
	milli  atomic.Int64 // tokens × 1000
	max    int64        // tokens × 1000
	every  time.Duration
	filled atomic.Int64 // Unix ns of the last refill by time
}

func newRetryBudget(p RetryPolicy) *retryBudget {
	b := &retryBudget{max: int64(p.RetryBudget) * 1000, every: p.RetryBudgetRefill}
	b.milli.Store(b.max)
	b.filled.Store(time.Now().UnixNano())
	return b
}

// success earns back a tenth of a token.
func (b *retryBudget) success() {
	for {
		v := b.milli.Load()
		if v >= b.max { // the common case: a plain load, no write
			return
		}
		if b.milli.CompareAndSwap(v, min(v+100, b.max)) {
			return
		}
	}
}

func (b *retryBudget) failure() {
	b.refill()
	for {
		v := b.milli.Load()
		if v <= 0 || b.milli.CompareAndSwap(v, max(v-1000, 0)) {
			return
		}
	}
}

func (b *retryBudget) allows() bool {
	b.refill()
	return b.milli.Load() > b.max/2
}

// refill earns back a token for every refill period since the last.
func (b *retryBudget) refill() {
	now := time.Now().UnixNano()
	last := b.filled.Load()
	n := (now - last) / int64(b.every)
	if n <= 0 || !b.filled.CompareAndSwap(last, last+n*int64(b.every)) {
		return
	}
	for {
		v := b.milli.Load()
		if v >= b.max || b.milli.CompareAndSwap(v, min(v+n*1000, b.max)) {
			return
		}
	}
}

// idempotent reports whether req may be sent again after the server may
// have acted on it.
func (p RetryPolicy) idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete, "":
		return true
	}
	if p.RetryNonIdempotent {
		return true
	}
	_, keyed := req.Header["Idempotency-Key"]
	return keyed
}

// sleepCtx waits for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Why a retryable failure was not retried.
type stopReason int

const (
	stopNone     stopReason = iota
	stopMethod              // the server may have acted and the request is not idempotent
	stopAttempts            // MaxAttempts reached
	stopBody                // the body cannot be replayed
	stopHint                // the server asked for a longer wait than MaxRetryAfter
	stopBudget              // the retry budget is spent
	stopDeadline            // the wait would end after the context's deadline
)

var stopText = [...]string{
	stopMethod:   "not retried: the request is not idempotent",
	stopAttempts: "gave up",
	stopHint:     "the server asked for a longer wait than MaxRetryAfter",
	stopBudget:   "not retried: retry budget spent",
	stopDeadline: "not retried: the wait would outlast the context deadline",
}

// retrier is a Transport's retry policy and the budget its requests
// share.
type retrier struct {
	policy RetryPolicy
	budget *retryBudget
}

func newRetrier(p RetryPolicy) *retrier { return &retrier{policy: p, budget: newRetryBudget(p)} }

// decide says whether to retry req after its retries-th retry, and after
// how long: the next of waits (the policy's, see retryWaits), or the
// server's hint when longer.
func (r *retrier) decide(ctx context.Context, req *http.Request, v verdict, retries int, waits backoff.BackOff) (time.Duration, stopReason) {
	repeatable := v.class != retryUnsafe || r.policy.idempotent(req)
	return r.next(ctx, repeatable, rewindable(req), v.hint, retries, waits)
}

// next says whether to send a try again after its retries-th retry, and
// after how long: repeatable, whether the server may get it twice (it did
// not act, or acting twice does no harm); replayable, whether its body can
// be sent again; hint, the server's. The HTTP path and Transport.Retry
// both decide here.
func (r *retrier) next(ctx context.Context, repeatable, replayable bool, hint time.Duration, retries int, waits backoff.BackOff) (time.Duration, stopReason) {
	p := &r.policy
	switch {
	case !repeatable:
		return 0, stopMethod
	case retries+1 >= p.MaxAttempts:
		return 0, stopAttempts
	case !replayable:
		return 0, stopBody
	case hint > p.MaxRetryAfter:
		return 0, stopHint
	case !r.budget.allows():
		return 0, stopBudget
	}
	wait := max(waits.NextBackOff(), hint)
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, stopDeadline
	}
	return wait, stopNone
}

// giveUp describes a transport error that was not retried (further).
func giveUp(req *http.Request, err error, attempts int, why stopReason) error {
	return fmt.Errorf("oauthtransport: %s %s: %s after %d attempt(s): %w", req.Method, wire.RedactURL(req.URL), stopText[why], attempts, err)
}
