package oauthtransport_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// certThumbprint is x5t#S256 (RFC 8705 §3.1) of the peer's certificate.
func certThumbprint(r *http.Request) string {
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tls_client_auth (RFC 8705): the token endpoint authenticates the client
// by its certificate (client_id in the body, no secret, no Basic header)
// and binds the token to it; the API accepts the token only over a
// connection with the same certificate.
func TestCertificateBoundTokens(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	var form atomic.Value
	idp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		form.Store(r.PostForm.Encode() + " basic=" + r.Header.Get("Authorization"))
		writeJSON(w, 200, map[string]any{"access_token": "bound." + certThumbprint(r), "token_type": "Bearer", "expires_in": 3600})
	}))
	api := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer bound."+certThumbprint(r) {
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
	withCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}}}
	t.Cleanup(withCert.CloseIdleConnections)
	cfg := ccConfig(idp.URL + "/token")
	cfg.ClientSecret, cfg.AuthStyle = "", oauth2.AuthStyleAutoDetect // tls_client_auth, nothing else said
	tr := newTransport(t, oauthtransport.ClientCredentials(cfg),
		oauthtransport.WithTokenClient(&http.Client{Transport: withCert}), oauthtransport.WithBase(withCert))
	resp, err := get(t, tr.Client(), api.URL+"/payments")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	sent, _ := form.Load().(string)
	assert.Contains(t, sent, "client_id=c")
	assert.NotContains(t, sent, "client_secret")
	assert.True(t, strings.HasSuffix(sent, "basic="), "no Basic header: %q", sent)

	// Against the API without the certificate: no connection, no token sent.
	withoutCert := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool}}
	t.Cleanup(withoutCert.CloseIdleConnections)
	tr2 := newTransport(t, oauthtransport.ClientCredentials(cfg),
		oauthtransport.WithTokenClient(&http.Client{Transport: withCert}), oauthtransport.WithBase(withoutCert))
	_, err = get(t, tr2.Client(), api.URL+"/payments")
	require.Error(t, err)
}
