// Command bench drives the same scenarios through oauthtransport, through
// golang.org/x/oauth2's Transport and, for retries, through
// go-retryablehttp wrapped around it, in one run, and prints a markdown
// report with the machine it ran on.
//
//	go run ./bench > BENCHMARKS.md
//
// Absolute times vary between machines; compare the ratios. BENCH_ONLY=N
// runs scenario N alone. Beyond the SDK's, its dependencies are what it
// compares with or runs on: github.com/hashicorp/go-retryablehttp, the
// retrying client, and pgx's database/sql driver, for the fleet on
// PostgreSQL (started with Debian's postgresql, as the tests do).
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func main() {
	if fleetChild() { // one process of scenario 8
		return
	}
	scenarios := []struct {
		name string
		run  func(*report)
	}{
		{"hot path", hotPath},
		{"steady load across expiries", steadyLoad},
		{"revocation", revocation},
		{"replicas", replicas},
		{"outage", outage},
		{"rate limit under a deadline", rateLimitDeadline},
		{"hot path with 100,000 keys", manyKeysHotPath},
		{"many users: one process, then fleets on Redis and PostgreSQL", manyKeysFleet},
		{"DPoP: a request at the cost of its signature", dpopHotPath},
	}
	only := os.Getenv("BENCH_ONLY") // "8": that scenario alone, while working on it
	r := &report{}
	for i, s := range scenarios {
		if only != "" && only != strconv.Itoa(i+1) {
			continue
		}
		fmt.Fprintf(os.Stderr, "%d/%d %s\n", i+1, len(scenarios), s.name)
		s.run(r)
	}
	r.print(os.Stdout)
}

// report collects one markdown section per scenario.
type report struct {
	sections []string
}

func (r *report) add(title, intro string, header []string, rows [][]string) {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n%s\n\n", title, intro)
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat(" --- |", len(header)) + "\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	r.sections = append(r.sections, b.String())
}

func (r *report) print(w *os.File) {
	fmt.Fprintln(w, "# Benchmarks")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Produced by `go run ./bench > BENCHMARKS.md` from the repository root. Every")
	fmt.Fprintln(w, "scenario runs the compared clients in the same process, against the same")
	fmt.Fprintln(w, "loopback servers; absolute numbers depend on the machine, so read the ratios.")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Machine: %s, %d CPUs, %s/%s, %s, %s.\n\n", cpuModel(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().UTC().Format("2006-01-02"))
	for _, s := range r.sections {
		fmt.Fprintln(w, s)
	}
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// okBase answers 200 without the network.
type okBase struct{}

func (okBase) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

func bench(rt http.RoundTripper, parallel bool) testing.BenchmarkResult {
	return testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		if !parallel {
			req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/v1/things", nil)
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
			return
		}
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest(http.MethodGet, "https://api.example.com/v1/things", nil)
			for pb.Next() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
			}
		})
	})
}

// median runs bench five times and returns the run with the median ns/op.
// medians benchmarks a and b (when not nil) in turns, 7 runs each, so that
// whatever the machine is doing weighs on both alike, and returns each
// one's median run.
func medians(a, b http.RoundTripper, parallel bool) (testing.BenchmarkResult, testing.BenchmarkResult) {
	var ra, rb []testing.BenchmarkResult
	for range 7 {
		ra = append(ra, bench(a, parallel))
		if b != nil {
			rb = append(rb, bench(b, parallel))
		}
	}
	mid := func(runs []testing.BenchmarkResult) testing.BenchmarkResult {
		if len(runs) == 0 {
			return testing.BenchmarkResult{}
		}
		slices.SortFunc(runs, func(a, b testing.BenchmarkResult) int { return int(a.NsPerOp() - b.NsPerOp()) })
		return runs[len(runs)/2]
	}
	return mid(ra), mid(rb)
}

// latencies records request durations and failures, safe for concurrent use.
type latencies struct {
	mu       sync.Mutex
	d        []time.Duration
	failures atomic.Int64
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) summary() (n int, over50 int, p99 time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := slices.Clone(l.d)
	slices.Sort(d)
	for _, x := range d {
		if x > 50*time.Millisecond {
			over50++
		}
	}
	if len(d) > 0 {
		p99 = d[len(d)*99/100]
	}
	return len(d), over50, p99
}

// drive sends GETs to url from workers goroutines until ctx ends.
func drive(ctx context.Context, client *http.Client, url string, workers int, l *latencies) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				start := time.Now()
				resp, err := client.Get(url)
				if err != nil {
					if ctx.Err() == nil {
						l.failures.Add(1)
					}
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.failures.Add(1)
				}
				l.add(time.Since(start))
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
}

// xoauth2Client is what a program wiring x/oauth2 by hand uses: a
// Transport over a ReuseTokenSource whose early expiry matches ours.
func xoauth2Client(ts oauth2.TokenSource, skew time.Duration, base http.RoundTripper) *http.Client {
	return &http.Client{Transport: &oauth2.Transport{Source: oauth2.ReuseTokenSourceWithExpiry(nil, ts, skew), Base: base}}
}
