package oauthtransport

// What a failure means, for API responses and for token endpoint answers
// alike: whether a request reached the server, whether it may be retried,
// which typed error a final status becomes, and what an OAuth error code
// says about the client and the grant. Every table of it is here.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// The OAuth error codes (RFC 6749 §5.2, RFC 8628, RFC 9449) of token
// endpoint answers, by what they say.
var (
	// terminalCodes: the credential or the request is wrong; a retry
	// cannot fix it, so the failure cool-down grows long.
	terminalCodes = codeSet("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope",
		"unsupported_grant_type", "invalid_request")
	// clientCodes: the server refused the client, not the grant. The
	// auth-style probe tries the other style on these (and on a 401).
	clientCodes = codeSet("invalid_client", "unauthorized_client")
	// refusedGrantCodes: a 400 with one of these to a refresh refuses the
	// refresh token itself: the grant is dead (Dex answers a reused
	// refresh token with invalid_request). Any other code (use_dpop_nonce,
	// invalid_dpop_proof, invalid_scope, a client's fault) or none (a
	// proxy's page) leaves the grant alive.
	refusedGrantCodes = codeSet("invalid_grant", "invalid_request")
	// registeredCodes: every code of RFC 6749 §5.2, RFC 8628 §3.5, RFC 8707
	// and RFC 9449, kept as they are when a token error is redacted, so
	// that a secret that happens to be part of one never changes what it
	// means.
	registeredCodes = codeSet("invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
		"unsupported_grant_type", "invalid_scope", "authorization_pending", "slow_down", "access_denied",
		"expired_token", "invalid_target", "invalid_dpop_proof", "use_dpop_nonce", "server_error",
		"temporarily_unavailable")
)

func codeSet(cs ...string) map[string]bool {
	m := make(map[string]bool, len(cs))
	for _, c := range cs {
		m[c] = true
	}
	return m
}

// fate is what a failed send says about whether the request reached the
// server.
type fate uint8

const (
	fateOther     fate = iota // not a failure of the connection (a Source's own error)
	fateNotSent               // no connection was made (dial, DNS, refused as insecure): the server did not act
	fateLost                  // the connection failed once the request may have gone out (reset, EOF, timeout)
	fateUnclear               // another network failure: it may have gone out
	fateCancelled             // the context ended
)

// fateOf classifies err, a failed send.
func fateOf(err error) fate {
	var op *net.OpError
	var dns *net.DNSError
	var ne net.Error
	var ue *url.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fateCancelled
	case errors.Is(err, ErrInsecureTransport), errors.As(err, &op) && op.Op == "dial", errors.As(err, &dns):
		return fateNotSent
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.As(err, &ne) && ne.Timeout():
		return fateLost
	case errors.As(err, &ne), errors.As(err, &ue):
		return fateUnclear
	}
	return fateOther
}

// retryClass says whether an attempt's outcome may be retried and under
// which condition.
type retryClass int

const (
	noRetry     retryClass = iota
	retrySafe              // the server did not act (429, 420, rate-limit 403, 503 with a hint, no connection): any method
	retryUnsafe            // the server may have acted (5xx, 408, lost connection): idempotent requests only
)

// errorKind is the typed error a final status becomes.
type errorKind uint8

const (
	kindNone         errorKind = iota // returned as a response
	kindUnauthorized                  // *UnauthorizedError
	kindForbidden                     // *ForbiddenError
	kindRateLimit                     // *RateLimitError
	kindServer                        // *ServerError
)

// verdict is what the outcome of one attempt means.
type verdict struct {
	class retryClass
	kind  errorKind     // for a final status
	hint  time.Duration // the server's hint, zero when none
}

