package oauthtransport

// The credential cache: one key's token, and the parts that keep it
// valid. It holds the token in use (read without a lock on the hot path)
// and the newest token known, and delegates: the single flight
// (flight.go) runs the refresh protocol (protocol.go), writes go through
// the persister (persist.go), and spacing (spacing.go) holds token
// requests back after failures.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// credentialCache is one key's token and the state of its refreshes.
type credentialCache struct {
	env  *env
	src  Source
	name string      // the WithStore key, or on a keyed Transport the WithKey key: what WithTokenChange names
	used atomic.Bool // a keyed Transport's: used since the eviction hand last passed

	cur  atomic.Pointer[credential] // the token in use; nil when none or rejected
	seen atomic.Pointer[record]     // the newest token known; kept when cur is cleared

	flights flights
	persist persister
	spacing spacing
}

// env is what the credential caches of one Transport share.
type env struct {
	opts  *options
	log   *slog.Logger
	rec   *recorder
	life  *lifetime
	sched schedulePolicy
	// tokenClient sends the built-in sources' token requests.
	tokenClient *http.Client
	store       store.Store
	locker      store.Locker // store as a Locker, or nil
	private     bool         // store is the Transport's own in-memory store
	keys        storeKeys
	ledger      ledger
	// fetchedUnder: the certificate thumbprint of the last token request
	// (WithBoundCertificate).
	fetchedUnder atomic.Pointer[string]
	// clock: credentials read it instead of owning timers (a keyed
	// Transport: no timer per idle key); nil otherwise.
	clock *coarseClock
}

// ask is what a refresh is asked for: in the background (nobody waits),
// and whether it must replace a particular credential (Transport.Refresh)
// rather than return it while it is still good.
type ask struct {
	background bool
	replace    *credential
	claims     string            // the claims a claims challenge asked for (JSON), if any
	noLogin    bool              // never ask a person to sign in (the keep-alive)
	parent     trace.SpanContext // the asking request's span, for the refresh's
}

func newCredentialCache(e *env, src Source, name string) *credentialCache {
	return &credentialCache{env: e, src: src, name: name}
}

// slot is where the key's records live; its store key is made when
// needed, not kept: a keyed Transport holds many caches.
func (k *credentialCache) slot() slot {
	return slot{store: k.env.store, key: k.env.keys.of(k.name, k.src), log: k.env.log}
}

func (k *credentialCache) flightEnv() flightEnv {
	e := flightEnv{life: k.env.life, timeout: k.env.opts.refreshTimeout, log: k.env.log,
		key: func() string { return k.env.keys.of(k.name, k.src) }}
	if _, ok := k.src.(interactive); ok {
		if d, login := needsLogin(k.src, k.seen.Load(), k.env.ledger.entry(e.key()).lostRT != ""); login {
			e.timeout += d // a waiting caller may sign a person in
		}
	}
	return e
}

// current returns a usable credential: the cached one while it has not
// expired, starting a background refresh when it is stale; otherwise it
// waits for the one refresh in flight.
func (k *credentialCache) current(ctx context.Context) (*credential, error) {
	if c := k.cur.Load(); c != nil && (c.rec.bound == nil || k.stillBound(ctx, c)) { // bound: WithBoundCertificate
		switch c.load() {
		case fresh:
			return c, nil
		case stale:
			k.refreshInBackground(ctx)
			return c, nil
		}
	}
	start := time.Now()
	c, err := k.wait(ctx)
	k.env.rec.waited(ctx, time.Since(start))
	return c, err
}

// stillBound reports whether c is bound to the certificate in use now
// (WithBoundCertificate); if not, c is dropped, and the idle connections
// made with the old certificate are closed.
func (k *credentialCache) stillBound(ctx context.Context, c *credential) bool {
	if *c.rec.bound == k.env.opts.boundCert() {
		return true
	}
	if k.cur.Load() == c {
		k.invalidate(ctx, c)
		k.env.tokenClient.CloseIdleConnections()
		if base, ok := k.env.opts.base.(interface{ CloseIdleConnections() }); ok {
			base.CloseIdleConnections()
		}
	}
	return false
}

