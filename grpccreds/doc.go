// Package grpccreds puts the tokens of an [oauthtransport.Transport] on
// gRPC calls, with the guarantees the Transport gives HTTP requests: one
// token per Transport (or per key, for a keyed Transport), refreshed in
// the background before it expires, one token request however many calls
// want one, the Transport's store, and no token in any error or log line.
//
// It is a module of its own, so that programs using oauthtransport
// without gRPC never download grpc-go.
//
// Use all three on a client connection:
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithTransportCredentials(credentials.NewTLS(nil)),
//		grpc.WithPerRPCCredentials(grpccreds.PerRPCCredentials(tr)),
//		grpc.WithUnaryInterceptor(grpccreds.UnaryClientInterceptor(tr)),
//		grpc.WithStreamInterceptor(grpccreds.StreamClientInterceptor(tr)),
//	)
//
// [PerRPCCredentials] alone attaches a valid token to every call. The
// interceptors attach it themselves (the two together send it once) and
// act on what the server answered, as the Transport does for HTTP:
//
//   - codes.Unauthenticated from the server drops exactly the token the
//     call carried (a newer one survives) and sends the call once more
//     with a new token, never more; tokens the server never accepted are
//     renewed no faster than the Transport's spacing allows (the first at
//     once, then after 1s, 2s, 4s, ..., shared with its HTTP requests),
//     and meanwhile the status is final.
//   - codes.ResourceExhausted and codes.Unavailable are retried under the
//     Transport's [oauthtransport.RetryPolicy] and retry budget, waiting
//     for the server's google.rpc.RetryInfo when it sends one and that is
//     longer than the backoff, and failing at once when the wait would
//     pass MaxRetryAfter or the caller's deadline. ResourceExhausted, and
//     Unavailable with a RetryInfo, mean that the server did not act on
//     the call; Unavailable without one is retried only for calls made
//     with [Idempotent] (or with RetryNonIdempotent), since the server may
//     have acted on it.
//   - A stream is opened again only while the caller has sent no message
//     on it and received none; afterwards an Unauthenticated status still
//     drops the token, and every status reaches the caller.
//
// Whatever is not retried returns its status unchanged: code, message
// and details as the server sent them.
//
// When no token can be had, a call fails before anything is sent, with
// codes.Unavailable (a token endpoint that is down must not look like a
// token the server rejected) and the Transport's error text as the
// message: a *[oauthtransport.TokenError]'s, which never holds a token.
// The error the call returns wraps the Transport's, so that
// errors.Is(err, oauthtransport.ErrReauthRequired) and errors.As with a
// *oauthtransport.TokenError still work. A caller's context that ends
// while waiting for a token gives codes.Canceled or
// codes.DeadlineExceeded, and a keyed Transport called without
// [oauthtransport.WithKey] codes.Internal ([oauthtransport.ErrNoKey]).
//
// Transport security: the credentials require it (TLS) unless the
// Transport was made with [oauthtransport.WithInsecureHTTP]; unlike HTTP
// requests, gRPC cannot tell the credentials which address a connection
// goes to, so a plaintext connection to loopback needs that option too.
// A Transport used for gRPC should not use [oauthtransport.WithDPoP]:
// gRPC calls carry no DPoP proof.
package grpccreds
