package oauthtransport

import (
	"testing"
	"time"
)

// TestDelayFormula checks the shape RetryPolicy documents.
func TestDelayFormula(t *testing.T) {
	t.Parallel()
	p := RetryPolicy{InitialBackoff: time.Second, MaxBackoff: 30 * time.Second}
	tests := []struct {
		n      int
		jitter float64
		want   time.Duration
	}{
		{0, 0, time.Second},
		{0, 0.5, 1500 * time.Millisecond},
		{0, 0.999, 1999 * time.Millisecond},
		{1, 0, 2 * time.Second},
		{2, 0.25, 4250 * time.Millisecond},
		{4, 0, 16 * time.Second},
		{5, 0, 30 * time.Second}, // 32 s capped
		{5, 0.5, 30500 * time.Millisecond},
		{40, 0.1, 30100 * time.Millisecond},
		{63, 0, 30 * time.Second},
		{1 << 20, 0, 30 * time.Second},
	}
	for _, tt := range tests {
		if got := retryWaits(p).at(tt.n, tt.jitter); got != tt.want {
			t.Errorf("delay(%d, %v) = %v, want %v", tt.n, tt.jitter, got, tt.want)
		}
	}
	small := RetryPolicy{InitialBackoff: 3 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	if got := retryWaits(small).at(2, 0); got != 10*time.Millisecond {
		t.Errorf("a step past MaxBackoff: %v, want the cap", got)
	}
}

// TestWaitRuns checks that a run of waits, as cenkalti/backoff's loops
// use it, follows its policy from the start after Reset, never below the
// step and within its jitter.
func TestWaitRuns(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]waitPolicy{"fetch": fetchWaits, "save": saveWaits, "transient": transientCoolDown,
		"terminal": terminalCoolDown, "late": lateTokenWaits, "renewal": renewalWaits,
		"retry": retryWaits(RetryPolicy{}.withDefaults())} {
		b := p.backOff()
		for round := range 2 {
			for n := range 12 {
				got, step := b.NextBackOff(), p.at(n, 0)
				if got < step || got > p.at(n, 0.999999) {
					t.Errorf("%s, round %d, wait %d: %v, want in [%v, %v]", name, round, n, got, step, p.at(n, 0.999999))
				}
			}
			b.Reset()
		}
		if p.at(1000, 0) != p.max {
			t.Errorf("%s: a long run's step is %v, want the cap %v", name, p.at(1000, 0), p.max)
		}
	}
}
