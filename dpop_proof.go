package oauthtransport

// DPoP proofs at the cost of their signature. What depends on the key
// alone (the protected header with its JWK, the algorithm, the encoding of
// the signature) is done once per key, the access token's hash once per
// token; each proof appends its claims by hand into pooled buffers and
// signs them with the key directly, as RFC 7515 §5.1 lays out a compact
// JWS: BASE64URL(header) "." BASE64URL(claims) "." BASE64URL(signature).

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"
)

var b64 = base64.RawURLEncoding

// proofSigner signs proofs with one key.
type proofSigner struct {
	key    crypto.Signer
	alg    string      // the JWS algorithm: ES256, ES384, ES512, EdDSA, RS256
	hash   crypto.Hash // of the signing input; 0 for EdDSA, which signs the input itself
	ecSize int         // bytes of each of r and s in an ECDSA signature; 0 for other keys
	header []byte      // BASE64URL of the protected header, and "."
	// inline: the key is the standard library's, which neither hangs nor
	// panics: proofs are signed on the request's goroutine.
	inline bool
}

// newProofSigner reads the key's algorithm (ES256, ES384 or ES512 for
// ECDSA P-256, P-384 or P-521, EdDSA for Ed25519, RS256 for RSA) and
// encodes the protected header, with the public key as a JWK.
func newProofSigner(key crypto.Signer) (*proofSigner, error) {
	s := &proofSigner{key: key}
	switch key.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey, *rsa.PrivateKey:
		s.inline = true
	}
	var alg string
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		alg, s.hash, s.ecSize = ecdsaAlg(pub)
	case ed25519.PublicKey:
		alg = "EdDSA"
	case *rsa.PublicKey:
		alg, s.hash = "RS256", crypto.SHA256
	}
	if alg == "" {
		return nil, fmt.Errorf("a %T key cannot sign a JWT: use RSA, ECDSA P-256/P-384/P-521 or Ed25519", key.Public())
	}
	s.alg = alg
	jwk := jose.JSONWebKey{Key: key.Public()}
	if !jwk.Valid() || !jwk.IsPublic() {
		return nil, fmt.Errorf("the %T key's public half is not a valid JWK", key.Public())
	}
	h, err := json.Marshal(struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK jose.JSONWebKey `json:"jwk"`
	}{"dpop+jwt", alg, jwk})
	if err != nil {
		return nil, fmt.Errorf("encoding the DPoP header: %w", err)
	}
	s.header = append(b64.AppendEncode(nil, h), '.')
	return s, nil
}

// ecdsaAlg is the JWS algorithm of an ECDSA key (RFC 7518 §3.4): "" for
// a curve JWS has none for.
func ecdsaAlg(pub *ecdsa.PublicKey) (alg string, h crypto.Hash, size int) {
	if pub.Curve == nil {
		return "", 0, 0
	}
	switch pub.Curve.Params().Name {
	case "P-256":
		return "ES256", crypto.SHA256, 32
	case "P-384":
		return "ES384", crypto.SHA384, 48
	case "P-521":
		return "ES512", crypto.SHA512, 66
	}
	return "", 0, 0
}

// proofBuffers are one proof's scratch space, pooled.
type proofBuffers struct{ claims, jws []byte }

var proofPool = sync.Pool{New: func() any { return &proofBuffers{claims: make([]byte, 0, 512), jws: make([]byte, 0, 1024)} }}

// proofClaims are what a proof says (RFC 9449 §4.2); ath and nonce are
// left out when empty.
type proofClaims struct {
	method string
	u      *url.URL
	ath    string
	nonce  string
}

// sign returns the compact JWS of a proof with claims c.
func (s *proofSigner) sign(c proofClaims) (string, error) {
	buf := proofPool.Get().(*proofBuffers)
	buf.claims = appendClaims(buf.claims[:0], c)
	buf.jws = b64.AppendEncode(append(buf.jws[:0], s.header...), buf.claims)
	var err error
	buf.jws, err = s.appendSignature(buf.jws)
	if err != nil {
		return "", err // the buffers go to the collector: a failing key is rare
	}
	p := string(buf.jws)
	proofPool.Put(buf)
	return p, nil
}

// appendClaims appends the claims' JSON: {"jti","htm","htu","iat"} and,
// when set, "ath" and "nonce".
func appendClaims(b []byte, c proofClaims) []byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	b = append(b, `{"jti":"`...)
	b = hex.AppendEncode(b, id[:])
	b = append(b, `","htm":`...)
	b = appendJSONString(b, c.method)
	b = append(b, `,"htu":`...)
	b = appendHTU(b, c.u)
	b = append(b, `,"iat":`...)
	b = strconv.AppendInt(b, time.Now().Unix(), 10)
	if c.ath != "" {
		b = append(b, `,"ath":"`...)
		b = append(b, c.ath...) // base64url: nothing to escape
		b = append(b, '"')
	}
	if c.nonce != "" {
		b = append(b, `,"nonce":`...)
		b = appendJSONString(b, c.nonce)
	}
	return append(b, '}')
}

