package oauthtransport_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// The GitHub Actions values the fake endpoint checks: the runner's
// request URL carries its own query, which errors never show.
const (
	ghRequestToken = "gh-request-token-0123456789abcdef"
	ghQuerySecret  = "sig-0123456789abcdefghij"
)

// fakeGitHubOIDC answers as GitHub Actions' token endpoint does: GET
// with the runner's bearer token, api-version and the audience in the
// query; {"count": n, "value": "<JWT>"}. The JWT has GitHub's issuer
// and subject, the audience asked for, and the times that times gives.
type fakeGitHubOIDC struct {
	*httptest.Server
	p      *platform
	calls  atomic.Int64
	mu     sync.Mutex
	status int                         // answered instead of a token when not 0
	times  func() (iat, exp time.Time) // the token's
	issued []string
}

func newFakeGitHubOIDC(t *testing.T, p *platform) *fakeGitHubOIDC {
	g := &fakeGitHubOIDC{p: p, times: func() (time.Time, time.Time) { return time.Now(), time.Now().Add(4 * time.Minute) }}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := g.calls.Add(1)
		q := r.URL.Query()
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/_apis/distributedtask/hubs/Actions/plans/p1/jobs/j1/idtoken":
			http.Error(w, "not found", http.StatusNotFound)
			return
		case r.Header.Get("Authorization") != "Bearer "+ghRequestToken:
			http.Error(w, `{"message":"Unauthorized"}`, http.StatusUnauthorized)
			return
		case q.Get("api-version") != "2.0" || q.Get("sig") != ghQuerySecret || q.Get("audience") == "":
			http.Error(w, `{"message":"bad query"}`, http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		status := g.status
		iat, exp := g.times()
		g.mu.Unlock()
		if status != 0 {
			http.Error(w, `{"message":"try later"}`, status)
			return
		}
		tok := p.jwt(t, "https://token.actions.githubusercontent.com", "repo:octo-org/octo-repo:ref:refs/heads/main", q.Get("audience"), iat, exp)
		g.mu.Lock()
		g.issued = append(g.issued, tok)
		g.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"count": n, "value": tok})
	}))
	t.Cleanup(g.Close)
	return g
}

// requestURL is ACTIONS_ID_TOKEN_REQUEST_URL as a runner sets it.
func (g *fakeGitHubOIDC) requestURL() string {
	return g.URL + "/_apis/distributedtask/hubs/Actions/plans/p1/jobs/j1/idtoken?api-version=2.0&sig=" + ghQuerySecret
}

// tokens returns the JWTs it issued, oldest first.
func (g *fakeGitHubOIDC) tokens() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.issued)
}

func (g *fakeGitHubOIDC) set(status int, times func() (time.Time, time.Time)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status = status
	if times != nil {
		g.times = times
	}
}

// GitHub Actions' OIDC token as a JWT-bearer grant: fetched with the
// runner's request token for the audience, reused while fresh, the last
// good one sent when the endpoint fails, and errors that name GitHub
// Actions without the request URL's query, the request token or a JWT.
// Not parallel: it sets the environment.
func TestAssertionFromGitHubActions(t *testing.T) {
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()), oauthtest.ReusableAssertions())
	gh := newFakeGitHubOIDC(t, p)
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", gh.requestURL())
	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", ghRequestToken)
	newTr := func() *oauthtransport.Transport {
		return newTransport(t, oauthtransport.JWTBearer(&oauthtransport.JWTBearerConfig{ClientID: oauthtest.ClientID,
			ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL, Assertion: oauthtransport.AssertionFromGitHubActions(srv.TokenURL)}))
	}

	tr := newTr()
	mustGet(t, tr.Client(), srv.APIURL+"things")
	_, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	assert.Equal(t, int64(1), gh.calls.Load(), "one GitHub token for both token requests: it is fresh")
	require.Len(t, gh.tokens(), 1)
	assertSecrets(t, []string{gh.tokens()[0], gh.tokens()[0]}, sentAssertions(srv), "the same GitHub token twice")

	// A token past three quarters of its life is fetched again; when that
	// fails, it is still sent while valid.
	gh.set(0, func() (time.Time, time.Time) { return time.Now().Add(-4 * time.Minute), time.Now().Add(time.Minute) })
	tr = newTr()
	_, err = tr.Token(context.Background())
	require.NoError(t, err)
	aging := gh.tokens()[1]
	gh.set(http.StatusServiceUnavailable, nil)
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err, "the last good token")
	assert.Equal(t, int64(3), gh.calls.Load(), "asked again, as the token was aging")
	assertSecrets(t, []string{aging}, sentAssertions(srv)[3:], "the last good GitHub token")

	_, err = newTr().Token(context.Background())
	requireAssertionError(t, err, "GitHub Actions OIDC", gh.tokens()...)
	assert.ErrorContains(t, err, "503")
	assertNoSecret(t, "the error", err.Error(), ghQuerySecret, ghRequestToken)

	gh.Close() // the endpoint unreachable: the URL in the error loses its query
	_, err = newTr().Token(context.Background())
	requireAssertionError(t, err, "GitHub Actions OIDC", gh.tokens()...)
	assert.ErrorContains(t, err, "/idtoken")
	assertNoSecret(t, "the error", err.Error(), ghQuerySecret, ghRequestToken)

	t.Setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "")
	_, err = newTr().Token(context.Background())
	requireAssertionError(t, err, "GitHub Actions OIDC", gh.tokens()...)
	assert.ErrorContains(t, err, "id-token: write")
}
