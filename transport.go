package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// Transport is an [http.RoundTripper] that attaches an OAuth2 access token to
// every request and keeps that token valid: it refreshes it in the
// background before it expires, replaces a token the server rejected and
// replays the request once, and turns error statuses into typed errors.
//
// A Transport is safe for concurrent use. Create it with [New] and stop its
// background work with [Transport.Close].
type Transport struct {
	opts   options
	env    *env
	cache  *credentialCache // the token, its refresh and its store (New)
	keyed  *keyedCaches     // one cache per key (NewKeyed)
	authz  authorizer       // how a credential goes on a request
	retry  RetryPolicy
	budget *retryBudget
	stats  stats
	life   *lifetime
	close  func() error
}

// New returns a Transport that gets its tokens from src. It returns an
// error only for invalid options; no token is fetched until the first
// request (or [Transport.Token]).
func New(src Source, opts ...Option) (*Transport, error) {
	if src == nil {
		opts = append(opts, func(o *options) { o.errs = append(o.errs, errors.New("nil Source")) })
	}
	t, err := newTransport(src, false, opts...)
	if err != nil {
		return nil, err
	}
	t.startKeepAlive()
	return t, nil
}

// newTransport makes a single-token Transport for src, or the shared parts
// of a keyed one.
func newTransport(src Source, keyed bool, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t := &Transport{opts: o, authz: headerAuthorizer{}, retry: o.retry.withDefaults(), life: newLifetime()}
	if o.dpop != nil {
		t.authz = dpopAuthorizer{d: o.dpop}
		t.opts.key += "#dpop:" + o.dpop.jkt // tokens bound to another key are never adopted
	}
	t.budget = newRetryBudget(t.retry)
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := o.store
	if s == nil {
		s = store.NewMemory()
	}
	t.env = &env{opts: &t.opts, log: log, stats: &t.stats, life: t.life, store: s,
		sched:       schedulePolicy{window: o.window, windowSet: o.windowSet, skew: o.skew},
		tokenClient: newTokenClient(o.tokenClient, o.insecureHTTP, o.dpop),
		tel:         newTelemetry(o.meters, o.tracers)}
	t.env.locker, _ = s.(store.Locker)
	if keyed {
		t.env.keyed = true
		t.env.clock = startClock(t.life)
	} else {
		t.cache = newCredentialCache(t.env, src, o.key) // named by the WithStore key; stored under t.opts.key
	}
	t.close = sync.OnceValue(t.shutdown)
	return t, nil
}

// Client returns a new *http.Client that sends its requests through t.
func (t *Transport) Client() *http.Client {
	return &http.Client{Transport: t}
}

// Token returns a copy of a valid token, fetching or refreshing one if
// needed. Changing the copy changes nothing inside t.
func (t *Transport) Token(ctx context.Context) (*oauth2.Token, error) {
	k, err := t.cacheFor(ctx)
	if err != nil {
		return nil, err
	}
	c, err := k.current(ctx)
	if err != nil {
		return nil, err
	}
	return store.Clone(c.rec.tok), nil
}

// Refresh obtains a new token now, never the one held, and returns a copy.
// It shares the refresh in flight and the store's lock with everything
// else (so the Source is still called once at a time), and respects the
// failure cool-down: during one it returns the error that started it.
func (t *Transport) Refresh(ctx context.Context) (*oauth2.Token, error) {
	k, err := t.cacheFor(ctx)
	if err != nil {
		return nil, err
	}
	c, err := k.renew(ctx)
	if err != nil {
		return nil, err
	}
	return store.Clone(c.rec.tok), nil
}

// CloseIdleConnections closes the idle connections of the base
// RoundTripper and of the token requests' client, as
// [http.Client.CloseIdleConnections] expects of a transport.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.opts.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	t.env.tokenClient.CloseIdleConnections()
}

// Close stops background refreshes and waits for them to end, then writes
// a token whose save failed to the store once more. It returns within
// twice the refresh timeout, at most 10 seconds, even when a Source or a
// store hangs (their calls are then left to return by themselves).
//
// Close returns nil, unless a token obtained by refreshing could not be
// saved: then its refresh token exists only in this process, and the
// error names the token's fingerprint. Every call returns the same value.
// A Transport still works after Close: it then refreshes on demand in the
// caller's goroutine, under the caller's context, and leaves nothing
// running.
func (t *Transport) Close() error { return t.close() }

func (t *Transport) shutdown() error {
	t.life.stop()
	bound := min(t.opts.refreshTimeout, 5*time.Second)
	if !t.life.join(time.Now().Add(bound)) {
		t.env.log.LogAttrs(context.Background(), slog.LevelWarn,
			"oauthtransport: closing: a refresh is still running (a Source or store ignoring its context); not waiting for it")
	}
	return t.flushAll(time.Now().Add(bound))
}

