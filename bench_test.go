package oauthtransport_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
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
