package main

// Many keys: a keyed Transport's hot path and memory beside the
// single-token Transport, and a fleet of processes sharing Redis or
// PostgreSQL for many users' rotating refresh tokens.

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/pgtest"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
)

// 7. A keyed Transport holding 100,000 keys beside the single-token
// Transport, in one process (both pay for collecting the same heap).
func manyKeysHotPath(r *report) {
	const n = 100_000
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return fresh(), nil })
	ctxs := make([]context.Context, n)
	for i := range ctxs {
		ctxs[i] = oauthtransport.WithKey(context.Background(), "user-"+strconv.Itoa(i))
	}
	own := tokenBytes(n)
	var keyed *oauthtransport.Transport
	perKey := heapPer(n, func(i int) {
		if keyed == nil {
			keyed, _ = oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return src, nil },
				oauthtransport.WithBase(okBase{}), oauthtransport.WithMaxTokens(n), oauthtransport.WithStore(discardStore{}, "k"))
		}
		_, _ = keyed.Token(ctxs[i])
	}) - own
	defer keyed.Close()
	single, _ := oauthtransport.New(src, oauthtransport.WithBase(okBase{}))
	defer single.Close()
	_, _ = single.Token(context.Background())
	s := medianOf(single, newRequest(context.Background()))
	k := medianOf(keyed, newRequest(ctxs[n/2]))
	r.add("7. Many keys: the hot path with 100,000 keys",
		fmt.Sprintf("One RoundTrip for a cached key of a keyed Transport holding %s keys, beside the single-token Transport in the same process (the median of 5 runs each). Bytes per key: the heap a cached key costs beyond its *oauth2.Token and Authorization header value (%d bytes here).", "100,000", own),
		[]string{"Transport", "ns/op", "allocs/op", "time vs single-token", "bytes/key"},
		[][]string{
			{"single-token", fmt.Sprint(s.NsPerOp()), fmt.Sprint(s.AllocsPerOp()), "1.00×", "-"},
			{"keyed, 100,000 keys", fmt.Sprint(k.NsPerOp()), fmt.Sprint(k.AllocsPerOp()), ratio(float64(k.NsPerOp()), float64(s.NsPerOp())), fmt.Sprint(perKey)},
			// Measured by this scenario at commit 45e58ae, before each part of a
			// refresh got a type of its own: the bound a key's memory must keep.
			{"keyed, before the parts of a refresh had their own types (45e58ae)", "-", "-", "-", fmt.Sprint(bytesPerKeyBefore)},
		})
	runtime.KeepAlive(ctxs)
}

// heapPer returns the heap that calling alloc(i) for i in [0, n) keeps,
// per call.
func heapPer(n int, alloc func(i int)) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		alloc(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	return (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(n)
}

// tokenBytes is the heap a token of its own costs: the *oauth2.Token the
// Source returns and its Authorization header value.
func tokenBytes(n int) int64 {
	toks, hdrs := make([]*oauth2.Token, n), make([]string, n)
	b := heapPer(n, func(i int) {
		toks[i] = fresh()
		hdrs[i] = toks[i].Type() + " " + toks[i].AccessToken
	})
	runtime.KeepAlive(toks)
	runtime.KeepAlive(hdrs)
	return b
}

func newRequest(ctx context.Context) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.example.com/v1/items", nil)
	return req
}

// bytesPerKeyBefore is what a cached key cost at commit 45e58ae.
const bytesPerKeyBefore = 471

func medianOf(rt http.RoundTripper, req *http.Request) testing.BenchmarkResult {
	var runs []testing.BenchmarkResult
	for range 5 {
		runs = append(runs, testing.Benchmark(func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		}))
	}
	slices.SortFunc(runs, func(a, b testing.BenchmarkResult) int { return int(a.NsPerOp() - b.NsPerOp()) })
	return runs[2]
}

// discardStore keeps nothing: the tokens live elsewhere (Redis, SQL), so
// the heap counted is the cache's.
type discardStore struct{}

func (discardStore) Load(context.Context, string) (*oauth2.Token, error) {
	return nil, store.ErrNotFound
}
func (discardStore) Save(context.Context, string, *oauth2.Token) error { return nil }
func (discardStore) Delete(context.Context, string) error              { return nil }

// fleetPlan is what a fleet process is told, as JSON in a file.
type fleetPlan struct {
	Store    string // "memory", "redis" or "postgres"
	Addr     string
	TokenURL string
	APIURL   string
	Refresh  map[string]string // key → the first refresh token of its user
	Run      time.Duration
	Workers  int
}

// fleetResult is what a fleet process reports on stdout.
type fleetResult struct{ Requests, Failures int64 }

