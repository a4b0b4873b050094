package oauthtransport

// Assertions from the platform a workload runs on (a Kubernetes
// service-account token, GitHub Actions' OIDC token, a cloud CLI's
// output): what they share. Each source keeps its last good assertion
// until shortly before its exp, and falls back on it when a read fails.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// AssertionFunc returns an assertion that proves the workload's identity:
// a JWT a platform issued. It plugs into [WithClientAssertion],
// [JWTBearerConfig].Assertion and, through [AssertionFunc.OfType],
// [TokenExchangeConfig].SubjectToken. [AssertionFromFile],
// [AssertionFromGitHubActions] and [AssertionFromCommand] make one.
type AssertionFunc func(ctx context.Context) (string, error)

// OfType adapts f to [TokenExchangeConfig]'s SubjectToken and ActorToken:
// f's assertion, declared of tokenType ([TokenTypeJWT] for most workload
// identities, [TokenTypeIDToken] for an OpenID Connect ID token).
func (f AssertionFunc) OfType(tokenType string) func(ctx context.Context) (token, tokenType string, err error) {
	return func(ctx context.Context) (string, string, error) {
		if f == nil {
			return "", "", errors.New("oauthtransport: nil AssertionFunc")
		}
		a, err := f(ctx)
		return a, tokenType, err
	}
}

// AssertionError is the error of an [AssertionFunc] this package made
// when it has no assertion to give: the source could not be read and it
// holds no earlier assertion still valid. Its text names the source and
// never holds an assertion. The Transport reports it inside a
// [*TokenError]; errors.AsType finds it there.
type AssertionError struct {
	// Source names where the assertion comes from: `file "/path"`,
	// "GitHub Actions OIDC", `command "name"`.
	Source string
	Err    error // the cause
}

// Error names the source and the cause, on one line.
func (e *AssertionError) Error() string {
	cause := "no assertion"
	if e.Err != nil {
		cause = wire.OneLine(e.Err.Error(), 500)
	}
	return "oauthtransport: assertion from " + e.Source + ": " + cause
}

// Unwrap returns the cause.
func (e *AssertionError) Unwrap() error { return e.Err }

// assertionSkew is how long before its exp an assertion stops being
// used: it must still be valid when the server reads it.
const assertionSkew = 30 * time.Second

// lastAssertion is a source's last good assertion. Its methods are safe
// for concurrent use; no I/O happens under its lock.
type lastAssertion struct {
	mu    sync.Mutex
	value string
	exp   time.Time // its exp claim; zero: none, so never reused
	born  time.Time // its iat claim, or when it was read
	read  time.Time // when it was read
}

// fresh returns the assertion until the last quarter of its life (from
// its iat, or when it was read, to its exp), or 30 s before its exp if
// that is later: until then the source is not asked again.
func (l *lastAssertion) fresh() (string, bool) { return l.get(true) }

// usable returns the assertion until 30 s before its exp: what a failed
// read falls back on.
func (l *lastAssertion) usable() (string, bool) { return l.get(false) }

func (l *lastAssertion) get(fresh bool) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	margin := assertionSkew
	if fresh {
		margin = max(margin, l.exp.Sub(l.born)/4)
	}
	if l.value == "" || l.exp.IsZero() || time.Now().After(l.exp.Add(-margin)) {
		return "", false
	}
	return l.value, true
}

// readAt returns when the assertion was read; zero if none was.
func (l *lastAssertion) readAt() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.read
}

// keep records a, which source just gave, or falls back on the last good
// assertion when the source failed (readErr) or gave one whose exp has
// passed. What it returns is what the caller gets: a failure is an
// *AssertionError naming source.
func (l *lastAssertion) keep(source, a string, readErr error) (string, error) {
	a, err := l.keepOrLast(a, readErr)
	if err != nil {
		return "", &AssertionError{Source: source, Err: err}
	}
	return a, nil
}

// keepOrLast is keep without naming the source.
func (l *lastAssertion) keepOrLast(a string, readErr error) (string, error) {
	now := time.Now()
	if readErr == nil {
		times := wire.JWTTimes(a)
		if times.Exp.IsZero() || now.Before(times.Exp) {
			born := times.IssuedAt
			if born.IsZero() || born.After(now) {
				born = now
			}
			l.mu.Lock()
			l.value, l.exp, l.born, l.read = a, times.Exp, born, now
			l.mu.Unlock()
			return a, nil
		}
		readErr = errors.New("the assertion it holds expired at " + times.Exp.UTC().Format(time.RFC3339))
	}
	if last, ok := l.usable(); ok {
		return last, nil
	}
	return "", readErr
}