// refreshInBackground starts one refresh unless one runs, the last one
// failed recently, or the transport is closed.
func (k *credentialCache) refreshInBackground(ctx context.Context) {
	if k.flights.running.Load() || k.env.life.closed.Load() || !k.spacing.allowsBackground() {
		return
	}
	a := ask{background: true, parent: trace.SpanContextFromContext(ctx)}
	_, _ = k.flights.join(k.flightEnv(), spends(k.src, k.seen.Load()), "", func(ctx context.Context) (*credential, error) {
		return k.refresh(ctx, a)
	})
}

// wait blocks until a refresh installs a usable token, ctx is done, or the
// refresh timeout passes.
func (k *credentialCache) wait(ctx context.Context) (*credential, error) {
	if c := k.cur.Load(); c != nil && c.load() != expired {
		return c, nil
	}
	c, err := k.obtain(ctx, ask{parent: trace.SpanContextFromContext(ctx)})
	if err == nil && c.load() == stale {
		// An adopted token that is already stale: requests that came
		// during the flight could not start a refresh.
		k.refreshInBackground(ctx)
	}
	return c, err
}

// renew obtains a token other than the one held now (Transport.Refresh):
// it joins the refresh in flight, or starts one that does not return the
// held token, under the same single flight, lock and cool-down as any.
func (k *credentialCache) renew(ctx context.Context) (*credential, error) {
	held := k.cur.Load()
	for range 3 {
		c, err := k.obtain(ctx, ask{replace: held, parent: trace.SpanContextFromContext(ctx)})
		if err != nil || held == nil || c.rec != held.rec {
			return c, err
		}
		// It joined a refresh that kept the held token: ask again.
	}
	return nil, temporaryError(errors.New("no new token: every refresh returned the token held"))
}

// withClaims obtains a token asked for with claims (a claims challenge's)
// to replace rejected; a token installed since the rejection (another
// request's answer to the same challenge) is used as it is.
func (k *credentialCache) withClaims(ctx context.Context, claims string, rejected *credential) (*credential, error) {
	if c := k.cur.Load(); c != nil && c.rec.tok.AccessToken != rejected.rec.tok.AccessToken && c.load() != expired {
		return c, nil
	}
	return k.obtain(ctx, ask{replace: rejected, claims: claims, parent: trace.SpanContextFromContext(ctx)})
}

// obtain runs a refresh, or joins the one in flight, once the failure
// cool-down allows; after Close, in the caller's goroutine. An ask for
// claims that joined a flight without them asks again once it ends.
func (k *credentialCache) obtain(ctx context.Context, a ask) (*credential, error) {
	if a.claims == "" {
		a.claims = k.env.ledger.entry(k.slot().key).claims
	}
	a.noLogin = a.noLogin || !loginAllowed(ctx)
	_, interactive := k.src.(interactive)
	for range 3 {
		err := k.spacing.coolingDown()
		if err != nil && !k.revived(ctx, err) && !(interactive && !a.noLogin && errors.Is(err, ErrReauthRequired)) {
			return nil, err // a dead grant's cool-down holds back token requests, never a login
		}
		run := func(ctx context.Context) (*credential, error) { return k.refresh(ctx, a) }
		if k.env.life.closed.Load() {
			return k.flights.afterCloseRun(ctx, k.env.opts.refreshTimeout, run)
		}
		e := k.flightEnv()
		f, err := k.flights.join(e, spends(k.src, k.seen.Load()), a.claims, run)
		if err != nil {
			return nil, err
		}
		c, err := k.flights.await(ctx, e, f)
		if !errors.Is(err, errClosed) && (err != nil || f.claims == a.claims) {
			return c, err
		}
	}
	return nil, temporaryError(errors.New("no token with the claims asked for: every refresh joined was another's"))
}

// invalidate drops c's token after the server rejected it, unless a newer
// token has been installed meanwhile. It compares tokens, not credentials:
// the cache that replaced an evicted one may hold the same token anew.
func (k *credentialCache) invalidate(ctx context.Context, c *credential) {
	cur := k.cur.Load()
	cleared := cur != nil && cur.rec.tok.AccessToken == c.rec.tok.AccessToken && k.cur.CompareAndSwap(cur, nil)
	if cleared {
		c = cur
		c.disarm()
		k.env.rec.invalidated(ctx)
	}
	k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token rejected",
		slog.String("token", c.fingerprint()), slog.Bool("cleared", cleared))
}

