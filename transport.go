package oauthtransport

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
	"github.com/oauthtransport/oauthtransport/store"
)

// Transport is an [http.RoundTripper] that attaches an OAuth2 access token to
// every request and keeps that token valid: it refreshes it in the
// background before it expires, replaces a token the server rejected and
// replays the request once, and turns error statuses into typed errors.
//
// A Transport is safe for concurrent use. Create it with [New] (one token)
// or [NewKeyed] (a token per key), and stop its background work with
// [Transport.Close].
type Transport struct {
	opts    options
	env     *env
	cache   *credentialCache // the token, its refresh and its store (New)
	keyed   *keyedCaches     // one cache per key (NewKeyed)
	authz   authorizer       // how a credential goes on a request
	retrier *retrier         // the retry policy and budget
	close   func() error
}

// New returns a Transport that gets its tokens from src. It returns an
// error only for invalid options; no token is fetched until the first
// request (or [Transport.Token]).
func New(src Source, opts ...Option) (*Transport, error) {
	if src == nil {
		opts = append(opts, func(o *options) { o.errs = append(o.errs, errors.New("nil Source")) })
	}
	opts = append(opts, func(o *options) {
		if o.maxTokensSet {
			o.errs = append(o.errs, errors.New("WithMaxTokens: only for a keyed Transport (NewKeyed)"))
		}
	})
	t, err := newTransport(false, opts...)
	if err != nil {
		return nil, err
	}
	t.cache = newCredentialCache(t.env, src, t.opts.key) // named by the WithStore key
	startKeepAlive(&keeper{env: t.env, policy: t.opts.keepAlive, single: t.cache})
	return t, nil
}

// NewKeyed returns a Transport with one token per key: a request (or a
// Token, Refresh or SetToken call) names its key with [WithKey], and a
// request without one fails with [ErrNoKey]. sources returns the Source of
// a key when it is first used (an error fails that request only; a call
// that hangs holds a request no longer than its context). Each key has
// its own token, refresh flight, failure cool-down and store entry (under
// the WithStore key, "/", and the key) and lock; the base RoundTripper,
// the retry budget, Stats and the metrics are shared. WithTokenChange is
// called with the WithKey key. See [WithMaxTokens] for what it keeps in
// memory.
func NewKeyed(sources func(key string) (Source, error), opts ...Option) (*Transport, error) {
	if sources == nil {
		opts = append(opts, func(o *options) { o.errs = append(o.errs, errors.New("nil sources")) })
	}
	t, err := newTransport(true, opts...)
	if err != nil {
		return nil, err
	}
	t.keyed = &keyedCaches{env: t.env, sources: sources, max: t.opts.maxTokens}
	startKeepAlive(&keeper{env: t.env, policy: t.opts.keepAlive, keyed: t.keyed})
	return t, nil
}

// newTransport makes what every Transport shares.
func newTransport(keyed bool, opts ...Option) (*Transport, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	t := &Transport{opts: o, authz: headerAuthorizer{}, retrier: newRetrier(o.retry.withDefaults())}
	log := o.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	thumbprint := ""
	if o.dpop != nil {
		t.authz = dpopAuthorizer{d: o.dpop, log: log}
		thumbprint = o.dpop.jkt // tokens bound to another key are never adopted
	}
	s, private := o.store, false
	if s == nil {
		s, private = store.NewMemory(), true
	}
	t.env = &env{opts: &t.opts, log: log, life: newLifetime(), store: s, private: private,
		rec:         &recorder{tel: newTelemetry(o.meters, o.tracers)},
		keys:        newStoreKeys(o.key, thumbprint, keyed),
		sched:       schedulePolicy{window: o.window, windowSet: o.windowSet, skew: o.skew},
		tokenClient: newTokenClient(o.tokenClient, o.insecureHTTP, o.dpop)}
	t.env.locker, _ = s.(store.Locker)
	if keyed {
		t.env.clock = startClock(t.env.life)
	}
	t.close = sync.OnceValue(t.shutdown)
	return t, nil
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
	if !attachTo(t.opts.allowedHosts, req) {
		return t.opts.base.RoundTrip(req)
	}
	if !t.opts.insecureHTTP && insecureURL(req.URL) {
		closeBody(req)
		return nil, &insecureError{method: req.Method, url: wire.RedactURL(req.URL)}
	}
	var k *credentialCache
	var c *credential
	var err error
	get := currentOrNone
	if !rewindable(req) {
		get = (*credentialCache).current // a body sent once: with a token
	}
	if t.keyed == nil { // one token: no eviction to follow (the hot path)
		k = t.cache
		c, err = get(k, req.Context())
	} else {
		k, c, err = t.credential(req.Context(), get)
	}
	if err != nil {
		closeBody(req)
		return nil, err
	}
	a := &attempt{t: t, k: k, req: req, c: c}
	return a.run()
}

