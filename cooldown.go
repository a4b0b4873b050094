package oauthtransport

// Spacing out token requests: after failures, for tokens that arrive
// already expired, and for 401s to tokens that were never accepted.

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// failureState spaces out refreshes after failures: each failure starts a
// cool-down during which callers get its error without the IdP being
// asked, and no background refresh starts. It grows with each failure in a
// row: from 500 ms up to 30 s, or, for a terminal error code (a broken
// credential, a dead grant), from 1 s up to 5 minutes; it lasts at least
// as long as the token endpoint's own hint (429 or 503 with Retry-After
// and kin), at most an hour.
type failureState struct {
	notBefore atomic.Int64            // unix nanos; no background refresh before
	last      atomic.Pointer[failure] // the latest of the failures in a row; nil after a success
}

// failure is a failed refresh and the cool-down it started. Refreshes of
// one key run one at a time, so they never record one concurrently.
type failure struct {
	inARow int
	until  time.Time
	err    *TokenError // returned during the cool-down
	// peekNotBefore: Unix ns; during a dead grant's cool-down, no look at
	// the store for a token set elsewhere before (see revived).
	peekNotBefore atomic.Int64
}

const (
	terminalCooldown    = time.Second
	maxTerminalCooldown = 5 * time.Minute
	transientCooldown   = 500 * time.Millisecond
	maxTransientBackoff = 30 * time.Second
	maxHintedCooldown   = time.Hour
)

func (f *failureState) record(te *TokenError) time.Duration {
	n := 1
	if last := f.last.Load(); last != nil {
		n = last.inARow + 1
	}
	base, ceiling := transientCooldown, maxTransientBackoff
	if te.terminal() {
		base, ceiling = terminalCooldown, maxTerminalCooldown
	}
	d := base << min(n-1, 20)
	d = min(d, ceiling)
	d += rand.N(d/4 + 1)
	if te.RetryAfter > 0 {
		d = max(d, min(te.RetryAfter, maxHintedCooldown))
	}
	until := time.Now().Add(d)
	f.last.Store(&failure{inARow: n, until: until, err: te})
	f.notBefore.Store(until.UnixNano())
	return d
}

func (f *failureState) coolingDown() error {
	if last := f.last.Load(); last != nil && time.Now().Before(last.until) {
		return last.err
	}
	return nil
}

func (f *failureState) reset() {
	if f.notBefore.Load() == 0 && f.last.Load() == nil {
		return
	}
	f.last.Store(nil)
	f.notBefore.Store(0)
}

// failed records a refresh failure for the cool-down and logs it: at
// warn level when callers see it, at debug level for a background refresh
// while a valid token remains in use.
func (k *credentialCache) failed(te *TokenError, background bool) *TokenError {
	d := k.failure.record(te)
	k.env.stats.failures.Add(1)
	level := slog.LevelWarn
	if background && k.cur.Load() != nil {
		level = slog.LevelDebug
	}
	k.env.log.LogAttrs(context.Background(), level, "oauthtransport: token refresh failed", slog.String("key", k.storeKey()),
		slog.String("error", te.Error()), slog.Bool("background", background), slog.Duration("next_try_in", d))
	return te
}

// spaceLate spaces out the refreshes of tokens that keep arriving already
// expired: each background refresh waits twice as long as the last, up to
// 5 minutes, until a token arrives with time left.
func (k *credentialCache) spaceLate(ctx context.Context, c *credential) {
	if !c.late {
		k.lateStreak.Store(0)
		return
	}
	n := k.lateStreak.Add(1)
	d := min(transientCooldown<<min(n-1, 20), maxTerminalCooldown)
	k.failure.notBefore.Store(time.Now().Add(d).UnixNano())
	k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: the token arrived already expired (expires_in not positive, "+
		"or a JWT exp in the past: is a clock wrong?); using it, and refreshing again in a while",
		slog.String("key", k.storeKey()), slog.String("token", c.fingerprint()), slog.Duration("next_refresh_in", d))
}

// mayRenew reports whether a 401 to c may replace it. A token that was
// ever accepted always may (it was revoked or expired). One never
// accepted is likely rejected for another reason (a wrong audience, an
// API that rejects every token): such renewals are spaced out, 1 s after
// the first, then twice as long each time, up to 5 minutes, until a token
// is accepted; meanwhile the 401 is final. Concurrent 401s to one token
// share one decision.
func (k *credentialCache) mayRenew(c *credential) bool {
	if c.accepted.Load() {
		k.renewStreak.Store(0)
		return true
	}
	now := time.Now().UnixNano()
	nb := k.renewNotBefore.Load()
	if now < nb {
		return false
	}
	n := k.renewStreak.Load()
	if k.renewNotBefore.CompareAndSwap(nb, now+int64(min(time.Second<<min(n, 20), maxTerminalCooldown))) {
		k.renewStreak.Add(1)
	}
	return true
}
