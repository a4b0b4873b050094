package oauthtransport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// Sentinels for errors.Is, matched also through the *url.Error that
// [http.Client] wraps around an error. Each typed error matches its own
// sentinel ([UnauthorizedError] ErrUnauthorized, [ForbiddenError]
// ErrForbidden, [RateLimitError] ErrRateLimited, [ServerError] ErrServer,
// [TokenError] ErrToken); two also match a second one that narrows it: an
// UnauthorizedError whose challenge asks for a step-up matches
// ErrStepUpRequired, and a TokenError matches ErrReauthRequired for a dead
// grant and ErrAuthorizationDenied for a refused authorization.
// ErrBodyNotRewindable is matched beside the error it stands for.
var (
	// ErrUnauthorized matches a final 401 (*UnauthorizedError).
	ErrUnauthorized = errors.New("oauthtransport: unauthorized")
	// ErrForbidden matches a 403 that is not a rate limit (*ForbiddenError).
	ErrForbidden = errors.New("oauthtransport: forbidden")
	// ErrRateLimited matches a rate limit that was not retried further
	// (*RateLimitError).
	ErrRateLimited = errors.New("oauthtransport: rate limited")
	// ErrServer matches a 5xx after retries (*ServerError).
	ErrServer = errors.New("oauthtransport: server error")
	// ErrToken matches any failure to obtain a token (*TokenError).
	ErrToken = errors.New("oauthtransport: cannot obtain a token")
	// ErrBodyNotRewindable is matched when a request had to be sent again
	// (after a 401 or a retryable failure) but its body cannot be replayed:
	// it has no GetBody. The body is never sent twice.
	ErrBodyNotRewindable = errors.New("oauthtransport: request body cannot be replayed")
	// ErrReauthRequired matches a *TokenError when the grant is dead and a
	// person must authorize again: the token endpoint refused the refresh
	// token (a 400 with invalid_grant, or Dex's invalid_request) and the
	// store holds no newer one, or the answer to a refresh was lost
	// and the refresh token may have been rotated. A passing failure (the
	// IdP down, the store's lock unavailable) never matches it.
	ErrReauthRequired = errors.New("oauthtransport: the grant is dead; a person must authorize again")
	// ErrAuthorizationDenied matches a *TokenError when the person or the
	// server refused an authorization: its Code is the server's
	// access_denied (the person said no) or expired_token (a device code
	// expired before the person approved it), or it has no Code because a
	// login timed out locally. Asking again starts a new login.
	ErrAuthorizationDenied = errors.New("oauthtransport: the authorization was denied")
	// ErrInsecureTransport is returned when a token would have gone over
	// plain http to a host that is not loopback. Nothing was sent. See
	// [WithInsecureHTTP].
	ErrInsecureTransport = errors.New("oauthtransport: refusing to send a token over plain http to a non-loopback host")
	// ErrStepUpRequired matches an *UnauthorizedError whose challenge says
	// insufficient_user_authentication (RFC 9470): the user must
	// authenticate again, more strongly or more recently (see
	// UnauthorizedError.StepUp). No token was dropped or refreshed for it.
	ErrStepUpRequired = errors.New("oauthtransport: the server asks the user to authenticate again (step-up)")
)

// maxErrorBody bounds how much of a response body a [ResponseError] keeps.
const maxErrorBody = wire.MaxBody

// maxDrain bounds how much more of a discarded body is read so that its
// connection can be reused; a longer body is closed unread.
const maxDrain = wire.MaxDrain

// ResponseError holds what a caller needs to know about a response that
// became an error. It is embedded in each of the status errors, which return
// it from Unwrap, so errors.As with a *ResponseError finds it for any of them.
type ResponseError struct {
	StatusCode int
	Header     http.Header // a clone of the response header
	// Body holds the first 64 KiB of the response body. Truncated reports
	// that the body was longer; the rest was discarded.
	Body      []byte
	Truncated bool
	Attempts  int      // requests sent to the server, the first included
	Problem   *Problem // RFC 9457 details when the body was application/problem+json
	// Message is a short, one-line summary taken from the usual JSON error
	// shapes of the body (problem details, OAuth, Google, errors[]); empty
	// when there was none.
	Message string
	Method  string
	URL     string // the request URL without user info, query or fragment
}

