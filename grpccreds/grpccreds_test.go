package grpccreds_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/grpccreds"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// TestColdStartOneTokenRequest: 100 concurrent calls on a cold start
// make one token request.
func TestColdStartOneTokenRequest(t *testing.T) {
	t.Parallel()
	b := newBed(t, oauthtest.TokenDelay(50*time.Millisecond)) // the calls pile up behind the fetch
	conn := b.dial(t, b.transport(t))
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() { assert.NoError(t, check(context.Background(), conn)) })
	}
	wg.Wait()
	assert.Equal(t, int64(1), b.oauth.TokenCalls(), "token requests")
	assert.Equal(t, int64(100), b.api.calls.Load(), "calls received")
	assert.Zero(t, b.api.rejected.Load())
}

// TestRevocationMidRun: the token is revoked while calls run; each call
// rejected with it is sent once more with the one new token, and none
// fails.
func TestRevocationMidRun(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	ctx := context.Background()
	require.NoError(t, check(ctx, conn))
	tok, err := tr.Token(ctx)
	require.NoError(t, err)

	const workers, each = 20, 30
	var done atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				assert.NoError(t, check(ctx, conn))
				if done.Add(1) == workers*each/3 { // a third of the calls are done
					assert.True(t, b.oauth.Revoke(tok.AccessToken))
				}
			}
		})
	}
	wg.Wait()
	st := tr.Stats()
	assert.Positive(t, b.api.rejected.Load(), "calls were rejected with the revoked token")
	assert.Equal(t, int64(2), b.oauth.TokenCalls(), "one new token for every call rejected with the revoked one")
	assert.Equal(t, int64(1), st.Invalidations)
	assert.Equal(t, b.api.rejected.Load(), st.Replays, "each rejected call sent again once")
	assert.Equal(t, int64(workers*each+1)+b.api.rejected.Load(), b.api.calls.Load(), "no call sent more than twice")
}

// TestAlwaysUnauthenticatedBoundsTokenRequests: a server that rejects
// every token gets each call at most twice, the status unchanged, and a
// token request no more often than the renewal spacing the HTTP path
// applies (at once, then after 1s, 2s, 4s, ...).
func TestAlwaysUnauthenticatedBoundsTokenRequests(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.api.rejectAll.Store(true)
	conn := b.dial(t, b.transport(t))
	start := time.Now()
	const calls = 50
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			err := check(context.Background(), conn)
			assert.Equal(t, codes.Unauthenticated, status.Code(err))
			assert.Equal(t, "the access token is invalid", status.Convert(err).Message(), "the server's status, unchanged")
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// A first token, one renewal at once, then one per doubling step of
	// the spacing that elapsed: 1s, 2s, 4s, ...
	bound := int64(2 + bits.Len(uint(elapsed/time.Second)))
	assert.LessOrEqual(t, b.oauth.TokenCalls(), bound, "token requests in %v", elapsed)
	assert.LessOrEqual(t, b.api.calls.Load(), int64(2*calls))
}

func retryInfo(t testing.TB, code codes.Code, delay time.Duration) error {
	st, err := status.New(code, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	require.NoError(t, err)
	return st.Err()
}

// TestRetryInfoIsWaitedFor: a ResourceExhausted with a RetryInfo of 1s
// is retried once, after about 1s.
func TestRetryInfoIsWaitedFor(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	require.NoError(t, check(context.Background(), conn))
	b.api.fail(retryInfo(t, codes.ResourceExhausted, time.Second))
	start := time.Now()
	require.NoError(t, check(context.Background(), conn))
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, time.Second, "the server asked for 1s")
	assert.Less(t, elapsed, 10*time.Second)
	assert.Equal(t, int64(3), b.api.calls.Load(), "one retry")
	st := tr.Stats()
	assert.Equal(t, int64(1), st.Retries)
	assert.Equal(t, int64(1), st.RateLimitWaits)
}

// TestRetryInfoNotWaitedFor: a hint past MaxRetryAfter, or one that
// would outlast the caller's deadline, fails at once with the server's
// status unchanged.
func TestRetryInfoNotWaitedFor(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t, oauthtransport.WithRetry(oauthtransport.RetryPolicy{MaxRetryAfter: 5 * time.Second}))
	conn := b.dial(t, tr)
	long := retryInfo(t, codes.ResourceExhausted, time.Minute)
	b.api.fail(long)
	err := check(context.Background(), conn)
	assert.Equal(t, status.Convert(long).Proto().String(), status.Convert(err).Proto().String(), "the status comes back unchanged, details included")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	b.api.fail(retryInfo(t, codes.Unavailable, 3*time.Second))
	start := time.Now()
	err = check(ctx, conn)
	assert.Equal(t, codes.Unavailable, status.Code(err), "not DeadlineExceeded: the server's status")
	assert.Less(t, time.Since(start), 2*time.Second, "failed before the deadline")
	assert.Equal(t, int64(2), b.api.calls.Load(), "neither was retried")
	assert.Equal(t, int64(2), tr.Stats().RateLimitFailFasts)
}

