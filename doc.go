// Package oauthtransport keeps OAuth2 access tokens valid for every
// outbound HTTP request a program makes.
//
// A [Transport] is an [http.RoundTripper]: embed it in an API client, use
// [Transport.Client], or set it as http.DefaultClient's transport together
// with [WithAllowedHosts].
//
//	src := oauthtransport.ClientCredentials(&clientcredentials.Config{
//		ClientID: id, ClientSecret: secret, TokenURL: "https://idp.example.com/token",
//	})
//	tr, err := oauthtransport.New(src)
//	if err != nil { ... }
//	defer tr.Close()
//	resp, err := tr.Client().Get("https://api.example.com/v1/things")
//
// # Guarantees
//
//   - One refresh at a time. However many goroutines need a token, the
//     [Source] is called once; with a store that is a [store.Locker] (the
//     file and Redis stores), once across processes too.
//   - Requests stay off the refresh path. The current token is read without
//     a lock. Once less than the refresh window of its lifetime remains, one
//     background refresh starts while requests keep using it; only a
//     missing or expired token makes callers wait, each free to leave on its
//     own context.
//   - Replay exactly once. A 401 drops exactly the token that was rejected
//     (a newer one installed meanwhile survives), fetches a new one (shared
//     by all requests rejected with the same token) and sends the request
//     once more, its body taken from Request.GetBody. A body that cannot be
//     replayed is never sent twice ([ErrBodyNotRewindable]).
//   - No token leaks. None goes to another origin on a redirect, to a host
//     outside [WithAllowedHosts], or over plain http to a non-loopback host
//     ([ErrInsecureTransport]); none appears in an error, a log line or a
//     panic. Logs carry a fingerprint instead. The token request itself
//     never follows a redirect to another origin nor goes over plain http
//     to a remote host, and what a server echoes of the secrets sent is
//     redacted before any message is cut short.
//   - The IdP is never hammered: every refresh failure holds callers for a
//     growing cool-down, the token endpoint's Retry-After holds them all,
//     a token that arrives already expired is used while refreshes are
//     spaced out, and a token that was never accepted is not replaced on
//     every 401.
//   - A refresh token is spent once. Rotated refresh tokens are saved to
//     the store before the new access token is used. A fleet sharing a
//     store refreshes under its lock, never prefers a stored token older
//     than one it has seen, marks a refresh token spent before presenting
//     it, and never presents a marked one or one whose refresh answer was
//     lost ([ErrReauthRequired]; see [WithRotationGrace]).
//   - Faults stay contained. A panic in a Source, Store, Locker or
//     [WithAuthorization] function becomes a [*TokenError]; a caller waits
//     for a token at most until its own deadline or [WithRefreshTimeout];
//     [Transport.Close] returns within a second whatever hangs, unless a
//     rotated refresh token waits to be saved (then within 10 seconds).
//
// # Status codes become errors
//
// By default the Transport departs from the RoundTripper contract in one
// way: a final 401, 403, 420, 429 or 5xx is returned as a nil response and a
// typed error ([UnauthorizedError], [ForbiddenError], [RateLimitError],
// [ServerError]) carrying the status, header, the first 64 KiB of the body,
// RFC 9457 problem details and the number of attempts. Match them with
// errors.Is against [ErrUnauthorized] and friends or errors.As, also
// through the *url.Error of [http.Client]. [WithStatusErrors](false)
// restores the contract; [ErrorFromResponse] classifies a response later.
// Failures to obtain a token match [ErrToken] and nothing is sent.
//
// # With generated and third-party API clients
//
// Clients such as go-github, google.golang.org/api and oapi-codegen's
// output read every response's status themselves (their own rate-limit and
// error types), and otelhttp records it on its span. Give them
// [Transport.Client] of a Transport made with [WithStatusErrors](false):
// final responses then come back untouched, while refreshing, the replay
// after a 401 and retries still happen underneath. [ErrorFromResponse]
// gives this package's typed errors from a response when wanted. The
// default stays: typed errors are what the SDK promises hand-written
// clients.
//
// # Retries
//
// Requests that failed in a way a retry can fix (408, 429, 420, 5xx,
// rate-limit 403s, lost connections) are retried as [RetryPolicy] says:
// idempotent methods always, POST and PATCH only where the server did not
// act or with an Idempotency-Key; after InitialBackoff × 2ⁿ (capped) plus a
// random jitter, as Google documents for its APIs, or the server's hint
// when longer; never past the caller's deadline or
// [RetryPolicy.MaxRetryAfter], where a [*RateLimitError] returns at once;
// and never more than a per-Transport retry budget allows, so an outage
// costs about one request per call.
//
// # Stores
//
// The token lives in a store.Store ([WithStore]): in memory by default, in
// a file (store.NewFile) to survive restarts, or in Redis (package
// store/redisstore) to be shared by a fleet, which then fetches one token
// and refreshes it once, whatever the number of processes. When the
// store's lock cannot be had, a grant that spends a refresh token is not
// refreshed (the valid token is used, then a temporary [*TokenError]
// says why); client credentials go on without the lock. Package
// store/sqlstore keeps tokens in PostgreSQL or SQLite through any
// database/sql driver.
//
// # Many accounts
//
// [NewKeyed] makes a Transport with one token per key (a user, a tenant, a
// connection): a request names its key with [WithKey]. Each key has its
// own refresh flight, cool-down, store entry and lock; at most
// [WithMaxTokens] keys stay in memory, the others reload from the store
// without a fetch. A dead grant fails its key alone with
// [ErrReauthRequired], is recorded in the store so no process asks the
// token endpoint for it again for a while, and ends when
// [Transport.SetToken] installs a token the person authorized again.
// [WithKeepAlive] refreshes idle keys' tokens before an IdP lets their
// refresh tokens lapse for disuse.
//
// # Enterprise identity providers
//
// The built-in sources authenticate the client without sending a secret
// ([WithPrivateKeyJWT], [WithClientSecretJWT], [WithClientAssertion], or a
// client certificate through [WithTokenClient]); [WithDPoP] binds tokens
// to a key with a proof on every request, server nonces handled, and
// [DPoPKeyFromStore] keeps that key beside the tokens across restarts;
// [TokenExchange] and [JWTBearer] are grants for tokens and assertions from
// elsewhere; [Discover] reads a server's metadata and [WithServerMetadata]
// checks the options against it; [WithResource] asks for tokens for
// particular resources. A step-up challenge (RFC 9470) never refreshes the
// token: it returns an [*UnauthorizedError] matching [ErrStepUpRequired].
//
// # Workload identity
//
// A workload can prove who it is with what its platform gives it, no
// secret to keep: [AssertionFromFile] (a Kubernetes projected
// service-account token), [AssertionFromGitHubActions] (a job's OIDC
// token) and [AssertionFromCommand] (a program's output) make an
// [AssertionFunc] for [WithClientAssertion], [JWTBearer] or, through
// [AssertionFunc.OfType], [TokenExchange]. Each keeps its assertion until
// shortly before its exp and falls back on the last good one when a read
// fails; an [*AssertionError] names the source, never the assertion.
//
// # gRPC and other protocols
//
// The module github.com/oauthtransport/oauthtransport/grpccreds puts the
// Transport's tokens on gRPC calls. Other protocols (a WebSocket dialer, a
// message-queue client) use what it uses: [Transport.Credential] hands out
// one call's token, [Credential.Accepted] and [Credential.Rejected] report
// what the server said of it, and [Transport.Retry] and
// [Transport.Succeeded] apply the retry policy and budget, with the same
// renewal spacing, budget and counters as HTTP requests.
//
// # Tokens and expiry
//
// Expiry comes from expires_in (also when sent as a string); without it, a
// JWT access token's exp claim schedules refreshes (its signature is not
// checked); otherwise a token is used until a 401 says otherwise. A token
// stops being used [DefaultExpirySkew] before it expires, never more than
// a tenth of its lifetime, so short-lived tokens still work.
//
// # Further reading
//
// The repository's docs pages hold the reference, one topic each:
//
//   - [What you can rely on]: refresh, retries, the 401 replay, where tokens go
//   - [Hostile answers]: what a misbehaving server gets
//   - [Logs, stats and OpenTelemetry]
//   - [Where tokens live]: the memory, file, Redis and SQL stores, your own
//   - [Sharing a token across a fleet]: how processes spend a refresh token once
//   - [Many accounts]: one token per user, dead grants, keep-alive
//   - [Signing a person in]: the authorization code and device grants, Revoke
//   - [Enterprise identity providers]: private_key_jwt, mTLS, DPoP, token exchange, discovery
//   - [With generated and third-party API clients]
//   - [gRPC and other protocols]
//   - [Testing your own code]: package oauthtest, storetest
//   - [Examples]
//   - [Performance]
//   - [Interoperability]
//
// [What you can rely on]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/guarantees.md
// [Hostile answers]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/hostile.md
// [Logs, stats and OpenTelemetry]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/observability.md
// [Where tokens live]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/stores.md
// [Sharing a token across a fleet]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/fleet.md
// [Many accounts]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/many-accounts.md
// [Signing a person in]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/person.md
// [Enterprise identity providers]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/enterprise.md
// [With generated and third-party API clients]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/api-clients.md
// [gRPC and other protocols]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/grpc.md
// [Testing your own code]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/testing.md
// [Examples]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/examples.md
// [Performance]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/performance.md
// [Interoperability]: https://github.com/oauthtransport/oauthtransport/blob/main/docs/interop.md
package oauthtransport
