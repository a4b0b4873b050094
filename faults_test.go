package oauthtransport_test

// Users' code that panics or hangs, and a store that never answers: the
// Transport survives, every wait is bounded, Close returns.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// TestPanicsInUsersCode runs TestPanicChild in a child process: a panic
// that escaped would kill it, and its exit status would show.
func TestPanicsInUsersCode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	t.Parallel()
	for _, in := range []string{"source", "store", "authorization"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^TestPanicChild$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), "OAUTHTRANSPORT_PANIC_CHILD="+in)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			require.NoError(t, err, "the child did not survive:\n%s", out.String())
			assert.Contains(t, out.String(), "recovered from a panic")
			assert.Contains(t, out.String(), "--- PASS: TestPanicChild")
			assert.NotContains(t, out.String(), "at-", "no token in the log")
		})
	}
}

// panicOnce panics the first time it is called.
type panicOnce struct{ done atomic.Bool }

func (p *panicOnce) maybe(what string) {
	if p.done.CompareAndSwap(false, true) {
		panic(what + " exploded")
	}
}

type panickyStore struct {
	store.Store
	p *panicOnce
}

func (s panickyStore) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	s.p.maybe("Store.Save")
	return s.Store.Save(ctx, key, tok)
}

// TestPanicChild is one process of TestPanicsInUsersCode.
func TestPanicChild(t *testing.T) {
	in := os.Getenv("OAUTHTRANSPORT_PANIC_CHILD")
	if in == "" {
		t.Skip("a child process of TestPanicsInUsersCode")
	}
	srv := oauthtest.NewServer(t)
	p := &panicOnce{}
	src := oauthtransport.ClientCredentials(srv.ClientCredentials())
	var logs logBuffer
	opts := []oauthtransport.Option{oauthtransport.WithLogger(logs.logger())}
	switch in {
	case "source":
		inner := src
		src = oauthtransport.SourceFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
			p.maybe("Source.Token")
			return inner.Token(ctx, cur)
		})
	case "store":
		opts = append(opts, oauthtransport.WithStore(panickyStore{store.NewMemory(), p}, "k"))
	case "authorization":
		opts = append(opts, oauthtransport.WithAuthorization(func(tok *oauth2.Token) string {
			p.maybe("WithAuthorization")
			return "Bearer " + tok.AccessToken
		}))
	}
	tr := newTransport(t, src, opts...)
	_, err := get(t, tr.Client(), srv.APIURL)
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	var pe *oauthtransport.PanicError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Value, "exploded")
	time.Sleep(1300 * time.Millisecond) // past the failure cool-down
	mustGet(t, tr.Client(), srv.APIURL) // the Transport keeps working
	os.Stdout.WriteString(logs.String())
}

// blockingSource blocks every call until release is closed, ignoring its
// context, as a Source wrapping an x/oauth2 TokenSource can.
type blockingSource struct {
	release chan struct{}
	calls   atomic.Int64
	rt      string // the current token's refresh token, when it spends one
}

func (s *blockingSource) Token(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	s.calls.Add(1)
	<-s.release
	return &oauth2.Token{AccessToken: "late", RefreshToken: s.rt, Expiry: time.Now().Add(time.Hour)}, nil
}

// TestSourceThatNeverReturns runs in a bubble: virtual time, so the
// timeouts and cool-downs pass at once.
func TestSourceThatNeverReturns(t *testing.T) {
	for _, spends := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			src := &blockingSource{release: make(chan struct{})}
			var s oauthtransport.Source = src
			if spends {
				s = spendingSource{src}
			}
			tr, err := oauthtransport.New(s, oauthtransport.WithBase(&memBase{}), oauthtransport.WithRefreshTimeout(200*time.Millisecond))
			require.NoError(t, err)

			start := time.Now()
			_, err = tr.Token(context.Background()) // no deadline of its own
			assert.Equal(t, 200*time.Millisecond, time.Since(start), "the caller left at the refresh timeout")
			var te *oauthtransport.TokenError
			require.ErrorAs(t, err, &te)
			assert.True(t, te.Temporary())
			assert.Contains(t, err.Error(), "did not finish within 200ms")

			time.Sleep(time.Second) // past the cool-down (500 ms plus up to a quarter)
			_, err = tr.Token(context.Background())
			require.ErrorIs(t, err, oauthtransport.ErrToken)
			if spends {
				assert.Contains(t, err.Error(), "has not returned")
				assert.Equal(t, int64(1), src.calls.Load(), "no second refresh while one may be spending the refresh token")
			} else {
				assert.Equal(t, int64(2), src.calls.Load(), "the stuck refresh was abandoned; a new one started")
			}

			start = time.Now()
			require.NoError(t, tr.Close())
			assert.LessOrEqual(t, time.Since(start), 2*200*time.Millisecond, "Close is bounded")
			close(src.release) // the stuck goroutines end before the bubble does
		})
	}
}

// spendingSource declares that it spends a refresh token.
type spendingSource struct{ oauthtransport.Source }

func (spendingSource) SpendsRefreshToken() bool { return true }

func TestRedisThatNeverAnswersThenClose(t *testing.T) {
	t.Parallel()
	c := redis.NewClient(&redis.Options{Addr: blackhole(t), MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	srv := oauthtest.NewServer(t)
	tr, err := oauthtransport.New(oauthtransport.ClientCredentials(srv.ClientCredentials()),
		oauthtransport.WithStore(redisstore.New(c), "k"), oauthtransport.WithRefreshTimeout(300*time.Millisecond))
	require.NoError(t, err)

	start := time.Now()
	_, err = get(t, tr.Client(), srv.APIURL)
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.Less(t, time.Since(start), 3*time.Second, "the caller left at the refresh timeout")

	start = time.Now()
	require.NoError(t, tr.Close())
	assert.Less(t, time.Since(start), 3*time.Second, "Close is bounded")
}

func TestCallersAfterCloseUseTheirOwnContexts(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	src := oauthtransport.SourceFunc(func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
		select {
		case <-release:
			return &oauth2.Token{AccessToken: "t", Expiry: time.Now().Add(time.Hour)}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}))
	require.NoError(t, tr.Close())

	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	var shortErr, longErr error
	wg.Go(func() { _, shortErr = tr.Token(short) })
	wg.Go(func() { _, longErr = tr.Token(context.Background()) })
	<-short.Done()
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	require.ErrorIs(t, shortErr, context.DeadlineExceeded)
	require.NoError(t, longErr, "a caller without a deadline got another caller's error")
}

func TestPanicIsLoggedWithItsStack(t *testing.T) {
	t.Parallel()
	src := oauthtransport.SourceFunc(func(ctx context.Context, cur *oauth2.Token) (*oauth2.Token, error) {
		panic(errors.New("boom"))
	})
	var logs logBuffer
	tr := newTransport(t, src, oauthtransport.WithBase(&memBase{}), oauthtransport.WithLogger(logs.logger()))
	_, err := tr.Token(context.Background())
	require.ErrorIs(t, err, oauthtransport.ErrToken)
	assert.True(t, strings.Contains(logs.String(), `"level":"ERROR"`) && strings.Contains(logs.String(), "goroutine"), "value and stack logged at error level")
}
