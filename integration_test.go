package oauthtransport_test

// The surface for other protocols (integration.go): Credential, Retry,
// Succeeded and AllowsInsecure, over a SourceFunc and an in-memory base,
// in synctest bubbles: it shares the token, the renewal spacing, the
// retry budget and the counters with the HTTP path.

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

func credential(t *testing.T, tr *oauthtransport.Transport, ctx context.Context) *oauthtransport.Credential {
	t.Helper()
	c, err := tr.Credential(ctx)
	require.NoError(t, err)
	return c
}

// TestCredentialRejectedDropsOnlyThatToken: a rejection drops exactly the
// token the call carried; a late rejection of it leaves the newer token in
// place, and calls rejected together share one new token.
func TestCredentialRejectedDropsOnlyThatToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		tr := newTransport(t, src)
		ctx := context.Background()
		first := credential(t, tr, ctx)
		assert.Equal(t, "Bearer tok-1", first.Authorization())
		first.Accepted()

		var wg sync.WaitGroup
		for range 50 { // every call that carried tok-1 is rejected
			wg.Go(func() {
				if !first.Rejected(ctx) {
					t.Error("a rejection of an accepted token must allow a retry")
				}
				assert.Equal(t, "Bearer tok-2", credential(t, tr, ctx).Authorization())
			})
		}
		wg.Wait()
		assert.Equal(t, int64(2), src.calls.Load(), "one new token for all the calls rejected with tok-1")

		assert.True(t, first.Rejected(ctx), "a late rejection of tok-1")
		second := credential(t, tr, ctx)
		assert.Equal(t, "tok-2", second.Token().AccessToken, "the newer token survives a late rejection of the old one")
		assert.Equal(t, int64(2), src.calls.Load())

		st := tr.Stats()
		assert.Equal(t, int64(1), st.Invalidations, "tok-1 was dropped once")
		assert.Equal(t, int64(51), st.Replays, "each rejection that allowed a retry")
	})
}

// TestCredentialTokenIsACopy: changing what Token returns changes nothing
// inside.
func TestCredentialTokenIsACopy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTransport(t, &fakeSource{lifetime: time.Hour})
		c := credential(t, tr, context.Background())
		c.Token().AccessToken = "changed"
		assert.Equal(t, "tok-1", c.Token().AccessToken)
		assert.Equal(t, "Bearer tok-1", credential(t, tr, context.Background()).Authorization())
	})
}

// TestCredentialSpacingSharedWithHTTP: a never-accepted token rejected
// through Credential, then its successor rejected by an HTTP 401, make
// one renewal between them: the spacing of renewals is the key's, whatever
// the protocol.
func TestCredentialSpacingSharedWithHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		base := &memBase{}
		for _, tok := range []string{"tok-1", "tok-2", "tok-3"} {
			base.rejectToken(tok)
		}
		tr := newTransport(t, src, oauthtransport.WithBase(base))
		ctx := context.Background()
		require.True(t, credential(t, tr, ctx).Rejected(ctx), "the first renewal of a never-accepted token comes at once")

		_, err := send(tr, ctx, http.MethodGet, nil)
		require.ErrorIs(t, err, oauthtransport.ErrUnauthorized)
		assert.Equal(t, int64(1), base.calls.Load(), "the 401 to tok-2 was not replayed: renewals are spaced out")
		assert.Equal(t, int64(2), src.calls.Load(), "one renewal")

		c := credential(t, tr, ctx)
		assert.Equal(t, "tok-2", c.Token().AccessToken)
		assert.False(t, c.Rejected(ctx), "still spaced out: the rejection is final")
		assert.Equal(t, "tok-2", credential(t, tr, ctx).Token().AccessToken, "a rejection held back drops nothing")

		time.Sleep(2 * time.Second) // past the spacing's first step (1s)
		assert.True(t, c.Rejected(ctx))
		assert.Equal(t, "tok-3", credential(t, tr, ctx).Token().AccessToken)
		assert.Equal(t, int64(3), src.calls.Load())
	})
}

// TestCredentialAcceptedEndsTheSpacing: once the server accepted a token,
// its rejection always renews it.
func TestCredentialAcceptedEndsTheSpacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTransport(t, &fakeSource{lifetime: time.Hour})
		ctx := context.Background()
		require.True(t, credential(t, tr, ctx).Rejected(ctx)) // tok-1, never accepted
		second := credential(t, tr, ctx)
		second.Accepted()
		assert.True(t, second.Rejected(ctx), "an accepted token was revoked: renew at once")
		assert.Equal(t, "tok-3", credential(t, tr, ctx).Token().AccessToken)
	})
}

// TestCredentialErrors: RoundTrip's errors before anything is sent.
func TestCredentialErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{}
		src.setErr(&oauthtransport.TokenError{StatusCode: http.StatusServiceUnavailable})
		tr := newTransport(t, src)
		_, err := tr.Credential(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrToken)

		keyed, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return &fakeSource{}, nil })
		require.NoError(t, err)
		defer keyed.Close()
		_, err = keyed.Credential(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrNoKey)
	})
}

