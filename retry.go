package oauthtransport

import (
	"errors"
	"fmt"
	"time"
)

// RetryPolicy says how a [Transport] retries requests that failed in a way a
// retry can fix. A zero field means its default.
type RetryPolicy struct {
	// MaxAttempts counts every attempt, the first included; 1 disables
	// retries. Default 3.
	MaxAttempts int
	// InitialBackoff is the first computed delay. Default 1s.
	InitialBackoff time.Duration
	// MaxBackoff caps a computed delay. Default 30s.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest server hint (Retry-After and the like)
	// the transport waits for; a longer one fails fast with a
	// *RateLimitError. Default 60s.
	MaxRetryAfter time.Duration
	// RetryNonIdempotent retries POST and PATCH on 5xx and network errors
	// even without an Idempotency-Key header.
	RetryNonIdempotent bool
}

// Retry defaults; see [RetryPolicy].
const (
	DefaultMaxAttempts    = 3
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = 30 * time.Second
	DefaultMaxRetryAfter  = 60 * time.Second
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
	return p
}

func (p RetryPolicy) validate() error {
	var errs []error
	if p.MaxAttempts < 0 {
		errs = append(errs, fmt.Errorf("RetryPolicy.MaxAttempts: %d is negative (1 disables retries)", p.MaxAttempts))
	}
	if p.InitialBackoff < 0 || p.MaxBackoff < 0 || p.MaxRetryAfter < 0 {
		errs = append(errs, errors.New("RetryPolicy: negative duration"))
	}
	if p.MaxBackoff > 0 && p.InitialBackoff > p.MaxBackoff {
		errs = append(errs, fmt.Errorf("RetryPolicy: InitialBackoff %v exceeds MaxBackoff %v", p.InitialBackoff, p.MaxBackoff))
	}
	return errors.Join(errs...)
}
