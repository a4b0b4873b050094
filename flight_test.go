package oauthtransport

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func testFlightEnv(life *lifetime) flightEnv {
	return flightEnv{life: life, timeout: time.Second, log: slog.New(slog.DiscardHandler), key: func() string { return "k" }}
}

// TestOneFlightForManyWaiters: concurrent callers share one run.
func TestOneFlightForManyWaiters(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		life := newLifetime()
		var g flights
		var runs atomic.Int32
		want := &credential{}
		run := func(context.Context) (*credential, error) {
			runs.Add(1)
			time.Sleep(100 * time.Millisecond)
			return want, nil
		}
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				f, err := g.join(testFlightEnv(life), false, "", run)
				if err != nil {
					t.Error(err)
					return
				}
				if c, err := g.await(context.Background(), testFlightEnv(life), f); c != want || err != nil {
					t.Errorf("await = %v, %v", c, err)
				}
			})
		}
		wg.Wait()
		if runs.Load() != 1 {
			t.Errorf("%d runs, want 1", runs.Load())
		}
		life.stop()
	})
}

// TestAbandonedFlights: past the timeout a waiter leaves; a run that spends
// nothing may then be started again beside it, one that may spend a
// refresh token may not until it returns.
func TestAbandonedFlights(t *testing.T) {
	for _, spends := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			life := newLifetime()
			var g flights
			release := make(chan struct{})
			var runs atomic.Int32
			run := func(context.Context) (*credential, error) {
				runs.Add(1)
				<-release // ignores its context, as a hung Source does
				return &credential{}, nil
			}
			e := testFlightEnv(life)
			f, _ := g.join(e, spends, "", run)
			start := time.Now()
			if _, err := g.await(context.Background(), e, f); err == nil || time.Since(start) != e.timeout {
				t.Fatalf("await = %v after %v, want a temporary error at the timeout", err, time.Since(start))
			}
			_, err := g.join(e, spends, "", run)
			synctest.Wait()
			if spends && (err == nil || runs.Load() != 1) {
				t.Errorf("a second run started beside one that may spend a refresh token (err %v)", err)
			}
			if !spends && (err != nil || runs.Load() != 2) {
				t.Errorf("spends nothing: join = %v, %d runs; want a second run", err, runs.Load())
			}
			close(release)
			synctest.Wait()
			if _, err := g.join(e, spends, "", func(context.Context) (*credential, error) { return &credential{}, nil }); err != nil {
				t.Errorf("after the stuck run returned: %v", err)
			}
			life.stop()
			synctest.Wait()
		})
	}
}

// TestRetiredCacheStartsNoRefresh: an evicted key's cache refuses new
// runs, unless one runs (then it is not retired).
func TestRetiredCacheStartsNoRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		life := newLifetime()
		var g flights
		release := make(chan struct{})
		f, _ := g.join(testFlightEnv(life), true, "", func(context.Context) (*credential, error) {
			<-release
			return &credential{}, nil
		})
		if g.retire() {
			t.Fatal("retired while a refresh runs")
		}
		close(release)
		<-f.done
		synctest.Wait()
		if !g.retire() {
			t.Fatal("not retired when idle")
		}
		if _, err := g.join(testFlightEnv(life), true, "", nil); !errors.Is(err, errRetired) {
			t.Fatalf("join on a retired cache: %v", err)
		}
		if _, err := g.afterCloseRun(context.Background(), time.Second, nil); !errors.Is(err, errRetired) {
			t.Fatalf("after Close, on a retired cache: %v", err)
		}
		life.stop()
	})
}

// TestCloseWaitsOnlyForCriticalWork: Close's join waits for a run that may
// spend a refresh token, not for one that spends nothing.
func TestCloseWaitsOnlyForCriticalWork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		life := newLifetime()
		var g, h flights
		release := make(chan struct{})
		hang := func(context.Context) (*credential, error) { <-release; return &credential{}, nil }
		_, _ = g.join(testFlightEnv(life), false, "", hang)
		life.stop()
		start := time.Now()
		if !life.join(start.Add(time.Hour), start.Add(closeMoment)) || time.Since(start) != closeMoment {
			t.Errorf("join took %v with only work that spends nothing", time.Since(start))
		}
		close(release)
		synctest.Wait()

		life = newLifetime()
		release = make(chan struct{})
		_, _ = h.join(testFlightEnv(life), true, "", hang)
		life.stop()
		start = time.Now()
		if life.join(start.Add(5*time.Second), start.Add(closeMoment)) || time.Since(start) != 5*time.Second {
			t.Errorf("join took %v with a run that may spend a refresh token", time.Since(start))
		}
		close(release)
		synctest.Wait()
	})
}