// RoundTrip sends req with a token and returns the final response.
//
// Unless [WithStatusErrors](false) was given, a final 401, 403, 420, 429 or
// 5xx is returned as a nil response and a typed error (see
// [UnauthorizedError], [ForbiddenError], [RateLimitError], [ServerError]),
// the body read (up to 64 KiB) and closed. This departs from the
// RoundTripper contract on purpose.
//
// After a 401 the rejected token is dropped, a new one is obtained and the
// request is sent once more with its body from req.GetBody. Failures a
// retry can fix are retried as [RetryPolicy] says. req is never modified.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.attachTo(req) {
		return t.opts.base.RoundTrip(req)
	}
	if !t.opts.insecureHTTP && insecureURL(req.URL) {
		closeBody(req)
		return nil, &insecureError{method: req.Method, url: redactURL(req.URL)}
	}
	k, err := t.cacheFor(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	c, err := k.current(req.Context())
	if err != nil {
		closeBody(req)
		return nil, err
	}
	a := attempt{t: t, k: k, req: req, c: c}
	out, err := t.authz.authorize(req, req.Body, c)
	if err != nil {
		return nil, err
	}
	for {
		a.sends++
		resp, err := t.send(out)
		if err == nil {
			t.authz.observe(out, resp)
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

// errNoResponse is what a base RoundTripper that returned (nil, nil) gets.
var errNoResponse = errors.New("oauthtransport: the base RoundTripper returned neither a response nor an error")

func (t *Transport) send(out *http.Request) (*http.Response, error) {
	resp, err := t.opts.base.RoundTrip(out)
	if err == nil && resp == nil {
		err = errNoResponse
	}
	return resp, err
}

// attempt is one RoundTrip's state across the requests it sends.
type attempt struct {
	t        *Transport
	k        *credentialCache // the request's key
	req      *http.Request    // the caller's request, never modified
	c        *credential      // the credential of the last send
	sends    int              // requests sent so far
	retries  int
	replayed bool          // the one replay after a 401 happened
	wait     time.Duration // before the next retry
}

// step is what follows a send.
type step int

const (
	stepDone   step = iota // return what decide returned
	stepReplay             // send again with a new (or re-signed) credential
	stepRetry              // wait, then send again
)

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
	if v.class == noRetry {
		if err != nil {
			return stepDone, nil, err
		}
		a.t.budget.success()
		return a.finish(resp, v)
	}
	a.t.budget.failure()
	wait, stop := a.t.retryWait(a.req.Context(), a.req, v, a.retries)
	switch stop {
	case stopNone:
	case stopBody:
		return a.notReplayable(resp, err, v)
	default:
		a.t.countFailFast(a.req.Context(), v, stop)
		if err != nil {
			return stepDone, nil, giveUp(a.req, err, a.sends, stop)
		}
		return a.finish(resp, v)
	}
	if resp != nil {
		drain(resp)
	}
	a.wait = wait
	a.logRetry(resp, v)
	a.t.countRetry(a.req.Context(), resp, v)
	return stepRetry, nil, nil
}

// logRetry logs a retry: at debug level, or at info level with the hint's
// header when it waits more than a second.
func (a *attempt) logRetry(resp *http.Response, v verdict) {
	level, header := slog.LevelDebug, ""
	if a.wait > time.Second {
		level = slog.LevelInfo
		if resp != nil {
			header = hintHeader(resp.Header)
		}
	}
	a.k.env.log.LogAttrs(a.req.Context(), level, "oauthtransport: retrying",
		slog.String("method", a.req.Method), slog.String("url", redactURL(a.req.URL)), slog.Int("attempt", a.sends+1),
		slog.Duration("wait", a.wait), slog.Duration("server_hint", v.hint), slog.String("hint_header", header))
}

// unauthorized handles the first 401: the authorizer says whether a new
// (or re-signed) credential can help; if so the request is replayed once.
func (a *attempt) unauthorized(resp *http.Response) (step, *http.Response, error) {
	v := verdict{kind: kindUnauthorized}
	switch a.t.authz.rejected(resp, a.c) {
	case rejectFinal:
		return a.finish(resp, v)
	case rejectRenew:
		if !a.k.mayRenew(a.c) {
			return a.finish(resp, v)
		}
		a.k.invalidate(a.req.Context(), a.c)
	}
	if !rewindable(a.req) {
		return a.notReplayable(resp, nil, v)
	}
	drain(resp)
	a.replayed = true
	a.t.stats.replays.Add(1)
	a.k.env.tel.replays.Add(a.req.Context(), 1)
	return stepReplay, nil, nil
}

// again prepares the next send: after the wait of a retry, the current
// credential and a fresh copy of the body.
func (a *attempt) again(next step) (*http.Request, error) {
	ctx := a.req.Context()
	if next == stepRetry {
		if err := sleepCtx(ctx, a.wait); err != nil {
			return nil, fmt.Errorf("oauthtransport: %s %s: waiting %v to retry: %w", a.req.Method, redactURL(a.req.URL), a.wait, err)
		}
		a.retries++
	}
	c, err := a.k.current(ctx)
	if err != nil {
		return nil, err
	}
	body, err := replayBody(a.req)
	if err != nil {
		return nil, err
	}
	a.c = c
	if next == stepReplay {
		a.k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: replaying request with a new token",
			slog.String("method", a.req.Method), slog.String("url", redactURL(a.req.URL)), slog.String("token", c.fingerprint()))
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
		return nil, fmt.Errorf("oauthtransport: %s %s: getting the body to replay: %w", req.Method, redactURL(req.URL), err)
	}
	return body, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}
