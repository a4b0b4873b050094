package oauthtransport_test

// Control over the Transport: Refresh, WithTokenChange,
// CloseIdleConnections, and WithTokenClient for a token endpoint on TLS
// with a private CA that requires a client certificate.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestRefreshReturnsANewTokenOnce(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.TokenDelay(300*time.Millisecond))
	rt := srv.IssueRefreshToken()
	var mu sync.Mutex
	var changes []string
	tr := refreshTransport(t, srv, rt, oauthtransport.WithTokenChange(func(key string, tok *oauth2.Token) {
		mu.Lock()
		changes = append(changes, key+" "+fingerprintOf(tok.AccessToken))
		mu.Unlock()
	}))
	first, err := tr.Token(context.Background())
	require.NoError(t, err)

	// All ask while the first refresh is in flight (it takes 300 ms): they
	// share it. A Refresh asked after one ended would fetch again, rightly.
	var wg sync.WaitGroup
	start := make(chan struct{})
	got := make([]*oauth2.Token, 20)
	for i := range got {
		wg.Go(func() {
			<-start
			tok, err := tr.Refresh(context.Background())
			if assert.NoError(t, err) {
				got[i] = tok
			}
		})
	}
	close(start)
	wg.Wait()
	for _, tok := range got {
		require.NotNil(t, tok)
		assert.True(t, tok.AccessToken != first.AccessToken, "Refresh returned the token held")
	}
	assert.LessOrEqual(t, srv.TokenCalls(), int64(3), "concurrent Refresh calls share flights")
	assert.Zero(t, srv.Reuses())
	mustGet(t, tr.Client(), srv.APIURL)

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, int(srv.TokenCalls()), len(changes), "one announcement per new token")
	assert.Equal(t, oauthtransport.DefaultStoreKey+" "+fingerprintOf(first.AccessToken), changes[0])
}

func fingerprintOf(s string) string { return s[:min(len(s), 6)] }

func TestTokenChangeHookIsNeverConcurrentAndMayPanic(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	var inside, overlaps, calls atomic.Int64
	tr := ccTransport(t, srv, oauthtransport.WithTokenChange(func(string, *oauth2.Token) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		defer inside.Add(-1)
		if calls.Add(1) == 1 {
			panic("hook exploded")
		}
		time.Sleep(time.Millisecond)
	}))
	for range 5 {
		_, err := tr.Refresh(context.Background())
		require.NoError(t, err, "a panicking hook does not fail the refresh")
	}
	assert.Equal(t, int64(5), calls.Load())
	assert.Zero(t, overlaps.Load())
}

type idleCounter struct {
	http.RoundTripper
	closed atomic.Int64
}

func (c *idleCounter) CloseIdleConnections() { c.closed.Add(1) }

func TestCloseIdleConnectionsReachesTheBase(t *testing.T) {
	t.Parallel()
	base := &idleCounter{RoundTripper: http.DefaultTransport}
	tokenBase := &idleCounter{RoundTripper: http.DefaultTransport}
	tr := newTransport(t, &fakeSource{}, oauthtransport.WithBase(base), oauthtransport.WithTokenClient(&http.Client{Transport: tokenBase}))
	tr.Client().CloseIdleConnections()
	assert.Equal(t, int64(1), base.closed.Load())
	assert.Equal(t, int64(1), tokenBase.closed.Load())
}

// pki is a private CA with a server certificate for 127.0.0.1 and a
// client certificate.
type pki struct {
	pool           *x509.CertPool
	server, client tls.Certificate
	issue          func(cn string, usage x509.ExtKeyUsage, ips ...net.IP) tls.Certificate
}

// issueClient issues another client certificate from the same CA.
func (p *pki) issueClient(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	return p.issue(cn, x509.ExtKeyUsageClientAuth)
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips ...net.IP) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := &pki{pool: x509.NewCertPool(), issue: issue}
	p.pool.AddCert(ca)
	p.server = issue("127.0.0.1", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.client = issue("payments-service", x509.ExtKeyUsageClientAuth)
	return p
}

func TestTokenClientWithPrivateCAAndClientCertificate(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	var seen atomic.Value
	idp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/elsewhere" {
			http.Redirect(w, r, "https://127.0.0.2:1/token", http.StatusTemporaryRedirect)
			return
		}
		seen.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		_ = r.ParseForm()
		writeJSON(w, 200, map[string]any{"access_token": "mtls-bound-token", "token_type": "Bearer", "expires_in": 3600,
			"client_id": r.PostForm.Get("client_id")})
	}))
	idp.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	idp.StartTLS()
	t.Cleanup(idp.Close)
	mtls := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}}}}
	t.Cleanup(mtls.CloseIdleConnections)

	cfg := ccConfig(idp.URL + "/token")
	cfg.ClientSecret = "" // tls_client_auth: client_id in the body, no secret
	cfg.AuthStyle = oauth2.AuthStyleInParams
	tok, err := newTransport(t, oauthtransport.ClientCredentials(cfg), oauthtransport.WithTokenClient(mtls)).Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "mtls-bound-token", tok.AccessToken)
	assert.Equal(t, "c", tok.Extra("client_id"))
	assert.Equal(t, "payments-service", seen.Load(), "the IdP verified our client certificate")

	_, err = newTransport(t, oauthtransport.ClientCredentials(cfg)).Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken, "without the token client: unknown CA")

	cfg.TokenURL = idp.URL + "/elsewhere"
	_, err = newTransport(t, oauthtransport.ClientCredentials(cfg), oauthtransport.WithTokenClient(mtls)).Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.Contains(t, err.Error(), "another origin", "the redirect guard stays with the user's client")

	// A SourceFunc reaches the same client.
	src := oauthtransport.SourceFunc(func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
		resp, err := oauthtransport.TokenClient(ctx).Get(idp.URL + "/token")
		if err != nil {
			return nil, err
		}
		resp.Body.Close()
		return &oauth2.Token{AccessToken: "via-sourcefunc", Expiry: time.Now().Add(time.Hour)}, nil
	})
	_, err = newTransport(t, src, oauthtransport.WithTokenClient(mtls)).Token(context.Background())
	require.NoError(t, err)
}
