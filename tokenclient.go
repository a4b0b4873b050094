package oauthtransport

// The HTTP side of the built-in sources' token requests: the client that
// sends them (no redirect to another origin, no plain http to a remote
// host: a token request carries a client secret or a refresh token), and
// the errors they return, with every secret sent redacted.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// tokenGuard refuses token requests over plain http to a host that is not
// loopback, unless the Transport allows it (WithInsecureHTTP).
type tokenGuard struct {
	base       http.RoundTripper
	insecureOK bool
}

func (g *tokenGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if !g.insecureOK && insecureURL(req.URL) {
		closeBody(req)
		return nil, &insecureError{method: req.Method, url: wire.RedactURL(req.URL), what: "a client secret or refresh token"}
	}
	return g.base.RoundTrip(req)
}

// CloseIdleConnections forwards to the guarded transport.
func (g *tokenGuard) CloseIdleConnections() {
	if c, ok := g.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// newTokenClient returns the client of a Transport's token requests: c
// (or a default client) with the guards around it, and DPoP proofs when d
// is not nil.
func newTokenClient(c *http.Client, insecureOK bool, d *dpop) *http.Client {
	guarded := http.Client{}
	if c != nil {
		guarded = *c
	}
	base := transportOf(&guarded)
	if d != nil {
		base = &dpopTokenTransport{d: d, base: base}
	}
	guarded.Transport = &tokenGuard{base: base, insecureOK: insecureOK}
	guarded.CheckRedirect = guardRedirects(guarded.CheckRedirect)
	return &guarded
}

// guardRedirects applies the same-origin rule, then the client's own.
func guardRedirects(own func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	if own == nil {
		return sameOriginRedirect
	}
	return func(req *http.Request, via []*http.Request) error {
		if err := sameOriginRedirect(req, via); err != nil {
			return err
		}
		return own(req, via)
	}
}

// TokenClient returns the *http.Client a Source should send its token
// requests with: the Transport's ([WithTokenClient], with its guards) when
// ctx is the one the Transport passed to Source.Token, else a default
// client with the same guards. The built-in sources use it; so can a
// SourceFunc.
func TokenClient(ctx context.Context) *http.Client {
	if c, ok := ctx.Value(tokenClientKey{}).(*http.Client); ok && c != nil {
		return c
	}
	return defaultTokenClient
}

// defaultTokenClient serves the built-in sources outside a Transport.
var defaultTokenClient = newTokenClient(nil, false, nil)

// tokenClientKey carries a Transport's token client to its Source.
type tokenClientKey struct{}

// withTokenClient is how the refresher hands its token client to the
// built-in sources, whose Token method takes only a context: x/oauth2
// reads its HTTP client from one.
func withTokenClient(ctx context.Context, c *http.Client) context.Context {
	return context.WithValue(ctx, tokenClientKey{}, c)
}

// sourceContext is the context a Source is called with: the Transport's
// token client (for the built-in sources, and under oauth2.HTTPClient for
// x/oauth2 configs inside a SourceFunc), its logger and refresh timeout
// (which bounds ProtectedResource's chain, also within a login), and the
// store where ProtectedResource keeps client registrations.
func sourceContext(ctx context.Context, e *env) context.Context {
	ctx = withTokenClient(ctx, e.tokenClient)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, e.tokenClient)
	ctx = context.WithValue(ctx, loggerKey{}, e.log)
	ctx = context.WithValue(ctx, chainTimeoutKey{}, e.opts.refreshTimeout)
	ctx = context.WithValue(ctx, dpopOnKey{}, e.opts.dpop != nil)
	return withRegistry(ctx, registry{s: e.store, prefix: e.opts.key})
}

// tokenContext hands x/oauth2 the client for a token request: the
// Transport's, else the default one. A client already put in ctx under
// oauth2.HTTPClient is used with the same guards added.
func tokenContext(ctx context.Context) context.Context {
	if c, ok := ctx.Value(tokenClientKey{}).(*http.Client); ok && c != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, c)
	}
	if user, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && user != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, newTokenClient(user, false, nil))
	}
	return context.WithValue(ctx, oauth2.HTTPClient, defaultTokenClient)
}

func transportOf(c *http.Client) http.RoundTripper {
	if c.Transport != nil {
		return c.Transport
	}
	return http.DefaultTransport
}

// errRedirected is a token request whose redirect was not followed.
var errRedirected = errors.New("oauthtransport: token endpoint redirected to another origin; not following")

func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("oauthtransport: token endpoint: too many redirects")
	}
	if !sameOrigin(req.URL, via[0].URL) {
		return errRedirected
	}
	return nil
}

// tokenFailure turns the error of a token request into a *TokenError that
// holds none of the secrets sent, in any form they took (see sentForms):
// every member of the answer (error, error_description, error_uri, the
// body) is redacted, then error and error_description are made one line
// and bounded; the response keeps neither its request (which carries the
// client's credentials) nor its body.
func tokenFailure(err error, clientID, clientSecret string, secrets ...string) error {
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	if !ok {
		return err
	}
	sent := sentForms(clientID, clientSecret, secrets...)
	clean := &oauth2.RetrieveError{ErrorCode: cleanCode(re.ErrorCode, sent), ErrorURI: wire.Redact(re.ErrorURI, sent...),
		ErrorDescription: wire.Redact(re.ErrorDescription, sent...), Body: wire.RedactBytes(re.Body, sent...)}
	te := &TokenError{Code: clean.ErrorCode, Description: wire.OneLine(clean.ErrorDescription, 300), Err: clean}
	if re.Response != nil {
		r := *re.Response
		r.Request, r.Body = nil, http.NoBody
		clean.Response = &r
		te.StatusCode = r.StatusCode
		te.RetryAfter = tokenRetryAfter(&r)
	}
	return te
}

// maxCodeBytes bounds a token endpoint's error code in a TokenError.
const maxCodeBytes = 100

// cleanCode is a token endpoint's error code with the forms sent redacted,
// on one line, bounded.
func cleanCode(code string, sent []string) string {
	if registeredCodes[code] {
		return code
	}
	return wire.OneLine(wire.Redact(code, sent...), maxCodeBytes)
}

// tokenRetryAfter is the token endpoint's hint on a 429 or 503.
func tokenRetryAfter(resp *http.Response) time.Duration {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0
	}
	d, _ := wire.RetryHint(resp.Header, time.Now())
	return d
}
