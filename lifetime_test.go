package oauthtransport_test

// Close: at once unless a rotated refresh token is at stake.

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

// hangingTokenSource is an x/oauth2 TokenSource that blocks until
// released: it takes no context.
type hangingTokenSource struct{ release chan struct{} }

func (s hangingTokenSource) Token() (*oauth2.Token, error) {
	<-s.release
	return &oauth2.Token{AccessToken: "late", Expiry: time.Now().Add(time.Hour)}, nil
}

// startWaiting starts a Token call that leaves after d, so that a refresh
// is in flight, and waits for it to leave.
func startWaiting(t *testing.T, tr *oauthtransport.Transport, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, err := tr.Token(ctx)
	require.Error(t, err)
}

func TestCloseDoesNotWaitForASourceThatSpendsNothing(t *testing.T) {
	t.Parallel()
	ts := hangingTokenSource{release: make(chan struct{})}
	tr, err := oauthtransport.New(oauthtransport.FromTokenSource(ts), oauthtransport.WithBase(&memBase{}))
	require.NoError(t, err)
	startWaiting(t, tr, 100*time.Millisecond)

	start := time.Now()
	require.NoError(t, tr.Close())
	assert.Less(t, time.Since(start), time.Second, "Close waited for a Source that spends nothing")
	close(ts.release) // the abandoned call ends; goleak checks it
}

// blackhole is a TCP listener that accepts connections and never answers.
func blackhole(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func TestCloseDoesNotWaitForAStoreThatNeverAnswers(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: blackhole(t), MaxRetries: -1}) // go-redis ignores contexts by default
	srv := oauthtest.NewServer(t)
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(srv.ClientCredentials()),
		oauthtransport.WithStore(redisstore.New(c), "k"))
	require.NoError(t, err)
	startWaiting(t, tr, 200*time.Millisecond)

	start := time.Now()
	require.NoError(t, tr.Close())
	assert.Less(t, time.Since(start), time.Second, "Close waited for a store call of a grant that spends nothing")
	t.Cleanup(func() { _ = c.Close() }) // after the blackhole's cleanup: the hung calls return
}

// slowSpendingSource spends a refresh token and answers after a while,
// ignoring its context.
type slowSpendingSource struct {
	answered chan struct{}
	delay    time.Duration
}

func (s slowSpendingSource) Token(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	time.Sleep(s.delay)
	defer close(s.answered)
	return &oauth2.Token{AccessToken: "a2", RefreshToken: "rotated", Expiry: time.Now().Add(time.Hour)}, nil
}

func (slowSpendingSource) SpendsRefreshToken() bool { return true }

func TestCloseWaitsForARefreshThatSpendsARefreshToken(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory()
	src := slowSpendingSource{answered: make(chan struct{}), delay: 300 * time.Millisecond}
	tr, err := oauthtransport.New(src, oauthtransport.WithStore(mem, "k"), oauthtransport.WithBase(&memBase{}))
	require.NoError(t, err)
	startWaiting(t, tr, 50*time.Millisecond) // the refresh goes on

	require.NoError(t, tr.Close())
	select {
	case <-src.answered:
	default:
		t.Fatal("Close returned before the refresh presenting a refresh token answered")
	}
	tok, err := mem.Load(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "rotated", tok.RefreshToken, "the rotated refresh token was saved before Close returned")
}
