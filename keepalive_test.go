package oauthtransport_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// A process that never serves a request keeps the refresh tokens of the
// keys another process left in the store alive: each is presented again
// once it has been idle, with no reuse.
func TestKeepAliveRefreshesKeysNobodyUses(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	ks := keys(5)
	u := newUsers(srv, ks...)
	shared := store.NewFile(t.TempDir())
	first, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithStore(shared, "app"))
	require.NoError(t, err)
	before := map[string]string{}
	for _, k := range ks {
		tok, err := first.Token(oauthtransport.WithKey(context.Background(), k))
		require.NoError(t, err)
		before[k] = tok.RefreshToken
	}
	require.NoError(t, first.Close())
	require.Equal(t, int64(len(ks)), srv.TokenCalls())

	// A new process, which has never seen these keys: it lists the store.
	idle, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithStore(shared, "app"),
		oauthtransport.WithKeepAlive(300*time.Millisecond, 100))
	require.NoError(t, err)
	defer idle.Close()
	require.Eventually(t, func() bool {
		for _, k := range ks {
			tok, err := shared.Load(context.Background(), "app/"+k)
			if err != nil || tok.RefreshToken == before[k] {
				return false
			}
		}
		return true
	}, 10*time.Second, 20*time.Millisecond, "every idle key's refresh token was presented and rotated")
	require.NoError(t, idle.Close())
	assert.Zero(t, srv.Reuses(), "a refresh token was presented twice")
	assert.Zero(t, srv.APICalls())
}

// The keep-alive never refreshes faster than asked.
func TestKeepAliveIsThrottled(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	ks := keys(20)
	u := newUsers(srv, ks...)
	mem := store.NewMemory()
	tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithStore(mem, "app"),
		oauthtransport.WithKeepAlive(40*time.Millisecond, 10))
	require.NoError(t, err)
	defer tr.Close()
	for _, k := range ks {
		_, err := tr.Token(oauthtransport.WithKey(context.Background(), k))
		require.NoError(t, err)
	}
	start, calls := time.Now(), srv.TokenCalls()
	time.Sleep(time.Second)
	n, elapsed := srv.TokenCalls()-calls, time.Since(start)
	require.NoError(t, tr.Close())
	assert.Positive(t, n, "the keep-alive refreshed nothing")
	assert.LessOrEqual(t, float64(n), 10*elapsed.Seconds()+2, "%d keep-alive refreshes in %v at 10 a second", n, elapsed)
}

// A dead grant is presented once, then skipped: its Dead mark is in the
// store.
func TestKeepAliveSkipsDeadGrants(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	u := newUsers(srv, "mallory")
	var logs logBuffer
	tr, err := oauthtransport.NewKeyed(u.source, oauthtransport.WithStore(store.NewMemory(), "app"),
		oauthtransport.WithKeepAlive(50*time.Millisecond, 100), oauthtransport.WithLogger(logs.logger()))
	require.NoError(t, err)
	defer tr.Close()
	tok, err := tr.Token(oauthtransport.WithKey(context.Background(), "mallory"))
	require.NoError(t, err)
	before := srv.TokenCalls()
	revokeGrant(t, srv, tok.RefreshToken)
	require.Eventually(t, func() bool { return srv.TokenCalls() > before }, 10*time.Second, 5*time.Millisecond,
		"the keep-alive presented the refresh token")
	calls := srv.TokenCalls()
	skipped := `"msg":"oauthtransport: keep-alive pass","keys":1,"refreshed":0,"failed":0`
	require.Eventually(t, func() bool { return strings.Count(logs.String(), skipped) >= 10 }, 10*time.Second, 10*time.Millisecond,
		"ten passes that skip the dead grant")
	require.NoError(t, tr.Close())
	assert.Equal(t, calls, srv.TokenCalls(), "the dead grant was presented again")
	assert.Equal(t, 1, strings.Count(logs.String(), "keep-alive refresh failed"), "the dead grant was tried more than once")
}

// With one token: its refresh token is presented again while no request
// comes; without WithKeepAlive it is not.
func TestKeepAliveWithOneToken(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	newRT := func(opts ...oauthtransport.Option) *oauthtransport.Transport {
		return newTransport(t, oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: srv.IssueRefreshToken()}), opts...)
	}
	kept, plain := newRT(oauthtransport.WithKeepAlive(200*time.Millisecond, 10)), newRT()
	_, err := kept.Token(context.Background())
	require.NoError(t, err)
	first, err := plain.Token(context.Background())
	require.NoError(t, err)
	require.Eventually(t, func() bool { return kept.Stats().TokenFetches >= 3 }, 10*time.Second, 10*time.Millisecond)
	again, err := plain.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, first.RefreshToken, again.RefreshToken, "without WithKeepAlive nothing is refreshed")
	assert.Equal(t, int64(1), plain.Stats().TokenFetches)
	assert.Zero(t, srv.Reuses())
}

func TestKeepAliveOptionIsChecked(t *testing.T) {
	t.Parallel()
	src := oauthtransport.SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) { return nil, nil })
	for _, o := range []oauthtransport.Option{oauthtransport.WithKeepAlive(0, 1), oauthtransport.WithKeepAlive(time.Hour, 0)} {
		_, err := oauthtransport.New(src, o)
		require.Error(t, err)
	}
}

// Keys whose sources ask for resources are stored under a suffix: the
// keep-alive finds and refreshes them all the same, on a keyed Transport
// and on one with one token.
func TestKeepAliveWithResourceIndicators(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	shared := store.NewFile(t.TempDir())
	refresh := map[string]string{"alice": srv.IssueRefreshToken(), "bob": srv.IssueRefreshToken()}
	sources := func(user string) (oauthtransport.Source, error) {
		return oauthtransport.RefreshToken(srv.OAuth2Config(), &oauth2.Token{RefreshToken: refresh[user]},
			oauthtransport.WithResource("https://orders.example.com/")), nil
	}
	first, err := oauthtransport.NewKeyed(sources, oauthtransport.WithStore(shared, "app"))
	require.NoError(t, err)
	for user := range refresh {
		_, err := first.Token(oauthtransport.WithKey(context.Background(), user))
		require.NoError(t, err)
	}
	require.NoError(t, first.Close())
	stored := func() map[string]string {
		out := map[string]string{}
		for k, err := range shared.Keys(context.Background(), "app/") {
			require.NoError(t, err)
			tok, err := shared.Load(context.Background(), k)
			require.NoError(t, err)
			out[k] = tok.RefreshToken
		}
		return out
	}
	before := stored()
	require.Len(t, before, 2)
	for k := range before {
		require.Contains(t, k, "#resource:")
	}

	idle, err := oauthtransport.NewKeyed(sources, oauthtransport.WithStore(shared, "app"),
		oauthtransport.WithKeepAlive(300*time.Millisecond, 100))
	require.NoError(t, err)
	defer idle.Close()
	require.Eventually(t, func() bool {
		now := stored()
		for k, rt := range before {
			if now[k] == "" || now[k] == rt {
				return false
			}
		}
		return len(now) == len(before)
	}, 10*time.Second, 20*time.Millisecond, "every key's refresh token was presented again, under the same store key")
	require.NoError(t, idle.Close())
	assert.Zero(t, srv.Reuses())
}
