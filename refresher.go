package oauthtransport

// The credential cache: one key's token, its one refresh in flight, and
// the protocol that keeps a fleet sharing a store from spending a refresh
// token twice.
//
// # The refresh protocol
//
// Every stored record carries [store.Meta]: a generation (one more than the
// newest token its writer knew), when it was obtained, and a Spent mark. A
// refresh of key K in process P, with M the newest token P has seen:
//
//	LOCK    Take K's lock (when the store is a store.Locker). If it
//	        cannot be had (the store is down): a grant that spends no
//	        refresh token (client credentials) goes on without it; one that
//	        does (a refresh-token grant) does not refresh: requests keep the
//	        current token while it is valid, then get a temporary
//	        *TokenError saying why.
//	READ    Load the record R.
//	        R newer than M: adopt R if its access token is still good
//	        (done), else R is the base.
//	        R older than M, or missing (the store lost P's save, or was
//	        restored from an older copy): write M back (REPAIR); M is the
//	        base. A stored token never replaces a newer one, and P never
//	        presents a refresh token older than one it has seen.
//	        R is M: R is the base (its copy holds the latest Spent mark).
//	CHECK   The base's refresh token must be unspent. A Spent mark that
//	        another process set means its refresh has not been saved: P
//	        does not refresh (a temporary *TokenError; ErrReauthRequired
//	        once the mark is older than 10 minutes). A refresh token whose
//	        answer P lost is never presented again (ErrReauthRequired).
//	        Within the source's rotation grace period both may be
//	        presented once more. A refresh token the token endpoint
//	        refused for good (a Dead mark, below) is not presented again
//	        for 5 minutes by any process (ErrReauthRequired).
//	MARK    Write the base back with Spent set (only with a Locker: there
//	        are no peers otherwise). If that fails, do not refresh.
//	FETCH   Call the Source with the base.
//	        A token N (generation one more): SAVE.
//	        An error the server answered: the refresh token was not
//	        spent; write the base back unmarked. A 400 to a refresh-token
//	        grant re-reads the store first (a peer may have rotated it a
//	        moment ago); if nothing newer is there, ErrReauthRequired,
//	        and the base is written back with a Dead mark.
//	        No answer after the request went out (the connection dropped,
//	        the timeout hit): the server may have rotated it. The mark
//	        stays, P remembers, ErrReauthRequired.
//	SAVE    Write N. If that fails, N is used from memory and written
//	        again in the background, and P keeps the lock until a write
//	        lands: the store still holds a spent refresh token. A peer that
//	        gets the lock once it expires finds the Spent mark (CHECK).
//	        Close writes an unsaved token once more, and says so when it
//	        cannot.
//	UNLOCK
//
// Users' code (Source, Store, Locker, WithAuthorization) runs under
// protect: a panic becomes a *TokenError for the waiting callers.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/oauthtransport/oauthtransport/store"
)

// credentialCache owns one key's token: the credential requests use, the
// refresh in flight, the failure cool-down, a token the store failed to
// save, and the store/lock protocol above.
type credentialCache struct {
	env  *env
	src  Source
	name string      // the WithStore key, or on a keyed Transport the WithKey key: what WithTokenChange names (see storeKey)
	used atomic.Bool // a keyed Transport's: used since the eviction hand last passed

	cur  atomic.Pointer[credential] // the token in use; nil when none or rejected
	seen atomic.Pointer[record]     // the newest token known; kept when cur is cleared
	lost atomic.Pointer[lostAnswer] // a refresh token whose refresh answer was lost
	// ownMark is the Spent mark (Unix ms) this process wrote for a refresh
	// the server answered with an error: that refresh token is unspent.
	ownMark atomic.Int64

	mu         sync.Mutex
	fl         *flight       // the refresh in flight, nil when none
	stuck      *flight       // an abandoned refresh that may still spend a refresh token
	refreshing atomic.Bool   // fl != nil, read on the hot path
	afterClose chan struct{} // one refresh at a time once Close has run; made then

	hookMu         sync.Mutex // one WithTokenChange call at a time
	failure        failureState
	lateStreak     atomic.Int32           // tokens in a row that arrived already expired
	renewStreak    atomic.Int32           // 401-driven renewals in a row of never-accepted tokens
	renewNotBefore atomic.Int64           // Unix ns; no such renewal before
	saveMu         sync.Mutex             // one store write at a time
	unsaved        atomic.Pointer[record] // a token the store failed to save
	held           atomic.Pointer[lease]  // the lock, kept until unsaved lands
	retrying       atomic.Bool            // the background saver runs
}

