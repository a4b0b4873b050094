package oauthtransport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lifetime is what Close ends: the context background work runs under,
// and the goroutines that do it, in two kinds. Work that may spend a
// refresh token, or holds a rotated one the store has not saved yet, is
// waited for (bounded): cutting it short could lose the grant. Any other
// work (a refresh that spends nothing, the clock, the keep-alive) is
// cancelled and not waited for beyond a moment.
type lifetime struct {
	ctx      context.Context // cancelled by stop
	cancel   context.CancelFunc
	mu       sync.Mutex // orders enter against stop
	closed   atomic.Bool
	critical sync.WaitGroup // work that may hold a refresh token's fate
	other    sync.WaitGroup
}

func newLifetime() *lifetime {
	l := &lifetime{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// enter registers background work unless stop has run; the caller must
// call leave with the same kind when the work ends.
func (l *lifetime) enter(critical bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.group(critical).Add(1)
	return true
}

func (l *lifetime) leave(critical bool) { l.group(critical).Done() }

func (l *lifetime) group(critical bool) *sync.WaitGroup {
	if critical {
		return &l.critical
	}
	return &l.other
}

// stop refuses new background work and cancels the running work's context.
func (l *lifetime) stop() {
	l.mu.Lock()
	l.closed.Store(true)
	l.mu.Unlock()
	l.cancel()
}

// join waits for critical work until deadline and for the rest until
// otherDeadline (or deadline, the earlier). Work that outlives them (a
// Source or store that ignores its context) is left to end by itself; it
// reports whether the critical work ended.
func (l *lifetime) join(deadline, otherDeadline time.Time) bool {
	ok := waitGroupUntil(&l.critical, deadline)
	waitGroupUntil(&l.other, otherDeadline)
	return ok
}

// waitGroupUntil waits for wg until deadline, reporting whether it ended.
func waitGroupUntil(wg *sync.WaitGroup, deadline time.Time) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}

// bounded runs f with a context that ends at deadline, and returns by then
// even if f does not (its goroutine is left to end by itself).
func bounded(deadline time.Time, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	errc := make(chan error, 1)
	go func() {
		defer cancel()
		errc <- f(ctx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
