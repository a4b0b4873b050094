package oauthtransport_test

// Rotating client certificates: tokens bound to the old one are not sent
// once the new one is in use.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// writePair writes a certificate and its key as PEM files, each replaced
// atomically.
func writePair(t *testing.T, dir string, c tls.Certificate) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	require.NoError(t, err)
	for name, block := range map[string]*pem.Block{"tls.crt": {Type: "CERTIFICATE", Bytes: c.Certificate[0]},
		"tls.key": {Type: "PRIVATE KEY", Bytes: key}} {
		tmp := filepath.Join(dir, name+".tmp")
		require.NoError(t, os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
	}
}

// boundServers are a token endpoint that binds each token to the client
// certificate it was asked over, and an API that records, for requests
// marked as sent after the rotation, the certificate their token is bound
// to.
func boundServers(t *testing.T, p *pki, after *atomic.Int64, stale *atomic.Int64, newPrint *atomic.Value) (idp, api *httptest.Server) {
	idp = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"access_token": "bound." + certThumbprint(r), "token_type": "Bearer", "expires_in": 3600})
	}))
	api = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bound := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer bound.")
		if r.Header.Get("X-After-Rotation") != "" {
			after.Add(1)
			if bound != newPrint.Load().(string) {
				stale.Add(1)
			}
		}
		if bound != certThumbprint(r) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	for _, s := range []*httptest.Server{idp, api} {
		s.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
		s.StartTLS()
		t.Cleanup(s.Close)
	}
	return idp, api
}

func TestRotatedCertificateReplacesBoundTokens(t *testing.T) {
	t.Parallel()
	p, dir := newPKI(t), t.TempDir()
	writePair(t, dir, p.client)
	files, err := oauthtransport.LoadCertificateFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	require.NoError(t, err)
	var after, stale atomic.Int64
	var newPrint atomic.Value
	newPrint.Store("")
	idp, api := boundServers(t, p, &after, &stale, &newPrint)
	withCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, GetClientCertificate: files.GetClientCertificate}}
	t.Cleanup(withCert.CloseIdleConnections)
	cfg := ccConfig(idp.URL + "/token")
	cfg.ClientSecret, cfg.AuthStyle = "", oauth2.AuthStyleAutoDetect
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg), oauthtransport.WithTokenClient(&http.Client{Transport: withCert}),
		oauthtransport.WithBase(withCert), oauthtransport.WithBoundCertificate(files.Thumbprint))

	var rotated atomic.Bool
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
				if rotated.Load() {
					req.Header.Set("X-After-Rotation", "1")
				}
				if resp, err := tr.RoundTrip(req); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(200 * time.Millisecond) // traffic on the first certificate
	old := files.Thumbprint()
	next := p.issueClient(t, "payments-service-renewed")
	writePair(t, dir, next)
	require.Eventually(t, func() bool { return files.Thumbprint() != old }, 10*time.Second, 10*time.Millisecond)
	newPrint.Store(files.Thumbprint())
	rotated.Store(true)
	require.Eventually(t, func() bool { return after.Load() >= 50 }, 10*time.Second, 10*time.Millisecond)
	stop()
	wg.Wait()
	assert.Zero(t, stale.Load(), "a request sent after the rotation was seen carried a token bound to the old certificate")
	withCert.CloseIdleConnections() // a connection busy at the rotation went back to the pool with the old certificate
	resp, err := get(t, tr.Client(), api.URL)
	require.NoError(t, err, "the new token works over a connection with the new certificate")
	resp.Body.Close()
}

// TestCertificateFilesKeepTheLastGoodPair runs in a bubble: the
// once-a-second look passes at once.
func TestCertificateFilesKeepTheLastGoodPair(t *testing.T) {
	p, dir := newPKI(t), t.TempDir()
	writePair(t, dir, p.client)
	synctest.Test(t, func(t *testing.T) {
		files, err := oauthtransport.LoadCertificateFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		require.NoError(t, err)
		good := files.Thumbprint()
		require.NoError(t, os.WriteFile(filepath.Join(dir, "tls.key"), []byte("half-written"), 0o600))
		time.Sleep(1100 * time.Millisecond) // past the once-a-second look
		assert.Equal(t, good, files.Thumbprint(), "a broken pair replaced the last good one")
		cert, err := files.GetClientCertificate(nil)
		require.NoError(t, err)
		assert.NotNil(t, cert)
		_, err = oauthtransport.LoadCertificateFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
		require.Error(t, err)
		assert.NotContains(t, err.Error(), "half-written")
		writePair(t, dir, p.issueClient(t, "renewed"))
		time.Sleep(1100 * time.Millisecond)
		assert.NotEqual(t, good, files.Thumbprint(), "the renewed pair was loaded")
	})
}
