package oauthtransport

import (
	"context"
	"errors"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Source obtains a new token. current is the last token known for this
// transport's store key (nil when there is none); a refresh-token grant reads
// current.RefreshToken. Source is called only by the refresher, always
// under a context that bounds the fetch ([WithRefreshTimeout]); it must not
// keep ctx.
//
// A Source is never called concurrently for one store key within a
// process (on a keyed Transport, for one key), and a shared store's
// [store.Locker] extends that across processes, with one exception: a call
// that outlives the refresh timeout is abandoned, and a Source that spends
// no refresh token (see [RefreshTokenSpender]) may then be called again
// while the abandoned call still runs. A Source that spends one is not
// called again until the abandoned call returns.
type Source interface {
	Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)
}

// SourceFunc adapts a function to a [Source].
type SourceFunc func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)

// Token calls f.
func (f SourceFunc) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	return f(ctx, current)
}

// RefreshTokenSpender is implemented by a [Source] that says whether its
// calls spend a refresh token: present one that the server may rotate, so
// that presenting it again could trip reuse detection and revoke the
// grant. [RefreshToken] spends; [ClientCredentials] and [FromTokenSource]
// do not. A Source that does not implement it is taken to spend one
// whenever the current token has a refresh token.
//
// A Transport sharing a store with other processes never calls a spending
// Source without the store's lock (it keeps using the valid token, then
// fails with a temporary [TokenError]), and never presents a refresh
// token that may already be spent (see [ErrReauthRequired]).
type RefreshTokenSpender interface {
	SpendsRefreshToken() bool
}

// SourceOption configures a built-in Source.
type SourceOption func(*sourceOptions)

type sourceOptions struct {
	grace     time.Duration
	auth      clientAuth // a JWT assertion instead of the client secret
	resources []string   // RFC 8707 resource indicators
	alg       string     // WithAssertionAlgorithm
	errs      []error    // reported by every token request

	issuer  string          // WithIssuer: whose metadata checks iss and names the revocation endpoint
	md      *ServerMetadata // the issuer's metadata, already known (ProtectedResource)
	aud     string          // the audience of client assertions; default: the token endpoint
	timeout time.Duration   // WithLoginTimeout; zero: defaultLoginTimeout
}

// WithRotationGrace declares that the token endpoint accepts a rotated
// refresh token once more for d after rotating it (Ory Hydra's
// rotation_grace_period, Okta's grace period, Auth0's reuse interval).
// A refresh whose answer was lost (the connection dropped after the
// request went out) is then sent once more at once, and a peer's refresh
// that was never saved may be redone within d.
//
// Without it (the default), a refresh token whose answer was lost is
// never presented again: the server may have rotated it, and presenting
// it again would look like theft and revoke the grant. The grant is then
// reported dead ([ErrReauthRequired]); without a grace period it is lost
// either way.
func WithRotationGrace(d time.Duration) SourceOption {
	return func(o *sourceOptions) { o.grace = max(d, 0) }
}

func applySourceOptions(opts []SourceOption) sourceOptions {
	var o sourceOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	if p, ok := o.auth.(*privateKeyJWT); ok {
		p.prepare(o.alg)
	} else if o.alg != "" {
		o.errs = append(o.errs, errors.New("WithAssertionAlgorithm: only with WithPrivateKeyJWT"))
	}
	return o
}

// ClientCredentials returns a Source for the OAuth2 client-credentials grant
// (RFC 6749 §4.4). Every call asks the token endpoint for a new token; the
// [Transport] caches it. The token request never follows a redirect to
// another origin, since it carries the client secret. It spends no
// refresh token. With cfg.AuthStyle left to auto-detection, the client is
// authenticated in the header, then in the body if the server refused
// that; when both fail the first answer is reported. Without a client
// secret (tls_client_auth through [WithTokenClient], a public client), the
// client_id goes in the body and no Basic header is sent.
func ClientCredentials(cfg *clientcredentials.Config, opts ...SourceOption) Source {
	o := applySourceOptions(opts)
	ep := newEndpoint(cfg.ClientID, cfg.ClientSecret, cfg.TokenURL, cfg.AuthStyle, o)
	for k, v := range cfg.EndpointParams {
		ep.params[k] = append(ep.params[k], v...)
	}
	return &clientCredentials{cfg: cfg, o: o, ep: ep}
}

type clientCredentials struct {
	cfg *clientcredentials.Config
	o   sourceOptions
	ep  endpoint
}

func (s *clientCredentials) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	return s.ep.request(ctx, s.cfg.Scopes, nil)
}

// SpendsRefreshToken reports false: client credentials spend nothing.
func (s *clientCredentials) SpendsRefreshToken() bool { return false }

