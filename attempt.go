package oauthtransport

// One RoundTrip's attempts: put the credential on the request, send it,
// classify the outcome, and replay it once after a 401 or retry it as the
// RetryPolicy says.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/oauthtransport/oauthtransport/internal/wire"
	"github.com/oauthtransport/oauthtransport/store"
)

// attempt is one RoundTrip's state across the requests it sends.
type attempt struct {
	t        *Transport
	k        *credentialCache // the request's key
	req      *http.Request    // the caller's request, never modified
	c        *credential      // the credential of the last send
	sends    int              // requests sent so far
	retries  int
	replayed bool            // the one replay after a 401 happened
	rejected *credential     // the credential a 401 rejected, dropped for the replay
	claims   string          // what a claims challenge asked the replay's token for
	wait     time.Duration   // before the next retry
	waits    backoff.BackOff // the retry policy's waits, made at the first retry
}

// step is what follows a send.
type step int

const (
	stepDone   step = iota // return what decide returned
	stepReplay             // send again with a new (or re-signed) credential
	stepRetry              // wait, then send again
)

// errNoResponse is what a base RoundTripper that returned (nil, nil) gets.
var errNoResponse = fmt.Errorf("oauthtransport: the base RoundTripper returned neither a response nor an error")

// run sends the request until decide says it is done.
func (a *attempt) run() (*http.Response, error) {
	out, err := a.first()
	if err != nil {
		return nil, err
	}
	for {
		a.sends++
		resp, err := a.t.opts.base.RoundTrip(out)
		if err == nil && resp == nil {
			err = errNoResponse
		}
		if err == nil {
			a.t.authz.observe(out, resp)
		}
		next, final, err := a.decide(resp, err)
		if next == stepDone {
			return final, err
		}
		if out, err = a.again(next); err != nil {
			return nil, err
		}
	}
}

// first is the first request to send: with the credential, or the
// caller's as it is when there is none yet (see currentOrNone).
func (a *attempt) first() (*http.Request, error) {
	if unauthenticated(a.c) {
		return a.req, nil
	}
	return a.t.authz.authorize(a.req, a.req.Body, a.c)
}

// decide reads the outcome of a send: done (a response or an error), a
// replay after a 401, or a retry.
func (a *attempt) decide(resp *http.Response, err error) (step, *http.Response, error) {
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		if !a.replayed {
			return a.unauthorized(resp)
		}
	} else if err == nil && !a.c.accepted.Load() {
		a.c.accepted.Store(true)
	}
	v := classify(resp, err)
	if v.kind == kindForbidden && !a.replayed && a.follows(resp, rejectFinal) == rejectRenew {
		return a.renew(resp, v, rejectRenew) // a 403 insufficient_scope that the Source can answer
	}
	r := a.t.retrier
	if v.class == noRetry {
		if err != nil {
			return stepDone, nil, err
		}
		r.budget.success()
		return a.finish(resp, v)
	}
	r.budget.failure()
	if a.waits == nil {
		a.waits = retryWaits(r.policy).backOff()
	}
	wait, stop := r.decide(a.req.Context(), a.req, v, a.retries, a.waits)
	switch stop {
	case stopNone:
	case stopBody:
		return a.notReplayable(resp, err, v)
	default:
		a.k.env.rec.gaveUp(a.req.Context(), v, stop)
		if err != nil {
			return stepDone, nil, giveUp(a.req, err, a.sends, stop)
		}
		return a.finish(resp, v)
	}
	if resp != nil {
		wire.Drain(resp)
	}
	a.wait = wait
	a.logRetry(resp, v)
	a.k.env.rec.retried(a.req.Context(), retryReason(resp), v)
	return stepRetry, nil, nil
}

// logRetry logs a retry: at debug level, or at info level with the hint's
// header when it waits more than a second.
func (a *attempt) logRetry(resp *http.Response, v verdict) {
	level, header := slog.LevelDebug, ""
	if a.wait > time.Second {
		level = slog.LevelInfo
		if resp != nil {
			header = wire.HintHeader(resp.Header)
		}
	}
	a.k.env.log.LogAttrs(a.req.Context(), level, "oauthtransport: retrying",
		slog.String("method", a.req.Method), slog.String("url", wire.RedactURL(a.req.URL)), slog.Int("attempt", a.sends+1),
		slog.Duration("wait", a.wait), slog.Duration("server_hint", v.hint), slog.String("hint_header", header))
}

// unauthorized handles the first 401: the authorizer says whether a new
// (or re-signed) credential can help; if so the request is replayed once.
func (a *attempt) unauthorized(resp *http.Response) (step, *http.Response, error) {
	if unauthenticated(a.c) { // sent without a credential: the Source reads the challenge
		return a.renew(resp, verdict{kind: kindUnauthorized}, a.follows(resp, rejectFinal))
	}
	how := a.t.authz.rejected(resp, a.c)
	if how == rejectRenew || how == rejectFinal {
		how = a.follows(resp, how)
	}
	return a.renew(resp, verdict{kind: kindUnauthorized}, how)
}

