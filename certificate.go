package oauthtransport

// Client certificates that rotate (SPIFFE X.509-SVIDs live an hour,
// cert-manager renews before expiry): a certificate and key reloaded from
// files when they change, and tokens bound to a certificate (RFC 8705
// §3, cnf x5t#S256) dropped once another is in use.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// CertificateFiles is a client certificate and its key, in PEM files that
// may be replaced at any time: it reloads them when either file changes
// (their size or modification time), looking at most once a second. Use
// its GetClientCertificate in the tls.Config of the token requests'
// client ([WithTokenClient]) and of the API's ([WithBase]), and its
// Thumbprint with [WithBoundCertificate]. A reload that fails (a
// half-written file, a key that does not match) keeps the last good pair
// and is tried again at the next look. It is safe for concurrent use.
type CertificateFiles struct {
	certFile, keyFile string
	cur               atomic.Pointer[loadedCertificate]
	lookedAt          atomic.Int64 // Unix ns of the last look at the files
	mu                sync.Mutex   // one reload at a time
}

type loadedCertificate struct {
	cert       *tls.Certificate
	thumbprint string // x5t#S256 of the leaf
	stamp      string // the files' sizes and modification times
}

// certificateLook is how often the files are looked at, at most.
const certificateLook = time.Second

// LoadCertificateFiles loads the pair once, and fails if it cannot.
func LoadCertificateFiles(certFile, keyFile string) (*CertificateFiles, error) {
	c := &CertificateFiles{certFile: certFile, keyFile: keyFile}
	if err := c.reload(); err != nil {
		return nil, err
	}
	c.lookedAt.Store(time.Now().UnixNano())
	return c, nil
}

// GetClientCertificate returns the current certificate, for
// tls.Config.GetClientCertificate.
func (c *CertificateFiles) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.look()
	return c.cur.Load().cert, nil
}

// Thumbprint returns the current certificate's SHA-256 thumbprint as RFC
// 8705 writes it (x5t#S256: base64url of the DER's hash, no padding).
func (c *CertificateFiles) Thumbprint() string {
	c.look()
	return c.cur.Load().thumbprint
}

// look reloads the pair when the files changed, at most once a second.
func (c *CertificateFiles) look() {
	now, at := time.Now().UnixNano(), c.lookedAt.Load()
	if now-at < int64(certificateLook) || !c.lookedAt.CompareAndSwap(at, now) {
		return
	}
	if stamp, err := c.stamp(); err == nil && stamp != c.cur.Load().stamp {
		_ = c.reload() // a failure keeps the last good pair
	}
}

func (c *CertificateFiles) stamp() (string, error) {
	var s string
	for _, f := range []string{c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (c *CertificateFiles) reload() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := c.stamp()
	if err != nil {
		return fmt.Errorf("oauthtransport: client certificate: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil { // the error names the files, never the key
		return fmt.Errorf("oauthtransport: client certificate %s: %w", c.certFile, errors.Unwrap(err))
	}
	sum := sha256.Sum256(pair.Certificate[0])
	c.cur.Store(&loadedCertificate{cert: &pair, thumbprint: base64.RawURLEncoding.EncodeToString(sum[:]), stamp: stamp})
	return nil
}

// WithBoundCertificate says that the Transport's tokens are bound to the
// client certificate its token requests present (tls_client_auth or
// self_signed_tls_client_auth, RFC 8705), and how to read that
// certificate's x5t#S256 thumbprint now: a [CertificateFiles]'
// Thumbprint, or a function of your own. A token is bound to the
// certificate its cnf claim names (a JWT access token), else to the one in
// use when it was requested; once thumbprint returns another, the token is
// not used again: the next request gets a new token, requested with the
// new certificate, and the idle connections of the token client and of the
// base (made with the old certificate) are closed. thumbprint is called
// on every request: keep it cheap.
func WithBoundCertificate(thumbprint func() string) Option {
	return func(o *options) {
		if thumbprint == nil {
			o.errs = append(o.errs, errors.New("WithBoundCertificate: nil function"))
			return
		}
		o.boundCert = thumbprint
	}
}

// boundTo is the thumbprint of the certificate tok is bound to: its cnf
// claim when it is a JWT that has one, else current's.
func boundTo(tok *oauth2.Token, current func() string) *string {
	x5t := wire.JWTCertThumbprint(tok.AccessToken)
	if x5t == "" {
		x5t = current()
	}
	return &x5t
}
