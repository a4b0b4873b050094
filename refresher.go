package oauthtransport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

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