// TestUnavailableRetriedWhenIdempotent: Unavailable without a RetryInfo
// may come after the server acted: it is retried for a call marked
// Idempotent, and otherwise returned.
func TestUnavailableRetriedWhenIdempotent(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t, oauthtransport.WithRetry(oauthtransport.RetryPolicy{InitialBackoff: time.Millisecond}))
	conn := b.dial(t, tr)
	down := status.Error(codes.Unavailable, "backend down")
	b.api.fail(down)
	err := check(context.Background(), conn)
	assert.Equal(t, codes.Unavailable, status.Code(err))
	assert.Equal(t, "backend down", status.Convert(err).Message())

	b.api.fail(down, down)
	require.NoError(t, check(context.Background(), conn, grpccreds.Idempotent()))
	assert.Equal(t, int64(4), b.api.calls.Load(), "the idempotent call was tried three times")
	assert.Equal(t, int64(2), tr.Stats().Retries)
}

// TestKeyedSendsEachKeysTokenOnItsCallsOnly: a keyed Transport puts each
// key's token on that key's calls, and on no other's.
func TestKeyedSendsEachKeysTokenOnItsCallsOnly(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	cfg := b.oauth.OAuth2Config()
	tr, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) {
		return oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: b.oauth.IssueRefreshToken()}), nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	conn := b.dial(t, tr)
	const users, each = 5, 20
	var wg sync.WaitGroup
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		ctx := metadata.AppendToOutgoingContext(oauthtransport.WithKey(context.Background(), user), "x-user", user)
		for range each {
			wg.Go(func() { assert.NoError(t, check(ctx, conn)) })
		}
	}
	wg.Wait()
	owner := map[string]string{}
	for user, toks := range b.api.byUser {
		assert.Len(t, toks, 1, "%s's calls carried one token", user)
		for tok := range toks {
			assert.Empty(t, owner[tok], "a token sent for %s and for %s", owner[tok], user)
			owner[tok] = user
		}
	}
	assert.Len(t, owner, users)
	assert.Equal(t, int64(users), b.oauth.TokenCalls(), "one token request per key")
}

// TestNoKeyIsInternal: a keyed Transport called without WithKey fails
// the call before anything is sent.
func TestNoKeyIsInternal(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr, err := oauthtransport.NewKeyed(func(string) (oauthtransport.Source, error) {
		return oauthtransport.ClientCredentials(b.oauth.ClientCredentials()), nil
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	err = check(context.Background(), b.dial(t, tr))
	assert.Equal(t, codes.Internal, status.Code(err))
	assert.ErrorIs(t, err, oauthtransport.ErrNoKey)
	assert.Zero(t, b.api.calls.Load())
}

// TestTokenEndpointDownIsUnavailable: a token endpoint that fails is not
// a rejected token: the call fails before anything is sent, with
// Unavailable and the Transport's error, whether the interceptors or
// PerRPCCredentials alone ask for the token.
func TestTokenEndpointDownIsUnavailable(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]func(*oauthtransport.Transport) []grpc.DialOption{
		"interceptors": func(tr *oauthtransport.Transport) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithUnaryInterceptor(grpccreds.UnaryClientInterceptor(tr))}
		},
		"PerRPCCredentials": func(tr *oauthtransport.Transport) []grpc.DialOption {
			return []grpc.DialOption{grpc.WithPerRPCCredentials(grpccreds.PerRPCCredentials(tr))}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := newBed(t)
			b.oauth.FailTokens(oauthtest.Failure{Status: 503}, oauthtest.Failure{Status: 503}, oauthtest.Failure{Status: 503})
			tr := b.transport(t)
			err := check(context.Background(), b.dial(t, tr, opts(tr)...))
			assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
			assert.Contains(t, status.Convert(err).Message(), "token endpoint answered 503")
			var te *oauthtransport.TokenError
			assert.ErrorAs(t, err, &te, "the Transport's error is in the chain")
			assert.Zero(t, b.api.calls.Load(), "nothing was sent")
		})
	}
}