// 8. Many users' rotating refresh tokens under steady traffic: one
// process, then four sharing Redis, then four sharing PostgreSQL.
func manyKeysFleet(r *report) {
	const keys, lifetime, run, workers = 200, 2 * time.Second, 6 * time.Second, 4
	var rows [][]string
	var alone float64
	for _, setup := range []struct {
		name      string
		processes int
		store     string
	}{{"1 process, memory store", 1, "memory"}, {"4 processes, redisstore", 4, "redis"}, {"4 processes, sqlstore on PostgreSQL", 4, "postgres"}} {
		addr, stop, err := startStore(setup.store)
		if err != nil {
			rows = append(rows, []string{setup.name, "skipped: " + err.Error(), "", "", "", "", ""})
			continue
		}
		idp := oauthtest.New(oauthtest.Lifetime(lifetime))
		plan := fleetPlan{Store: setup.store, Addr: addr, TokenURL: idp.TokenURL, APIURL: idp.APIURL, Refresh: map[string]string{},
			Run: run, Workers: workers}
		for i := range keys {
			plan.Refresh[fmt.Sprintf("user-%d", i)] = idp.IssueRefreshToken()
		}
		res, err := runFleet(plan, setup.processes)
		stop()
		if err != nil {
			rows = append(rows, []string{setup.name, "failed: " + err.Error(), "", "", "", "", ""})
			idp.Close()
			continue
		}
		perKey := float64(idp.TokenCalls()) / keys / (float64(run) / float64(lifetime))
		if setup.processes == 1 {
			alone = perKey
		}
		rows = append(rows, []string{setup.name, fmt.Sprint(res.Requests), fmt.Sprint(idp.TokenCalls()), fmt.Sprintf("%.2f", perKey),
			ratio(perKey, alone), fmt.Sprint(idp.Reuses()), fmt.Sprint(res.Failures)})
		idp.Close()
	}
	r.add("8. Many users under steady traffic: one process, then a fleet sharing Redis or PostgreSQL",
		fmt.Sprintf("%d users, each with a rotating refresh token of their own (the IdP detects reuse); each process a keyed Transport and %d goroutines calling the API for random users for %v; tokens living %v and refreshed in the background before they expire, so that even one process alone fetches each key more than once per lifetime: the fleets are measured against it. Real processes (this binary started again), as a fleet runs.", keys, workers, run, lifetime),
		[]string{"setup", "requests", "token fetches", "fetches per key per lifetime", "vs one process", "refresh tokens reused", "failures"}, rows)
}

// startStore starts the store a fleet shares, returning its address.
func startStore(kind string) (string, func(), error) {
	switch kind {
	case "redis":
		srv, err := redistest.Run()
		if err != nil {
			return "", nil, err
		}
		return srv.Addr(), srv.Stop, nil
	case "postgres":
		srv, err := pgtest.Run()
		if err != nil {
			return "", nil, err
		}
		return srv.DSN(), srv.Stop, nil
	}
	return "", func() {}, nil
}

// runFleet starts n processes on plan and adds up their results.
func runFleet(plan fleetPlan, n int) (fleetResult, error) {
	dir, err := os.MkdirTemp("", "benchfleet")
	if err != nil {
		return fleetResult{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "plan.json")
	data, _ := json.Marshal(plan)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fleetResult{}, err
	}
	var (
		mu   sync.Mutex
		sum  fleetResult
		errs []error
		wg   sync.WaitGroup
	)
	for range n {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "BENCH_FLEET_PLAN="+path)
			var out, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &stderr
			var res fleetResult
			err := cmd.Run()
			if err == nil {
				err = json.Unmarshal(out.Bytes(), &res)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%v: %s", err, stderr.String()))
			}
			sum.Requests += res.Requests
			sum.Failures += res.Failures
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return sum, errs[0]
	}
	return sum, nil
}

// fleetChild runs a fleet process when this binary was started as one.
func fleetChild() bool {
	path := os.Getenv("BENCH_FLEET_PLAN")
	if path == "" {
		return false
	}
	res, err := fleetProcess(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return true
}

func fleetProcess(path string) (fleetResult, error) {
	var plan fleetPlan
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &plan)
	}
	if err != nil {
		return fleetResult{}, err
	}
	s, closeStore, err := openStore(plan)
	if err != nil {
		return fleetResult{}, err
	}
	defer closeStore()
	cfg := &oauth2.Config{ClientID: oauthtest.ClientID, ClientSecret: oauthtest.ClientSecret,
		Endpoint: oauth2.Endpoint{TokenURL: plan.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}}
	tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
		return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: plan.Refresh[key]}), nil
	}, oauthtransport.WithStore(s, "bench"))
	if err != nil {
		return fleetResult{}, err
	}
	defer tr.Close()
	keys := make([]string, 0, len(plan.Refresh))
	for k := range plan.Refresh {
		keys = append(keys, k)
	}
	return callRandomKeys(tr.Client(), plan, keys), nil
}

func openStore(plan fleetPlan) (store.Store, func(), error) {
	switch plan.Store {
	case "redis":
		c := redis.NewClient(redistest.Options(plan.Addr))
		return redisstore.New(c), func() { _ = c.Close() }, nil
	case "postgres":
		db, err := sql.Open("pgx", plan.Addr)
		if err != nil {
			return nil, nil, err
		}
		db.SetMaxIdleConns(plan.Workers) // database/sql keeps 2 by default: each refresh would connect again
		s, err := sqlstore.New(db)
		if err != nil {
			_ = db.Close()
			return nil, nil, err
		}
		return s, func() { _ = db.Close() }, nil
	}
	return store.NewMemory(), func() {}, nil
}

// callRandomKeys calls the API for random keys from plan.Workers
// goroutines until plan.Run has passed.
func callRandomKeys(client *http.Client, plan fleetPlan, keys []string) fleetResult {
	ctx, cancel := context.WithTimeout(context.Background(), plan.Run)
	defer cancel()
	var requests, failures atomic.Int64
	var wg sync.WaitGroup
	for range plan.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(oauthtransport.WithKey(ctx, keys[rand.IntN(len(keys))]), http.MethodGet, plan.APIURL+"fleet", nil)
				resp, err := client.Do(req)
				if ctx.Err() != nil {
					return
				}
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	return fleetResult{Requests: requests.Load(), Failures: failures.Load()}
}
