package oauthtransport

// The one refresh in flight per key. Waiters join it and each leaves on
// its own context or at the refresh timeout, whichever comes first. A
// refresh that outlives the timeout is abandoned: the next caller starts a
// new one, unless the stuck one may be presenting a refresh token (a
// second would spend it again); the stuck goroutine is logged and joined
// when it returns. x/sync/singleflight cannot forget one particular
// flight (Forget drops whatever runs under the key), hence this.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// flight is one refresh. c and err are set before done is closed.
type flight struct {
	done      chan struct{}
	c         *credential
	err       error
	deadline  time.Time // waiters give up at this time
	spends    bool      // it may present a refresh token
	abandoned bool      // guarded by credentialCache.mu
}

// closedFlight is the answer of join once Close has run.
var closedFlight = func() *flight {
	f := &flight{done: make(chan struct{}), err: errClosed}
	close(f.done)
	return f
}()

// ask is what a refresh is asked for: in the background (nobody waits),
// and whether it must replace a particular credential (Transport.Refresh)
// rather than return it while it is still good.
type ask struct {
	background bool
	replace    *credential
	parent     trace.SpanContext // the asking request's span, for the fetch's
}

// join returns the refresh in flight, starting one if none runs.
func (k *credentialCache) join(a ask) (*flight, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fl != nil {
		return k.fl, nil
	}
	if err := k.stuckLocked(); err != nil {
		return nil, err
	}
	if !k.env.life.enter() {
		return closedFlight, nil
	}
	f := &flight{done: make(chan struct{}), deadline: time.Now().Add(k.env.opts.refreshTimeout), spends: k.spends(k.seen.Load())}
	k.fl = f
	k.refreshing.Store(true)
	go k.run(f, a)
	return f, nil
}

// stuckLocked refuses a new refresh while an abandoned one that may
// present a refresh token has not returned. k.mu is held.
func (k *credentialCache) stuckLocked() error {
	if k.stuck == nil {
		return nil
	}
	select {
	case <-k.stuck.done:
		k.stuck = nil
		return nil
	default:
		return temporaryError(fmt.Errorf("an earlier refresh, which may be presenting the refresh token, "+
			"has not returned after %v; not starting another", k.env.opts.refreshTimeout))
	}
}

// run performs f under the transport's lifetime. A refresh that presents a
// refresh token is not cancelled by Close (Close waits for it, bounded):
// cancelling it mid-request would lose its answer.
func (k *credentialCache) run(f *flight, a ask) {
	defer k.env.life.wg.Done()
	parent := k.env.life.ctx
	if f.spends {
		parent = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithTimeout(parent, k.env.opts.refreshTimeout)
	defer cancel()
	start := time.Now()
	c, err := k.refreshProtected(ctx, a)
	if err != nil && k.env.life.closed.Load() && errors.Is(err, context.Canceled) {
		err = errClosed
	}
	k.mu.Lock()
	if k.fl == f {
		k.fl = nil
		k.refreshing.Store(false)
	}
	abandoned := f.abandoned
	k.mu.Unlock()
	f.c, f.err = c, err
	close(f.done)
	if abandoned {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: an abandoned token refresh returned",
			slog.String("key", k.storeKey()), slog.Duration("after", time.Since(start)), slog.Bool("ok", err == nil))
	}
}

// await waits for f, ctx or f's deadline.
func (k *credentialCache) await(ctx context.Context, f *flight) (*credential, error) {
	timer := time.NewTimer(time.Until(f.deadline))
	defer timer.Stop()
	select {
	case <-f.done:
		if f.err != nil {
			return nil, f.err
		}
		if f.c.load() == stale {
			// An adopted token that is already stale: requests that came
			// during the flight could not start a refresh.
			k.refreshInBackground(ctx)
		}
		return f.c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("oauthtransport: waiting for a token: %w", context.Cause(ctx))
	case <-timer.C:
		k.abandon(ctx, f)
		return nil, temporaryError(fmt.Errorf("the token refresh did not finish within %v (WithRefreshTimeout)", k.env.opts.refreshTimeout))
	}
}

// abandon lets the next caller start a new refresh instead of joining f.
func (k *credentialCache) abandon(ctx context.Context, f *flight) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.fl != f {
		return
	}
	k.fl = nil
	k.refreshing.Store(false)
	f.abandoned = true
	if f.spends {
		k.stuck = f
	}
	k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: abandoning a token refresh that did not finish in time",
		slog.String("key", k.storeKey()), slog.Duration("timeout", k.env.opts.refreshTimeout))
}

// refreshAfterClose refreshes in the caller's goroutine, under the
// caller's context, one caller at a time.
func (k *credentialCache) refreshAfterClose(ctx context.Context, a ask) (*credential, error) {
	k.mu.Lock()
	if k.afterClose == nil {
		k.afterClose = make(chan struct{}, 1)
	}
	sem := k.afterClose
	k.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("oauthtransport: waiting for a token: %w", context.Cause(ctx))
	}
	defer func() { <-sem }()
	if c := k.cur.Load(); c != nil && c != a.replace && c.load() != expired {
		return c, nil
	}
	k.mu.Lock()
	err := k.stuckLocked()
	k.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return k.refreshProtected(ctx, a)
}

// refreshProtected runs refresh with users' panics recovered, and records
// the outcome for the failure cool-down.
func (k *credentialCache) refreshProtected(ctx context.Context, a ask) (*credential, error) {
	var c *credential
	before, start := k.cur.Load(), time.Now()
	ctx, span := k.env.tel.fetchSpan(ctx, a.parent, a.background)
	err := protect(ctx, k.env.log, "a token refresh (Source, Store, Locker or WithAuthorization)", k.secrets(), func() error {
		var err error
		c, err = k.refresh(ctx, a)
		return err
	})
	switch {
	case err == nil:
		if !c.late {
			k.failure.reset()
		}
		k.env.tel.endFetch(ctx, span, start, outcome(c, before), c.fingerprint(), a.background)
		return c, nil
	case errors.Is(err, errClosed):
		span.End()
		return nil, err
	}
	k.env.tel.endFetch(ctx, span, start, "error", "", a.background)
	return nil, k.failed(asTokenError(err).withoutSecrets(k.secrets()...), a.background)
}

// outcome names what a refresh did: fetched a token, adopted one from the
// store, or found the current one still good.
func outcome(c, before *credential) string {
	switch {
	case c == before:
		return "current"
	case c.fetched:
		return "ok"
	}
	return "adopted"
}