// Client returns a new *http.Client that sends its requests through t.
func (t *Transport) Client() *http.Client {
	return &http.Client{Transport: t}
}

// Token returns a copy of a valid token, fetching or refreshing one if
// needed. Changing the copy changes nothing inside t.
func (t *Transport) Token(ctx context.Context) (*oauth2.Token, error) {
	_, c, err := t.credential(ctx, (*credentialCache).current)
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
	_, c, err := t.credential(ctx, (*credentialCache).renew)
	if err != nil {
		return nil, err
	}
	return store.Clone(c.rec.tok), nil
}

// SetToken makes tok the token of ctx's key ([WithKey] on a keyed
// Transport): one a person has just authorized, after a dead grant
// ([ErrReauthRequired]) or to connect an account. It waits for a refresh
// in flight, saves tok to the store as newer than any token held there or
// here, so that every process sharing the store adopts it (a process
// cooling down after the dead grant looks at the store once a second),
// and uses it at once; the key's failure cool-down ends. A refresh of the
// old grant that returns later (one abandoned for its slowness) never
// replaces it. It fails, and changes nothing, when the store's lock cannot
// be taken, the store cannot be read, or the save fails. tok needs an
// access token: an expired one will do, with the refresh token that
// replaces it.
func (t *Transport) SetToken(ctx context.Context, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("oauthtransport: SetToken: the token has no access token")
	}
	k, err := t.cacheFor(ctx, true)
	if err != nil {
		return err
	}
	return k.set(ctx, tok)
}

// Revoke signs out: it revokes the grant of ctx's key ([WithKey] on a
// keyed Transport) at the server (RFC 7009: the refresh token, else the
// access token, at the revocation endpoint the Source knows), then ends it
// in the store the way a dead grant is ended, for good: the token is
// replaced by a record of the revocation, so that no process sharing the
// store presents it or writes it back, and this Transport stops using it.
// The next caller that needs a token gets [ErrReauthRequired], or, with a
// Source that asks a person (AuthorizationCode, DeviceAuthorization), is
// asked to sign in again. When the Source knows no revocation endpoint, or
// the server could not be told, the grant is still ended here and the
// error says the server was not told. It waits for a refresh in flight.
func (t *Transport) Revoke(ctx context.Context) error {
	k, err := t.cacheFor(ctx, true)
	if err != nil {
		return err
	}
	if f := k.flights.current(); f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return k.protocol(ask{}).revoke(ctx)
}

// Credential returns a valid token for ctx's key ([WithKey] on a keyed
// Transport), fetching or refreshing one as RoundTrip does: it starts a
// background refresh when the token is due for one, and waits (on ctx) for
// the one refresh in flight only when no valid token is held. Its errors
// are RoundTrip's before anything is sent: a *[TokenError] (matching
// [ErrToken]) when no token can be had, [ErrNoKey] for a keyed Transport
// without WithKey, ctx's error when ctx ends first.
//
// It never checks where the token goes: a caller sending it over plain
// text to a remote host should refuse to, unless [Transport.AllowsInsecure].
func (t *Transport) Credential(ctx context.Context) (*Credential, error) {
	k, c, err := t.credential(ctx, (*credentialCache).current)
	if err != nil {
		return nil, err
	}
	return &Credential{t: t, k: k, c: c}, nil
}

// Retry says whether to try a call of another protocol again after a
// failure a retry can fix (a rate limit, the server unavailable) of its
// attempt-th try (1 for the first), and how long to wait first, under the
// Transport's [RetryPolicy] and its retry budget, shared with RoundTrip.
//
// The wait is the policy's backoff for that retry, or hint, the server's
// own (such as Retry-After or gRPC's google.rpc.RetryInfo; zero when it
// sent none), when that is longer. It returns false, and the caller
// returns the failure as final, once attempt reaches MaxAttempts, when
// hint exceeds MaxRetryAfter, while the budget is spent, or when the wait
// would end after ctx's deadline; and when idempotent is false, unless
// RetryNonIdempotent: pass true when the server did not act on the try
// (a rate limit) or acting twice does no harm.
//
// Every call spends from the budget as a retryable HTTP failure does;
// [Transport.Succeeded] earns it back. A retry is counted in [Stats]
// (Retries) and the metrics (reason "integration"); one the server hinted
// at counts as a rate-limit wait, and a hinted one not waited for (past
// MaxRetryAfter or the deadline) as a rate-limit fail-fast. Retry does not
// sleep.
func (t *Transport) Retry(ctx context.Context, attempt int, hint time.Duration, idempotent bool) (time.Duration, bool) {
	r := t.retrier
	r.budget.failure()
	retries := max(attempt, 1) - 1
	v := verdict{class: retrySafe, hint: hint}
	if hint > 0 {
		v.kind = kindRateLimit
	}
	waits := &waits{p: retryWaits(r.policy), n: retries}
	wait, why := r.next(ctx, idempotent || r.policy.RetryNonIdempotent, true, hint, retries, waits)
	if why != stopNone {
		t.env.rec.gaveUp(ctx, v, why)
		return 0, false
	}
	t.env.rec.retried(ctx, "integration", v)
	return wait, true
}