// Error returns one line: method, URL, status and Message.
func (e *ResponseError) Error() string {
	var b strings.Builder
	b.WriteString("oauthtransport: ")
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.URL)
	b.WriteString(": ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if txt := http.StatusText(e.StatusCode); txt != "" {
		b.WriteByte(' ')
		b.WriteString(txt)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// UnauthorizedError is a 401 that remained after the one replay with a fresh
// token, or that a fresh token could not help (the challenge names another
// scheme, or the body could not be replayed).
type UnauthorizedError struct {
	ResponseError
	Challenge Challenge // the challenge for the scheme that was sent, else the first
	// StepUp is what an insufficient_user_authentication challenge asks
	// for (RFC 9470); nil for any other 401.
	StepUp *StepUp
	// Claims is what an insufficient_claims challenge (continuous access
	// evaluation) asked for, a JSON object, when the token obtained with
	// those claims was challenged again; empty for any other 401.
	Claims string
	// ResourceMetadata is the URL of the protected resource's metadata
	// (RFC 9728) from the challenge's resource_metadata, empty when none:
	// it names the authorization servers that issue tokens for it.
	ResourceMetadata string
}

// StepUp is what a step-up challenge (RFC 9470) asks of the next
// authorization request: pass them as acr_values and max_age.
type StepUp struct {
	ACRValues []string      // acceptable authentication context classes, most preferred first
	MaxAge    time.Duration // the longest time since the user authenticated; see HasMaxAge
	HasMaxAge bool          // max_age was given (0 then means: authenticate now)
}

// Is reports whether target is [ErrUnauthorized], or [ErrStepUpRequired]
// for a step-up challenge.
func (e *UnauthorizedError) Is(target error) bool {
	return target == ErrUnauthorized || (target == ErrStepUpRequired && e.StepUp != nil)
}

// Unwrap returns the embedded *ResponseError.
func (e *UnauthorizedError) Unwrap() error { return &e.ResponseError }

// ForbiddenError is a 403 that is not a rate limit.
type ForbiddenError struct {
	ResponseError
	Challenge Challenge
	// Scope is the scope the server asked for in an insufficient_scope
	// challenge (RFC 6750 §3.1), empty otherwise.
	Scope string
}

// Is reports whether target is [ErrForbidden].
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// Unwrap returns the embedded *ResponseError.
func (e *ForbiddenError) Unwrap() error { return &e.ResponseError }

// RateLimitError is a 429 or 420, a rate-limit 403, or a 503 with a
// retry hint, that was not retried further: attempts ran out, or the wait
// the server asked for was longer than [RetryPolicy.MaxRetryAfter] or than
// the caller's deadline allows.
type RateLimitError struct {
	ResponseError
	// RetryAfter is the server's hint as parsed, zero when there was none.
	// It is not the delay the transport would have chosen.
	RetryAfter time.Duration
	// Limit, Remaining and Reset are what the server announced in its
	// RateLimit or X-RateLimit headers; -1 (Limit, Remaining) or zero
	// (Reset) when it announced nothing.
	Limit, Remaining int
	Reset            time.Duration
}

// Is reports whether target is [ErrRateLimited].
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }

// Unwrap returns the embedded *ResponseError.
func (e *RateLimitError) Unwrap() error { return &e.ResponseError }

// ServerError is a 5xx that remained after retries.
type ServerError struct {
	ResponseError
}

// Is reports whether target is [ErrServer].
func (e *ServerError) Is(target error) bool { return target == ErrServer }

// Unwrap returns the embedded *ResponseError.
func (e *ServerError) Unwrap() error { return &e.ResponseError }

// TokenError is a failure to obtain a token: the token endpoint answered
// with an error (RFC 6749 §5.2), could not be reached, or the [Source]
// failed.
type TokenError struct {
	Code        string // the "error" member, e.g. "invalid_grant"
	Description string // the "error_description" member
	StatusCode  int    // the token endpoint's HTTP status; zero for a network failure
	Err         error  // the underlying cause
	// RetryAfter is the token endpoint's hint (Retry-After and kin) on a
	// 429 or 503; zero when it gave none. Until it passes, callers get
	// this error without the endpoint being asked again.
	RetryAfter time.Duration

	temporary bool // the refresher held back for a reason that passes (a lock, a peer's refresh)
	reauth    bool // the grant is dead: ErrReauthRequired
	denied    bool // a login timed out locally: ErrAuthorizationDenied
}

