package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	retryablehttp "github.com/hashicorp/go-retryablehttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

func fresh() *oauth2.Token {
	return &oauth2.Token{AccessToken: "bench", TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)}
}

// 1. The hot path: a fresh token, an in-memory base.
func hotPath(r *report) {
	ours, _ := oauthtransport.New(oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return fresh(), nil
	}), oauthtransport.WithBase(okBase{}))
	defer ours.Close()
	_, _ = ours.Token(context.Background())
	x := &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(fresh())), Base: okBase{}}
	var rows [][]string
	for _, parallel := range []bool{false, true} {
		o, xr := medians(ours, x, parallel)
		mode := "serial"
		if parallel {
			mode = "parallel"
		}
		rows = append(rows,
			[]string{mode, "oauthtransport", fmt.Sprint(o.NsPerOp()), fmt.Sprint(o.AllocsPerOp()), ratio(float64(o.NsPerOp()), float64(xr.NsPerOp()))},
			[]string{mode, "x/oauth2 Transport + ReuseTokenSource", fmt.Sprint(xr.NsPerOp()), fmt.Sprint(xr.AllocsPerOp()), "1.00×"})
	}
	r.add("1. Hot path", "One RoundTrip with a fresh token over an in-memory base (which allocates its response and header: 2 of the allocations), the median of 7 runs of each, taken in turns.",
		[]string{"mode", "client", "ns/op", "allocs/op", "time vs x/oauth2"}, rows)
}

// newClient returns the client named "oauthtransport" or "x/oauth2" for
// idp's client-credentials grant, and what closes it.
func newClient(name string, idp *oauthtest.Server, lifetime time.Duration) (*http.Client, func()) {
	if name == "oauthtransport" {
		tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
		return tr.Client(), func() { _ = tr.Close() }
	}
	return xoauth2Client(idp.ClientCredentials().TokenSource(context.Background()), lifetime/10, nil), func() {}
}

// 2. Steady load across several expiries, token endpoint answering in 100 ms.
func steadyLoad(r *report) {
	const lifetime, run, workers = 2 * time.Second, 7 * time.Second, 8
	var rows [][]string
	for _, name := range []string{"oauthtransport", "x/oauth2"} {
		idp := oauthtest.New(oauthtest.Lifetime(lifetime), oauthtest.TokenDelay(100*time.Millisecond))
		client, closeFn := newClient(name, idp, lifetime)
		ctx, cancel := context.WithTimeout(context.Background(), run)
		l := &latencies{}
		drive(ctx, client, idp.APIURL+"steady", workers, l)
		cancel()
		closeFn()
		n, over, p99 := l.summary()
		rows = append(rows, []string{name, fmt.Sprint(n), fmt.Sprint(over), p99.Round(100 * time.Microsecond).String(),
			fmt.Sprint(idp.TokenCalls()), fmt.Sprint(l.failures.Load())})
		idp.Close()
	}
	r.add("2. Steady load across token expiries",
		fmt.Sprintf("%d goroutines for %v, tokens living %v, the token endpoint answering in 100 ms. x/oauth2's early expiry is set to a tenth of the lifetime, as ours.", workers, run, lifetime),
		[]string{"client", "requests", "waited > 50 ms", "p99 latency", "token fetches", "failures"}, rows)
}

// 3. A token revoked mid-run.
func revocation(r *report) {
	const lifetime, run, workers = 4 * time.Second, 3 * time.Second, 8
	var rows [][]string
	for _, name := range []string{"oauthtransport", "x/oauth2"} {
		idp := oauthtest.New(oauthtest.Lifetime(lifetime))
		client, closeFn := newClient(name, idp, lifetime)
		ctx, cancel := context.WithTimeout(context.Background(), run)
		time.AfterFunc(time.Second, idp.RevokeAll)
		l := &latencies{}
		drive(ctx, client, idp.APIURL+"revoked", workers, l)
		cancel()
		closeFn()
		n, _, _ := l.summary()
		rows = append(rows, []string{name, fmt.Sprint(n), fmt.Sprint(l.failures.Load()), fmt.Sprint(idp.TokenCalls())})
		idp.Close()
	}
	r.add("3. Token revoked mid-run",
		fmt.Sprintf("%d goroutines for %v; every token is revoked after 1 s; tokens would live %v.", workers, run, lifetime),
		[]string{"client", "requests", "failed requests", "token fetches"}, rows)
}

