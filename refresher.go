package oauthtransport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// cached is a token ready for the hot path: its header value and deadlines
// are computed once, when it is installed, and two timers move its state
// from fresh to stale to expired, so that a request reads no clock.
type cached struct {
	tok      *oauth2.Token // never modified once installed
	auth     []string      // the Authorization header value
	scheme   string        // the first word of auth
	fp       string        // fingerprint for logs
	staleAt  time.Time     // start a background refresh from here; zero: never
	expireAt time.Time     // stop using the token from here; zero: never

	state  atomic.Uint32 // fresh, stale or expired
	timers [2]*time.Timer
}

// Token states.
const (
	fresh uint32 = iota
	stale
	expired
)

// arm sets the state for now and starts the timers that advance it. It runs
// before c is published.
func (c *cached) arm(now time.Time) {
	switch {
	case !c.expireAt.IsZero() && !now.Before(c.expireAt):
		c.state.Store(expired)
		return
	case !c.staleAt.IsZero() && !now.Before(c.staleAt):
		c.state.Store(stale)
	case !c.staleAt.IsZero():
		c.timers[0] = time.AfterFunc(c.staleAt.Sub(now), func() { c.state.CompareAndSwap(fresh, stale) })
	}
	if !c.expireAt.IsZero() {
		c.timers[1] = time.AfterFunc(c.expireAt.Sub(now), func() { c.state.Store(expired) })
	}
}

// disarm stops c's timers once it is no longer current.
func (c *cached) disarm() {
	for _, tm := range c.timers {
		if tm != nil {
			tm.Stop()
		}
	}
}

// errClosed tells a waiter that its refresh could not start because Close
// ran; it then refreshes in its own goroutine.
var errClosed = errors.New("oauthtransport: transport closed")

// current returns a usable token: the cached one while it has not expired,
// starting a background refresh when it is stale; otherwise it waits for
// the one refresh in flight.
func (t *Transport) current(ctx context.Context) (*cached, error) {
	if c := t.cur.Load(); c != nil {
		switch c.state.Load() {
		case fresh:
			return c, nil
		case stale:
			t.refreshInBackground()
			return c, nil
		}
	}
	return t.wait(ctx)
}

// refreshInBackground starts one refresh unless one runs, the last one
// failed recently, or the transport is closed.
func (t *Transport) refreshInBackground() {
	if t.refreshing.Load() || t.closed.Load() {
		return
	}
	if nb := t.failure.notBefore.Load(); nb != 0 && time.Now().UnixNano() < nb {
		return
	}
	t.flight.DoChan("", t.bgFlight)
}

// wait blocks until the refresh in flight (started if needed) installs a
// token, or ctx is done. The refresh itself is not cancelled by ctx.
func (t *Transport) wait(ctx context.Context) (*cached, error) {
	t.stats.waits.Add(1)
	for {
		if c := t.cur.Load(); c != nil && c.state.Load() != expired {
			return c, nil
		}
		if err := t.failure.coolingDown(); err != nil {
			return nil, err
		}
		if t.closed.Load() {
			v, err, _ := t.flight.Do("", func() (any, error) { return t.refresh(ctx, false) })
			if err != nil {
				return nil, err
			}
			return v.(*cached), nil
		}
		select {
		case r := <-t.flight.DoChan("", t.fgFlight):
			if errors.Is(r.Err, errClosed) {
				continue
			}
			if r.Err != nil {
				return nil, r.Err
			}
			c := r.Val.(*cached)
			if c.state.Load() == stale {
				// An adopted token that is already stale: requests that
				// came during the flight could not start a refresh.
				t.refreshInBackground()
			}
			return c, nil
		case <-ctx.Done():
			return nil, fmt.Errorf("oauthtransport: waiting for a token: %w", context.Cause(ctx))
		}
	}
}

