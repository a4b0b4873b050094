package wire

// The expiry (and issue time) of a JWT, read without checking its
// signature. Fuzzed in jwt_test.go.

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
	if len(tok) > 16<<10 {
		return Times{}
	}
	first := strings.IndexByte(tok, '.')
	if first <= 0 {
		return Times{}
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return Times{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return Times{}
	}
	var claims struct {
		IssuedAt json.Number `json:"iat"`
		Exp      json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return Times{}
	}
	return Times{IssuedAt: numericDate(claims.IssuedAt), Exp: numericDate(claims.Exp)}
}

// numericDate is a JWT NumericDate (RFC 7519 §2), or the zero time.
func numericDate(n json.Number) time.Time {
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