// env is what the credential caches of one Transport share.
type env struct {
	opts  *options
	log   *slog.Logger
	stats *stats
	life  *lifetime
	sched schedulePolicy
	// tokenClient sends the built-in sources' token requests.
	tokenClient *http.Client
	tel         *telemetry
	store       store.Store
	locker      store.Locker // store as a Locker, or nil
	keyed       bool         // the caches' names are WithKey keys
	// clock: credentials read it instead of owning timers (a keyed
	// Transport: no timer per idle key); nil otherwise.
	clock *coarseClock
}

// lostAnswer is a refresh token presented by a refresh whose answer never
// came back.
type lostAnswer struct {
	rt string
	at time.Time
}

// spentPatience is how long a peer's Spent mark counts as a refresh that
// may still be saved, before the grant is reported dead.
const spentPatience = 10 * time.Minute

// errClosed tells a waiter that its refresh could not run because Close
// ran; it then refreshes in its own goroutine.
var errClosed = errors.New("oauthtransport: transport closed")

func newCredentialCache(e *env, src Source, name string) *credentialCache {
	return &credentialCache{env: e, src: src, name: name}
}

// storeKey is the key's store key: the WithStore key (with WithDPoP, and
// the key's thumbprint), on a keyed Transport "/" and the WithKey key, and
// the resources the source asks for (WithResource); made when needed, not
// kept: a keyed Transport holds many caches.
func (k *credentialCache) storeKey() string {
	if k.env.keyed {
		return k.env.opts.key + "/" + k.name + scopeOf(k.src)
	}
	return k.env.opts.key + scopeOf(k.src)
}

// current returns a usable credential: the cached one while it has not
// expired, starting a background refresh when it is stale; otherwise it
// waits for the one refresh in flight.
func (k *credentialCache) current(ctx context.Context) (*credential, error) {
	if c := k.cur.Load(); c != nil {
		switch c.load() {
		case fresh:
			return c, nil
		case stale:
			k.refreshInBackground(ctx)
			return c, nil
		}
	}
	return k.wait(ctx)
}

// refreshInBackground starts one refresh unless one runs, the last one
// failed recently, or the transport is closed.
func (k *credentialCache) refreshInBackground(ctx context.Context) {
	if k.refreshing.Load() || k.env.life.closed.Load() {
		return
	}
	if nb := k.failure.notBefore.Load(); nb != 0 && time.Now().UnixNano() < nb {
		return
	}
	_, _ = k.join(ask{background: true, parent: trace.SpanContextFromContext(ctx)})
}

// wait blocks until the refresh in flight (started if needed) installs a
// token, ctx is done, or the refresh timeout passes.
func (k *credentialCache) wait(ctx context.Context) (*credential, error) {
	k.env.stats.waits.Add(1)
	start := time.Now()
	c, err := k.waitLoop(ctx)
	k.env.tel.waits.Add(ctx, 1)
	k.env.tel.waitTime.Record(ctx, time.Since(start).Seconds())
	return c, err
}

func (k *credentialCache) waitLoop(ctx context.Context) (*credential, error) {
	for {
		if c := k.cur.Load(); c != nil && c.load() != expired {
			return c, nil
		}
		if err := k.failure.coolingDown(); err != nil {
			if k.revived(ctx, err) {
				continue
			}
			return nil, err
		}
		if k.env.life.closed.Load() {
			return k.refreshAfterClose(ctx, ask{parent: trace.SpanContextFromContext(ctx)})
		}
		f, err := k.join(ask{parent: trace.SpanContextFromContext(ctx)})
		if err != nil {
			return nil, err
		}
		c, err := k.await(ctx, f)
		if !errors.Is(err, errClosed) {
			return c, err
		}
	}
}

// renew obtains a token other than the one held now (Transport.Refresh):
// it joins the refresh in flight, or starts one that does not return the
// held token, under the same single flight, lock and cool-down as any.
func (k *credentialCache) renew(ctx context.Context) (*credential, error) {
	held := k.cur.Load()
	for range 3 {
		if err := k.failure.coolingDown(); err != nil && !k.revived(ctx, err) {
			return nil, err
		}
		var c *credential
		var err error
		a := ask{replace: held, parent: trace.SpanContextFromContext(ctx)}
		if k.env.life.closed.Load() {
			c, err = k.refreshAfterClose(ctx, a)
		} else if f, jerr := k.join(a); jerr != nil {
			return nil, jerr
		} else {
			c, err = k.await(ctx, f)
		}
		switch {
		case errors.Is(err, errClosed):
			continue
		case err != nil:
			return nil, err
		case held == nil || c.rec != held.rec:
			return c, nil
		}
		// It joined a refresh that kept the held token: ask again.
	}
	return nil, temporaryError(errors.New("no new token: every refresh returned the token held"))
}

