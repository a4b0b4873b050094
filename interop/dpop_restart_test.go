package interop

// A DPoP-bound refresh token at oidc-provider across a restart: the DPoP
// key kept in the store beside the tokens (DPoPKeyFromStore).

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// NewDPoPRefreshToken mints a refresh token for dpop-rt-client bound to
// the key whose JWK thumbprint is jkt, as a DPoP authorization-code grant
// would have.
func (s *oidcServer) NewDPoPRefreshToken(t *testing.T, jkt string) string {
	resp, err := http.Post(s.issuer+"/test/refresh-token?"+url.Values{"client_id": {"dpop-rt-client"}, "jkt": {jkt}}.Encode(),
		"application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.NotEmpty(t, out.RefreshToken)
	return out.RefreshToken
}

func jwkThumbprint(t *testing.T, key crypto.Signer) string {
	tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// dpopProcess is one life of a process holding a DPoP-bound refresh
// token for dpop-rt-client: its key and tokens in an encrypted file store
// in dir, opened anew at each start.
type dpopProcess struct {
	api    string // an API that checks DPoP proofs
	dir    string
	aesKey []byte
	cfg    *oauth2.Config
}

func (p *dpopProcess) store() store.Store { return store.Encrypted(store.NewFile(p.dir), p.aesKey) }

// start opens the store, loads (or makes) the key, and returns the
// Transport and the key's thumbprint.
func (p *dpopProcess) start(t *testing.T, initial *oauth2.Token) (*oauthtransport.Transport, string) {
	st := p.store()
	key, err := oauthtransport.DPoPKeyFromStore(context.Background(), st, "svc")
	require.NoError(t, err)
	return newTransport(t, oauthtransport.RefreshToken(p.cfg, initial), oauthtransport.WithDPoP(key),
		oauthtransport.WithStore(st, "svc")), jwkThumbprint(t, key)
}

func (p *dpopProcess) call(t *testing.T, tr *oauthtransport.Transport) {
	resp, err := tr.Client().Get(p.api + "/orders")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// A process restarted with its DPoP key from the (encrypted) store
// refreshes its DPoP-bound refresh token at oidc-provider, and calls an
// API that checks its proofs; a process with another key cannot use that
// refresh token.
func TestOIDCProviderDPoPKeyAcrossRestart(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, 30*time.Second)
	api := httptest.NewServer(&dpopAPI{s: s, nonce: "rs-nonce"})
	t.Cleanup(api.Close)
	p := &dpopProcess{api: api.URL, dir: t.TempDir(), aesKey: []byte("interop-dpop-key-aes-256-0123456"),
		cfg: &oauth2.Config{ClientID: "dpop-rt-client", ClientSecret: "dpop-rt-secret-value",
			Endpoint: oauth2.Endpoint{TokenURL: s.issuer + "/token", AuthStyle: oauth2.AuthStyleInHeader}}}

	// The first process: its key is made and saved; the refresh token the
	// authorization grant gave is bound to it.
	_, jkt := p.start(t, nil)
	first := &oauth2.Token{RefreshToken: s.NewDPoPRefreshToken(t, jkt)}
	tr, _ := p.start(t, first)
	p.call(t, tr)
	before, err := tr.Token(context.Background())
	require.NoError(t, err)
	require.NoError(t, tr.Close())
	stored, err := p.store().Load(context.Background(), "svc#dpop:"+jkt)
	require.NoError(t, err)
	require.True(t, stored.RefreshToken != first.RefreshToken && stored.AccessToken == before.AccessToken, "the rotated refresh token was saved")
	refusedToAnotherKey(t, p.cfg, stored.RefreshToken)

	// The restarted process: the same key and the stored token, used, then
	// refreshed with the stored refresh token.
	tr, again := p.start(t, nil)
	assert.Equal(t, jkt, again, "the key survived the restart")
	calls := s.TokenCalls()
	p.call(t, tr)
	assert.Equal(t, calls, s.TokenCalls(), "the stored token, adopted")
	after, err := tr.Refresh(context.Background())
	require.NoError(t, err, "the DPoP-bound refresh token, refreshed with the stored key")
	assert.Equal(t, "DPoP", after.TokenType)
	assert.True(t, after.AccessToken != before.AccessToken && after.RefreshToken != stored.RefreshToken, "a new token, the refresh token rotated again")
	in, err := s.introspect(after.AccessToken)
	require.NoError(t, err)
	assert.Equal(t, true, in["active"])
	assert.Equal(t, map[string]any{"jkt": jkt}, in["cnf"])
	p.call(t, tr)
}

// refusedToAnotherKey presents rt with a key it is not bound to: the
// server refuses it (invalid_grant), and does not spend it.
func refusedToAnotherKey(t *testing.T, cfg *oauth2.Config, rt string) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	thief := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: rt}), oauthtransport.WithDPoP(other))
	_, err := thief.Token(context.Background())
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, "invalid_grant", te.Code)
}
