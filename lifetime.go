package oauthtransport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lifetime is what Close ends: the context background work runs under,
// and the goroutines that do it.
type lifetime struct {
	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	mu     sync.Mutex // orders enter against stop
	closed atomic.Bool
	wg     sync.WaitGroup
}

func newLifetime() *lifetime {
	l := &lifetime{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	return l
}

// enter registers background work unless stop has run; the caller must
// call l.wg.Done when the work ends.
func (l *lifetime) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		return false
	}
	l.wg.Add(1)
	return true
}

// stop refuses new background work and cancels the running work's context.
func (l *lifetime) stop() {
	l.mu.Lock()
	l.closed.Store(true)
	l.mu.Unlock()
	l.cancel()
}

// join waits for background work until deadline. Work that outlives it (a
// Source or store that ignores its context) is left to end by itself; it
// reports true when everything ended.
func (l *lifetime) join(deadline time.Time) bool {
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	return waitUntil(done, deadline)
}

// waitUntil waits for done until deadline, reporting whether done closed.
func waitUntil(done <-chan struct{}, deadline time.Time) bool {
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