// classify is the one table of what an API request's outcome means:
// whether it may be retried, which typed error a final status becomes, and
// the server's hint. The attempt loop and the error builder both read it.
func classify(resp *http.Response, err error) verdict {
	if err != nil {
		switch fateOf(err) {
		case fateNotSent:
			return verdict{class: retrySafe}
		case fateLost:
			return verdict{class: retryUnsafe}
		}
		return verdict{}
	}
	if resp.StatusCode < 400 {
		return verdict{} // the hot path: no clock read, no header lookups
	}
	hint, hinted := wire.RetryHint(resp.Header, time.Now())
	switch code := resp.StatusCode; code {
	case http.StatusUnauthorized:
		return verdict{kind: kindUnauthorized}
	case http.StatusTooManyRequests:
		return verdict{retrySafe, kindRateLimit, hint}
	case statusEnhanceYourCalm:
		if !hinted && wire.ResourceLimit420(wire.PeekBody(resp)) {
			hint, _ = wire.ResourceUntil(resp.Header, wire.ServerTime(resp.Header, time.Now()))
		}
		return verdict{retrySafe, kindRateLimit, hint}
	case http.StatusForbidden:
		switch wire.Limit403(resp.Header, wire.PeekBody(resp)) {
		case wire.NotLimited:
			return verdict{kind: kindForbidden}
		case wire.LimitDaily:
			return verdict{kind: kindRateLimit, hint: hint}
		}
		return verdict{retrySafe, kindRateLimit, hint}
	case http.StatusServiceUnavailable:
		if hinted {
			return verdict{retrySafe, kindRateLimit, hint}
		}
		return verdict{retryUnsafe, kindServer, 0}
	case http.StatusRequestTimeout:
		return verdict{class: retryUnsafe, hint: hint}
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusGatewayTimeout:
		return verdict{retryUnsafe, kindServer, hint}
	}
	if resp.StatusCode >= 500 {
		return verdict{kind: kindServer}
	}
	return verdict{}
}

// answeredStatus returns the status of a token endpoint's error answer.
func answeredStatus(err error) (int, bool) {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		return re.Response.StatusCode, true
	}
	if te, ok := errors.AsType[*TokenError](err); ok && te.StatusCode != 0 {
		return te.StatusCode, true
	}
	return 0, false
}

// retryableFetch reports a token request a retry within the same refresh
// may fix: the token endpoint answered 5xx or 429 without a hint (a hint
// starts the cool-down instead), or no connection was made.
func retryableFetch(err error) bool {
	if code, ok := answeredStatus(err); ok {
		return (code >= 500 || code == http.StatusTooManyRequests) && asTokenError(err).RetryAfter == 0
	}
	return fateOf(err) == fateNotSent
}

// errAnswerLost marks a failure of a built-in source after its request
// went out and before an answer could be read: the server may have acted.
var errAnswerLost = errors.New("the token endpoint's answer was lost")

type lostError struct{ err error }

func (e *lostError) Error() string   { return e.err.Error() }
func (e *lostError) Unwrap() []error { return []error{e.err, errAnswerLost} }

// possiblySpent reports whether a failed refresh may have reached the
// server and spent the refresh token: no answer was read, yet the request
// may have gone out. The built-in sources say so precisely; for others any
// failure of the connection or the context counts.
func possiblySpent(err error) bool {
	if errors.Is(err, errAnswerLost) {
		return true
	}
	if _, ok := errors.AsType[notPresentedError](err); ok {
		return false
	}
	if _, answered := answeredStatus(err); answered {
		return false
	}
	switch fateOf(err) {
	case fateLost, fateUnclear, fateCancelled:
		return true
	}
	return false
}

// grantRefused reports whether the token endpoint refused the refresh
// token presented: the grant is dead.
func grantRefused(te *TokenError) bool {
	return te.StatusCode == http.StatusBadRequest && refusedGrantCodes[te.Code] ||
		te.StatusCode == 0 && te.Code == "invalid_grant" // a Source's own verdict
}

// clientRefused reports a token endpoint answer that refuses the client's
// authentication: a 401, or a client code.
func clientRefused(err error) bool {
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok || re.Response == nil {
		return false
	}
	return re.Response.StatusCode == http.StatusUnauthorized || clientCodes[re.ErrorCode]
}

// notPresentedError is a Source's failure before it presented its refresh
// token (ProtectedResource following a resource's lead): whatever the
// error, the refresh token was not spent.
type notPresentedError struct{ error }

func (e notPresentedError) Unwrap() error { return e.error }

func notPresented(err error) error {
	if err == nil {
		return nil
	}
	return notPresentedError{err}
}