// follows hands a 401 or 403 to a Source that follows challenges
// (ChallengeFollower): rejectRenew when it asks for a new token,
// rejectFinal when not; how for other Sources. A panic in it is contained
// and counts as no.
func (a *attempt) follows(resp *http.Response, how onReject) onReject {
	f, ok := a.k.src.(ChallengeFollower)
	if !ok {
		return how
	}
	c := &ResourceChallenge{StatusCode: resp.StatusCode, URL: wire.RedactURL(a.req.URL), Header: resp.Header,
		Challenges: wire.ParseChallenges(resp.Header.Values("Www-Authenticate"))}
	if !unauthenticated(a.c) {
		c.Token = store.Clone(a.c.rec.tok)
	}
	var yes bool
	err := protect(a.req.Context(), a.k.env.log, "following a challenge (ChallengeFollower)", a.c.rec.secrets(),
		func() error { yes = f.FollowChallenge(c); return nil })
	if err != nil || !yes {
		return rejectFinal
	}
	return rejectRenew
}

// renew acts on what a 401 (or a followed 403) calls for: the response
// is final, or the request is replayed once, with the rejected token
// dropped unless it is only signed again.
func (a *attempt) renew(resp *http.Response, v verdict, how onReject) (step, *http.Response, error) {
	switch how {
	case rejectFinal:
		return a.finish(resp, v)
	case rejectRenew, rejectClaims:
		if unauthenticated(a.c) {
			break // no token was sent: none to drop
		}
		if !a.k.spacing.mayRenew(a.c.rec, a.c.accepted.Load()) { // never-accepted tokens' renewals are spaced out
			return a.finish(resp, v)
		}
		if how == rejectClaims {
			a.claims, _ = wire.Claims(wire.ParseChallenges(resp.Header.Values("Www-Authenticate")))
			// Before the token is dropped: whoever then finds no token asks for the same claims.
			a.k.env.ledger.askClaims(a.k.slot().key, a.claims)
		}
		a.k.invalidate(a.req.Context(), a.c)
		a.rejected = a.c
	}
	if !rewindable(a.req) {
		return a.notReplayable(resp, nil, v)
	}
	wire.Drain(resp)
	a.replayed = true
	a.k.env.rec.replayed(a.req.Context())
	return stepReplay, nil, nil
}

// again prepares the next send: after the wait of a retry, the current
// credential (of the key's cache now: it may have been evicted meanwhile)
// and a fresh copy of the body.
func (a *attempt) again(next step) (*http.Request, error) {
	ctx := a.req.Context()
	if next == stepRetry {
		if err := sleepCtx(ctx, a.wait); err != nil {
			return nil, fmt.Errorf("oauthtransport: %s %s: waiting %v to retry: %w", a.req.Method, wire.RedactURL(a.req.URL), a.wait, err)
		}
		a.retries++
	}
	get := (*credentialCache).current
	if a.rejected != nil {
		get = func(k *credentialCache, ctx context.Context) (*credential, error) {
			if k != a.k {
				k.invalidate(ctx, a.rejected) // the key's cache was evicted meanwhile; its successor may hold the token anew
			}
			if a.claims != "" && next == stepReplay {
				return k.withClaims(ctx, a.claims, a.rejected)
			}
			return k.current(ctx)
		}
	}
	k, c, err := a.t.credential(ctx, get)
	if err != nil {
		return nil, err
	}
	body, err := replayBody(a.req)
	if err != nil {
		return nil, err
	}
	a.k, a.c = k, c
	if next == stepReplay {
		a.k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: replaying request with a new token",
			slog.String("method", a.req.Method), slog.String("url", wire.RedactURL(a.req.URL)), slog.String("token", c.fingerprint()))
	}
	return a.t.authz.authorize(a.req, body, c)
}

// finish returns resp, or the typed error its verdict names.
func (a *attempt) finish(resp *http.Response, v verdict) (step, *http.Response, error) {
	resp.Request = a.req // the caller's request: the copy holds the token
	if v.kind == kindNone {
		return stepDone, resp, nil
	}
	if !a.t.opts.statusErrors {
		resp.Body = &sentBody{ReadCloser: resp.Body, sent: a.c.rec.tok.AccessToken}
		return stepDone, resp, nil
	}
	return stepDone, nil, newStatusError(a.req, resp, a.sends, a.c.rec.tok.AccessToken, v)
}

// notReplayable ends a request that should have been sent again but whose
// body cannot be: the error matches ErrBodyNotRewindable and the status
// error (or transport error) it stands for.
func (a *attempt) notReplayable(resp *http.Response, err error, v verdict) (step, *http.Response, error) {
	if err == nil {
		_, final, ferr := a.finish(resp, v)
		if ferr == nil {
			return stepDone, final, nil // WithStatusErrors(false)
		}
		err = ferr
	}
	return stepDone, nil, notReplayableError{err}
}

// rewindable reports whether req's body can be sent again.
func rewindable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func replayBody(req *http.Request) (io.ReadCloser, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return req.Body, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("oauthtransport: %s %s: getting the body to replay: %w", req.Method, wire.RedactURL(req.URL), err)
	}
	return body, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
