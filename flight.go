package oauthtransport

// The one refresh in flight per key. Waiters join it and each leaves on
// its own context or at the refresh timeout, whichever comes first. A
// refresh that outlives the timeout is abandoned: the next caller starts a
// new one, unless the stuck one may be presenting a refresh token (a
// second would spend it again); the stuck goroutine is logged when it
// returns. x/sync/singleflight cannot forget one particular flight
// (Forget drops whatever runs under the key), hence this.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// flights is one key's refreshes: at most one running, plus an abandoned
// one that may still spend a refresh token.
type flights struct {
	mu         sync.Mutex
	fl         *flight       // the refresh in flight, nil when none
	stuck      *flight       // an abandoned refresh that may still spend a refresh token
	running    atomic.Bool   // fl != nil, read on the hot path
	afterClose chan struct{} // one refresh at a time once Close has run; made then
	retired    bool          // the key left memory (keyed eviction): no refresh starts here
}

// flight is one refresh. c and err are set before done is closed.
type flight struct {
	done      chan struct{}
	c         *credential
	err       error
	deadline  time.Time // waiters give up at this time
	spends    bool      // it may present a refresh token
	claims    string    // the claims its token request asks for
	abandoned bool      // guarded by flights.mu
}

// errClosed tells a waiter that its refresh could not run because Close
// ran; it then refreshes in its own goroutine.
var errClosed = errors.New("oauthtransport: transport closed")

// errRetired tells a caller that the key's cache left memory: it asks the
// Transport for the key's cache again.
var errRetired = errors.New("oauthtransport: the key's cache was evicted")

// closedFlight is the answer of join once Close has run.
var closedFlight = func() *flight {
	f := &flight{done: make(chan struct{}), err: errClosed}
	close(f.done)
	return f
}()

// flightRun is what a flight does, under the context run gives it.
type flightRun func(ctx context.Context) (*credential, error)

// flightEnv is what flights need of their key: the Transport's lifetime,
// the refresh timeout, and for the log, the logger and the store key
// (made when needed).
type flightEnv struct {
	life    *lifetime
	timeout time.Duration
	log     *slog.Logger
	key     func() string
}

// join returns the refresh in flight, starting run in one if none runs.
// A refresh that spends a refresh token runs to its end even after Close
// (Close waits for it, bounded): cancelling it mid-request would lose its
// answer; one that spends nothing is cancelled by Close.
func (g *flights) join(e flightEnv, spends bool, claims string, run flightRun) (*flight, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.fl != nil:
		return g.fl, nil
	case g.retired:
		return nil, errRetired
	}
	if err := g.stuckLocked(e.timeout); err != nil {
		return nil, err
	}
	if !e.life.enter(spends) {
		return closedFlight, nil
	}
	f := &flight{done: make(chan struct{}), deadline: time.Now().Add(e.timeout), spends: spends, claims: claims}
	g.fl = f
	g.running.Store(true)
	go g.run(e, f, run)
	return f, nil
}

// stuckLocked refuses a new refresh while an abandoned one that may
// present a refresh token has not returned. g.mu is held.
func (g *flights) stuckLocked(timeout time.Duration) error {
	if g.stuck == nil {
		return nil
	}
	select {
	case <-g.stuck.done:
		g.stuck = nil
		return nil
	default:
		return temporaryError(fmt.Errorf("an earlier refresh, which may be presenting the refresh token, "+
			"has not returned after %v; not starting another", timeout))
	}
}

func (g *flights) run(e flightEnv, f *flight, run flightRun) {
	defer e.life.leave(f.spends)
	parent := e.life.ctx
	if f.spends {
		parent = context.WithoutCancel(parent)
	}
	ctx, cancel := context.WithTimeout(parent, e.timeout)
	defer cancel()
	start := time.Now()
	c, err := run(ctx)
	if err != nil && e.life.closed.Load() && errors.Is(err, context.Canceled) {
		err = errClosed
	}
	g.mu.Lock()
	if g.fl == f {
		g.fl = nil
		g.running.Store(false)
	}
	abandoned := f.abandoned
	g.mu.Unlock()
	f.c, f.err = c, err
	close(f.done)
	if abandoned {
		e.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: an abandoned token refresh returned",
			slog.String("key", e.key()), slog.Duration("after", time.Since(start)), slog.Bool("ok", err == nil))
	}
}

// await waits for f, ctx or f's deadline; at the deadline f is
// abandoned.
func (g *flights) await(ctx context.Context, e flightEnv, f *flight) (*credential, error) {
	timer := time.NewTimer(time.Until(f.deadline))
	defer timer.Stop()
	select {
	case <-f.done:
		return f.c, f.err
	case <-ctx.Done():
		return nil, fmt.Errorf("oauthtransport: waiting for a token: %w", context.Cause(ctx))
	case <-timer.C:
		if g.abandon(f) {
			e.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: abandoning a token refresh that did not finish in time",
				slog.String("key", e.key()), slog.Duration("timeout", e.timeout), slog.Bool("may_spend_refresh_token", f.spends))
		}
		return nil, temporaryError(fmt.Errorf("the token refresh did not finish within %v (WithRefreshTimeout)", e.timeout))
	}
}

// abandon lets the next caller start a new refresh instead of joining f;
// it reports whether this call abandoned it.
func (g *flights) abandon(f *flight) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fl != f {
		return false
	}
	g.fl = nil
	g.running.Store(false)
	f.abandoned = true
	if f.spends {
		g.stuck = f
	}
	return true
}

// current returns the refresh in flight, nil when none.
func (g *flights) current() *flight {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.fl
}

// retire refuses every later refresh of this cache, unless one runs or a
// stuck one has not returned; it reports whether it did.
func (g *flights) retire() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fl != nil || (g.stuck != nil && !isDone(g.stuck.done)) {
		return false
	}
	g.retired = true
	return true
}

func isDone(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// afterCloseRun runs run in the caller's goroutine, under the caller's
// context, one caller at a time: the refreshes after Close.
func (g *flights) afterCloseRun(ctx context.Context, timeout time.Duration, run flightRun) (*credential, error) {
	g.mu.Lock()
	if g.afterClose == nil {
		g.afterClose = make(chan struct{}, 1)
	}
	sem := g.afterClose
	g.mu.Unlock()
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("oauthtransport: waiting for a token: %w", context.Cause(ctx))
	}
	defer func() { <-sem }()
	g.mu.Lock()
	err := g.stuckLocked(timeout)
	if g.retired {
		err = errRetired
	}
	g.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return run(ctx)
}