// refresh runs the refresh protocol with users' panics recovered, and
// records its outcome: in the failure cool-down, the log, Stats and the
// telemetry. A refresh asked for by a caller that saw an older state
// returns the token a refresh that just ended installed.
func (k *credentialCache) refresh(ctx context.Context, a ask) (*credential, error) {
	before, start := k.cur.Load(), time.Now()
	if c := before; c != nil && c != a.replace && a.claims == "" && (c.load() == fresh || (!a.background && c.load() == stale)) {
		return c, nil
	}
	ctx, span := k.env.rec.startRefresh(ctx, a.parent, a.background)
	var c *credential
	var outcome string
	err := protect(ctx, k.env.log, "a token refresh (Source, Store, Locker or WithAuthorization)", k.seen.Load().secrets(), func() (err error) {
		c, outcome, err = k.protocol(a).run(ctx)
		return err
	})
	switch {
	case err == nil:
		k.succeeded(ctx, c, outcome, a)
		k.env.rec.refreshEnded(ctx, span, start, outcome, c.fingerprint(), a.background)
		return c, nil
	case errors.Is(err, errClosed):
		span.End()
		return nil, err
	}
	k.env.rec.refreshEnded(ctx, span, start, outcomeError, "", a.background)
	te := asTokenError(err).withoutSecrets(k.seen.Load().secrets()...)
	if outcome == outcomeLogin {
		return nil, te // a failed login is not retried, nor held back: the next waiting caller may start another
	}
	return nil, k.failed(ctx, te, a.background)
}

// succeeded ends the failure cool-down, spaces out the refreshes of
// tokens that keep arriving already expired (see spacing.lateToken), and
// ends a claims challenge once a token with its claims is installed.
func (k *credentialCache) succeeded(ctx context.Context, c *credential, outcome string, a ask) {
	if !c.late {
		k.spacing.reset()
	}
	if outcome != outcomeFetched && outcome != outcomeLogin {
		return
	}
	if a.claims != "" {
		k.env.ledger.gotClaims(k.slot().key, a.claims)
	}
	if d := k.spacing.lateToken(c.late); d > 0 {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: the token arrived already expired (expires_in not positive, "+
			"or a JWT exp in the past: is a clock wrong?); using it, and refreshing again in a while",
			slog.String("key", k.slot().key), slog.String("token", c.fingerprint()), slog.Duration("next_refresh_in", d))
	}
}

// failed starts the cool-down of a refresh failure and logs it: at warn
// level when callers see it, at debug level for a background refresh
// while a valid token remains in use.
func (k *credentialCache) failed(ctx context.Context, te *TokenError, background bool) *TokenError {
	d := k.spacing.failed(te)
	level := slog.LevelWarn
	if background && k.cur.Load() != nil {
		level = slog.LevelDebug
	}
	k.env.log.LogAttrs(ctx, level, "oauthtransport: token refresh failed", slog.String("key", k.slot().key),
		slog.String("error", te.Error()), slog.Bool("background", background), slog.Duration("next_try_in", d))
	return te
}

// protocol is one run of the refresh protocol for this key.
func (k *credentialCache) protocol(a ask) *protocol {
	return &protocol{env: k.env, src: k.src, slot: k.slot(), seen: &k.seen, persist: &k.persist, install: k.install,
		drop: k.drop, background: a.background, claims: a.claims, mayLogin: !a.background && !a.noLogin}
}