// runFlight runs one refresh under the transport's lifetime, tracked so
// that Close waits for it.
func (t *Transport) runFlight(background bool) (any, error) {
	if !t.enter() {
		return nil, errClosed
	}
	defer t.wg.Done()
	ctx, cancel := context.WithTimeout(t.lifetime, t.opts.refreshTimeout)
	defer cancel()
	c, err := t.refresh(ctx, background)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// enter registers background work with Close, unless Close has run. The
// caller must call t.wg.Done when the work ends.
func (t *Transport) enter() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return false
	}
	t.wg.Add(1)
	return true
}

// lockTTL bounds how long a crashed holder can keep other processes from
// refreshing.
func (t *Transport) lockTTL() time.Duration { return t.opts.refreshTimeout + 5*time.Second }

// refresh obtains a new token: from the store when another process (or an
// earlier run) saved one newer than ours, else from the Source, saving it
// before it is used. Only one refresh runs at a time (singleflight within a
// process, the store's Locker across processes).
func (t *Transport) refresh(ctx context.Context, background bool) (*cached, error) {
	t.refreshing.Store(true)
	defer t.refreshing.Store(false)
	if c := t.cur.Load(); c != nil {
		// Whoever asked for this refresh saw an older state: a refresh that
		// ended between their look and this flight already installed a
		// token. A waiter needs a usable one; a background refresh, a
		// fresh one.
		if st := c.state.Load(); st == fresh || (!background && st == stale) {
			return c, nil
		}
	}
	_ = t.retryUnsaved(ctx)

	prev := t.lastSeen.Load()
	if t.locker != nil {
		unlock, err := t.locker.Lock(ctx, t.opts.key, t.lockTTL())
		if err != nil {
			if ctx.Err() != nil {
				return nil, t.failed(&TokenError{Err: fmt.Errorf("waiting for the store's lock: %w", err)}, background)
			}
			t.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: store lock failed; refreshing without it",
				slog.String("key", t.opts.key), slog.String("error", err.Error()))
		} else {
			defer unlock()
		}
	}
	stored := t.load(ctx)
	if t.unsaved.Load() != nil {
		// The store is behind: it lacks our latest token (and its rotated
		// refresh token). Nothing it holds may replace what we have.
		stored = nil
	}
	if adoptable(stored, prev) {
		return t.adopt(ctx, stored), nil
	}
	current := stored
	if current == nil {
		current = prev
	}
	tok, err := t.fetch(ctx, current)
	if err != nil {
		te := asTokenError(err)
		if te.Code == "invalid_grant" && t.unsaved.Load() == nil {
			// A peer may have rotated the refresh token a moment ago.
			if again := t.load(ctx); adoptable(again, prev) && (stored == nil || again.AccessToken != stored.AccessToken) {
				return t.adopt(ctx, again), nil
			}
		}
		return nil, t.failed(te, background)
	}
	tok = store.Clone(tok) // the Source may keep its own
	if tok.ExpiresIn == 0 && !tok.Expiry.IsZero() {
		// Record the granted lifetime (x/oauth2's client-credentials
		// source leaves it out), so that a process loading this token from
		// a store measures its refresh window against the whole lifetime.
		tok.ExpiresIn = int64(time.Until(tok.Expiry).Round(time.Second) / time.Second)
	}
	if tok.RefreshToken == "" && current != nil {
		tok.RefreshToken = current.RefreshToken
	}
	t.save(ctx, tok)
	c := t.install(tok)
	t.failure.reset()
	t.stats.fetches.Add(1)
	if background {
		t.stats.background.Add(1)
	}
	t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetched",
		slog.String("token", c.fp), slog.Time("expiry", tok.Expiry), slog.Bool("background", background))
	return c, nil
}

// load reads the store, treating any error as "nothing stored": a corrupt
// entry is replaced by the next fetch.
func (t *Transport) load(ctx context.Context) *oauth2.Token {
	tok, err := t.store.Load(ctx, t.opts.key)
	switch {
	case err == nil && tok != nil && tok.AccessToken != "":
		return tok
	case err != nil && !errors.Is(err, store.ErrNotFound):
		t.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: loading token from store failed; fetching a new one",
			slog.String("key", t.opts.key), slog.String("error", err.Error()))
	}
	return nil
}

