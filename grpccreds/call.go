package grpccreds

// One call's tries, for both interceptors: which token each carries, and
// what follows a status: report it to the Transport, send the call again
// once after Unauthenticated, retry ResourceExhausted and Unavailable as
// the Transport's retry policy says, or return the status unchanged.

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oauthtransport/oauthtransport"
)

// Idempotent marks a call that may be sent again even though the server
// may have acted on it: the interceptors then retry it after
// codes.Unavailable without a google.rpc.RetryInfo too (see the package
// documentation). Calls without it are retried after such a status only
// when the Transport's RetryPolicy says RetryNonIdempotent.
func Idempotent() grpc.CallOption { return idempotent{} }

type idempotent struct{ grpc.EmptyCallOption }

// call is one call's state across its tries.
type call struct {
	t          *oauthtransport.Transport
	idempotent bool
	retries    int         // tries sent again after ResourceExhausted or Unavailable
	rejected   bool        // the server rejected a token of this call (reported once)
	answered   atomic.Bool // the server's answer was reported (once)
}

func newCall(t *oauthtransport.Transport, opts []grpc.CallOption) *call {
	c := &call{t: t}
	for _, o := range opts {
		if _, ok := o.(idempotent); ok {
			c.idempotent = true
		}
	}
	return c
}

// credentials returns the credentials of the next try: the Transport's
// current token for ctx's key, or the status of having none.
func (c *call) credentials(ctx context.Context) (*callCredentials, error) {
	cred, err := c.t.Credential(ctx)
	if err != nil {
		return nil, noToken(ctx, err)
	}
	return &callCredentials{cred: cred, secure: !c.t.AllowsInsecure()}, nil
}

// withCredentials returns opts and the call option that puts creds on the
// try, never writing into the caller's slice.
func withCredentials(opts []grpc.CallOption, creds *callCredentials) []grpc.CallOption {
	return append(slices.Clip(opts), grpc.PerRPCCredentials(creds))
}

// after reports what a try sent with creds ended with (err, nil for a
// success) and says whether to send the call again, having waited for
// that; retry: whether it may be (a stream before its first message).
// Otherwise it returns the error to return: err unchanged, or the
// context's status when the caller left during a wait.
func (c *call) after(ctx context.Context, err error, creds *callCredentials, retry bool) (bool, error) {
	code := status.Code(err)
	switch {
	case err == nil || answered(code):
		if !c.answered.Swap(true) {
			creds.cred.Accepted()
			c.t.Succeeded()
		}
	case code == codes.Unauthenticated && creds.sent.Load() && !c.rejected:
		c.rejected = true
		return creds.cred.Rejected(ctx) && retry, err
	case retry && (code == codes.ResourceExhausted || code == codes.Unavailable):
		return c.retry(ctx, err)
	}
	return false, err
}

// retry waits before sending the call again after err, if the Transport's
// retry policy and budget allow it.
func (c *call) retry(ctx context.Context, err error) (bool, error) {
	st := status.Convert(err)
	hint := retryDelay(st)
	safe := c.idempotent || st.Code() == codes.ResourceExhausted || hint > 0 // the server did not act on it
	wait, ok := c.t.Retry(ctx, c.retries+1, hint, safe)
	if !ok {
		return false, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-ctx.Done():
		return false, status.FromContextError(ctx.Err()).Err()
	}
	c.retries++
	return true, nil
}

// answered reports a status that only a server's handler sends, once it
// took the call's token: the codes gRPC itself never produces (gRFC A54)
// and PermissionDenied. Like any HTTP status but 401, it tells that the
// token was accepted.
func answered(code codes.Code) bool {
	switch code {
	case codes.InvalidArgument, codes.NotFound, codes.AlreadyExists, codes.PermissionDenied,
		codes.FailedPrecondition, codes.Aborted, codes.OutOfRange, codes.DataLoss:
		return true
	}
	return false
}

// retryDelay is the server's google.rpc.RetryInfo delay, zero without one
// (or with one that is not positive).
func retryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return max(ri.GetRetryDelay().AsDuration(), 0)
		}
	}
	return 0
}
