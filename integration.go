package oauthtransport

// The surface for protocols other than HTTP (gRPC, a WebSocket dialer, a
// message-queue client): a Credential for one call (from
// Transport.Credential); the Transport's retry policy and budget are
// Transport.Retry and Succeeded (transport.go). Each does what the HTTP
// path does at the same point and on the same parts, so that both paths
// share one token, one renewal spacing, one retry budget and one set of
// counters.

import (
	"context"
	"log/slog"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// Credential is the token a [Transport] hands to one call of another
// protocol than HTTP (gRPC, a WebSocket dialer, a queue client): what to
// send, and how to report what the server said of it. Get one per call
// (or per connection attempt) from [Transport.Credential], send
// [Credential.Authorization], then report the server's answer with
// [Credential.Accepted] or [Credential.Rejected], as [Transport.RoundTrip]
// does for an HTTP response. Its methods are safe for concurrent use.
//
// The package github.com/oauthtransport/oauthtransport/grpccreds is built
// on it.
type Credential struct {
	t *Transport
	k *credentialCache // the cache the token came from
	c *credential
}

// Token returns a copy of the token; changing it changes nothing inside
// the Transport.
func (c *Credential) Token() *oauth2.Token { return store.Clone(c.c.rec.tok) }

// Authorization returns the value of the Authorization header (or of a
// protocol's equivalent, such as gRPC's "authorization" metadata) to send:
// [WithAuthorization]'s, by default "<type> <token>" ("Bearer ..."). For a
// token bound to a key by [WithDPoP] it is "DPoP <token>" without a proof:
// the proof signs each HTTP request, which other protocols cannot carry,
// so a Transport used through Credential should not use WithDPoP.
func (c *Credential) Authorization() string { return c.c.auth[0] }

// Accepted reports that the server accepted the token: it answered
// anything but "unauthenticated" (HTTP 401, gRPC codes.Unauthenticated),
// as any other HTTP status does for RoundTrip. From then on a rejection of
// the token always drops it (it was revoked or has expired), and ends the
// spacing of renewals that [Credential.Rejected] applies to tokens never
// accepted.
func (c *Credential) Accepted() {
	if !c.c.accepted.Load() {
		c.c.accepted.Store(true)
	}
}

// Rejected reports that the server rejected the token (HTTP 401, gRPC
// codes.Unauthenticated), and reports whether sending the call once more,
// with a new Credential, may help.
//
// It drops exactly this token, as RoundTrip does after a 401: by
// compare-and-swap, so that a newer token installed meanwhile (by another
// call's rejection or the background refresh) survives, and the next
// [Transport.Credential] waits for one new token shared by every call
// rejected with this one; it counts an invalidation (when this call
// dropped it) and a replay in [Stats] and the metrics. A token the server
// has never accepted is likely rejected for another reason (a wrong
// audience, a server that rejects every token): renewals of such tokens
// are spaced out (the first at once, then after 1s, 2s, 4s, ... up to 5
// minutes, until a token is accepted), one spacing per key shared with
// the HTTP path. When the spacing holds a renewal back, Rejected drops
// nothing and returns false: return the rejection as final.
//
// Send the call again at most once per rejection, as RoundTrip does.
func (c *Credential) Rejected(ctx context.Context) bool {
	if !c.k.spacing.mayRenew(c.c.rec, c.c.accepted.Load()) {
		c.k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token rejected; it was never accepted and renewals are spaced out",
			slog.String("token", c.c.fingerprint()))
		return false
	}
	c.k.invalidate(ctx, c.c)
	if k := c.t.successor(c.k); k != nil {
		k.invalidate(ctx, c.c) // the key's cache was evicted meanwhile; its successor may hold the token anew
	}
	c.k.env.rec.replayed(ctx)
	return true
}
