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

func benchTransports(b *testing.B) map[string]http.RoundTripper {
	base := okBase{header: http.Header{}}
	ours, err := oauthtransport.New(oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return freshToken(), nil
	}), oauthtransport.WithBase(base))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ours.Close() })
	if _, err := ours.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	xo := &oauth2.Transport{Source: oauth2.ReuseTokenSource(nil, oauth2.StaticTokenSource(freshToken())), Base: base}
	return map[string]http.RoundTripper{"oauthtransport": ours, "x-oauth2": xo}
}

// BenchmarkRoundTrip measures the hot path with a fresh token and an
// in-memory base, beside oauth2.Transport with a ReuseTokenSource.
func BenchmarkRoundTrip(b *testing.B) {
	for _, name := range []string{"oauthtransport", "x-oauth2"} {
		b.Run(name, func(b *testing.B) {
			rt := benchTransports(b)[name]
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
	for _, name := range []string{"oauthtransport", "x-oauth2"} {
		b.Run(name, func(b *testing.B) {
			rt := benchTransports(b)[name]
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