// install makes rec the current token, unless a newer one was installed
// meanwhile (a refresh abandoned for its slowness may return late), and
// tells the WithTokenChange hook; callers hold the persister's order. A
// token that cannot be used is still recorded as seen: its refresh token
// is the one to present next.
func (k *credentialCache) install(rec *record, fetched bool) (*credential, error) {
	if b := k.env.opts.boundCert; b != nil && rec.bound == nil {
		rec.bound = boundTo(rec.tok, b) // adopted or set: bound to what it names, else to the certificate in use
	}
	c, err := newCredential(rec, k.env.opts.authorization)
	for {
		seen := k.seen.Load()
		if newer(seen, rec) {
			return c, err // used by whoever asked, never installed
		}
		if k.seen.CompareAndSwap(seen, rec) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	c.fetched = fetched
	c.arm(time.Now(), k.env.sched, fetched, k.env.clock)
	if old := k.cur.Swap(c); old != nil {
		old.disarm()
	}
	k.announce(rec)
	return c, nil
}

// drop makes rec, a record of marks alone (a revoked grant), the newest
// known, and the key holds no token; callers hold the persister's order.
func (k *credentialCache) drop(rec *record) {
	k.seen.Store(rec)
	if old := k.cur.Swap(nil); old != nil {
		old.disarm()
	}
}

// announce calls the WithTokenChange hook with a copy of a new token; the
// persister's order keeps calls for one key from overlapping. A panic in
// it is logged, and the token stays installed.
func (k *credentialCache) announce(rec *record) {
	f := k.env.opts.tokenChange
	if f == nil {
		return
	}
	_ = protect(context.Background(), k.env.log, "the WithTokenChange function", k.seen.Load().secrets(), func() error {
		f(k.name, store.Clone(rec.tok))
		return nil
	})
}

// set makes tok, which a person just authorized, the key's token (see
// Transport.SetToken): it waits for the refresh in flight, then installs
// tok as newer than anything seen or stored.
func (k *credentialCache) set(ctx context.Context, tok *oauth2.Token) error {
	if f := k.flights.current(); f != nil {
		select {
		case <-f.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if err := k.protocol(ask{}).set(ctx, tok); err != nil {
		return err
	}
	k.spacing.reset()
	k.spacing.renewed()
	return nil
}

// revived reports whether a key cooling down after err (a dead grant)
// found a newer, live token in the store, and installed it: one a person
// authorized again and another process set. The store is read at most
// once a second per key.
func (k *credentialCache) revived(ctx context.Context, err error) bool {
	last := k.spacing.last.Load()
	if last == nil || !errors.Is(err, ErrReauthRequired) || !peekDue(&last.peekAt) {
		return false
	}
	if !k.protocol(ask{}).revive(ctx) {
		return false
	}
	k.spacing.reset()
	return true
}

// retire takes the cache out of service once a keyed Transport evicted its
// key, unless a refresh of it runs or a token of it waits to be saved: no
// refresh starts here again (callers holding it ask for the key's cache
// anew), so that one key never has two refreshes in one process.
func (k *credentialCache) retire() bool {
	if k.persist.busy() {
		return false
	}
	return k.flights.retire()
}

// noCredential is the record of a request sent without a credential.
var noCredential = &record{tok: &oauth2.Token{}}

// challengeFirster is a Source that wants a resource's challenge before
// its first token (ProtectedResource: the 401 names the resource's
// metadata and the scopes to ask for). stored reports whether the store
// holds a token for the key; the Source asks it once, not per request.
type challengeFirster interface {
	challengeFirst(stored func() bool) bool
}

// currentOrNone is current, except that a key without a token, here or
// in the store, whose Source wants a challenge first gets a credential of
// no token: the request goes out as the caller made it (as MCP clients
// send their first request), and a 401 to it is handed to the Source
// (attempt.follows), then the request is sent once more with a token.
// Only for a request whose body can be sent again.
func currentOrNone(k *credentialCache, ctx context.Context) (*credential, error) {
	if k.cur.Load() == nil && k.seen.Load() == nil {
		f, ok := k.src.(challengeFirster)
		if ok && f.challengeFirst(func() bool {
			rec, err := load(ctx, k.slot())
			return err != nil || (rec != nil && !rec.marker())
		}) {
			return &credential{rec: noCredential}, nil
		}
	}
	return k.current(ctx)
}

// unauthenticated reports a credential of no token (currentOrNone).
func unauthenticated(c *credential) bool { return c.rec == noCredential }

// spends reports whether refreshing from base through src presents a
// refresh token.
func spends(src Source, base *record) bool {
	if s, ok := src.(RefreshTokenSpender); ok {
		return s.SpendsRefreshToken()
	}
	return base != nil && base.tok.RefreshToken != ""
}

// graceOf is src's declared rotation grace period.
func graceOf(src Source) time.Duration {
	if g, ok := src.(interface{ rotationGrace() time.Duration }); ok {
		return g.rotationGrace()
	}
	return 0
}