// adoptable reports whether a stored token should be used instead of a
// fetch: it is not the token being replaced, and it has not expired.
func adoptable(stored, prev *oauth2.Token) bool {
	if stored == nil || (prev != nil && stored.AccessToken == prev.AccessToken) {
		return false
	}
	return stored.Expiry.IsZero() || time.Now().Before(stored.Expiry)
}

func (t *Transport) adopt(ctx context.Context, tok *oauth2.Token) *cached {
	c := t.install(tok)
	t.failure.reset()
	t.stats.adopted.Add(1)
	t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token adopted from store",
		slog.String("token", c.fp), slog.Time("expiry", tok.Expiry))
	return c
}

// fetch calls the Source, retrying failures that are safe to retry: the
// token endpoint said 5xx or 429, or no connection was made. A refresh-token
// request whose response was lost is never sent again, since the server may
// have rotated the refresh token already.
func (t *Transport) fetch(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	return backoff.RetryWithData(func() (*oauth2.Token, error) {
		tok, err := t.src.Token(ctx, store.Clone(current))
		switch {
		case err != nil && ctx.Err() == nil && safeToRetryFetch(err):
			t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetch failed; retrying", slog.String("error", asTokenError(err).Error()))
			return nil, err
		case err != nil:
			return nil, backoff.Permanent(err)
		case tok == nil || tok.AccessToken == "":
			return nil, backoff.Permanent(&TokenError{Err: errors.New("the source returned no access token")})
		}
		return tok, nil
	}, backoff.WithContext(backoff.WithMaxRetries(b, 2), ctx))
}

func safeToRetryFetch(err error) bool {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		return re.Response.StatusCode >= 500 || re.Response.StatusCode == http.StatusTooManyRequests
	}
	if te, ok := errors.AsType[*TokenError](err); ok && te.StatusCode != 0 {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// save writes tok to the store before it is used. On failure the token
// stays in memory, and the save is retried in the background with backoff
// (and before the next refresh) until it succeeds or a newer token is
// saved: a rotated refresh token is never dropped. Saves are serialized so
// that an older token never overwrites a newer one.
func (t *Transport) save(ctx context.Context, tok *oauth2.Token) {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	if err := t.store.Save(ctx, t.opts.key, tok); err != nil {
		t.unsaved.Store(tok)
		t.log.LogAttrs(ctx, slog.LevelError, "oauthtransport: saving token to store failed; keeping it in memory and retrying",
			slog.String("key", t.opts.key), slog.String("token", fingerprint(tok.AccessToken)), slog.String("error", err.Error()))
		t.retrySaveInBackground()
		return
	}
	t.unsaved.Store(nil)
}

// retryUnsaved tries once more to save a token whose save failed.
func (t *Transport) retryUnsaved(ctx context.Context) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	tok := t.unsaved.Load()
	if tok == nil {
		return nil
	}
	if err := t.store.Save(ctx, t.opts.key, tok); err != nil {
		return err
	}
	t.unsaved.Store(nil)
	t.log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: token saved to store after retrying",
		slog.String("key", t.opts.key), slog.String("token", fingerprint(tok.AccessToken)))
	return nil
}

func (t *Transport) retrySaveInBackground() {
	if !t.saveRetrying.CompareAndSwap(false, true) {
		return
	}
	if !t.enter() {
		t.saveRetrying.Store(false)
		return
	}
	go func() {
		defer t.wg.Done()
		defer t.saveRetrying.Store(false)
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(500*time.Millisecond),
			backoff.WithMaxInterval(30*time.Second),
			backoff.WithMaxElapsedTime(0),
		)
		_ = backoff.Retry(func() error {
			ctx, cancel := context.WithTimeout(t.lifetime, 10*time.Second)
			defer cancel()
			return t.retryUnsaved(ctx)
		}, backoff.WithContext(b, t.lifetime))
	}()
}

// install makes tok the current token.
func (t *Transport) install(tok *oauth2.Token) *cached {
	now := time.Now()
	c := t.newCached(tok, now)
	c.arm(now)
	t.lastSeen.Store(tok)
	if old := t.cur.Swap(c); old != nil {
		old.disarm()
	}
	return c
}