// 4. Four replicas sharing a Redis store against four independent ones.
func replicas(r *report) {
	const lifetime, run, n = 2 * time.Second, 6 * time.Second, 4
	srv, err := redistest.Run()
	if err != nil {
		r.add("4. Four replicas", "Skipped: "+err.Error()+".", []string{"client"}, nil)
		return
	}
	defer srv.Stop()
	var rows [][]string
	for _, name := range []string{"oauthtransport + redisstore", "oauthtransport, no shared store", "x/oauth2 (independent)"} {
		idp := oauthtest.New(oauthtest.Lifetime(lifetime))
		ctx, cancel := context.WithTimeout(context.Background(), run)
		var wg sync.WaitGroup
		l := &latencies{}
		for i := range n {
			wg.Go(func() {
				var client *http.Client
				switch name {
				case "oauthtransport + redisstore":
					rc := redis.NewClient(srv.Options())
					defer rc.Close()
					tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()),
						oauthtransport.WithStore(redisstore.New(rc, redisstore.WithPrefix(fmt.Sprintf("bench%d:", len(rows)))), "svc"))
					defer tr.Close()
					client = tr.Client()
				case "oauthtransport, no shared store":
					tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
					defer tr.Close()
					client = tr.Client()
				default:
					client = xoauth2Client(idp.ClientCredentials().TokenSource(context.Background()), lifetime/10, nil)
				}
				_ = i
				drive(ctx, client, idp.APIURL+"replica", 4, l)
			})
		}
		wg.Wait()
		cancel()
		perLifetime := float64(idp.TokenCalls()) / (float64(run) / float64(lifetime))
		rows = append(rows, []string{name, fmt.Sprint(idp.TokenCalls()), fmt.Sprintf("%.1f", perLifetime), fmt.Sprint(l.failures.Load())})
		idp.Close()
	}
	r.add("4. Four replicas: shared Redis store against independent token caches",
		fmt.Sprintf("%d replicas (each its own Transport and Redis client, as separate processes would have) for %v, tokens living %v.", n, run, lifetime),
		[]string{"setup", "token fetches", "per token lifetime", "failures"}, rows)
}

// 5. An upstream answering 503 to everything.
func outage(r *report) {
	const warmup, calls = 20, 200
	var hits atomic.Int64
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer api.Close()
	idp := oauthtest.New()
	defer idp.Close()

	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()),
		oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}))
	defer tr.Close()
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.RetryWaitMin, rc.RetryWaitMax = time.Millisecond, 5*time.Millisecond
	rc.HTTPClient = xoauth2Client(idp.ClientCredentials().TokenSource(context.Background()), 10*time.Second, nil)

	measure := func(do func()) float64 {
		for range warmup {
			do()
		}
		before := hits.Load()
		for range calls {
			do()
		}
		return float64(hits.Load()-before) / calls
	}
	ours := measure(func() {
		if resp, err := tr.Client().Get(api.URL); err == nil {
			resp.Body.Close()
		}
	})
	theirs := measure(func() {
		if resp, err := rc.Get(api.URL); err == nil {
			resp.Body.Close()
		}
	})
	plain := measure(func() {
		if resp, err := rc.HTTPClient.Get(api.URL); err == nil {
			resp.Body.Close()
		}
	})
	r.add("5. Total outage: every request answered 503",
		fmt.Sprintf("%d calls after %d warm-up calls; requests the server saw per call. Both retriers use their default attempt counts (ours 3, retryablehttp 1+4).", calls, warmup),
		[]string{"client", "requests per call"},
		[][]string{
			{"oauthtransport (retry budget)", fmt.Sprintf("%.2f", ours)},
			{"go-retryablehttp around x/oauth2", fmt.Sprintf("%.2f", theirs)},
			{"x/oauth2 alone (no retries)", fmt.Sprintf("%.2f", plain)},
		})
}

// 6. A 429 asking for a longer wait than the caller's deadline allows.
func rateLimitDeadline(r *report) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "10")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer api.Close()
	idp := oauthtest.New()
	defer idp.Close()
	tr, _ := oauthtransport.New(oauthtransport.ClientCredentials(idp.ClientCredentials()))
	defer tr.Close()
	_, _ = tr.Token(context.Background())
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.HTTPClient = xoauth2Client(idp.ClientCredentials().TokenSource(context.Background()), 10*time.Second, nil)
	_, _ = rc.HTTPClient.Get(idp.APIURL) // fetch its token outside the timing

	timeIt := func(do func(ctx context.Context) error) (time.Duration, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := do(ctx)
		d := time.Since(start)
		var rl *oauthtransport.RateLimitError
		switch {
		case errors.As(err, &rl):
			return d, fmt.Sprintf("*RateLimitError, RetryAfter %v", rl.RetryAfter)
		case errors.Is(err, context.DeadlineExceeded):
			return d, "context deadline exceeded"
		case err != nil:
			return d, "error"
		}
		return d, "response"
	}
	get := func(c interface {
		Do(*http.Request) (*http.Response, error)
	}) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api.URL, nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		}
	}
	od, ow := timeIt(get(tr.Client()))
	rd, rw := timeIt(func(ctx context.Context) error {
		req, _ := retryablehttp.NewRequestWithContext(ctx, http.MethodGet, api.URL, nil)
		resp, err := rc.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	r.add("6. A 429 with Retry-After: 10 under a 2 s deadline",
		"Time until the call returns, and what it returns.",
		[]string{"client", "time to return", "result"},
		[][]string{
			{"oauthtransport", od.Round(100 * time.Microsecond).String(), ow},
			{"go-retryablehttp around x/oauth2", rd.Round(time.Millisecond).String(), rw},
		})
}