// TestCredentialKeyed: each key's Credential carries that key's token, and
// a Credential of a key whose cache was evicted meanwhile still drops its
// token in the cache that replaced it.
func TestCredentialKeyed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		sources := map[string]*fakeSource{}
		tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
			mu.Lock()
			defer mu.Unlock()
			if sources[key] == nil {
				sources[key] = &fakeSource{lifetime: time.Hour}
			}
			return sources[key], nil
		}, oauthtransport.WithMaxTokens(1), oauthtransport.WithStore(store.NewMemory(), "k"))
		require.NoError(t, err)
		defer tr.Close()
		ctxA, ctxB := oauthtransport.WithKey(context.Background(), "a"), oauthtransport.WithKey(context.Background(), "b")
		a := credential(t, tr, ctxA)
		a.Accepted()
		credential(t, tr, ctxB)                                                      // evicts a's cache
		require.Equal(t, a.Authorization(), credential(t, tr, ctxA).Authorization()) // its successor adopts the token from the store

		require.True(t, a.Rejected(ctxA))
		again := credential(t, tr, ctxA)
		assert.NotEqual(t, a.Token().AccessToken, again.Token().AccessToken, "the rejected token was dropped in the successor")
		assert.Equal(t, int64(2), sources["a"].calls.Load())
		assert.Equal(t, int64(1), sources["b"].calls.Load())
		assert.Equal(t, int64(1), tr.Stats().Adopted, "a's first cache was evicted, its successor adopted the token")
	})
}

// TestRetryFollowsThePolicy: the backoff, the server's hint when longer,
// MaxAttempts, MaxRetryAfter, the deadline and idempotency.
func TestRetryFollowsThePolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTransport(t, &fakeSource{}, oauthtransport.WithRetry(oauthtransport.RetryPolicy{
			MaxAttempts: 4, InitialBackoff: time.Second, MaxRetryAfter: 10 * time.Second, RetryBudget: 100}))
		ctx := context.Background()
		for attempt, step := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second} {
			wait, ok := tr.Retry(ctx, attempt, 0, true)
			assert.True(t, ok)
			assert.GreaterOrEqual(t, wait, step, "attempt %d", attempt)
			assert.Less(t, wait, step+time.Second, "attempt %d: the step plus up to InitialBackoff of jitter", attempt)
		}
		_, ok := tr.Retry(ctx, 4, 0, true)
		assert.False(t, ok, "MaxAttempts 4: no fifth try")

		wait, ok := tr.Retry(ctx, 1, 7*time.Second, true)
		assert.True(t, ok)
		assert.Equal(t, 7*time.Second, wait, "the server's hint wins when longer")
		_, ok = tr.Retry(ctx, 1, 11*time.Second, true)
		assert.False(t, ok, "a hint past MaxRetryAfter fails fast")

		short, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		_, ok = tr.Retry(short, 1, 5*time.Second, true)
		assert.False(t, ok, "a wait past the deadline fails fast")

		_, ok = tr.Retry(ctx, 1, 0, false)
		assert.False(t, ok, "not idempotent, and RetryNonIdempotent is off")

		st := tr.Stats()
		assert.Equal(t, int64(4), st.Retries)
		assert.Equal(t, int64(1), st.RateLimitWaits, "the hinted retry")
		assert.Equal(t, int64(2), st.RateLimitFailFasts, "the hints past MaxRetryAfter and past the deadline")
	})
}

// TestRetryNonIdempotent: RetryNonIdempotent lets any call be retried.
func TestRetryNonIdempotent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := newTransport(t, &fakeSource{}, oauthtransport.WithRetry(oauthtransport.RetryPolicy{RetryNonIdempotent: true}))
		_, ok := tr.Retry(context.Background(), 1, 0, false)
		assert.True(t, ok)
	})
}

// TestRetrySharesTheBudgetWithHTTP: retries through Retry spend the budget
// that HTTP requests draw on, and Succeeded earns it back.
func TestRetrySharesTheBudgetWithHTTP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		base := &scripted{script: then(reply{status: http.StatusBadGateway})}
		tr := retryTransport(t, base, oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond, RetryBudget: 10})
		ctx := context.Background()
		allowed := 0
		for range 10 {
			if _, ok := tr.Retry(ctx, 1, 0, true); ok {
				allowed++
			}
		}
		assert.Equal(t, 4, allowed, "retries stop once half the budget (10) is spent")

		_, err := send(tr, ctx, http.MethodGet, nil)
		require.ErrorIs(t, err, oauthtransport.ErrServer, "the budget Retry spent holds the HTTP retry back")
		assert.Equal(t, 1, base.count())

		for range 100 {
			tr.Succeeded()
		}
		_, ok := tr.Retry(ctx, 1, 0, true)
		assert.True(t, ok, "successes earned the budget back")
	})
}

// TestAllowsInsecure reports WithInsecureHTTP.
func TestAllowsInsecure(t *testing.T) {
	t.Parallel()
	tr := newTransport(t, &fakeSource{})
	assert.False(t, tr.AllowsInsecure())
	tr = newTransport(t, &fakeSource{}, oauthtransport.WithInsecureHTTP())
	assert.True(t, tr.AllowsInsecure())
}
