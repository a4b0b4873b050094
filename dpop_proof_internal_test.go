package oauthtransport

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/url"
	"strconv"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Proofs signed by every kind of key verify with the JWK in their header,
// under the algorithm the key implies, on the caller's goroutine for the
// standard library's keys only.
func TestProofSignerKeys(t *testing.T) {
	t.Parallel()
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p521, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		key    crypto.Signer
		alg    jose.SignatureAlgorithm
		inline bool
	}{
		{p256, jose.ES256, true}, {p384, jose.ES384, true}, {p521, jose.ES512, true},
		{ed, jose.EdDSA, true}, {rsaKey, jose.RS256, true}, {opaqueKey{p256}, jose.ES256, false},
	} {
		t.Run(string(c.alg), func(t *testing.T) {
			t.Parallel()
			d, err := newDPoP(c.key)
			require.NoError(t, err)
			assert.Equal(t, c.inline, d.signer.inline)
			u, _ := url.Parse("https://api.example.com/v1/things")
			for range 20 { // P-521's r and s are sometimes shorter than 66 bytes: padded
				p, err := d.proof("GET", u, "tok")
				require.NoError(t, err)
				jws, err := jose.ParseSignedCompact(p, []jose.SignatureAlgorithm{c.alg})
				require.NoError(t, err)
				h := jws.Signatures[0].Header
				_, err = jws.Verify(h.JSONWebKey)
				require.NoError(t, err)
				assert.True(t, h.JSONWebKey.IsPublic())
			}
		})
	}
}

// opaqueKey is a crypto.Signer of users' code (a KMS, an HSM).
type opaqueKey struct{ k *ecdsa.PrivateKey }

func (o opaqueKey) Public() crypto.PublicKey { return o.k.Public() }
func (o opaqueKey) Sign(r io.Reader, d []byte, opts crypto.SignerOpts) ([]byte, error) {
	return o.k.Sign(r, d, opts)
}

// A signer whose ECDSA signature is not DER fails the proof with an
// error, and never puts the bytes it returned in it.
func TestProofSignerBadSignature(t *testing.T) {
	t.Parallel()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d, err := newDPoP(garbageKey{opaqueKey{k}})
	require.NoError(t, err)
	u, _ := url.Parse("https://api.example.com/")
	_, err = d.proof("GET", u, "")
	require.ErrorContains(t, err, "not ASN.1 DER")
	assert.NotContains(t, err.Error(), "SECRET")
}

type garbageKey struct{ opaqueKey }

func (g garbageKey) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return []byte("SECRET-not-DER"), nil
}

func TestECDSARaw(t *testing.T) {
	t.Parallel()
	out := make([]byte, 8)
	for _, c := range []struct {
		name string
		der  []byte
		want []byte // nil: refused
	}{
		{"padded", []byte{0x30, 6, 2, 1, 5, 2, 1, 7}, []byte{0, 0, 0, 5, 0, 0, 0, 7}},
		{"too long", []byte{0x30, 11, 2, 6, 0, 0x80, 1, 2, 3, 4, 2, 1, 1}, nil}, // r longer than 4 bytes once stripped
		{"high bit with zero", []byte{0x30, 9, 2, 4, 0, 0x80, 1, 2, 2, 1, 1}, []byte{0, 0x80, 1, 2, 0, 0, 0, 1}},
		{"negative", []byte{0x30, 6, 2, 1, 0x85, 2, 1, 7}, nil},
		{"trailing", []byte{0x30, 6, 2, 1, 5, 2, 1, 7, 0}, nil},
		{"short", []byte{0x30, 7, 2, 1, 5, 2, 1, 7}, nil},
		{"long form", []byte{0x30, 0x81, 6, 2, 1, 5, 2, 1, 7}, nil}, // long form below 128 is not DER
		{"indefinite", []byte{0x30, 0x80, 2, 1, 5, 2, 1, 7, 0, 0}, nil},
		{"empty", nil, nil},
	} {
		ok := ecdsaRaw(c.der, out)
		if c.want == nil {
			assert.False(t, ok, c.name)
			continue
		}
		assert.True(t, ok, c.name)
		assert.Equal(t, c.want, out, c.name)
	}
}

// appendHTU writes what htu returns, as JSON, for any URL: the fast path
// and the general one agree.
func TestAppendHTU(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"https://API.Example.com:8443/v1/items%2Fx?secret=1#frag", "http://127.0.0.1:8080?x=1", "https://h/a b/ü",
		"https://[::1]:8080/p", "HTTPS://host/", "https://host/a\"b", "https://ü.example/x", "https://h/%zz",
	} {
		checkHTU(t, raw)
	}
}

func FuzzAppendHTU(f *testing.F) {
	for _, s := range []string{"https://API.example.com/x%2Fy", "http://h", "https://[fe80::1%25en0]/p", "https://h/\x7f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) { checkHTU(t, raw) })
}

func checkHTU(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		return
	}
	var got string
	require.NoError(t, json.Unmarshal(appendHTU(nil, u), &got), "%q", raw)
	want, _ := json.Marshal(htu(u))
	var w string
	_ = json.Unmarshal(want, &w)
	assert.Equal(t, w, got, "%q", raw)
}

// Claims are JSON whatever the method and nonce hold.
func TestAppendClaimsEscapes(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://h/")
	b := appendClaims(nil, proofClaims{method: "G\"E\\T\n", u: u, ath: "abc", nonce: "n\x01\xff"})
	var c map[string]any
	require.NoError(t, json.Unmarshal(b, &c), "%s", b)
	assert.Equal(t, "G\"E\\T\n", c["htm"])
	assert.Equal(t, "n\x01\uFFFD", c["nonce"])
	assert.Equal(t, "abc", c["ath"])
	assert.Len(t, c["jti"], 32)
}

// The hash of a token is computed once, then reused for its proofs.
func TestATHCache(t *testing.T) {
	t.Parallel()
	var c athCache
	a := c.of("tok-1")
	e := c.last.Load()
	assert.Equal(t, a, c.of("tok-1"))
	assert.Same(t, e, c.last.Load(), "the same token: no new entry")
	assert.NotEqual(t, a, c.of("tok-2"))
}

// The nonce cache keeps a bounded number of origins.
func TestNonceCacheBound(t *testing.T) {
	t.Parallel()
	var c nonceCache
	for i := range maxNonceOrigins + 10 {
		u := &url.URL{Scheme: "https", Host: "h" + strconv.Itoa(i)}
		c.store(u, "n")
	}
	assert.LessOrEqual(t, len(c.m), maxNonceOrigins)
	u := &url.URL{Scheme: "HTTPS", Host: "API.example.com"}
	c.store(u, "n-1")
	assert.Equal(t, "n-1", c.load(&url.URL{Scheme: "https", Host: "api.example.com"}), "origins compare in lower case")
}