// Succeeded reports that a call of another protocol succeeded: it earns
// back retry budget as a successful HTTP response does (see
// [RetryPolicy].RetryBudget).
func (t *Transport) Succeeded() { t.retrier.budget.success() }

// AllowsInsecure reports whether [WithInsecureHTTP] was given: whether a
// token may be sent without transport security (over plain text to a
// remote host). An integration should refuse to send one otherwise.
func (t *Transport) AllowsInsecure() bool { return t.opts.insecureHTTP }

// successor returns the cache that replaced k in memory after a keyed
// Transport evicted k's key, or nil.
func (t *Transport) successor(k *credentialCache) *credentialCache {
	if t.keyed == nil {
		return nil
	}
	v, ok := t.keyed.m.Load(k.name)
	if !ok || v.(*credentialCache) == k {
		return nil
	}
	return v.(*credentialCache)
}

// Stats returns the counters so far. It is safe to call at any time.
func (t *Transport) Stats() Stats {
	s := &t.env.rec.stats
	return Stats{
		TokenFetches:        s.fetches.Load(),
		BackgroundRefreshes: s.background.Load(),
		Adopted:             s.adopted.Load(),
		FetchFailures:       s.failures.Load(),
		Invalidations:       s.invalidations.Load(),
		Replays:             s.replays.Load(),
		Waits:               s.waits.Load(),
		Retries:             s.retries.Load(),
		RateLimitWaits:      s.limitWaits.Load(),
		RateLimitFailFasts:  s.limitFailFasts.Load(),
	}
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

// Close stops background work and returns. It cancels refreshes that
// spend nothing (client credentials, a token exchange, a FromTokenSource)
// and store calls made for them without waiting for them: it returns
// within a second whenever no refreshed token is waiting to be saved,
// whatever a Source or a store is doing. It waits, bounded, only where a
// rotated refresh token could otherwise be lost: for a refresh that is
// presenting a refresh token (its answer must be saved), and to write once
// more a refreshed token whose save failed, for at most twice
// min(WithRefreshTimeout, 5s); calls still running then are left to return
// by themselves.
//
// Close returns nil, unless a token obtained by refreshing could not be
// saved: then its refresh token exists only in this process, and the
// error names the token's fingerprint. Every call returns the same value.
// A Transport still works after Close: it then refreshes on demand in the
// caller's goroutine, under the caller's context, and leaves nothing
// running.
func (t *Transport) Close() error { return t.close() }

// closeMoment is how long Close waits for work that spends nothing to
// notice the cancellation.
const closeMoment = 100 * time.Millisecond

func (t *Transport) shutdown() error {
	life := t.env.life
	life.stop()
	bound := min(t.opts.refreshTimeout, 5*time.Second)
	if !life.join(time.Now().Add(bound), time.Now().Add(closeMoment)) {
		t.env.log.LogAttrs(context.Background(), slog.LevelWarn,
			"oauthtransport: closing: a refresh presenting a refresh token is still running (a Source or store ignoring its context); not waiting for it")
	}
	deadline := time.Now().Add(bound)
	if t.keyed == nil {
		return t.cache.persist.flush(t.cache.slot(), deadline)
	}
	var errs []error
	for _, c := range t.keyed.caches() {
		errs = append(errs, c.persist.flush(c.slot(), deadline))
	}
	return errors.Join(errs...)
}

// cacheFor returns the credential cache a request or call uses; used: a
// caller's, not the keep-alive's.
func (t *Transport) cacheFor(ctx context.Context, used bool) (*credentialCache, error) {
	if t.keyed == nil {
		return t.cache, nil
	}
	key, ok := keyOf(ctx)
	if !ok {
		return nil, ErrNoKey
	}
	return t.keyed.get(ctx, key, used)
}

// credential gets ctx's key's credential through get, asking anew for the
// key's cache when the one it had was evicted meanwhile.
func (t *Transport) credential(ctx context.Context, get func(*credentialCache, context.Context) (*credential, error)) (*credentialCache, *credential, error) {
	if t.keyed == nil { // one token: no eviction
		c, err := get(t.cache, ctx)
		return t.cache, c, err
	}
	for {
		k, err := t.cacheFor(ctx, true)
		if err != nil {
			return nil, nil, err
		}
		c, err := get(k, ctx)
		if !errors.Is(err, errRetired) {
			return k, c, err
		}
	}
}