// temporaryError is a refresh the refresher did not attempt, or gave up
// on, for a reason that passes by itself.
func temporaryError(err error) *TokenError { return &TokenError{Err: err, temporary: true} }

// reauthError is a dead grant.
func reauthError(err error) *TokenError { return &TokenError{Err: err, reauth: true} }

// Error returns one line; it never holds a token, a secret or a response body.
func (e *TokenError) Error() string {
	var b strings.Builder
	b.WriteString("oauthtransport: cannot obtain a token")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": token endpoint answered %d", e.StatusCode)
	}
	if e.Code != "" { // one line even when a Source built the error
		b.WriteString(": ")
		b.WriteString(wire.OneLine(e.Code, maxCodeBytes))
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(wire.OneLine(e.Description, 300))
	}
	var re *oauth2.RetrieveError
	if e.Err != nil && !errors.As(e.Err, &re) {
		// A RetrieveError's text holds the whole response body; anything
		// else (a network failure, a Source's own error) is short.
		b.WriteString(": ")
		b.WriteString(wire.OneLine(wire.ScrubURLs(e.Err.Error()), 300))
	}
	if e.reauth {
		b.WriteString(": the grant is dead; a person must authorize again")
	}
	if e.denied {
		b.WriteString(": the login timed out")
	}
	return b.String()
}

// Is reports whether target is [ErrToken], [ErrReauthRequired] for a dead
// grant, or [ErrAuthorizationDenied] for a refused authorization (Code
// access_denied or expired_token, or a login that timed out locally).
func (e *TokenError) Is(target error) bool {
	switch target {
	case ErrToken:
		return true
	case ErrReauthRequired:
		return e.reauth
	case ErrAuthorizationDenied:
		return e.denied || e.Code == "access_denied" || e.Code == "expired_token"
	}
	return false
}

// Unwrap returns the underlying cause.
func (e *TokenError) Unwrap() error { return e.Err }

// Temporary reports whether the failure may go away by itself: the token
// endpoint answered 5xx or 429, or could not be reached, or the refresher
// held back for a passing reason (the store's lock, a peer's refresh, a
// refresh that did not finish in time). A dead grant is not temporary, nor
// is a refused authorization.
func (e *TokenError) Temporary() bool {
	switch {
	case e.temporary:
		return true
	case e.reauth, e.denied:
		return false
	case e.StatusCode >= 500, e.StatusCode == http.StatusTooManyRequests:
		return true
	case e.StatusCode != 0, e.Code != "":
		return false
	}
	var re *oauth2.RetrieveError
	return !errors.As(e.Err, &re) && fateOf(e.Err) != fateOther
}

// terminal reports whether the error is one a retry cannot fix: a dead
// grant, or an RFC 6749 §5.2 code that says the credential or the request
// is wrong. A 400 or 401 without such a code (a proxy's page, garbage) is
// not terminal.
func (e *TokenError) terminal() bool {
	if e.reauth {
		return true
	}
	if e.temporary {
		return false
	}
	return terminalCodes[e.Code]
}

// asTokenError turns whatever a Source returned into a *TokenError.
func asTokenError(err error) *TokenError {
	if te, ok := errors.AsType[*TokenError](err); ok {
		return te
	}
	te := &TokenError{Err: err}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		te.Code = re.ErrorCode
		te.Description = wire.OneLine(re.ErrorDescription, 300)
		if re.Response != nil {
			te.StatusCode = re.Response.StatusCode
			te.RetryAfter = tokenRetryAfter(re.Response)
		}
	}
	return te
}

// notReplayableError is a failure that a replay or retry could have fixed,
// but the request body cannot be sent again. It matches both
// ErrBodyNotRewindable and the error it wraps (e.g. *UnauthorizedError).
type notReplayableError struct{ err error }

func (e notReplayableError) Error() string {
	return e.err.Error() + ": not sent again: the request body cannot be replayed"
}

func (e notReplayableError) Unwrap() []error { return []error{ErrBodyNotRewindable, e.err} }

// insecureError is returned for a token that would have gone over plain http.
type insecureError struct{ method, url, what string }

func (e *insecureError) Error() string {
	what := e.what
	if what == "" {
		what = "a token"
	}
	return "oauthtransport: " + e.method + " " + e.url + ": refusing to send " + what + " over plain http to a non-loopback host (see WithInsecureHTTP)"
}

