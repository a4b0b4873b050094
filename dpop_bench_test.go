package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// BenchmarkDPoP measures a request with a cached DPoP-bound token over an
// in-memory base (a fresh proof signed with an ES256 key each time)
// beside one ES256 signature alone, the work no proof can avoid: the
// floor the request is compared with.
func BenchmarkDPoP(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("request", func(b *testing.B) {
		rt := dpopBenchTransport(b, key)
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
	b.Run("signature", func(b *testing.B) {
		input := make([]byte, 400) // a proof's signing input: its header with the JWK, and its claims
		b.ReportAllocs()
		for b.Loop() {
			digest := sha256.Sum256(input)
			if _, err := key.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// dpopBenchTransport is a Transport holding a DPoP-bound token for key,
// over an in-memory base.
func dpopBenchTransport(b *testing.B, key crypto.Signer) *oauthtransport.Transport {
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return &oauth2.Token{AccessToken: "bench-dpop-bound-access-token", TokenType: "DPoP", Expiry: time.Now().Add(24 * time.Hour)}, nil
	})
	tr, err := oauthtransport.New(src, oauthtransport.WithDPoP(key), oauthtransport.WithBase(okBase{header: http.Header{}}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tr.Close() })
	if _, err := tr.Token(context.Background()); err != nil {
		b.Fatal(err)
	}
	return tr
}
