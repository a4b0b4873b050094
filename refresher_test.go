package oauthtransport_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// do sends one GET through tr and requires success.
func do(t *testing.T, tr *oauthtransport.Transport) {
	t.Helper()
	resp, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
	require.NoError(t, err)
	resp.Body.Close()
}

func TestSteadyTrafficNeverWaitsAfterFirstFetch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		base := &memBase{}
		tr := newTransport(t, src, oauthtransport.WithBase(base))
		const hours = 10
		for range hours * 60 {
			do(t, tr)
			synctest.Wait() // let a background refresh finish
			time.Sleep(time.Minute)
		}
		st := tr.Stats()
		assert.Equal(t, int64(1), st.Waits, "only the first request waited for a token")
		// Default window: a quarter of the lifetime but at most 5 minutes
		// (plus up to a fifth of jitter), so a token serves 54 to 55 minutes.
		assert.GreaterOrEqual(t, src.calls.Load(), int64(hours*60/56))
		assert.LessOrEqual(t, src.calls.Load(), int64(hours*60/54+1))
		assert.Equal(t, src.calls.Load()-1, st.BackgroundRefreshes)
		assert.Equal(t, int64(hours*60), base.calls.Load())
	})
}

func TestShortLivedTokensAreUsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: 5 * time.Second}
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
		for range 100 {
			do(t, tr)
			synctest.Wait()
			time.Sleep(100 * time.Millisecond)
		}
		// 10 s of traffic with 5 s tokens refreshed at about 3.75 s: a
		// handful of fetches, not one per request.
		assert.GreaterOrEqual(t, src.calls.Load(), int64(2))
		assert.LessOrEqual(t, src.calls.Load(), int64(4))
		assert.Equal(t, int64(1), tr.Stats().Waits)
	})
}

func TestExplicitWindowAndSkew(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}),
			oauthtransport.WithRefreshWindow(0), oauthtransport.WithExpirySkew(time.Minute))
		do(t, tr)
		time.Sleep(58 * time.Minute)
		do(t, tr)
		synctest.Wait()
		assert.Equal(t, int64(1), src.calls.Load(), "window 0: no background refresh")
		time.Sleep(time.Minute + time.Second) // inside the skew
		do(t, tr)
		assert.Equal(t, int64(2), src.calls.Load())
		assert.Equal(t, int64(2), tr.Stats().Waits)
	})
}

func TestIdPDownWhileTokenValid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		var logs logBuffer
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}), oauthtransport.WithLogger(logs.logger()))
		do(t, tr)
		time.Sleep(50 * time.Minute) // stale
		src.setErr(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 503}, ErrorCode: "temporarily_unavailable"})
		before := src.calls.Load()
		for range 9 * 60 { // nine minutes of requests, one a second
			do(t, tr)
			synctest.Wait()
			time.Sleep(time.Second)
		}
		tries := src.calls.Load() - before
		assert.Greater(t, tries, int64(3), "the refresher kept trying")
		assert.Less(t, tries, int64(60), "with backoff, not on every request")
		assert.Contains(t, logs.String(), "token refresh failed")

		src.setErr(nil)
		time.Sleep(40 * time.Second) // past the longest backoff (30s plus a quarter of jitter)
		do(t, tr)
		synctest.Wait()
		resp, err := tr.Token(context.Background())
		require.NoError(t, err)
		assert.True(t, time.Until(resp.Expiry) > 50*time.Minute, "recovered with a fresh token")
	})
}

func TestIdPDownAfterExpiryFailsWithTokenError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		base := &memBase{}
		tr := newTransport(t, src, oauthtransport.WithBase(base))
		do(t, tr)
		src.setErr(errors.New("dial tcp: connection refused"))
		time.Sleep(2 * time.Hour)
		_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
		require.ErrorIs(t, err, oauthtransport.ErrToken)
		assert.Equal(t, int64(1), base.calls.Load(), "nothing sent without a token")
	})
}

func TestInvalidGrantCoolsDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{}
		src.setErr(&oauth2.RetrieveError{Response: &http.Response{StatusCode: 400}, ErrorCode: "invalid_grant", ErrorDescription: "revoked"})
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
		for range 1000 {
			_, err := tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
			var te *oauthtransport.TokenError
			require.ErrorAs(t, err, &te)
			require.Equal(t, "invalid_grant", te.Code)
			require.Equal(t, 400, te.StatusCode)
		}
		assert.Equal(t, int64(1), src.calls.Load(), "no hot loop against the IdP")
		// The cool-down grows: 1s, 2s, 4s ... (plus up to a quarter of jitter).
		calls := []int64{}
		for _, d := range []time.Duration{1300, 1300, 1300, 3000, 2100} {
			time.Sleep(d * time.Millisecond)
			_, _ = tr.RoundTrip(httptest.NewRequest(http.MethodGet, "https://api.example/", nil))
			calls = append(calls, src.calls.Load())
		}
		assert.Equal(t, []int64{2, 2, 3, 3, 4}, calls)
	})
}

func TestNewerTokenSurvivesLateRejection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		base := &memBase{}
		tr := newTransport(t, src, oauthtransport.WithBase(base))
		do(t, tr)
		base.rejectToken("tok-1")
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { do(t, tr) })
		}
		wg.Wait()
		assert.Equal(t, int64(2), src.calls.Load(), "all 401s for tok-1 shared one refresh")
		// A 401 for tok-1 arriving now must not throw away tok-2.
		do(t, tr)
		assert.True(t, base.lastAuth() == "Bearer tok-2", "the base received another Authorization value")
		assert.Equal(t, int64(2), src.calls.Load())
	})
}

func jwt(claims string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + ".sig"
}

func TestJWTExpSchedulesRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n int
		src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			n++
			exp := time.Now().Add(time.Hour).Unix()
			return &oauth2.Token{AccessToken: jwt(fmt.Sprintf(`{"sub":"x","n":%d,"exp":%d}`, n, exp))}, nil
		})
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
		do(t, tr)
		time.Sleep(30 * time.Minute)
		do(t, tr)
		synctest.Wait()
		assert.Equal(t, 1, n)
		time.Sleep(30 * time.Minute)
		do(t, tr) // exp passed: a JWT token expires like any other
		assert.Equal(t, 2, n)

		// Without expiry or JWT, a token lives until a 401.
		m := 0
		opaque := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
			m++
			return &oauth2.Token{AccessToken: "opaque"}, nil
		})
		tr2 := newTransport(t, opaque, oauthtransport.WithBase(&memBase{}))
		do(t, tr2)
		time.Sleep(1000 * time.Hour)
		do(t, tr2)
		assert.Equal(t, 1, m)
	})
}

func TestCloseStopsBackgroundRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var calls int
		var mu sync.Mutex
		src := oauthtransport.SourceFunc(func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
			mu.Lock()
			calls++
			first := calls == 1
			mu.Unlock()
			if !first {
				select {
				case <-release:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			return &oauth2.Token{AccessToken: "t", Expiry: time.Now().Add(time.Hour)}, nil
		})
		tr, err := oauthtransport.New(src, oauthtransport.WithBase(&memBase{}))
		require.NoError(t, err)
		do(t, tr)
		time.Sleep(55 * time.Minute)
		do(t, tr) // starts a background refresh that blocks
		synctest.Wait()
		require.NoError(t, tr.Close()) // cancels and joins it
		close(release)
		// After Close the transport refreshes in the caller's goroutine.
		time.Sleep(10 * time.Minute)
		do(t, tr)
		mu.Lock()
		assert.Equal(t, 3, calls)
		mu.Unlock()
	})
}

func TestManyStaleRequestsShareOneRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeSource{lifetime: time.Hour}
		tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
		do(t, tr)
		time.Sleep(56 * time.Minute) // stale
		var wg sync.WaitGroup
		for range 200 { // many requests holding the stale token at once
			wg.Go(func() { do(t, tr) })
		}
		wg.Wait()
		synctest.Wait()
		for range 50 {
			do(t, tr)
			synctest.Wait()
		}
		assert.Equal(t, int64(2), src.calls.Load(), "one background refresh, however many requests saw the stale token")
	})
}
