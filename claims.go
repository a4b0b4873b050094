package oauthtransport

// Claims challenges (Microsoft Entra's continuous access evaluation): a
// 401 with error="insufficient_claims" and a base64 "claims" parameter
// asks for a new token carrying those claims. The Transport drops the
// rejected token, asks the token endpoint for one with the claims
// parameter, and replays the request once; a second claims challenge to
// the same request is final, an *UnauthorizedError whose Claims says what
// was asked.

import "context"

type claimsKey struct{}

// RequestedClaims returns the claims (a JSON object, decoded from the
// challenge) that a claims challenge asked for, when ctx is the context a
// Transport passed to Source.Token for a token request made because of
// one; "" otherwise. The built-in sources send them as the token request's
// "claims" parameter; a SourceFunc can do the same.
func RequestedClaims(ctx context.Context) string {
	c, _ := ctx.Value(claimsKey{}).(string)
	return c
}
