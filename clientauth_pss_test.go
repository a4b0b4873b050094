package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

// assertionEndpoint is a token endpoint that keeps every client_assertion
// it receives and issues a token for each.
type assertionEndpoint struct {
	mu         sync.Mutex
	assertions []string
}

func (e *assertionEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.assertions = append(e.assertions, r.PostFormValue("client_assertion"))
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "expires_in": 3600})
}

func (e *assertionEndpoint) seen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.assertions)
}

// kmsKey is a crypto.Signer whose private key stays out of reach, as in a
// KMS or an HSM: only Public and Sign.
type kmsKey struct{ key *rsa.PrivateKey }

func (k kmsKey) Public() crypto.PublicKey { return k.key.Public() }

func (k kmsKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return k.key.Sign(r, digest, opts)
}

// RFC 7518 §3.5: a PSS signature's salt is as long as the hash. A verifier
// that insists on that length (as the certified oidc-provider does)
// accepts the SDK's assertions, from an RSA key or any crypto.Signer.
func TestPSSAssertionSaltIsTheHashLength(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	for _, c := range []struct {
		name, alg string
		hash      crypto.Hash
		key       crypto.Signer
	}{
		{"PS256", "PS256", crypto.SHA256, key},
		{"PS384", "PS384", crypto.SHA384, key},
		{"PS512", "PS512", crypto.SHA512, key},
		{"PS256 in a KMS", "PS256", crypto.SHA256, kmsKey{key}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ep := &assertionEndpoint{}
			srv := httptest.NewServer(ep)
			t.Cleanup(srv.Close)
			cfg := &clientcredentials.Config{ClientID: "client-1", TokenURL: srv.URL + "/token"}
			tr := newTransport(t, oauthtransport.ClientCredentials(cfg,
				oauthtransport.WithPrivateKeyJWT(c.key, ""), oauthtransport.WithAssertionAlgorithm(c.alg)))
			_, err := tr.Token(context.Background())
			require.NoError(t, err)
			seen := ep.seen()
			require.Len(t, seen, 1)
			verifyPSS(t, seen[0], c.alg, c.hash, &key.PublicKey)
		})
	}
}

// verifyPSS checks a compact JWS's alg, and its signature with a salt as
// long as the hash, and nothing else.
func verifyPSS(t *testing.T, jws, alg string, hash crypto.Hash, pub *rsa.PublicKey) {
	t.Helper()
	parts := strings.Split(jws, ".")
	require.Len(t, parts, 3, "a compact JWS")
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	require.NoError(t, err)
	var header struct{ Alg string }
	require.NoError(t, json.Unmarshal(rawHeader, &header))
	assert.Equal(t, alg, header.Alg)
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	require.NoError(t, err)
	h := hash.New()
	h.Write([]byte(parts[0] + "." + parts[1]))
	err = rsa.VerifyPSS(pub, hash, h.Sum(nil), sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	assert.NoError(t, err, "the salt is not %d bytes long", hash.Size())
}
