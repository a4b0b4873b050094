package oauthtransport_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// recordingBase remembers the Authorization and DPoP headers it sent.
type recordingBase struct {
	mu   sync.Mutex
	sent []http.Header
}

func (b *recordingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	b.mu.Lock()
	b.sent = append(b.sent, req.Header.Clone())
	b.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// With nonces demanded by both the token endpoint and the API: the token
// request is retried once with the AS nonce, the API request replayed
// once with a new proof and the RS nonce, the token kept; later requests
// carry the cached nonces; a rotated API nonce costs one replay and no
// new token.
func TestDPoPWithNonces(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(true))
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	base := &recordingBase{}
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(key), oauthtransport.WithBase(base))
	for range 3 {
		resp, err := get(t, tr.Client(), srv.APIURL+"things?page=2")
		require.NoError(t, err)
		resp.Body.Close()
	}
	asChallenges, apiChallenges := srv.NonceChallenges()
	assert.Equal(t, int64(1), asChallenges, "one nonce retry at the token endpoint")
	assert.Equal(t, int64(1), apiChallenges, "one nonce replay at the API")
	assert.Equal(t, int64(2), srv.TokenCalls(), "the token request and its nonce retry")
	assert.Equal(t, int64(1), tr.Stats().TokenFetches)
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 1)
	assert.True(t, reqs[0].DPoP, "the token request carried a proof")

	srv.RotateNonces()
	resp, err := get(t, tr.Client(), srv.APIURL+"things")
	require.NoError(t, err)
	resp.Body.Close()
	_, apiChallenges = srv.NonceChallenges()
	assert.Equal(t, int64(2), apiChallenges)
	assert.Equal(t, int64(1), tr.Stats().TokenFetches, "a nonce replay keeps the token")
	for _, h := range base.sent {
		assert.True(t, strings.HasPrefix(h.Get("Authorization"), "DPoP "), "a bound token went as %q", strings.Fields(h.Get("Authorization"))[0])
		assert.NotEmpty(t, h.Get("DPoP"))
	}
	assert.Equal(t, int64(2), srv.APIRejected(), "only the two nonce challenges were refused")
}

// A server that ignores the proof issues a Bearer token: it goes as
// Bearer, with no proof.
func TestDPoPKeyWithAServerThatIgnoresIt(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	base := &recordingBase{}
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(key), oauthtransport.WithBase(base))
	resp, err := get(t, tr.Client(), srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Len(t, base.sent, 1)
	assert.True(t, strings.HasPrefix(base.sent[0].Get("Authorization"), "Bearer "))
	assert.Empty(t, base.sent[0].Get("DPoP"))
}

// Tokens are stored under the key's thumbprint: a process with another
// key never adopts them (it could not use them); one with the same key
// does.
func TestDPoPTokensAreStoredPerKey(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	shared := store.NewMemory()
	keyA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyB, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	call := func(key *ecdsa.PrivateKey) {
		tr := ccTransport(t, srv, oauthtransport.WithDPoP(key), oauthtransport.WithStore(shared, "svc"))
		resp, err := get(t, tr.Client(), srv.APIURL)
		require.NoError(t, err)
		resp.Body.Close()
	}
	call(keyA)
	call(keyA)
	assert.Equal(t, int64(1), srv.TokenCalls(), "the same key adopts the stored token")
	call(keyB)
	assert.Equal(t, int64(2), srv.TokenCalls(), "another key fetches its own")
	assert.Zero(t, srv.APIRejected(), "no token was sent with the wrong key's proof")
}

func TestDPoPRefusesAKeyThatCannotSign(t *testing.T) {
	t.Parallel()
	src := oauthtransport.ClientCredentials(oauthtest.NewServer(t).ClientCredentials())
	_, err := oauthtransport.New(src, oauthtransport.WithDPoP(nil))
	require.ErrorContains(t, err, "WithDPoP")
	_, err = oauthtransport.New(src, oauthtransport.WithDPoP(&ecdsa.PrivateKey{PublicKey: ecdsa.PublicKey{Curve: elliptic.P224()}}))
	require.Error(t, err)
}
