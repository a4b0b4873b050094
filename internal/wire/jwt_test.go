package wire

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestJWTExpiry(t *testing.T) {
	t.Parallel()
	assert.Equal(t, time.Unix(1800000000, 0), JWTExpiry("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig"))
	assert.True(t, JWTExpiry("opaque-token").IsZero())
	assert.True(t, JWTExpiry("a.b.c.d").IsZero())
	assert.True(t, JWTExpiry("eyJhbGciOiJub25lIn0.eyJleHAiOiJzb29uIn0.sig").IsZero(), `exp:"soon"`)
	// {"iat":1700000000,"exp":1800000000}
	assert.Equal(t, Times{IssuedAt: time.Unix(1700000000, 0), Exp: time.Unix(1800000000, 0)},
		JWTTimes("eyJhbGciOiJub25lIn0.eyJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTgwMDAwMDAwMH0.sig"))
}

// FuzzJWTExpiry: a token never makes JWTExpiry panic, and an exp it
// accepts is a plausible date. Seeds are in testdata/fuzz.
func FuzzJWTExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJjbmYiOnsieDV0I1MyNTYiOiJhYmMifX0.sig")
	f.Fuzz(func(t *testing.T, tok string) {
		if exp := JWTExpiry(tok); !exp.IsZero() && (exp.Unix() <= 0 || exp.Unix() > 1<<40) {
			t.Fatalf("exp = %v", exp)
		}
		if x5t := JWTCertThumbprint(tok); len(x5t) > 64 {
			t.Fatalf("a thumbprint of %d bytes", len(x5t))
		}
		if iat := JWTTimes(tok).IssuedAt; !iat.IsZero() && (iat.Unix() <= 0 || iat.Unix() > 1<<40) {
			t.Fatalf("iat = %v", iat)
		}
	})
}
