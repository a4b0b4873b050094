package grpccreds

// The credentials: a Transport's token as gRPC metadata, for every call of
// a connection (PerRPCCredentials) or for one try of one call (the
// interceptors' callCredentials), and the status of a call that got no
// token.

import (
	"context"
	"errors"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/oauthtransport/oauthtransport"
)

// PerRPCCredentials returns credentials that put t's token on every call
// of a connection (grpc.WithPerRPCCredentials), as the "authorization"
// metadata: t's Authorization value, "Bearer <token>" by default. On a
// keyed Transport the call's context names the key ([oauthtransport.WithKey]).
// The token is refreshed as for t's HTTP requests; to act on what the
// server answers (drop a rejected token and send the call again, retry),
// add [UnaryClientInterceptor] and [StreamClientInterceptor]: with them,
// the token goes on each call once. They require transport security
// unless t allows insecure use ([oauthtransport.Transport.AllowsInsecure]).
// When no token can be had, the call fails with codes.Unavailable (see the
// package documentation). Safe for concurrent use.
func PerRPCCredentials(t *oauthtransport.Transport) credentials.PerRPCCredentials {
	return perRPC{t: t}
}

// perRPC is a connection's credentials.
type perRPC struct{ t *oauthtransport.Transport }

// GetRequestMetadata returns the token of ctx's key, unless one of the
// interceptors put it on the call already.
func (p perRPC) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	if attachedTo(ctx) {
		return nil, nil
	}
	c, err := p.t.Credential(ctx)
	if err != nil {
		return nil, noToken(ctx, err)
	}
	return map[string]string{"authorization": c.Authorization()}, nil
}

func (p perRPC) RequireTransportSecurity() bool { return !p.t.AllowsInsecure() }

// callCredentials carry one Credential on one try of a call (the
// grpc.PerRPCCredentials call option), and tell whether the token went
// out: a try that failed before gRPC asked for it (an insecure connection,
// no connection) never showed it to the server.
type callCredentials struct {
	cred   *oauthtransport.Credential
	secure bool
	sent   atomic.Bool
}

func (c *callCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	c.sent.Store(true)
	return map[string]string{"authorization": c.cred.Authorization()}, nil
}

func (c *callCredentials) RequireTransportSecurity() bool { return c.secure }

// attached marks the context of a call whose token an interceptor puts
// on it, so that a connection's PerRPCCredentials add no second one. It
// names the method: a call made with a context derived from a stream's
// (stream.Context()) is another call.
type attached struct{}

func attach(ctx context.Context, method string) context.Context {
	return context.WithValue(ctx, attached{}, method)
}

func attachedTo(ctx context.Context) bool {
	method, ok := ctx.Value(attached{}).(string)
	if !ok {
		return false
	}
	ri, ok := credentials.RequestInfoFromContext(ctx)
	return ok && ri.Method == method
}

// tokenError is the status of a call that got no token; it wraps the
// Transport's error, for errors.Is and errors.As.
type tokenError struct {
	st  *status.Status
	err error
}

func (e *tokenError) Error() string              { return e.st.Err().Error() }
func (e *tokenError) GRPCStatus() *status.Status { return e.st }
func (e *tokenError) Unwrap() error              { return e.err }

// noToken turns the error of a Transport that gave no token into a
// status: Unavailable (a token endpoint that is down is not a rejected
// token), the caller's context's code when it ended, Internal for a keyed
// Transport called without a key. The message is err's text, which never
// holds a token.
func noToken(ctx context.Context, err error) error {
	code := codes.Unavailable
	switch {
	case errors.Is(err, oauthtransport.ErrNoKey):
		code = codes.Internal
	case ctx.Err() != nil:
		code = status.FromContextError(ctx.Err()).Code()
	}
	return &tokenError{st: status.New(code, err.Error()), err: err}
}