// appendSignature signs the signing input b holds and appends "." and
// the signature as JWS encodes it.
func (s *proofSigner) appendSignature(b []byte) ([]byte, error) {
	var msg []byte
	switch s.hash {
	case 0:
		msg = b // EdDSA signs the input itself
	case crypto.SHA256:
		sum := sha256.Sum256(b)
		msg = sum[:]
	case crypto.SHA384:
		sum := sha512.Sum384(b)
		msg = sum[:]
	default:
		sum := sha512.Sum512(b)
		msg = sum[:]
	}
	sig, err := s.key.Sign(rand.Reader, msg, s.hash)
	if err != nil {
		return nil, fmt.Errorf("oauthtransport: signing a DPoP proof: %w", err)
	}
	if s.ecSize > 0 {
		var raw [2 * 66]byte
		if !ecdsaRaw(sig, raw[:2*s.ecSize]) {
			return nil, errors.New("oauthtransport: signing a DPoP proof: the key's ECDSA signature is not ASN.1 DER")
		}
		sig = raw[:2*s.ecSize]
	}
	return b64.AppendEncode(append(b, '.'), sig), nil
}

// ecdsaRaw writes the ASN.1 DER ECDSA signature der (a SEQUENCE of the
// INTEGERs r and s) as JWS has it (RFC 7518 §3.4): r then s, each
// big-endian and left-padded to half of out.
func ecdsaRaw(der, out []byte) bool {
	seq, rest, ok := derElement(der, 0x30)
	if !ok || len(rest) != 0 {
		return false
	}
	r, seq, ok := derElement(seq, 0x02)
	if !ok {
		return false
	}
	s, seq, ok := derElement(seq, 0x02)
	if !ok || len(seq) != 0 {
		return false
	}
	half := len(out) / 2
	return putInteger(r, out[:half]) && putInteger(s, out[half:])
}

// derElement reads one element with tag from b: its content and what
// follows it. Lengths above 255 bytes never occur in an ECDSA signature.
func derElement(b []byte, tag byte) (content, rest []byte, ok bool) {
	if len(b) < 2 || b[0] != tag {
		return nil, nil, false
	}
	n, b := int(b[1]), b[2:]
	if n == 0x81 {
		if len(b) == 0 || b[0] < 0x80 {
			return nil, nil, false
		}
		n, b = int(b[0]), b[1:]
	} else if n > 0x7f {
		return nil, nil, false
	}
	if n > len(b) {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// putInteger writes the positive DER INTEGER v into out, left-padded.
func putInteger(v, out []byte) bool {
	if len(v) == 0 || v[0]&0x80 != 0 {
		return false // empty or negative
	}
	for len(v) > 0 && v[0] == 0 {
		v = v[1:]
	}
	if len(v) > len(out) {
		return false
	}
	clear(out[:len(out)-len(v)])
	copy(out[len(out)-len(v):], v)
	return true
}

// appendHTU appends the proof's URI as a JSON string: the request's
// without query and fragment, normalized as htu does. The common case (an
// ASCII host, an absolute path) is appended as is; others go through htu.
func appendHTU(b []byte, u *url.URL) []byte {
	path := u.EscapedPath()
	if u.Opaque != "" || u.Scheme == "" || u.Host == "" || (path != "" && path[0] != '/') || !plainASCII(u.Scheme) || !plainASCII(u.Host) {
		return appendJSONString(b, htu(u))
	}
	b = append(b, '"')
	b = appendLower(b, u.Scheme)
	b = append(b, "://"...)
	b = appendLower(b, u.Host)
	if path == "" {
		path = "/"
	}
	b = appendJSONChars(b, path)
	return append(b, '"')
}

// plainASCII reports s made of the bytes a scheme or a host needs no
// escaping for: letters, digits, "+-.:[]".
func plainASCII(s string) bool {
	for i := range len(s) {
		c := s[i] | 0x20
		if !('a' <= c && c <= 'z' || '0' <= s[i] && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.' || s[i] == ':' || s[i] == '[' || s[i] == ']') {
			return false
		}
	}
	return true
}

func appendLower(b []byte, s string) []byte {
	for i := range len(s) {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // invalid UTF-8 becomes U+FFFD, as encoding/json has it
		return append(b, q...)
	}
	return append(appendJSONChars(append(b, '"'), s), '"')
}

// appendJSONChars appends the valid UTF-8 s with the characters JSON
// strings cannot hold escaped.
func appendJSONChars(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	for i := range len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return b
}

// athCache keeps the hash of the access token last proven, so that a
// token's proofs hash it once (RFC 9449 §4.2's ath). One entry: a
// Transport's proofs are for its current token.
type athCache struct{ last atomic.Pointer[athEntry] }

type athEntry struct{ token, ath string }

func (c *athCache) of(token string) string {
	if e := c.last.Load(); e != nil && e.token == token {
		return e.ath
	}
	sum := sha256.Sum256([]byte(token))
	e := &athEntry{token: token, ath: b64.EncodeToString(sum[:])}
	c.last.Store(e)
	return e.ath
}