// invalidate drops c after the server rejected it, unless a newer token
// has been installed meanwhile.
func (k *credentialCache) invalidate(ctx context.Context, c *credential) {
	cleared := k.cur.CompareAndSwap(c, nil)
	if cleared {
		c.disarm()
		k.env.stats.invalidations.Add(1)
		k.env.tel.invalidations.Add(ctx, 1)
	}
	k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token rejected",
		slog.String("token", c.fingerprint()), slog.Bool("cleared", cleared))
}

// refresh obtains a new token following the protocol above; see the
// package comment of this file. A refresh asked for by a caller that saw
// an older state returns the token a refresh that just ended installed.
func (k *credentialCache) refresh(ctx context.Context, a ask) (*credential, error) {
	if c := k.cur.Load(); c != nil && c != a.replace && (c.load() == fresh || (!a.background && c.load() == stale)) {
		return c, nil
	}
	l, err := k.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer l.release()
	base, adopt := k.read(ctx)
	if adopt {
		return k.adopt(ctx, base)
	}
	if err := k.check(base); err != nil {
		return nil, err
	}
	rec, err := k.spend(ctx, base, l)
	if err != nil {
		return k.afterFailure(ctx, base, err)
	}
	return k.commit(ctx, rec, l, a.background)
}

// lock takes the key's lock in the store (LOCK). It returns a nil lease
// when there is no Locker, or when a grant that spends no refresh token
// goes on without the lock.
func (k *credentialCache) lock(ctx context.Context) (*lease, error) {
	if k.env.locker == nil {
		return nil, nil
	}
	if h := k.held.Swap(nil); h != nil {
		h.free() // our own, kept for an unsaved token: take it anew
	}
	ttl := k.lockTTL()
	unlock, err := k.env.locker.Lock(ctx, k.storeKey(), ttl)
	switch {
	case err == nil:
		return &lease{unlock: unlock}, nil
	case ctx.Err() != nil:
		return nil, temporaryError(fmt.Errorf("waiting for the store's lock on key %q: %w", k.storeKey(), err))
	case k.spends(k.seen.Load()):
		return nil, temporaryError(fmt.Errorf("the store's lock on key %q cannot be taken (%w); "+
			"a refresh token shared through the store is not spent without it", k.storeKey(), err))
	}
	k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: store lock failed; refreshing without it",
		slog.String("key", k.storeKey()), slog.String("error", err.Error()))
	return nil, nil
}

// lockTTL bounds how long a crashed holder keeps the others from
// refreshing; it outlasts one refresh.
func (k *credentialCache) lockTTL() time.Duration {
	d := k.env.opts.refreshTimeout
	return d + min(d, 5*time.Second)
}

// read compares the stored record with the newest token seen (READ). It
// returns the base of the refresh, and whether to adopt it as it is.
func (k *credentialCache) read(ctx context.Context) (*record, bool) {
	seen, stored := k.seen.Load(), k.load(ctx)
	switch {
	case newer(stored, seen):
		return stored, k.usable(stored)
	case stored == nil || newer(seen, stored):
		if seen != nil {
			k.repair(ctx, seen, stored)
		}
		return seen, false
	}
	return stored, false
}

// usable reports whether rec's access token may still be used.
func (k *credentialCache) usable(rec *record) bool {
	now := time.Now()
	_, expireAt := schedule(rec.tok, now, k.env.sched, 0)
	return expireAt.IsZero() || now.Before(expireAt)
}

// check refuses to present a refresh token that may be spent (CHECK).
func (k *credentialCache) check(base *record) error {
	if !k.spends(base) {
		return nil
	}
	grace := k.grace()
	if l := k.lost.Load(); l != nil && l.rt == refreshTokenOf(base) {
		if time.Since(l.at) < grace {
			return nil
		}
		return reauthError(fmt.Errorf("the answer to a refresh sent at %s was lost, and the server may have rotated "+
			"the refresh token; it is not presented again (see WithRotationGrace)", l.at.Format(time.RFC3339)))
	}
	if err := checkDead(base); err != nil {
		return err
	}
	if base == nil || base.meta.spent == 0 || base.meta.spent == k.ownMark.Load() {
		return nil
	}
	spent := time.UnixMilli(base.meta.spent)
	switch age := time.Since(spent); {
	case age < grace:
		return nil
	case age < spentPatience:
		return temporaryError(fmt.Errorf("another process presented the stored refresh token %v ago and has not "+
			"saved the result yet; not presenting it again", age.Round(time.Millisecond)))
	}
	return reauthError(fmt.Errorf("the stored refresh token was presented at %s by a refresh whose result "+
		"was never saved", spent.Format(time.RFC3339)))
}

