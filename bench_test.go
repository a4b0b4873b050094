package oauthtransport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// okBase answers every request with a 200 and allocates only the response.
type okBase struct{ header http.Header }

func (b okBase) RoundTrip(req *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: b.header, Body: http.NoBody, Request: req}, nil
}

func benchRequest() *http.Request {
	req := httptest.NewRequest(http.MethodGet, "https://api.example.com/v1/things", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "bench")
	return req
}

func freshToken() *oauth2.Token {
	return &oauth2.Token{AccessToken: "bench-access-token", TokenType: "Bearer", Expiry: time.Now().Add(24 * time.Hour)}
}

// benchNames are the transports compared: ours with the default retry
// policy, ours with retries off (the retry machinery must cost a request
// that succeeds nothing), and x/oauth2.
var benchNames = []string{"oauthtransport", "oauthtransport-no-retry", "x-oauth2"}

func benchTransport(b *testing.B, name string) http.RoundTripper {
	base := okBase{header: http.Header{}}
	if name == "x-oauth2" {
		return &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(freshToken())), Base: base}
	}
	opts := []oauthtransport.Option{oauthtransport.WithBase(base)}
	if name == "oauthtransport-no-retry" {
		opts = append(opts, oauthtransport.WithRetry(oauthtransport.RetryPolicy{MaxAttempts: 1}))
	}
	ours, err := oauthtransport.New(oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return freshToken(), nil
	}), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ours.Close() })
	if _, err := ours.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	return ours
}

// BenchmarkRoundTrip measures the hot path with a fresh token and an
// in-memory base, beside oauth2.Transport with a ReuseTokenSource.
func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range benchNames {
		b.Run(name, func(b *testing.B) {
			rt := benchTransport(b, name)
			req := benchRequest()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
			}
		})
	}
}

// BenchmarkRoundTripParallel is BenchmarkRoundTrip from every P at once.
func BenchmarkRoundTripParallel(b *testing.B) {
	for _, name := range benchNames {
		b.Run(name, func(b *testing.B) {
			rt := benchTransport(b, name)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := benchRequest()
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
}

// BenchmarkRoundTripKeyed is the hot path of a keyed Transport holding
// 100,000 keys (one of them cached and requested), beside the
// single-token Transport in the same process, so that both pay for
// collecting the same heap; it reports the heap each cached key costs
// beyond its token and header value.
func BenchmarkRoundTripKeyed(b *testing.B) {
	n := keyedBenchKeys
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return freshToken(), nil })
	ctxs := make([]context.Context, n) // the callers' contexts: not the Transport's memory
	for i := range ctxs {
		ctxs[i] = oauthtransport.WithKey(context.Background(), "user-"+strconv.Itoa(i))
	}
	own := tokenBytes(n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return src, nil },
		oauthtransport.WithBase(okBase{header: http.Header{}}), oauthtransport.WithMaxTokens(n),
		oauthtransport.WithStore(discardStore{}, "k")) // the tokens live elsewhere (Redis, SQL): count the cache only
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	for i := range ctxs {
		if _, err := tr.Token(ctxs[i]); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perKey := int64(after.HeapAlloc-before.HeapAlloc)/int64(n) - own
	run := func(b *testing.B, rt http.RoundTripper, req *http.Request) {
		b.ReportAllocs()
		for b.Loop() {
			resp, err := rt.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	b.Run("single-token", func(b *testing.B) { run(b, benchTransport(b, "oauthtransport"), benchRequest()) })
	b.Run("keyed", func(b *testing.B) {
		run(b, tr, benchRequest().WithContext(ctxs[n/2]))
		b.ReportMetric(float64(perKey), "bytes/key")
	})
	runtime.KeepAlive(ctxs)
}

// tokenBytes is the heap a token of its own costs, per key: the
// *oauth2.Token the Source returns and its Authorization header value.
// BenchmarkRoundTripKeyed reports what a key costs beyond them.
func tokenBytes(n int) int64 {
	toks, hdrs := make([]*oauth2.Token, n), make([]string, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range toks {
		toks[i] = freshToken()
		hdrs[i] = toks[i].Type() + " " + toks[i].AccessToken
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(toks)
	runtime.KeepAlive(hdrs)
	return int64(after.HeapAlloc-before.HeapAlloc) / int64(n)
}

// keyedBenchKeys is how many keys BenchmarkRoundTripKeyed holds.
var keyedBenchKeys = 100_000

// discardStore keeps nothing, as far as this process's memory goes.
type discardStore struct{}

func (discardStore) Load(context.Context, string) (*oauth2.Token, error) {
	return nil, store.ErrNotFound
}
func (discardStore) Save(context.Context, string, *oauth2.Token) error { return nil }
func (discardStore) Delete(context.Context, string) error              { return nil }
