package oauthtransport

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/cenkalti/backoff/v4"

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
	src    Source
	store  store.Store
	locker store.Locker // store as a Locker, or nil
	log    *slog.Logger
	retry  RetryPolicy
	budget *retryBudget

	// cur is the token in use; nil when there is none or it was rejected.
	// The hot path only loads it.
	cur atomic.Pointer[cached]
	// lastSeen is the last token installed, kept after cur is cleared so
	// that a refresh never adopts from the store the token it replaces.
	lastSeen atomic.Pointer[oauth2.Token]

	flight       singleflight.Group
	fgFlight     func() (any, error) // a refresh some caller waits for
	bgFlight     func() (any, error) // a refresh nobody waits for
	refreshing   atomic.Bool
	failure      failureState
	saveMu       sync.Mutex                   // serializes saves
	unsaved      atomic.Pointer[oauth2.Token] // a token the store failed to save
	saveRetrying atomic.Bool
	stats        stats

	lifetime context.Context // cancelled by Close; background work runs under it
	cancel   context.CancelFunc
	mu       sync.Mutex // guards closed against wg.Add
	closed   atomic.Bool
	wg       sync.WaitGroup
	close    func() error
}

// New returns a Transport that gets its tokens from src. It returns an
// error only for invalid options; no token is fetched until the first
// request (or [Transport.Token]).
func New(src Source, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if src == nil {
		o.errs = append(o.errs, fmt.Errorf("nil Source"))
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t := &Transport{opts: o, src: src, store: o.store, log: o.logger, retry: o.retry.withDefaults(), budget: newRetryBudget()}
	if t.store == nil {
		t.store = store.NewMemory()
	}
	t.locker, _ = t.store.(store.Locker)
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	t.lifetime, t.cancel = context.WithCancel(context.Background())
	t.fgFlight = func() (any, error) { return t.runFlight(false) }
	t.bgFlight = func() (any, error) { return t.runFlight(true) }
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
	c, err := t.current(ctx)
	if err != nil {
		return nil, err
	}
	return store.Clone(c.tok), nil
}

// Close stops background refreshes and waits for them to end. It always
// returns nil and may be called more than once. A Transport still works
// after Close: it then refreshes on demand in the caller's goroutine and
// leaves nothing running.
func (t *Transport) Close() error { return t.close() }

func (t *Transport) shutdown() error {
	t.mu.Lock()
	t.closed.Store(true)
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
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
// request is sent once more with its body from req.GetBody. req is never
// modified.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !t.attachTo(req) {
		return t.base().RoundTrip(req)
	}
	if !t.opts.insecureHTTP && insecureURL(req.URL) {
		closeBody(req)
		return nil, &insecureError{method: req.Method, url: redactURL(req.URL)}
	}
	ctx := req.Context()
	c, err := t.current(ctx)
	if err != nil {
		closeBody(req)
		return nil, err
	}
	out := withAuth(req, req.Body, c)
	var (
		attempts, retries int
		replayed          bool
		bo                *backoff.ExponentialBackOff
	)
	for {
		attempts++
		resp, err := t.base().RoundTrip(out)
		if err == nil && resp.StatusCode == http.StatusUnauthorized && !replayed {
			// A fresh token can help only if the server accepts our
			// scheme, and only once.
			if !offersScheme(parseChallenges(resp.Header.Values("Www-Authenticate")), c.scheme) {
				return t.finish(req, resp, attempts, c)
			}
			t.invalidate(c)
			if !rewindable(req) {
				return t.notReplayable(req, resp, nil, attempts, c)
			}
			drain(resp)
			replayed = true
			t.stats.replays.Add(1)
			if c, out, err = t.again(req); err != nil {
				return nil, err
			}
			t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: replaying request with a new token",
				slog.String("method", req.Method), slog.String("url", redactURL(req.URL)), slog.String("token", c.fp))
			continue
		}
		class, hint := classify(resp, err)
		if class == noRetry {
			if err != nil {
				return nil, err
			}
			t.budget.success()
			return t.finish(req, resp, attempts, c)
		}
		t.budget.failure()
		wait, stop := t.retryWait(ctx, req, class, hint, retries, &bo)
		switch stop {
		case stopBody:
			return t.notReplayable(req, resp, err, attempts, c)
		case stopNone:
		default:
			if err != nil {
				return nil, giveUp(req, err, attempts, stop)
			}
			return t.finish(req, resp, attempts, c)
		}
		if resp != nil {
			drain(resp)
		}
		t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: retrying",
			slog.String("method", req.Method), slog.String("url", redactURL(req.URL)),
			slog.Int("attempt", attempts+1), slog.Duration("wait", wait), slog.Duration("server_hint", hint))
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, fmt.Errorf("oauthtransport: %s %s: waiting %v to retry: %w", req.Method, redactURL(req.URL), wait, err)
		}
		retries++
		if c, out, err = t.again(req); err != nil {
			return nil, err
		}
	}
}

