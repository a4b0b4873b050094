package oauthtransport

import (
	"sync/atomic"
	"time"
)

// coarseClock is a keyed Transport's clock for the hot path: one goroutine
// (for the whole Transport, not per key) stores the time every
// clockTick, so that a request reads an atomic rather than the system
// clock, and no key needs a timer. Once Close has stopped it, readers read
// the system clock.
type coarseClock struct {
	now     atomic.Int64 // Unix ns
	stopped atomic.Bool
}

const clockTick = 10 * time.Millisecond

// startClock runs the clock until the lifetime ends.
func startClock(l *lifetime) *coarseClock {
	c := &coarseClock{}
	c.now.Store(time.Now().UnixNano())
	if !l.enter(false) {
		c.stopped.Store(true)
		return c
	}
	go func() {
		defer l.leave(false)
		tick := time.NewTicker(clockTick)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				c.now.Store(now.UnixNano())
			case <-l.ctx.Done():
				c.stopped.Store(true)
				return
			}
		}
	}()
	return c
}

// read returns the time in Unix ns, at most clockTick behind.
func (c *coarseClock) read() int64 {
	if c.stopped.Load() {
		return time.Now().UnixNano()
	}
	return c.now.Load()
}
