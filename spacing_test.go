package oauthtransport

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestCoolDownGrowsAndEnds: each failure in a row holds callers back
// longer, as the policy of its kind says; the token endpoint's hint wins
// when longer; a success ends it.
func TestCoolDownGrowsAndEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s spacing
		transient := &TokenError{StatusCode: http.StatusServiceUnavailable}
		for n := range 4 {
			d := s.failed(transient)
			if lo, hi := transientCoolDown.at(n, 0), transientCoolDown.at(n, 0.999999); d < lo || d > hi {
				t.Fatalf("failure %d: cool-down %v, want in [%v, %v]", n+1, d, lo, hi)
			}
			if s.coolingDown() != transient || s.allowsBackground() {
				t.Fatalf("failure %d: not cooling down", n+1)
			}
			time.Sleep(d)
			if s.coolingDown() != nil || !s.allowsBackground() {
				t.Fatalf("failure %d: still cooling down after %v", n+1, d)
			}
		}
		s.reset()
		dead := &TokenError{Code: "invalid_grant", StatusCode: 400, reauth: true}
		if d := s.failed(dead); d < terminalCoolDown.initial {
			t.Errorf("a dead grant after a success: %v, want the terminal policy's first step", d)
		}
		hinted := &TokenError{StatusCode: http.StatusTooManyRequests, RetryAfter: 40 * time.Second}
		if d := s.failed(hinted); d < 40*time.Second {
			t.Errorf("a 429 with Retry-After 40s: cool-down %v", d)
		}
		if d := s.failed(&TokenError{StatusCode: 429, RetryAfter: 48 * time.Hour}); d > maxHintedCoolDown+terminalCoolDown.max {
			t.Errorf("a hint of two days: cool-down %v, want at most an hour", d)
		}
	})
}

// TestRenewalsOfNeverAcceptedTokensAreSpaced: one decision for concurrent
// 401s, then spacing that doubles, and an accepted token resets it.
func TestRenewalsOfNeverAcceptedTokensAreSpaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s spacing
		var allowed atomic.Int32
		var wg sync.WaitGroup
		first := &record{}
		for range 20 {
			wg.Go(func() {
				if s.mayRenew(first, false) {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if allowed.Load() != 20 {
			t.Fatalf("concurrent 401s to one never-accepted token: %d of 20 share the renewal", allowed.Load())
		}
		for n := 1; n < 4; n++ {
			next := &record{}
			time.Sleep(renewalWaits.at(n-1, 0) - time.Millisecond)
			if s.mayRenew(next, false) {
				t.Fatalf("renewal %d allowed before its wait", n+1)
			}
			time.Sleep(time.Millisecond)
			if !s.mayRenew(next, false) {
				t.Fatalf("renewal %d refused after its wait", n+1)
			}
		}
		if !s.mayRenew(&record{}, true) {
			t.Fatal("an accepted token's 401 must renew")
		}
		if s.renewal.Load() != nil {
			t.Fatal("an accepted token did not reset the spacing")
		}
	})
}

func TestLateTokensAreSpaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var s spacing
		for n := range 5 {
			if d := s.lateToken(true); d != lateTokenWaits.at(n, 0) || s.allowsBackground() {
				t.Fatalf("late token %d: wait %v, want %v", n+1, d, lateTokenWaits.at(n, 0))
			}
		}
		if s.lateToken(false) != 0 || s.late.Load() != 0 {
			t.Fatal("a token on time did not end the streak")
		}
	})
}