// again prepares req to be sent once more: the current token and a fresh
// copy of the body.
func (t *Transport) again(req *http.Request) (*cached, *http.Request, error) {
	c, err := t.current(req.Context())
	if err != nil {
		return nil, nil, err
	}
	body, err := replayBody(req)
	if err != nil {
		return nil, nil, err
	}
	return c, withAuth(req, body, c), nil
}

// Why a retryable failure was not retried.
type stopReason int

const (
	stopNone     stopReason = iota
	stopMethod              // the server may have acted and the request is not idempotent
	stopAttempts            // MaxAttempts reached
	stopBody                // the body cannot be replayed
	stopHint                // the server asked for a longer wait than MaxRetryAfter
	stopBudget              // the retry budget is spent
	stopDeadline            // the wait would end after the context's deadline
)

var stopText = [...]string{
	stopMethod:   "not retried: the request is not idempotent",
	stopAttempts: "gave up",
	stopHint:     "the server asked for a longer wait than MaxRetryAfter",
	stopBudget:   "not retried: retry budget spent",
	stopDeadline: "not retried: the wait would outlast the context deadline",
}

// retryWait decides whether to retry, and after how long.
func (t *Transport) retryWait(ctx context.Context, req *http.Request, class retryClass, hint time.Duration, retries int, bo **backoff.ExponentialBackOff) (time.Duration, stopReason) {
	p := &t.retry
	switch {
	case class == retryUnsafe && !p.idempotent(req):
		return 0, stopMethod
	case retries+1 >= p.MaxAttempts:
		return 0, stopAttempts
	case !rewindable(req):
		return 0, stopBody
	case hint > p.MaxRetryAfter:
		return 0, stopHint
	case !t.budget.allows():
		return 0, stopBudget
	}
	wait := max(p.nextDelay(bo), hint)
	if deadline, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(deadline) {
		return 0, stopDeadline
	}
	return wait, stopNone
}

// giveUp describes a transport error that was not retried (further).
func giveUp(req *http.Request, err error, attempts int, why stopReason) error {
	return fmt.Errorf("oauthtransport: %s %s: %s after %d attempt(s): %w", req.Method, redactURL(req.URL), stopText[why], attempts, err)
}

func (t *Transport) base() http.RoundTripper { return t.opts.base }

// finish returns resp, or the typed error for its status.
func (t *Transport) finish(req *http.Request, resp *http.Response, attempts int, c *cached) (*http.Response, error) {
	resp.Request = req // the caller's request: the copy holds the token
	if !t.opts.statusErrors || !isErrorStatus(resp.StatusCode) {
		return resp, nil
	}
	return nil, newStatusError(req, resp, attempts, c.tok.AccessToken)
}

// notReplayable ends a request that should have been sent again but whose
// body cannot be: the error matches ErrBodyNotRewindable and the status
// error (or transport error) it stands for.
func (t *Transport) notReplayable(req *http.Request, resp *http.Response, err error, attempts int, c *cached) (*http.Response, error) {
	if err == nil {
		if resp, err = t.finish(req, resp, attempts, c); err == nil {
			return resp, nil // WithStatusErrors(false)
		}
	}
	return nil, notReplayableError{err}
}

// attachTo reports whether req gets a token: its host is allowed, and it is
// not a redirect hop to another origin than the request that began the
// chain. net/http compares only host names when it strips headers on
// redirect, so the origin check is ours.
func (t *Transport) attachTo(req *http.Request) bool {
	if t.opts.allowedHosts != nil && !hostAllowed(t.opts.allowedHosts, req.URL) {
		return false
	}
	if req.Response == nil {
		return true
	}
	first := req
	for i := 0; i < 64 && first.Response != nil && first.Response.Request != nil; i++ {
		first = first.Response.Request
	}
	return sameOrigin(first.URL, req.URL)
}

func hostAllowed(allowed []hostPattern, u *url.URL) bool {
	host, port := u.Hostname(), portOrDefault(u.Scheme, u.Port())
	for _, p := range allowed {
		if strings.EqualFold(p.host, host) && (p.port == "" || p.port == port) {
			return true
		}
	}
	return false
}

// sameOrigin compares scheme, host and port, default ports made explicit.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOrDefault(a.Scheme, a.Port()) == portOrDefault(b.Scheme, b.Port())
}

func portOrDefault(scheme, port string) string {
	if port != "" {
		return port
	}
	switch strings.ToLower(scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// insecureURL reports whether u is plain http to a host that is not loopback.
func insecureURL(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.Unmap().IsLoopback()
}

// withAuth returns a shallow copy of req with body and the Authorization
// header of c. The header map is new; its values are shared with req's,
// which neither we nor a RoundTripper modify.
func withAuth(req *http.Request, body io.ReadCloser, c *cached) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Body = body
	if len(req.Header) == 0 {
		r.Header = http.Header{"Authorization": c.auth}
		return r
	}
	h := maps.Clone(req.Header) // copies small maps wholesale, no rehashing
	for k := range h {
		if len(k) == len("Authorization") && k != "Authorization" && strings.EqualFold(k, "Authorization") {
			delete(h, k) // a non-canonical spelling would be sent as a second header
		}
	}
	h["Authorization"] = c.auth
	r.Header = h
	return r
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