// RefreshToken returns a Source for the refresh-token grant (RFC 6749 §6).
// It refreshes with current.RefreshToken, or initial's when the store holds
// nothing yet. When the server rotates the refresh token, the new one is in
// the returned token and the Transport saves it to the store before using
// the new access token; when the response has no refresh token, the old one
// is kept. If initial holds a still valid access token, it is used first
// without a request. The token request never follows a redirect to another
// origin.
//
// It spends its refresh token (see [RefreshTokenSpender]). A request whose
// answer was lost is not sent again unless [WithRotationGrace] says the
// server allows it. With cfg's AuthStyle left to auto-detection, the
// client is authenticated in the header, then in the body only if the
// server refused the client (which spends no refresh token); when both
// fail the first answer is reported.
func RefreshToken(cfg *oauth2.Config, initial *oauth2.Token, opts ...SourceOption) Source {
	o := applySourceOptions(opts)
	return &refreshTokenSource{cfg: cfg, initial: initial, o: o, ep: newEndpoint(cfg.ClientID, cfg.ClientSecret,
		cfg.Endpoint.TokenURL, cfg.Endpoint.AuthStyle, o)}
}

type refreshTokenSource struct {
	cfg     *oauth2.Config
	initial *oauth2.Token
	o       sourceOptions
	ep      endpoint
}

func (s *refreshTokenSource) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	if current == nil && s.initial != nil && s.initial.AccessToken != "" && s.initial.Valid() {
		c := *s.initial
		return &c, nil
	}
	rt := ""
	if current != nil {
		rt = current.RefreshToken
	}
	if rt == "" && s.initial != nil {
		rt = s.initial.RefreshToken
	}
	if rt == "" {
		return nil, &TokenError{Code: "invalid_grant", Err: errors.New("no refresh token to refresh with"), reauth: true}
	}
	tok, err := s.refresh(ctx, rt)
	if errors.Is(err, errAnswerLost) && s.o.grace > 0 && ctx.Err() == nil {
		tok, err = s.refresh(ctx, rt) // once, within the server's grace period
	}
	if err != nil {
		return nil, err
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = rt
	}
	return tok, nil
}

// refresh sends one refresh request; a failure after the request went
// out, without an answer the server could have sent, wraps errAnswerLost.
func (s *refreshTokenSource) refresh(ctx context.Context, rt string) (*oauth2.Token, error) {
	tok, err := s.ep.request(ctx, nil, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, rt)
	if err != nil {
		if _, answered := answeredStatus(err); !answered && fateOf(err) != fateNotSent && !errors.Is(err, errRedirected) {
			return nil, &lostError{err}
		}
	}
	return tok, err
}

// SpendsRefreshToken reports true.
func (s *refreshTokenSource) SpendsRefreshToken() bool { return true }

func (s *refreshTokenSource) rotationGrace() time.Duration { return s.o.grace }

// authStyleProbe remembers how a token endpoint wants the client
// authenticated, when the configuration leaves that to auto-detection.
type authStyleProbe struct{ found atomic.Int32 }

// request calls send with the configured auth style; when auto-detecting,
// with the client in the header first and then in the body, but only if
// the server refused the client (so that a refresh token is never
// presented twice). When both fail the first answer is returned: it names
// the real cause, the second only the unwanted method.
func (p *authStyleProbe) request(configured oauth2.AuthStyle, send func(oauth2.AuthStyle) (*oauth2.Token, error)) (*oauth2.Token, error) {
	if configured != oauth2.AuthStyleAutoDetect {
		return send(configured)
	}
	if found := oauth2.AuthStyle(p.found.Load()); found != oauth2.AuthStyleAutoDetect {
		return send(found)
	}
	tok, err := send(oauth2.AuthStyleInHeader)
	if err == nil {
		p.found.Store(int32(oauth2.AuthStyleInHeader))
		return tok, nil
	}
	if !clientRefused(err) {
		return nil, err
	}
	tok, second := send(oauth2.AuthStyleInParams)
	if second != nil {
		return nil, err
	}
	p.found.Store(int32(oauth2.AuthStyleInParams))
	return tok, nil
}

// FromTokenSource adapts any x/oauth2 TokenSource. ts.Token takes no
// context, so a fetch cannot be cancelled, and a caching TokenSource (such as
// one from oauth2.ReuseTokenSource) keeps returning the token a server
// rejected until that token expires: the Transport then cannot replace a
// rejected token early. Prefer [ClientCredentials], [RefreshToken] or a
// [SourceFunc] where you can. A fetch that hangs is abandoned after the
// refresh timeout (see [WithRefreshTimeout]). ts keeps its own refresh
// token, so the Transport counts it as spending none.
func FromTokenSource(ts oauth2.TokenSource) Source { return tokenSource{ts} }

type tokenSource struct{ ts oauth2.TokenSource }

func (s tokenSource) Token(context.Context, *oauth2.Token) (*oauth2.Token, error) {
	return s.ts.Token()
}

// SpendsRefreshToken reports false: ts manages its refresh token itself.
func (s tokenSource) SpendsRefreshToken() bool { return false }
