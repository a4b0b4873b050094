package wire

// The expiry of a JWT access token, read without checking its signature.
// Fuzzed in jwt_test.go.

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
func JWTExpiry(tok string) time.Time {
	if len(tok) > 16<<10 {
		return time.Time{}
	}
	first := strings.IndexByte(tok, '.')
	if first <= 0 {
		return time.Time{}
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
