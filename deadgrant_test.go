package oauthtransport_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

// revokeGrant withdraws a user's consent at the IdP (RFC 7009): the
// refresh token's family, and its access tokens, die.
func revokeGrant(t *testing.T, srv *oauthtest.Server, refreshToken string) {
	t.Helper()
	form := url.Values{"token": {refreshToken}}
	req, _ := http.NewRequest(http.MethodPost, srv.RevokeURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(oauthtest.ClientID, oauthtest.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

// Two processes share a store (a file store: it locks). When the IdP
// refuses one user's refresh token, the other process learns it from the
// store and never asks the IdP for that user; other users are unaffected;
// a token the person authorized again, set in one process, reaches the
// other.
func TestKeyedDeadGrantIsSharedThroughTheStore(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	u := newUsers(srv, "mallory", "alice")
	shared := store.NewFile(t.TempDir())
	newProcess := func() *oauthtransport.Transport {
		tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithStore(shared, "app"))
		require.NoError(t, err)
		t.Cleanup(func() { _ = tr.Close() })
		return tr
	}
	a, b := newProcess(), newProcess()
	ctxM, ctxA := oauthtransport.WithKey(context.Background(), "mallory"), oauthtransport.WithKey(context.Background(), "alice")
	tokM, err := a.Token(ctxM)
	require.NoError(t, err)
	_, err = a.Token(ctxA)
	require.NoError(t, err)

	revokeGrant(t, srv, tokM.RefreshToken)
	_, err = a.Refresh(ctxM)
	require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
	first, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok)
	require.Equal(t, "invalid_grant", first.Code)
	require.Equal(t, http.StatusBadRequest, first.StatusCode)
	calls := srv.TokenCalls()
	stored, err := shared.Load(context.Background(), "app/mallory")
	require.NoError(t, err)
	assert.False(t, store.MetaOf(stored).Dead.IsZero(), "the dead grant is recorded in the store")

	for range 10 {
		_, err := keyedGet(t, b, "mallory", srv.APIURL)
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
		sameRefusal(t, first, err)
		_, err = b.Refresh(ctxM)
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
		sameRefusal(t, first, err)
	}
	assert.Equal(t, calls, srv.TokenCalls(), "the other process did not ask the IdP for the dead grant")
	resp, err := keyedGet(t, b, "alice", srv.APIURL)
	require.NoError(t, err, "another user is unaffected")
	resp.Body.Close()

	// Mallory authorizes again; the app sets the new token in process a.
	again, err := srv.OAuth2Config().TokenSource(context.Background(), &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}).Token()
	require.NoError(t, err)
	require.NoError(t, a.SetToken(ctxM, again))
	calls = srv.TokenCalls()
	resp, err = keyedGet(t, a, "mallory", srv.APIURL)
	require.NoError(t, err)
	resp.Body.Close()
	require.Eventually(t, func() bool {
		resp, err := keyedGet(t, b, "mallory", srv.APIURL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	}, 10*time.Second, 50*time.Millisecond, "process b picks up the token set in process a")
	assert.Equal(t, calls, srv.TokenCalls(), "the new token was adopted, not fetched")
	assert.Zero(t, srv.Reuses())
}

func TestSetTokenRefusesAnEmptyToken(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	tr := ccTransport(t, srv)
	require.Error(t, tr.SetToken(context.Background(), &oauth2.Token{}))
	require.Error(t, tr.SetToken(context.Background(), nil))
}

// refusesFetched is a shared store that cannot save the tokens the IdP
// issues (their access tokens start with "at-"), only others.
type refusesFetched struct{ *redisstore.Store }

func (s refusesFetched) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if strings.HasPrefix(tok.AccessToken, "at-") && store.MetaOf(tok).Spent.IsZero() {
		return errors.New("disk full")
	}
	return s.Store.Save(ctx, key, tok)
}

// A fetched token the store could not save keeps this process's lock on
// the key; SetToken takes that lock over rather than wait for it.
func TestSetTokenWhileAnUnsavedTokenHoldsTheLock(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	shared := redisstore.New(redistest.Start(t).Client(t))
	tr := refreshTransport(t, srv, srv.IssueRefreshToken(), oauthtransport.WithStore(refusesFetched{shared}, "k"))
	_, err := tr.Token(context.Background()) // fetched, not saved: the lock is kept
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tok := &oauth2.Token{AccessToken: "reauthorized", RefreshToken: "rt-new", Expiry: time.Now().Add(time.Hour)}
	require.NoError(t, tr.SetToken(ctx, tok))
	saved, err := shared.Load(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "reauthorized", saved.AccessToken)
	got, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "reauthorized", got.AccessToken)
}