// spend marks the base spent in a shared store (MARK) and calls the
// Source (FETCH).
func (k *credentialCache) spend(ctx context.Context, base *record, l *lease) (*record, error) {
	spends := k.spends(base)
	marked := spends && l != nil && base != nil // the first refresh token lives in the Source
	if marked {
		if err := k.mark(ctx, base); err != nil {
			return nil, err
		}
	}
	tok, err := k.fetch(ctx, base)
	switch {
	case err == nil:
		return k.next(base, tok), nil
	case spends && possiblySpent(err):
		k.lost.Store(&lostAnswer{rt: refreshTokenOf(base), at: time.Now()})
		k.ownMark.Store(0)
		return nil, reauthError(fmt.Errorf("the answer to the refresh was lost, and the server may have rotated "+
			"the refresh token; it is not presented again (see WithRotationGrace): %w", err))
	case marked:
		k.unmark(ctx, base)
	}
	return nil, err
}

// afterFailure re-reads the store after a 400 to a refresh-token grant: a
// peer may have rotated the refresh token a moment ago. If nothing newer
// is there, the grant is dead.
func (k *credentialCache) afterFailure(ctx context.Context, base *record, err error) (*credential, error) {
	te := asTokenError(err)
	if !k.spends(base) || te.reauth || !grantRejected(te) {
		return nil, err
	}
	if again := k.load(ctx); again != nil && newer(again, base) {
		if k.usable(again) {
			return k.adopt(ctx, again)
		}
		return nil, err // the next refresh spends the newer refresh token
	}
	dead := *te
	dead.reauth = true
	k.markDead(ctx, base)
	return nil, &dead
}

// grantRejected reports whether the token endpoint refused a refresh
// token: invalid_grant, or any 400 that does not blame the client (Dex
// answers a reused refresh token with invalid_request).
func grantRejected(te *TokenError) bool {
	switch te.Code {
	case "invalid_grant":
		return true
	case "invalid_client", "unauthorized_client", "unsupported_grant_type", "invalid_scope":
		return false
	}
	return te.StatusCode == http.StatusBadRequest
}

// commit saves a fetched token (SAVE) and installs it.
func (k *credentialCache) commit(ctx context.Context, rec *record, l *lease, background bool) (*credential, error) {
	if err := k.save(ctx, rec); err != nil {
		k.keepUnsaved(ctx, rec, l, err)
	}
	c, err := k.install(rec, true)
	if err != nil {
		return nil, err
	}
	k.spaceLate(ctx, c)
	k.env.stats.fetches.Add(1)
	if background {
		k.env.stats.background.Add(1)
	}
	k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetched", slog.String("key", k.storeKey()),
		slog.String("token", c.fingerprint()), slog.Time("expiry", rec.tok.Expiry), slog.Bool("background", background))
	return c, nil
}

func (k *credentialCache) adopt(ctx context.Context, rec *record) (*credential, error) {
	c, err := k.install(rec, false)
	if err != nil {
		return nil, err
	}
	k.env.stats.adopted.Add(1)
	k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token adopted from store",
		slog.String("key", k.storeKey()), slog.String("token", c.fingerprint()), slog.Time("expiry", rec.tok.Expiry))
	return c, nil
}

// install makes rec the current token, unless a newer one was installed
// meanwhile (a refresh abandoned for its slowness may return late). A
// token that cannot be used is still recorded as seen: its refresh token
// is the one to present next.
func (k *credentialCache) install(rec *record, fetched bool) (*credential, error) {
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

// announce calls the WithTokenChange hook with a copy of a new token, one
// call at a time; a panic in it is logged, and the token stays installed.
func (k *credentialCache) announce(rec *record) {
	f := k.env.opts.tokenChange
	if f == nil {
		return
	}
	k.hookMu.Lock()
	defer k.hookMu.Unlock()
	_ = protect(context.Background(), k.env.log, "the WithTokenChange function", k.secrets(), func() error {
		f(k.name, store.Clone(rec.tok))
		return nil
	})
}

// spends reports whether refreshing from base presents a refresh token.
func (k *credentialCache) spends(base *record) bool {
	if s, ok := k.src.(RefreshTokenSpender); ok {
		return s.SpendsRefreshToken()
	}
	return base != nil && base.tok.RefreshToken != ""
}

// grace is the source's declared rotation grace period.
func (k *credentialCache) grace() time.Duration {
	if g, ok := k.src.(interface{ rotationGrace() time.Duration }); ok {
		return g.rotationGrace()
	}
	return 0
}

func refreshTokenOf(rec *record) string {
	if rec == nil {
		return ""
	}
	return rec.tok.RefreshToken
}

// secrets are the values redacted from a recovered panic.
func (k *credentialCache) secrets() []string {
	if s := k.seen.Load(); s != nil {
		return []string{s.tok.AccessToken, s.tok.RefreshToken}
	}
	return nil
}
