package oauthtransport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A proof's header and claims, as RFC 9449 §4.2 has them.
func TestDPoPProofClaims(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d, err := newDPoP(key)
	require.NoError(t, err)
	u, _ := url.Parse("https://API.example.com:8443/v1/items%2Fx?secret=1#frag")
	read := func(p string) (jose.Header, map[string]any) {
		jws, err := jose.ParseSignedCompact(p, []jose.SignatureAlgorithm{jose.ES256})
		require.NoError(t, err)
		h := jws.Signatures[0].Header
		payload, err := jws.Verify(h.JSONWebKey)
		require.NoError(t, err, "signed by the embedded key")
		var c map[string]any
		require.NoError(t, json.Unmarshal(payload, &c))
		return h, c
	}
	p1, err := d.proof(http.MethodPost, u, "the-access-token")
	require.NoError(t, err)
	h, c := read(p1)
	assert.Equal(t, "dpop+jwt", h.ExtraHeaders["typ"])
	assert.Equal(t, "ES256", h.Algorithm)
	require.True(t, h.JSONWebKey.IsPublic(), "only the public key is embedded")
	tp, _ := h.JSONWebKey.Thumbprint(crypto.SHA256)
	assert.Equal(t, d.jkt, base64.RawURLEncoding.EncodeToString(tp))
	assert.Equal(t, "POST", c["htm"])
	assert.Equal(t, "https://api.example.com:8443/v1/items%2Fx", c["htu"], "no query, no fragment, host in lower case")
	bare, _ := url.Parse("http://127.0.0.1:8080?x=1")
	assert.Equal(t, "http://127.0.0.1:8080/", htu(bare), "an empty path is /")
	sum := sha256.Sum256([]byte("the-access-token"))
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(sum[:]), c["ath"])
	assert.InDelta(t, float64(time.Now().Unix()), c["iat"], 5)
	assert.NotContains(t, c, "nonce")

	d.remember(u, &http.Response{Header: http.Header{"Dpop-Nonce": {"n-1"}}})
	p2, _ := d.proof(http.MethodGet, u, "")
	_, c2 := read(p2)
	assert.Equal(t, "n-1", c2["nonce"], "the origin's nonce")
	assert.NotContains(t, c2, "ath", "no ath on a token request")
	assert.NotEqual(t, c["jti"], c2["jti"])
	other, _ := url.Parse("https://other.example.com/")
	p3, _ := d.proof(http.MethodGet, other, "")
	_, c3 := read(p3)
	assert.NotContains(t, c3, "nonce", "nonces are per origin")

	d.remember(u, &http.Response{Header: http.Header{"Dpop-Nonce": {"bad\nnonce"}}})
	p4, _ := d.proof(http.MethodGet, u, "")
	_, c4 := read(p4)
	assert.Equal(t, "n-1", c4["nonce"], "a nonce a header cannot carry is ignored")
}
