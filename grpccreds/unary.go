package grpccreds

import (
	"context"

	"google.golang.org/grpc"

	"github.com/oauthtransport/oauthtransport"
)

// UnaryClientInterceptor returns an interceptor (grpc.WithUnaryInterceptor)
// that puts t's token on each unary call ([oauthtransport.WithKey] in the
// call's context names the key of a keyed Transport) and acts on the
// server's answer: after codes.Unauthenticated it drops exactly that token
// and sends the call once more with a new one; after
// codes.ResourceExhausted or codes.Unavailable it retries under t's
// RetryPolicy and retry budget, honouring a google.rpc.RetryInfo. Every
// other status, and one not retried further, is returned unchanged. See
// the package documentation for the details and for the status of a call
// that could get no token. Safe for concurrent use.
func UnaryClientInterceptor(t *oauthtransport.Transport) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		c := newCall(t, opts)
		ctx = attach(ctx, method)
		for {
			creds, err := c.credentials(ctx)
			if err != nil {
				return err
			}
			err = invoker(ctx, method, req, reply, cc, withCredentials(opts, creds)...)
			again, final := c.after(ctx, err, creds, true)
			if !again {
				return final
			}
		}
	}
}
