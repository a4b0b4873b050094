package interop

// tls_client_auth (RFC 8705) against oidc-provider on https: the client
// authenticates with its certificate, the token is bound to it, and an API
// accepts the token only over a connection with the same certificate.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

// testPKI is a private CA, a server certificate for 127.0.0.1 and a client
// certificate for CN=payments-service, also written as PEM files.
type testPKI struct {
	pool                   *x509.CertPool
	server, client, other  tls.Certificate
	certPEM, keyPEM, caPEM string
}

func newTestPKI(t *testing.T) *testPKI {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "interop CA"}, IsCA: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, usage x509.ExtKeyUsage, ips ...net.IP) (tls.Certificate, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: ips,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, key
	}
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	var serverKey *ecdsa.PrivateKey
	p.server, serverKey = issue("127.0.0.1", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.client, _ = issue("payments-service", x509.ExtKeyUsageClientAuth)
	p.other, _ = issue("someone-else", x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	keyDER, _ := x509.MarshalECPrivateKey(serverKey)
	p.certPEM, p.keyPEM, p.caPEM = write("server.pem", "CERTIFICATE", p.server.Certificate[0]),
		write("server-key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
	return p
}

func (p *testPKI) transport(cert *tls.Certificate) *http.Transport {
	cfg := &tls.Config{RootCAs: p.pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Transport{TLSClientConfig: cfg}
}

func TestOIDCProviderTLSClientAuth(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t)
	s := startOIDC(t, 30*time.Second, "OIDC_TLS_CERT="+p.certPEM, "OIDC_TLS_KEY="+p.keyPEM, "OIDC_TLS_CA="+p.caPEM)
	s.client = &http.Client{Transport: p.transport(nil)}
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		in, err := s.introspect(tok)
		cnf, _ := in["cnf"].(map[string]any)
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		if err != nil || in["active"] != true || cnf["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	api.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert}
	api.StartTLS()
	t.Cleanup(api.Close)

	withCert := p.transport(&p.client)
	t.Cleanup(withCert.CloseIdleConnections)
	cfg := &clientcredentials.Config{ClientID: "mtls-client", TokenURL: s.issuer + "/token", Scopes: []string{"api"}} // no secret
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg), oauthtransport.WithTokenClient(&http.Client{Transport: withCert}),
		oauthtransport.WithBase(withCert))
	resp, err := tr.Client().Get(api.URL + "/payments")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	tok, _ := tr.Token(context.Background())
	in, err := s.introspect(tok.AccessToken)
	require.NoError(t, err)
	assert.NotEmpty(t, in["cnf"], "the token is bound to the certificate")

	// The same token over a connection with another certificate is refused.
	other := p.transport(&p.other)
	t.Cleanup(other.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodGet, api.URL+"/payments", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = other.RoundTrip(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Another certificate at the token endpoint: invalid_client.
	wrong := newTransport(t, oauthtransport.ClientCredentials(cfg), oauthtransport.WithTokenClient(&http.Client{Transport: other}))
	_, err = wrong.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.Contains(t, err.Error(), "invalid_client")
}