// TestDeadlineWhileWaitingForAToken: a caller whose deadline passes while
// the token is being fetched gets DeadlineExceeded, and nothing is sent.
func TestDeadlineWhileWaitingForAToken(t *testing.T) {
	t.Parallel()
	b := newBed(t, oauthtest.TokenDelay(time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := check(ctx, b.dial(t, b.transport(t)))
	assert.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, b.api.calls.Load())
}

// TestRejectedThenTokenEndpointDown: a call whose token is rejected while
// the token endpoint is down fails with Unavailable, not with the
// rejection, and the message holds no token.
func TestRejectedThenTokenEndpointDown(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	require.NoError(t, check(context.Background(), conn))
	b.oauth.FailTokens(oauthtest.Failure{Status: 503}, oauthtest.Failure{Status: 503}, oauthtest.Failure{Status: 503})
	b.oauth.RevokeAll()
	err := check(context.Background(), conn)
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.ErrorIs(t, err, oauthtransport.ErrToken)
	for _, tok := range b.api.tokens() {
		assert.NotContains(t, err.Error(), tok)
	}
	assert.Equal(t, int64(2), b.api.calls.Load(), "the rejected call, and nothing after it")
}

// TestStreamOpenedAgainBeforeItsFirstMessage: a stream rejected before
// the caller sent or received anything is opened again with a new token,
// and the caller sees nothing of it.
func TestStreamOpenedAgainBeforeItsFirstMessage(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	ctx := context.Background()
	tok, err := tr.Token(ctx)
	require.NoError(t, err)
	b.oauth.Revoke(tok.AccessToken)

	s, err := conn.NewStream(ctx, &echoDesc.Streams[0], chatMethod)
	require.NoError(t, err)
	greeting := new(wrapperspb.StringValue)
	require.NoError(t, s.RecvMsg(greeting), "the rejection was not seen")
	assert.Equal(t, "hello", greeting.GetValue())
	require.NoError(t, s.SendMsg(wrapperspb.String("ping")))
	echo := new(wrapperspb.StringValue)
	require.NoError(t, s.RecvMsg(echo))
	assert.Equal(t, "ping", echo.GetValue())
	require.NoError(t, s.CloseSend())
	assert.ErrorIs(t, s.RecvMsg(echo), io.EOF)
	assert.Equal(t, int64(2), b.oauth.TokenCalls())
	assert.Equal(t, int64(2), b.api.calls.Load(), "the stream was opened twice")
}

// TestStreamRetryInfoBeforeItsFirstMessage: a stream told to come back
// later before anything was exchanged is opened again after the wait.
func TestStreamRetryInfoBeforeItsFirstMessage(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	b.api.fail(retryInfo(t, codes.ResourceExhausted, 100*time.Millisecond))
	s, err := conn.NewStream(context.Background(), &echoDesc.Streams[0], chatMethod)
	require.NoError(t, err)
	require.NoError(t, s.RecvMsg(new(wrapperspb.StringValue)))
	require.NoError(t, s.CloseSend())
	assert.Equal(t, int64(2), b.api.calls.Load())
	assert.Equal(t, int64(1), tr.Stats().Retries)
}

// TestStreamAfterItsFirstMessage: a server-streaming call has sent its
// request when the rejection comes: it is not sent again, its status
// comes back unchanged, and its token is dropped, so that the next call
// goes out with a new one.
func TestStreamAfterItsFirstMessage(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	conn := b.dial(t, tr)
	ctx := context.Background()
	first, err := tr.Token(ctx)
	require.NoError(t, err)
	b.oauth.Revoke(first.AccessToken)

	watch := func() error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		w, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			return err
		}
		resp, err := w.Recv()
		if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return errors.New("not serving")
		}
		return err
	}
	err = watch()
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.Equal(t, int64(1), b.api.calls.Load(), "not sent again")
	require.NoError(t, watch())
	second, err := tr.Token(ctx)
	require.NoError(t, err)
	assert.NotEqual(t, first.AccessToken, second.AccessToken)
	assert.Equal(t, int64(2), b.oauth.TokenCalls())
}

// TestTokenSentOnce: each of PerRPCCredentials and the interceptors puts
// the token on every call alone, and the two together put it on once (the
// server rejects a call with two).
func TestTokenSentOnce(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	tr := b.transport(t)
	for _, opts := range [][]grpc.DialOption{
		nil, // all three
		{grpc.WithPerRPCCredentials(grpccreds.PerRPCCredentials(tr))},
		{grpc.WithUnaryInterceptor(grpccreds.UnaryClientInterceptor(tr)), grpc.WithStreamInterceptor(grpccreds.StreamClientInterceptor(tr))},
	} {
		conn := b.dial(t, tr, opts...)
		require.NoError(t, check(context.Background(), conn))
		w, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
		require.NoError(t, err)
		_, err = w.Recv()
		require.NoError(t, err)
	}
	assert.Zero(t, b.api.rejected.Load())
	assert.Equal(t, int64(1), b.oauth.TokenCalls())
}

// TestTransportSecurity: the credentials require TLS unless the Transport
// allows insecure use; gRPC then refuses a plaintext connection.
func TestTransportSecurity(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	secure := grpccreds.PerRPCCredentials(b.transport(t))
	assert.True(t, secure.RequireTransportSecurity())
	assert.False(t, grpccreds.PerRPCCredentials(b.transport(t, oauthtransport.WithInsecureHTTP())).RequireTransportSecurity())
	_, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(secure))
	assert.Error(t, err, "a plaintext connection with credentials that require TLS")
}

// TestNoTokenInErrors: nothing a failed call returns holds a token.
func TestNoTokenInErrors(t *testing.T) {
	t.Parallel()
	b := newBed(t)
	b.api.rejectAll.Store(true)
	conn := b.dial(t, b.transport(t))
	var errs []string
	for range 3 {
		err := check(context.Background(), conn)
		require.Error(t, err)
		errs = append(errs, err.Error())
	}
	toks := b.api.tokens()
	require.NotEmpty(t, toks)
	for _, tok := range toks {
		assert.NotContains(t, strings.Join(errs, "\n"), tok)
	}
}
