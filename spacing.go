package oauthtransport

// Spacing out token requests: after failures (the failure cool-down), for
// tokens that arrive already expired, and for 401s to tokens that were
// never accepted. One type per key; every wait comes from waits.go.

import (
	"sync/atomic"
	"time"
)

// spacing holds back one key's token requests. Refreshes of one key run
// one at a time, so failed and late never run concurrently; mayRenew does,
// and decides with a compare-and-swap.
type spacing struct {
	notBefore atomic.Int64            // Unix ns; no background refresh before
	last      atomic.Pointer[failure] // the latest of the failures in a row; nil after a success
	late      atomic.Int32            // tokens in a row that arrived already expired
	renewal   atomic.Pointer[renewal] // the last 401-driven renewal of a never-accepted token; nil: none in a row
}

// renewal is a granted 401-driven renewal of a never-accepted token: a
// snapshot, replaced whole (a key holds none until one is granted).
type renewal struct {
	inARow int     // renewals in a row
	until  int64   // Unix ns; no other renewal before
	of     *record // the token it was granted for
}

// failure is a failed refresh and the cool-down it started.
type failure struct {
	inARow int
	until  time.Time
	err    *TokenError // returned during the cool-down
	// peekAt: Unix ns; during a dead grant's cool-down, no look at the
	// store for a token set elsewhere before (see revived).
	peekAt atomic.Int64
}

// failed starts the cool-down of te, the n-th failure in a row: callers
// get te without the token endpoint being asked, and no background
// refresh starts, for a wait of transientCoolDown, or terminalCoolDown
// for an error a retry cannot fix; at least the token endpoint's own hint
// (at most maxHintedCoolDown). It returns the wait.
func (s *spacing) failed(te *TokenError) time.Duration {
	n := 0
	if last := s.last.Load(); last != nil {
		n = last.inARow
	}
	policy := transientCoolDown
	if te.terminal() {
		policy = terminalCoolDown
	}
	d := policy.atRandom(n)
	if te.RetryAfter > 0 {
		d = max(d, min(te.RetryAfter, maxHintedCoolDown))
	}
	until := time.Now().Add(d)
	s.last.Store(&failure{inARow: n + 1, until: until, err: te})
	s.notBefore.Store(until.UnixNano())
	return d
}

// coolingDown returns the error of the failure whose cool-down has not
// ended, or nil.
func (s *spacing) coolingDown() error {
	if last := s.last.Load(); last != nil && time.Now().Before(last.until) {
		return last.err
	}
	return nil
}

// reset ends the failure cool-down after a success.
func (s *spacing) reset() {
	if s.notBefore.Load() == 0 && s.last.Load() == nil {
		return
	}
	s.last.Store(nil)
	s.notBefore.Store(0)
}

// allowsBackground reports whether a background refresh may start now.
func (s *spacing) allowsBackground() bool {
	nb := s.notBefore.Load()
	return nb == 0 || time.Now().UnixNano() >= nb
}

// lateToken spaces out the background refreshes of tokens that keep
// arriving already expired: each waits as lateTokenWaits says, until a
// token arrives with time left. It returns the wait (0 for a token on
// time).
func (s *spacing) lateToken(late bool) time.Duration {
	if !late {
		s.late.Store(0)
		return 0
	}
	d := lateTokenWaits.atRandom(int(s.late.Add(1)) - 1)
	s.notBefore.Store(time.Now().Add(d).UnixNano())
	return d
}

// mayRenew reports whether a 401 to a token may replace it. A token that
// was ever accepted always may (it was revoked or expired). One never
// accepted is likely rejected for another reason (a wrong audience, an
// API that rejects every token): such renewals are spaced out as
// renewalWaits says (the first at once), until a token is accepted;
// meanwhile the 401 is final. Concurrent 401s to one token share one
// decision: those to the token a renewal was granted for are granted too
// (they join its refresh).
func (s *spacing) mayRenew(rejected *record, accepted bool) bool {
	last := s.renewal.Load()
	if accepted {
		if last != nil {
			s.renewal.CompareAndSwap(last, nil)
		}
		return true
	}
	now, n := time.Now().UnixNano(), 0
	if last != nil {
		if now < last.until {
			return last.of == rejected
		}
		n = last.inARow
	}
	s.renewal.CompareAndSwap(last, &renewal{inARow: n + 1, until: now + int64(renewalWaits.at(n, 0)), of: rejected})
	return true
}

// renewed forgets the renewal spacing: a token a person set.
func (s *spacing) renewed() { s.renewal.Store(nil) }