// sameRefusal requires err to carry the token endpoint's answer that
// killed the grant, as first did.
func sameRefusal(t *testing.T, first *oauthtransport.TokenError, err error) {
	t.Helper()
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "a *TokenError")
	assert.Equal(t, [3]any{first.Code, first.Description, first.StatusCode}, [3]any{te.Code, te.Description, te.StatusCode},
		"the code, description and status of the refusal")
}

// TestDeadGrantErrorsRepeatTheRefusal: in one process, during the
// cool-down and after it (when the dead mark answers), every error carries
// the token endpoint's refusal.
func TestDeadGrantErrorsRepeatTheRefusal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int64
		refusing := oauthtransport.SourceFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
			calls.Add(1)
			return nil, &oauth2.RetrieveError{Response: &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{}},
				ErrorCode: "invalid_grant", ErrorDescription: "the refresh token was revoked"}
		})
		tr := newTransport(t, spendingSource{refusing}, oauthtransport.WithBase(&memBase{}))
		_, err := tr.Token(context.Background())
		require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
		first, _ := errors.AsType[*oauthtransport.TokenError](err)
		require.Equal(t, "the refresh token was revoked", first.Description)
		for range 10 {
			time.Sleep(20 * time.Second) // through the cool-downs, into the dead mark's period
			_, err := tr.Token(context.Background())
			require.ErrorIs(t, err, oauthtransport.ErrReauthRequired)
			sameRefusal(t, first, err)
		}
		assert.Equal(t, int64(1), calls.Load(), "the dead grant was not presented again within 5 minutes")
		require.NoError(t, tr.Close())
	})
}

// TestNonceAnswerIsNotADeadGrant: a token endpoint that keeps answering a
// refresh with 400 use_dpop_nonce has not refused the grant; it is not
// recorded dead for the fleet (issue 20, item 8).
func TestNonceAnswerIsNotADeadGrant(t *testing.T) {
	t.Parallel()
	var calls0 atomic.Int64
	var nonces atomic.Int64
	srv, calls := idp(t, func(w http.ResponseWriter, _ *http.Request) {
		if nonces.Load() == 0 && calls0.Add(1) == 1 {
			writeJSON(w, http.StatusOK, map[string]any{"access_token": "at1", "token_type": "DPoP", "refresh_token": "rt1", "expires_in": 3600})
			return
		}
		w.Header().Set("DPoP-Nonce", fmt.Sprintf("n-%d", nonces.Add(1))) // a new nonce each time
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "use_dpop_nonce"})
	})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	shared := store.NewFile(t.TempDir())
	cfg := &oauth2.Config{ClientID: "c", ClientSecret: "s", Endpoint: oauth2.Endpoint{TokenURL: srv.URL}}
	tr := newTransport(t, oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "rt"}),
		oauthtransport.WithDPoP(key), oauthtransport.WithStore(shared, "k"), oauthtransport.WithBase(&memBase{}))
	_, err = tr.Token(context.Background())
	require.NoError(t, err)
	_, err = tr.Refresh(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.NotErrorIs(t, err, oauthtransport.ErrReauthRequired)
	te, _ := errors.AsType[*oauthtransport.TokenError](err)
	require.NotNil(t, te)
	assert.Equal(t, "use_dpop_nonce", te.Code)
	assert.Equal(t, int64(3), calls.Load(), "one retry with the nonce")
	keys, err := collectKeys(shared)
	require.NoError(t, err)
	require.Len(t, keys, 1)
	for _, k := range keys {
		tok, err := shared.Load(context.Background(), k)
		require.NoError(t, err)
		assert.True(t, store.MetaOf(tok).Dead.IsZero(), "a nonce answer was recorded as a dead grant")
		assert.True(t, store.MetaOf(tok).Spent.IsZero(), "the refresh token was not spent: its mark is cleared")
	}
}

func collectKeys(l store.Lister) ([]string, error) {
	var out []string
	for k, err := range l.Keys(context.Background(), "") {
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}
