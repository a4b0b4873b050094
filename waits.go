package oauthtransport

// Every wait the SDK computes, in one place: the retries of API requests
// (RetryPolicy), of token requests and of store writes, the failure
// cool-down, and the spacing of tokens that arrive expired and of
// 401-driven renewals. All have one shape, computed by waitPolicy.at and
// handed to cenkalti/backoff's loops as a backoff.BackOff: a policy change
// is one edit here.

import (
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// waitPolicy is the shape of a run of waits: the n-th (from 0) is
//
//	step = min(initial × 2ⁿ, max)
//	wait = step + r × (spread × step + flat), r uniform in [0, 1)
//
// so a wait never comes before its step, and the jitter spreads a crowd
// even once the step is capped. backoff.ExponentialBackOff randomizes
// around the step instead, which would let a retry come early.
type waitPolicy struct {
	initial, max time.Duration
	spread       float64       // jitter as a fraction of the step
	flat         time.Duration // jitter on top, whatever the step
}

// The SDK's wait policies.
var (
	// Token requests the Source failed in a way a retry can fix (5xx, 429
	// without a hint, no connection), retried twice within one refresh.
	fetchWaits = waitPolicy{initial: 200 * time.Millisecond, max: 2 * time.Second, spread: 0.25}
	// A token the store failed to save, written again in the background.
	saveWaits = waitPolicy{initial: 500 * time.Millisecond, max: 30 * time.Second, spread: 0.25}
	// The failure cool-down: callers get the failure's error without the
	// token endpoint being asked, for the n-th failure in a row.
	transientCoolDown = waitPolicy{initial: 500 * time.Millisecond, max: 30 * time.Second, spread: 0.25}
	// ... or, for an error a retry cannot fix (a broken credential, a dead grant).
	terminalCoolDown = waitPolicy{initial: time.Second, max: 5 * time.Minute, spread: 0.25}
	// Background refreshes after tokens that keep arriving already expired.
	lateTokenWaits = waitPolicy{initial: 500 * time.Millisecond, max: 5 * time.Minute}
	// 401-driven renewals of tokens the API never accepted.
	renewalWaits = waitPolicy{initial: time.Second, max: 5 * time.Minute}
)

// maxHintedCoolDown bounds how long a token endpoint's own hint (429 or
// 503 with Retry-After and kin) holds callers back.
const maxHintedCoolDown = time.Hour

// retryWaits is the shape RetryPolicy documents: InitialBackoff × 2ⁿ
// capped at MaxBackoff, plus up to InitialBackoff of jitter.
func retryWaits(p RetryPolicy) waitPolicy {
	return waitPolicy{initial: p.InitialBackoff, max: p.MaxBackoff, flat: p.InitialBackoff}
}

// at returns the n-th wait with jitter r in [0, 1).
func (p waitPolicy) at(n int, r float64) time.Duration {
	step := p.max
	if n < 62 && p.initial <= p.max>>n {
		step = p.initial << n
	}
	return step + time.Duration(r*(p.spread*float64(step)+float64(p.flat)))
}

// atRandom returns the n-th wait with a random jitter.
func (p waitPolicy) atRandom(n int) time.Duration { return p.at(n, rand.Float64()) }

// backOff returns a new run of p's waits for cenkalti/backoff's loops; one
// run per loop, never shared between goroutines.
func (p waitPolicy) backOff() backoff.BackOff { return &waits{p: p} }

// waits is a run of a waitPolicy's waits: a backoff.BackOff.
type waits struct {
	p waitPolicy
	n int
}

func (w *waits) NextBackOff() time.Duration {
	d := w.p.atRandom(w.n)
	w.n++
	return d
}

func (w *waits) Reset() { w.n = 0 }