// invalidate drops c after the server rejected it, unless a newer token has
// been installed meanwhile.
func (t *Transport) invalidate(c *cached) {
	cleared := t.cur.CompareAndSwap(c, nil)
	if cleared {
		c.disarm()
		t.stats.invalidations.Add(1)
	}
	t.log.LogAttrs(context.Background(), slog.LevelDebug, "oauthtransport: token rejected",
		slog.String("token", c.fp), slog.Bool("cleared", cleared))
}

func (t *Transport) newCached(tok *oauth2.Token, now time.Time) *cached {
	var auth string
	if t.opts.authorization != nil {
		auth = t.opts.authorization(store.Clone(tok))
	} else {
		auth = tok.Type() + " " + tok.AccessToken
	}
	scheme, _, _ := strings.Cut(auth, " ")
	c := &cached{tok: tok, auth: []string{auth}, scheme: scheme, fp: fingerprint(tok.AccessToken)}

	exp := tok.Expiry
	if exp.IsZero() {
		exp = jwtExpiry(tok.AccessToken)
	}
	if exp.IsZero() {
		return c // lives until a 401 says otherwise
	}
	// The lifetime the server granted; for a token loaded from a store it
	// is longer than what remains, and the window is measured against it.
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = max(exp.Sub(now), 0)
	}
	skew := min(t.opts.skew, lifetime/10)
	c.expireAt = exp.Add(-skew)
	window := min(lifetime/4, DefaultMaxRefreshWindow)
	if t.opts.windowSet {
		window = t.opts.window
	}
	if window > 0 {
		window += rand.N(window/5 + 1) // jitter: a fleet does not refresh in lock-step
		window = min(window, lifetime/2)
		if window > skew {
			c.staleAt = exp.Add(-window)
		}
	}
	return c
}

// fingerprint identifies a token in logs without revealing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// failureState spaces out refreshes after failures. A terminal token error
// (a broken credential) puts the refresher in a cool-down with growing
// delay, during which callers get the error without the IdP being asked;
// any failure delays the next background refresh likewise.
type failureState struct {
	notBefore atomic.Int64 // unix nanos; no background refresh before

	mu       sync.Mutex
	failures int
	until    time.Time
	err      *TokenError // returned during a terminal cool-down
}

const (
	terminalCooldown    = time.Second
	maxTerminalCooldown = 5 * time.Minute
	transientCooldown   = 500 * time.Millisecond
	maxTransientBackoff = 30 * time.Second
)

func (f *failureState) record(te *TokenError) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failures++
	base, ceiling := transientCooldown, maxTransientBackoff
	if te.terminal() {
		base, ceiling = terminalCooldown, maxTerminalCooldown
	}
	d := base << min(f.failures-1, 20)
	d = min(d, ceiling)
	d += rand.N(d/4 + 1)
	f.until = time.Now().Add(d)
	f.err = nil
	if te.terminal() {
		f.err = te
	}
	f.notBefore.Store(f.until.UnixNano())
	return d
}

func (f *failureState) coolingDown() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil && time.Now().Before(f.until) {
		return f.err
	}
	return nil
}

func (f *failureState) reset() {
	if f.notBefore.Load() == 0 {
		return
	}
	f.mu.Lock()
	f.failures, f.err, f.until = 0, nil, time.Time{}
	f.notBefore.Store(0)
	f.mu.Unlock()
}

func (t *Transport) failed(te *TokenError, background bool) *TokenError {
	d := t.failure.record(te)
	t.stats.failures.Add(1)
	level := slog.LevelWarn
	if background {
		level = slog.LevelDebug
		if c := t.cur.Load(); c == nil {
			level = slog.LevelWarn
		}
	}
	t.log.LogAttrs(context.Background(), level, "oauthtransport: token refresh failed",
		slog.String("error", te.Error()), slog.Bool("background", background), slog.Duration("next_try_in", d))
	return te
}
