package oauthtransport

// DPoP (RFC 9449): tokens bound to a key the client holds. Each token
// request and each API request carries a proof, a JWT signed with the key
// over the request's method and URL (and, for the API, the token's hash);
// servers may demand a nonce, which is cached per origin and renewed from
// every response.

import (
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/go-jose/go-jose/v4"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// WithDPoP binds the Transport's tokens to key (DPoP, RFC 9449): every
// token request carries a proof signed with key, so the server issues
// tokens only key can use, and every API request carries a fresh proof
// (method, URL without query and fragment, time, a random ID, the token's
// hash) with "Authorization: DPoP <token>". The algorithm follows from the
// key (ES256 for ECDSA P-256, the usual choice; ES384, ES512; EdDSA;
// RS256). A proof costs little more than its signature: the header and
// its JWK are encoded once per key, the token's hash once per token. Server
// nonces are cached per origin and renewed from every response: a token
// endpoint's 400 use_dpop_nonce is retried once with the nonce, and an
// API's 401 with error="use_dpop_nonce" is replayed once with a new proof,
// keeping the token. A token the server issued as Bearer (it ignored the
// proof) is sent as Bearer; a DPoP-bound one never is.
//
// A key of the standard library (*ecdsa.PrivateKey, ed25519.PrivateKey,
// *rsa.PrivateKey) signs on the request's goroutine. Any other
// crypto.Signer (a KMS, an HSM) signs on a goroutine of its own: one whose
// Sign panics while signing an API request's proof fails that request
// with a [*TokenError] wrapping a [*PanicError]; one whose Sign hangs is
// left behind when the request's context is done (the request fails with
// the context's error; the signing goroutine ends when Sign returns).
//
// Tokens are stored under the WithStore key and "#dpop:" and the key's
// JWK thumbprint, so a process holding another key never adopts a token
// it cannot use. A fleet sharing tokens through a store shares one DPoP
// key (from a secret manager or a KMS); processes with keys of their own
// each keep their own tokens.
func WithDPoP(key crypto.Signer) Option {
	return func(o *options) {
		d, err := newDPoP(key)
		if err != nil {
			o.errs = append(o.errs, fmt.Errorf("WithDPoP: %w", err))
			return
		}
		o.dpop = d
	}
}

// dpop makes proofs with one key and keeps the servers' nonces.
type dpop struct {
	signer *proofSigner
	jkt    string // the key's JWK SHA-256 thumbprint (RFC 7638)
	ath    athCache
	nonces nonceCache
}

func newDPoP(key crypto.Signer) (*dpop, error) {
	if key == nil {
		return nil, fmt.Errorf("nil key")
	}
	signer, err := newProofSigner(key)
	if err != nil {
		return nil, err
	}
	tp, err := (&jose.JSONWebKey{Key: key.Public()}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &dpop{signer: signer, jkt: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// proof signs a proof for a request to u with method, for accessToken
// (empty on a token request), with the origin's nonce if one is known.
func (d *dpop) proof(method string, u *url.URL, accessToken string) (string, error) {
	c := proofClaims{method: method, u: u, nonce: d.nonces.load(u)}
	if accessToken != "" {
		c.ath = d.ath.of(accessToken)
	}
	return d.signer.sign(c)
}

// htu is a proof's URI: the request's without query and fragment,
// normalized as servers compare it (RFC 3986 §6.2.2: scheme and host in
// lower case, an empty path as "/").
func htu(u *url.URL) string {
	v := url.URL{Scheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Host), Path: u.Path, RawPath: u.RawPath}
	if v.Path == "" {
		v.Path, v.RawPath = "/", ""
	}
	return v.String()
}

// remember keeps the nonce a response from u's origin carried.
func (d *dpop) remember(u *url.URL, resp *http.Response) {
	n := resp.Header.Get("DPoP-Nonce")
	if n == "" || invalidHeaderByte(n) >= 0 || len(n) > 1024 {
		return
	}
	d.nonces.store(u, n)
}

// maxNonceOrigins bounds how many origins' nonces a key keeps.
const maxNonceOrigins = 1000

// nonceCache holds the latest DPoP-Nonce of each origin: read on every
// proof without allocating, written when an origin sends a new one.
type nonceCache struct {
	mu sync.RWMutex
	m  map[string]string // origin ("scheme://host", ASCII lower case) → nonce
}

func (c *nonceCache) load(u *url.URL) string {
	var buf [128]byte
	o := appendOrigin(buf[:0], u)
	c.mu.RLock()
	n := c.m[string(o)]
	c.mu.RUnlock()
	return n
}

func (c *nonceCache) store(u *url.URL, n string) {
	if c.load(u) == n {
		return
	}
	o := string(appendOrigin(nil, u))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]string)
	}
	if _, ok := c.m[o]; !ok && len(c.m) >= maxNonceOrigins {
		for k := range c.m {
			delete(c.m, k) // one arbitrary origin makes room
			break
		}
	}
	c.m[o] = n
}

