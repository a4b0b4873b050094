package oauthtransport_test

// Claims challenges (continuous access evaluation) over real HTTP.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
)

const askedClaims = `{"access_token":{"nbf":{"essential":true,"value":"1726258122"}}}`

// claimsIdP issues "at-N" tokens and remembers which were asked for with
// the claims parameter, and what it held.
type claimsIdP struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	claims map[string]string // token → the claims parameter of its request
}

func newClaimsIdP(t *testing.T) *claimsIdP {
	p := &claimsIdP{claims: make(map[string]string)}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tok := fmt.Sprintf("at-%d", p.calls.Add(1))
		p.mu.Lock()
		p.claims[tok] = r.PostForm.Get("claims")
		p.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *claimsIdP) claimsOf(tok string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.claims[tok]
}

// claimsAPI challenges tokens issued without the claims (always: every
// token), and counts the requests it saw.
func claimsAPI(t *testing.T, idp *claimsIdP, always bool) (*httptest.Server, *atomic.Int64) {
	var seen atomic.Int64
	challenge := `Bearer realm="", error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(askedClaims)) + `"`
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		tok := r.Header.Get("Authorization")[len("Bearer "):]
		if always || idp.claimsOf(tok) != askedClaims {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(api.Close)
	return api, &seen
}

func claimsSource(idp *claimsIdP) oauthtransport.Source {
	return oauthtransport.ClientCredentials(&clientcredentials.Config{ClientID: "c", ClientSecret: "s", TokenURL: idp.srv.URL})
}

func TestClaimsChallengeGetsATokenWithTheClaims(t *testing.T) {
	t.Parallel()
	idp := newClaimsIdP(t)
	api, seen := claimsAPI(t, idp, false)
	tr := newTransport(t, claimsSource(idp))
	_, err := tr.Token(context.Background()) // a token without the claims
	require.NoError(t, err)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { mustGet(t, tr.Client(), api.URL) })
	}
	wg.Wait()
	assert.Equal(t, int64(2), idp.calls.Load(), "one new token, with the claims, for every challenged request")
	assert.Equal(t, askedClaims, idp.claimsOf("at-2"), "the token request carried the claims asked for")
	assert.LessOrEqual(t, seen.Load(), int64(20), "each request replayed once at most")
	mustGet(t, tr.Client(), api.URL)
	assert.Equal(t, int64(2), idp.calls.Load(), "the token with the claims is kept")
}

func TestSecondClaimsChallengeIsFinal(t *testing.T) {
	t.Parallel()
	idp := newClaimsIdP(t)
	api, seen := claimsAPI(t, idp, true)
	tr := newTransport(t, claimsSource(idp))
	_, err := get(t, tr.Client(), api.URL)
	ue, ok := errors.AsType[*oauthtransport.UnauthorizedError](err)
	require.True(t, ok, "a *UnauthorizedError")
	assert.Equal(t, askedClaims, ue.Claims)
	assert.Equal(t, 2, ue.Attempts)
	assert.Equal(t, int64(2), seen.Load())
	assert.Equal(t, int64(2), idp.calls.Load(), "one token request with the claims, never a loop")
}

func TestClaimsChallengeOnAKeyedTransport(t *testing.T) {
	t.Parallel()
	idp := newClaimsIdP(t)
	api, _ := claimsAPI(t, idp, false)
	var challenged atomic.Bool
	tr, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) { return claimsSource(idp), nil })
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	ctxB := oauthtransport.WithKey(context.Background(), "b")
	tokB, err := tr.Token(ctxB)
	require.NoError(t, err)
	resp, err := keyedGet(t, tr, "a", api.URL)
	require.NoError(t, err)
	resp.Body.Close()
	challenged.Store(true)
	again, err := tr.Token(ctxB)
	require.NoError(t, err)
	assert.Equal(t, tokB.AccessToken, again.AccessToken, "another key's token is untouched")
	tokA, err := tr.Token(oauthtransport.WithKey(context.Background(), "a"))
	require.NoError(t, err)
	assert.Equal(t, askedClaims, idp.claimsOf(tokA.AccessToken), "key a holds its token with the claims")
}
