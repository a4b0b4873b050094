package oauthtransport_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// faultySigner is a DPoP key whose signature number faultAt panics, or
// hangs until release is closed; the others are good. The token
// request's proof is the first signature.
type faultySigner struct {
	key     *ecdsa.PrivateKey
	faultAt int64
	release chan struct{} // nil: the fault is a panic
	signed  atomic.Int64
}

func (s *faultySigner) Public() crypto.PublicKey { return s.key.Public() }

func (s *faultySigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if s.signed.Add(1) == s.faultAt {
		if s.release == nil {
			panic("the HSM exploded")
		}
		<-s.release
	}
	return s.key.Sign(r, digest, opts)
}

func newFaultySigner(t *testing.T, faultAt int64, hangs bool) *faultySigner {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	s := &faultySigner{key: key, faultAt: faultAt}
	if hangs {
		s.release = make(chan struct{})
		t.Cleanup(func() { close(s.release) }) // the abandoned signature finishes: no goroutine stays behind
	}
	return s
}

// A DPoP key that panics while signing an API request's proof fails that
// request with a *TokenError wrapping a *PanicError, as a panic during a
// token request does; the caller's goroutine survives, and so does the
// Transport and its token.
func TestDPoPSignerPanicOnAnAPIRequest(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(newFaultySigner(t, 2, false)))

	_, err := get(t, tr.Client(), srv.APIURL)
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	pe, ok := errors.AsType[*oauthtransport.PanicError](err)
	require.True(t, ok, "no *PanicError in %v", err)
	assert.Contains(t, pe.Value, "the HSM exploded")
	assert.Zero(t, srv.APICalls(), "nothing sent without a proof")

	mustGet(t, tr.Client(), srv.APIURL)
	assert.Equal(t, int64(1), srv.TokenCalls(), "the token was kept")
}

// A DPoP key that hangs while signing an API request's proof is left
// behind when the request's context is done: the caller gets its
// deadline back.
func TestDPoPSignerHangOnAnAPIRequest(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.DPoP(false))
	tr := ccTransport(t, srv, oauthtransport.WithDPoP(newFaultySigner(t, 2, true)))
	_, err := tr.Token(context.Background()) // the token request's proof: the first signature
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.APIURL, nil)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		resp, err := tr.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the request was still waiting for the signer 5s after its 200ms deadline")
	}
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, srv.APICalls(), "nothing sent without a proof")
}

// replayCheckingEndpoint is a token endpoint that records the jti of
// every client assertion it receives, and refuses one it has seen before
// (401 invalid_client), before it demands a DPoP nonce (400
// use_dpop_nonce) from a proof without one.
type replayCheckingEndpoint struct {
	mu   sync.Mutex
	jtis map[string]int // jti → times seen
}

func (e *replayCheckingEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	jti := jwtClaim(r.PostFormValue("client_assertion"), "jti")
	e.mu.Lock()
	e.jtis[jti]++
	seen := e.jtis[jti]
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case jti == "" || seen > 1:
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client", "error_description": "client assertion missing or replayed"})
	case jwtClaim(r.Header.Get("DPoP"), "nonce") != "n-1":
		w.Header().Set("DPoP-Nonce", "n-1")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "use_dpop_nonce"})
	default:
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "DPoP", "expires_in": 3600})
	}
}

func (e *replayCheckingEndpoint) seen() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.jtis)
}

// jwtClaim reads a string claim of a compact JWT without verifying it.
func jwtClaim(jwt, claim string) string {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	s, _ := claims[claim].(string)
	return s
}

// A token request that the server answers with use_dpop_nonce is sent
// again with the nonce and a fresh client assertion: a server that
// records assertion IDs never sees one twice.
func TestDPoPNonceRetryHasAFreshAssertion(t *testing.T) {
	t.Parallel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	dpopKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	const jwtSecret = "a-client-secret-long-enough-for-hs256"
	for name, src := range map[string]func(tokenURL string) oauthtransport.Source{
		"private_key_jwt": func(tokenURL string) oauthtransport.Source {
			cfg := &clientcredentials.Config{ClientID: "client-1", TokenURL: tokenURL}
			return oauthtransport.ClientCredentials(cfg, oauthtransport.WithPrivateKeyJWT(key, ""))
		},
		"client_secret_jwt": func(tokenURL string) oauthtransport.Source {
			cfg := &clientcredentials.Config{ClientID: "client-1", ClientSecret: jwtSecret, TokenURL: tokenURL}
			return oauthtransport.ClientCredentials(cfg, oauthtransport.WithClientSecretJWT())
		},
		"private_key_jwt, refresh token": func(tokenURL string) oauthtransport.Source {
			cfg := &oauth2.Config{ClientID: "client-1", Endpoint: oauth2.Endpoint{TokenURL: tokenURL}}
			return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "rt-1"}, oauthtransport.WithPrivateKeyJWT(key, ""))
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ep := &replayCheckingEndpoint{jtis: make(map[string]int)}
			srv := httptest.NewServer(ep)
			t.Cleanup(srv.Close)
			tr := newTransport(t, src(srv.URL+"/token"), oauthtransport.WithDPoP(dpopKey))
			_, err := tr.Token(context.Background())
			require.NoError(t, err)
			seen := ep.seen()
			assert.Len(t, seen, 2, "the request and its nonce retry, each with its own assertion")
			for _, n := range seen {
				assert.Equal(t, 1, n, "an assertion was sent twice")
			}
		})
	}
}