func appendOrigin(b []byte, u *url.URL) []byte {
	return appendLower(append(appendLower(b, u.Scheme), "://"...), u.Host)
}

// dpopTokenTransport puts a proof on each token request, keeps the nonce
// of every answer, and retries a 400 use_dpop_nonce once with the nonce
// the server sent (RFC 9449 §8), sending the same body again. The
// built-in sources' requests are not retried here: they retry themselves
// with a new body, whose client assertion is fresh (ownNonceRetryKey).
type dpopTokenTransport struct {
	d    *dpop
	base http.RoundTripper
}

// ownNonceRetryKey marks the context of a token request whose sender
// answers use_dpop_nonce itself (endpoint.request).
type ownNonceRetryKey struct{}

func (t *dpopTokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.send(req)
	if err != nil {
		return nil, err
	}
	t.d.remember(req.URL, resp)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("DPoP-Nonce") == "" || req.GetBody == nil ||
		req.Context().Value(ownNonceRetryKey{}) != nil {
		return resp, nil
	}
	if code, restored := wire.OAuthErrorCode(resp); code != "use_dpop_nonce" {
		resp.Body = restored
		return resp, nil
	}
	wire.Drain(resp)
	body, err := req.GetBody()
	if err != nil {
		return nil, err
	}
	again := req.Clone(req.Context())
	again.Body = body
	return t.send(again)
}

func (t *dpopTokenTransport) send(req *http.Request) (*http.Response, error) {
	p, err := t.d.proof(req.Method, req.URL, "")
	if err != nil {
		closeBody(req)
		return nil, err
	}
	r := req.Clone(req.Context())
	r.Header.Set("DPoP", p)
	return t.base.RoundTrip(r)
}

// CloseIdleConnections forwards to the base transport.
func (t *dpopTokenTransport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// dpopAuthorizer puts DPoP-bound tokens on API requests with a fresh
// proof each; tokens the server issued as Bearer go as they are.
type dpopAuthorizer struct {
	d *dpop
	headerAuthorizer
	log *slog.Logger // where a signer's panic is logged; nil: nowhere
}

func (a dpopAuthorizer) authorize(req *http.Request, body io.ReadCloser, c *credential) (*http.Request, error) {
	if !strings.EqualFold(c.scheme(), "DPoP") {
		return withAuth(req, body, c.auth, c.bareHeader()), nil
	}
	p, err := a.apiProof(req.Context(), req.Method, req.URL, c.rec.tok.AccessToken)
	if err != nil {
		if body != nil {
			body.Close()
		}
		return nil, err
	}
	out := withAuth(req, body, c.auth, nil) // its header gets the proof: its own map
	out.Header["Dpop"] = []string{p}
	return out, nil
}

// discardLog is dpopAuthorizer's logger until it is given one.
var discardLog = slog.New(slog.DiscardHandler)

// signed is the outcome of signing one proof.
type signed struct {
	proof string
	err   error
}

// apiProof signs the proof of an API request. A key of the standard
// library's signs on the caller's goroutine; any other is users' code (a
// KMS, an HSM) and signs in the caller's stead: a panic becomes a
// *TokenError wrapping a *PanicError, and a signer that outlives ctx is
// left to finish by itself while the caller gets ctx's error.
func (a dpopAuthorizer) apiProof(ctx context.Context, method string, u *url.URL, accessToken string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("oauthtransport: signing a DPoP proof: %w", err)
	}
	log := a.log
	if log == nil {
		log = discardLog
	}
	sign := func(u *url.URL) (s signed) {
		s.err = protect(ctx, log, "the DPoP key's Sign", []string{accessToken}, func() (err error) {
			s.proof, err = a.d.proof(method, u, accessToken)
			return err
		})
		return s
	}
	if a.d.signer.inline {
		s := sign(u) // no hop to another goroutine, which costs half a signature when it wakes a CPU
		return s.proof, s.err
	}
	target := *u // the caller may reuse its request once we return
	done := make(chan signed, 1)
	go func() { done <- sign(&target) }()
	select {
	case s := <-done:
		return s.proof, s.err
	case <-ctx.Done():
		return "", fmt.Errorf("oauthtransport: signing a DPoP proof: %w", ctx.Err())
	}
}

// rejected re-signs once when the server asks for a nonce and sent one
// (the attempt replays once at most); otherwise a 401 means what it means
// for any token.
func (a dpopAuthorizer) rejected(resp *http.Response, c *credential) onReject {
	if strings.EqualFold(c.scheme(), "DPoP") && resp.Header.Get("DPoP-Nonce") != "" {
		for _, ch := range wire.ParseChallenges(resp.Header.Values("Www-Authenticate")) {
			if strings.EqualFold(ch.Scheme, "DPoP") && ch.Error == "use_dpop_nonce" {
				return rejectResign
			}
		}
	}
	return a.headerAuthorizer.rejected(resp, c)
}

// observe keeps the nonce of every response to out.
func (a dpopAuthorizer) observe(out *http.Request, resp *http.Response) { a.d.remember(out.URL, resp) }
