package oauthtransport

// The challenges of a WWW-Authenticate header as callers see them, and
// what a 401's challenges say beyond the error. The parser is
// internal/wire's.

import "github.com/oauthtransport/oauthtransport/internal/wire"

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1), as [UnauthorizedError] and [ForbiddenError] carry
// it. Its fields:
//
//   - Scheme string: as sent, e.g. "Bearer"; compare it case-insensitively.
//   - Realm, Error, ErrorDescription, Scope string: the parameters RFC
//     6750 defines for Bearer; Error is e.g. "invalid_token" or
//     "insufficient_scope".
//   - Params map[string]string: every auth-param, names lower-cased, the
//     first of duplicates, at most 32. A token68 credential, if any, is
//     under the empty name.
//
// A Challenge is parsed from untrusted input: malformed parts are skipped,
// and at most 16 KiB of a response's challenges are read. It is plain
// data; the Transport never modifies one it has returned.
type Challenge = wire.Challenge

// newUnauthorizedError reads what a 401's challenges say beyond the
// error: a step-up (RFC 9470) and the resource's metadata (RFC 9728).
func newUnauthorizedError(re ResponseError, challenges []Challenge) *UnauthorizedError {
	e := &UnauthorizedError{ResponseError: re, Challenge: wire.PickChallenge(challenges, "Bearer")}
	for _, c := range challenges {
		if c.Error == "insufficient_user_authentication" && e.StepUp == nil {
			e.Challenge, e.StepUp = c, stepUpOf(c)
		}
		if m := c.Params["resource_metadata"]; m != "" && e.ResourceMetadata == "" {
			e.ResourceMetadata = m
		}
	}
	if claims, ok := wire.Claims(challenges); ok {
		e.Claims = claims
	}
	return e
}

func stepUpOf(c Challenge) *StepUp {
	s := new(StepUp)
	s.ACRValues, s.MaxAge, s.HasMaxAge = wire.StepUp(c)
	return s
}
