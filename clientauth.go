package oauthtransport

// Client authentication by JWT (RFC 7523 §2.2, OpenID Connect Core §9):
// private_key_jwt, client_secret_jwt, and an assertion from elsewhere.

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/cryptosigner"
	"github.com/go-jose/go-jose/v4/jwt"
)

// clientAssertionType is the client_assertion_type of a JWT assertion.
const clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid: each token
// request gets a fresh one.
const assertionLifetime = time.Minute

// clientAuth makes the client assertion of one token request.
type clientAuth interface {
	// assertion returns a fresh assertion for the client, whose secret
	// (if any) is secret, sent to the token endpoint at aud.
	assertion(ctx context.Context, clientID, secret, aud string) (string, error)
}

// WithPrivateKeyJWT authenticates the client with a JWT signed by key
// (private_key_jwt, RFC 7523): no client secret is sent. The algorithm
// follows from the key: RS256 for RSA, ES256, ES384 or ES512 for ECDSA
// P-256, P-384 or P-521, EdDSA for Ed25519; any crypto.Signer works (a
// key in a KMS or an HSM). keyID is the "kid" the server knows the
// public key by (empty: none). Each token request gets a fresh assertion:
// iss and sub the client ID, aud the token endpoint, a random jti, iat
// now, exp a minute later.
func WithPrivateKeyJWT(key crypto.Signer, keyID string) SourceOption {
	return func(o *sourceOptions) { o.auth = &privateKeyJWT{key: key, kid: keyID} }
}

// WithAssertionAlgorithm sets the JWS algorithm of WithPrivateKeyJWT's
// assertions where the key allows more than one: "PS256" (or PS384, PS512,
// RS384, RS512) for an RSA key, whose default is RS256. FAPI 2.0 servers
// accept PS256 and ES256 only.
func WithAssertionAlgorithm(alg string) SourceOption {
	return func(o *sourceOptions) { o.alg = alg }
}

// WithClientSecretJWT authenticates the client with a JWT signed with its
// client secret (client_secret_jwt, HS256): the secret itself is never
// sent. HS256 needs a secret of at least 32 bytes.
func WithClientSecretJWT() SourceOption {
	return func(o *sourceOptions) { o.auth = clientSecretJWT{} }
}

// WithClientAssertion authenticates the client with an assertion f
// returns, called for every token request: a Kubernetes service-account
// token read from its file, a CI system's OIDC token, a workload identity
// (RFC 7523 client_assertion, no secret sent); [AssertionFromFile],
// [AssertionFromGitHubActions] and [AssertionFromCommand] make such an f.
// The assertion is never logged or put in an error.
func WithClientAssertion(f func(ctx context.Context) (string, error)) SourceOption {
	return func(o *sourceOptions) { o.auth = assertionFunc(f) }
}

type privateKeyJWT struct {
	key    crypto.Signer
	kid    string
	signer jose.Signer
	err    error // a key that cannot sign: reported at every request
}

// prepare makes the signer once the options are known (WithAssertionAlgorithm).
func (p *privateKeyJWT) prepare(alg string) {
	if p.key == nil {
		p.err = errors.New("WithPrivateKeyJWT: nil key")
		return
	}
	p.signer, p.err = newJWTSigner(p.key, "JWT", p.kid, alg)
	if p.err != nil {
		p.err = fmt.Errorf("WithPrivateKeyJWT: %w", p.err)
	}
}

func (p *privateKeyJWT) assertion(_ context.Context, clientID, _, aud string) (string, error) {
	if p.err != nil {
		return "", p.err
	}
	return signAssertion(p.signer, clientID, aud)
}

type clientSecretJWT struct{}

func (clientSecretJWT) assertion(_ context.Context, clientID, secret, aud string) (string, error) {
	if len(secret) < 32 {
		return "", fmt.Errorf("client_secret_jwt: the client secret has %d bytes; HS256 needs at least 32", len(secret))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(secret)},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", fmt.Errorf("client_secret_jwt: %w", err)
	}
	return signAssertion(signer, clientID, aud)
}

type assertionFunc func(ctx context.Context) (string, error)

func (f assertionFunc) assertion(ctx context.Context, _, _, _ string) (string, error) {
	if f == nil {
		return "", errors.New("WithClientAssertion: nil function")
	}
	a, err := f(ctx) // a panic is recovered around the Source, as any of users' code
	if err != nil {
		return "", fmt.Errorf("client assertion: %w", err)
	}
	if a == "" {
		return "", errors.New("client assertion: the WithClientAssertion function returned an empty assertion")
	}
	return a, nil
}

// signAssertion signs a client assertion for clientID at aud.
func signAssertion(signer jose.Signer, clientID, aud string) (string, error) {
	now := time.Now()
	claims := jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: randomID(),
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(assertionLifetime))}
	a, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing the client assertion: %w", err)
	}
	return a, nil
}

// newJWTSigner signs with key, with alg when given, else the first
// algorithm its type allows; typ is the JWS "typ" header, kid its "kid"
// (none when empty). PSS signatures have a salt as long as the hash (see
// pssSigner). DPoP proofs are signed by proofSigner instead.
func newJWTSigner(key crypto.Signer, typ, kid, alg string) (jose.Signer, error) {
	opaque := pssSigner{OpaqueSigner: cryptosigner.Opaque(key), key: key}
	algs := opaque.Algs()
	if len(algs) == 0 {
		return nil, fmt.Errorf("a %T key cannot sign a JWT: use RSA, ECDSA P-256/P-384/P-521 or Ed25519", key.Public())
	}
	if alg != "" {
		if !slices.Contains(algs, jose.SignatureAlgorithm(alg)) {
			return nil, fmt.Errorf("a %T key cannot sign with %s (it can with %v)", key.Public(), alg, algs)
		}
		algs = []jose.SignatureAlgorithm{jose.SignatureAlgorithm(alg)}
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: algs[0], Key: opaque}, opts)
	if err != nil {
		return nil, fmt.Errorf("a signer for the %T key: %w", key.Public(), err)
	}
	return signer, nil
}

// pssSigner is go-jose's signer for a crypto.Signer, except that it signs
// PS256, PS384 and PS512 with a salt as long as the hash, as RFC 7518 §3.5
// fixes it: go-jose's uses the longest salt the key allows (222 bytes
// for a 2048-bit key with SHA-256), which strict servers refuse.
type pssSigner struct {
	jose.OpaqueSigner
	key crypto.Signer
}

// SignPayload signs payload with alg; only PSS differs from go-jose's.
func (s pssSigner) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	var h crypto.Hash
	var digest []byte
	switch alg {
	case jose.PS256:
		sum := sha256.Sum256(payload)
		h, digest = crypto.SHA256, sum[:]
	case jose.PS384:
		sum := sha512.Sum384(payload)
		h, digest = crypto.SHA384, sum[:]
	case jose.PS512:
		sum := sha512.Sum512(payload)
		h, digest = crypto.SHA512, sum[:]
	default:
		return s.OpaqueSigner.SignPayload(payload, alg)
	}
	return s.key.Sign(rand.Reader, digest, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h})
}

// randomID is a jti: 128 random bits.
func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
