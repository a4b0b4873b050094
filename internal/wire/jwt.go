package wire

// What a JWT says of itself (its expiry and issue time, the certificate an
// access token is bound to), read without checking its signature. Fuzzed
// in jwt_test.go.

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"time"
)

// JWTExpiry returns the exp claim of a JWT access token, or the zero time
// when tok is not a JWT or has no usable exp. The signature is not checked:
// exp only schedules refreshes.
func JWTExpiry(tok string) time.Time { return JWTTimes(tok).Exp }

// Times are the time claims of a JWT; a zero time is an absent claim, or
// one that is not a plausible date.
type Times struct{ IssuedAt, Exp time.Time }

// JWTTimes returns the iat and exp claims of a JWT (an access token, an
// assertion), read without checking its signature: they only schedule
// when to get another.
func JWTTimes(tok string) Times {
	var claims struct {
		IssuedAt json.Number `json:"iat"`
		Exp      json.Number `json:"exp"`
	}
	if !jwtClaims(tok, &claims) {
		return Times{}
	}
	return Times{IssuedAt: numericDate(claims.IssuedAt), Exp: numericDate(claims.Exp)}
}

// JWTCertThumbprint returns the cnf "x5t#S256" claim of a JWT access
// token (RFC 8705 §3.1): the thumbprint of the client certificate it is
// bound to; "" when tok is not a JWT or has none. The signature is not
// checked: it only tells which certificate the token needs.
func JWTCertThumbprint(tok string) string {
	var claims struct {
		Cnf struct {
			X5t string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if !jwtClaims(tok, &claims) || len(claims.Cnf.X5t) > 64 {
		return ""
	}
	return claims.Cnf.X5t
}

// jwtClaims decodes the payload of a compact JWT of at most 16 KiB into v.
func jwtClaims(tok string, v any) bool {
	if len(tok) > 16<<10 {
		return false
	}
	first := strings.IndexByte(tok, '.')
	if first <= 0 {
		return false
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	return err == nil && json.Unmarshal(payload, v) == nil
}

// numericDate is a JWT NumericDate (RFC 7519 §2), or the zero time.
func numericDate(n json.Number) time.Time {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