func (e *insecureError) Unwrap() error { return ErrInsecureTransport }

// ErrorFromResponse turns a response with an error status (401, 403, 420,
// 429, 5xx) into the matching typed error, reading at most 64 KiB of its
// body and closing it. For any other status it returns nil and leaves the
// response untouched. It is for callers that use WithStatusErrors(false) or
// decode responses themselves.
func ErrorFromResponse(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	sent := sentToken(resp) // before classify wraps the body
	v := classify(resp, nil)
	if v.kind == kindNone {
		return nil
	}
	return newStatusError(resp.Request, resp, 1, sent, v)
}

// sentToken returns the access token a response answered, to be redacted
// from its error: a Transport marks the error responses it returns with
// WithStatusErrors(false); another transport's request may carry it.
func sentToken(resp *http.Response) string {
	if sb, ok := resp.Body.(*sentBody); ok {
		return sb.sent
	}
	if resp.Request != nil {
		if _, tok, ok := strings.Cut(resp.Request.Header.Get("Authorization"), " "); ok {
			return tok
		}
	}
	return ""
}

// sentBody is the body of an error response a Transport returns with
// WithStatusErrors(false): it remembers the token sent, for
// ErrorFromResponse, and reads as the body it wraps.
type sentBody struct {
	io.ReadCloser
	sent string
}

// statusEnhanceYourCalm is the 420 some APIs send for rate limiting.
const statusEnhanceYourCalm = 420

// newStatusError reads and closes resp's body and returns the typed error
// that classify's verdict names. sent is the access token that was sent,
// redacted from anything the server echoed back.
func newStatusError(req *http.Request, resp *http.Response, attempts int, sent string, v verdict) error {
	re := ResponseError{
		StatusCode: resp.StatusCode,
		Header:     resp.Header.Clone(),
		Attempts:   attempts,
	}
	if req != nil {
		re.Method = req.Method
		re.URL = wire.RedactURL(req.URL)
	}
	// Redact before cutting: read enough that a token straddling the cut
	// is whole, then redact, then cut.
	body, truncated := readBounded(resp.Body, maxErrorBody+int64(len(sent)))
	body = wire.RedactBytes(body, sent)
	re.Body, re.Truncated = body[:min(len(body), maxErrorBody)], truncated || len(body) > maxErrorBody
	if sent != "" {
		for k, vs := range re.Header {
			for i, hv := range vs {
				vs[i] = wire.Redact(hv, sent)
			}
			re.Header[k] = vs
		}
	}
	if wire.IsProblemJSON(resp.Header.Get("Content-Type")) {
		re.Problem = wire.ParseProblem(re.Body)
	}
	re.Message = wire.ErrorMessage(re.Problem, re.Body)
	switch v.kind {
	case kindUnauthorized:
		return newUnauthorizedError(re, wire.ParseChallenges(re.Header.Values("Www-Authenticate")))
	case kindForbidden:
		return newForbiddenError(re, wire.ParseChallenges(re.Header.Values("Www-Authenticate")))
	case kindRateLimit:
		e := &RateLimitError{ResponseError: re, RetryAfter: v.hint}
		e.Limit, e.Remaining, e.Reset = wire.RateLimitQuota(resp.Header, time.Now())
		return e
	case kindServer:
		return &ServerError{ResponseError: re}
	}
	return nil
}

func newForbiddenError(re ResponseError, challenges []Challenge) *ForbiddenError {
	ch := wire.PickChallenge(challenges, "Bearer")
	fe := &ForbiddenError{ResponseError: re, Challenge: ch}
	if ch.Error == "insufficient_scope" {
		fe.Scope = ch.Scope
		if fe.Message == "" || fe.Message == "insufficient_scope" {
			fe.Message = "insufficient_scope"
			if ch.Scope != "" {
				fe.Message += fmt.Sprintf(" (needs %q)", ch.Scope)
			}
		}
	}
	return fe
}

// readBounded reads up to n bytes of body, drains a little more so the
// connection can be reused, and closes it.
func readBounded(body io.ReadCloser, n int64) ([]byte, bool) {
	if body == nil {
		return nil, false
	}
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, n+1))
	if int64(len(b)) <= n {
		return b, false
	}
	_, _ = io.CopyN(io.Discard, body, maxDrain)
	return b[:n], true
}
