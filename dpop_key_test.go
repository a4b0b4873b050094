package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// encryptedFiles is a file store in dir, encrypted with aesKey: what a
// process opens at each start.
func encryptedFiles(dir string, aesKey []byte) store.Store {
	return store.Encrypted(store.NewFile(dir), aesKey)
}

func thumbprint(t testing.TB, key crypto.Signer) string {
	t.Helper()
	tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// A process restarted with its DPoP key from the store refreshes its
// DPoP-bound refresh token with it, over real HTTP: the key and the
// rotated refresh token are found again, encrypted at rest.
func TestDPoPKeySurvivesARestart(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(true))
	dir, aesKey := t.TempDir(), []byte("0123456789abcdef0123456789abcdef")
	first := &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}

	run := func() (string, *oauthtransport.Transport) { // one process's life
		s := encryptedFiles(dir, aesKey)
		key, err := oauthtransport.DPoPKeyFromStore(context.Background(), s, "svc")
		require.NoError(t, err)
		tr, err := oauthtransport.New(oauthtransport.RefreshToken(srv.OAuth2Config(), first),
			oauthtransport.WithDPoP(key), oauthtransport.WithStore(s, "svc"))
		require.NoError(t, err)
		mustGet(t, tr.Client(), srv.APIURL+"things")
		return thumbprint(t, key), tr
	}
	before, tr := run()
	_, err := tr.Refresh(context.Background()) // rotates the refresh token, saved to the store
	require.NoError(t, err)
	require.NoError(t, tr.Close())

	after, tr := run() // a token from the store: no request yet
	defer tr.Close()
	assert.Equal(t, before, after, "the same key")
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	reqs := srv.TokenRequests()
	require.Len(t, reqs, 3, "one grant, two refreshes; the restarted process adopted the stored token")
	for _, r := range reqs {
		assert.True(t, r.DPoP, "every token request carried a proof")
	}
	assert.True(t, reqs[2].Form.Get("refresh_token") != first.RefreshToken, "the rotated refresh token, from the store")
	assert.Zero(t, srv.Reuses())

	raw, err := store.NewFile(dir).Load(context.Background(), "svc#dpop-key")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(raw.AccessToken, "v1."), "sealed at rest")
	assertNoSecret(t, "the stored record", raw.AccessToken, `"d":`)
}

// Processes starting together on a locking store end up with one key.
func TestDPoPKeyFromStoreConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tps := make([]string, 8)
	var wg sync.WaitGroup
	for i := range tps {
		wg.Go(func() {
			key, err := oauthtransport.DPoPKeyFromStore(context.Background(), store.NewFile(dir), "svc")
			if assert.NoError(t, err) {
				tps[i] = thumbprint(t, key)
			}
		})
	}
	wg.Wait()
	for _, tp := range tps {
		assert.Equal(t, tps[0], tp)
	}
}

// A record that is not a DPoP key, or does not decrypt, is an error and
// stays as it is; errors name the store key, never the private key.
func TestDPoPKeyFromStoreRefusesWhatItCannotRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	right, wrong := []byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210fedcba9876543210")
	key, err := oauthtransport.DPoPKeyFromStore(context.Background(), encryptedFiles(dir, right), "svc")
	require.NoError(t, err)
	_, err = oauthtransport.DPoPKeyFromStore(context.Background(), encryptedFiles(dir, wrong), "svc")
	require.ErrorIs(t, err, store.ErrDecrypt)
	assert.ErrorContains(t, err, `"svc#dpop-key"`)
	again, err := oauthtransport.DPoPKeyFromStore(context.Background(), encryptedFiles(dir, right), "svc")
	require.NoError(t, err)
	assert.Equal(t, thumbprint(t, key), thumbprint(t, again), "not overwritten")

	m := store.NewMemory()
	require.NoError(t, m.Save(context.Background(), "svc#dpop-key", &oauth2.Token{AccessToken: `{"kty":"EC","d":"secret-part-0123456789"}`, TokenType: "Bearer"}))
	_, err = oauthtransport.DPoPKeyFromStore(context.Background(), m, "svc")
	require.ErrorIs(t, err, store.ErrCorrupt)
	assertNoSecret(t, "the error", err.Error(), "secret-part-0123456789")
	_, err = oauthtransport.DPoPKeyFromStore(context.Background(), store.Encrypted(m, []byte("short")), "svc")
	require.ErrorContains(t, err, "32-byte")
}

// A server whose metadata says dpop_bound_access_tokens_required: a
// Transport without a DPoP key fails in New, saying so, before any token
// request; with one, tokens come DPoP-bound. A key of an algorithm the
// server does not list fails too.
func TestServerMetadataRequiresDPoP(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.RequireDPoP())
	md, err := oauthtransport.Discover(context.Background(), srv.URL)
	require.NoError(t, err)
	require.True(t, md.DPoPBoundAccessTokensRequired)
	src := oauthtransport.ClientCredentials(srv.ClientCredentials())

	_, err = oauthtransport.New(src, oauthtransport.WithServerMetadata(md))
	require.ErrorContains(t, err, "dpop_bound_access_tokens_required")
	assert.ErrorContains(t, err, "WithDPoP")
	_, err = oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return src, nil }, oauthtransport.WithServerMetadata(md))
	require.ErrorContains(t, err, "dpop_bound_access_tokens_required")
	assert.Zero(t, srv.TokenCalls(), "said at once: no token request")

	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, err = oauthtransport.New(src, oauthtransport.WithServerMetadata(md), oauthtransport.WithDPoP(p384))
	require.ErrorContains(t, err, "ES384")

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tr := newTransport(t, src, oauthtransport.WithDPoP(key), oauthtransport.WithServerMetadata(md))
	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "DPoP", tok.TokenType)

	bare := newTransport(t, src) // without the metadata: the server's refusal
	_, err = bare.Token(context.Background())
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "invalid_dpop_proof", te.Code)
}
