package oauthtransport

// What the grants a person authorizes share (AuthorizationCode,
// DeviceAuthorization): their options, the refresh of a grant once a
// person gave it, the issuer's metadata, and the interfaces through which
// the refresh protocol asks for a login and Revoke revokes.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// interactive is a Source that obtains a grant from a person. The refresh
// protocol calls login only for a waiting caller (never in the background
// or the keep-alive), one login at a time per key (across processes with a
// store.Locker), under a context bounded by loginTimeout.
type interactive interface {
	login(ctx context.Context) (*oauth2.Token, error)
	loginTimeout() time.Duration
}

// revoker is a Source whose grant can be revoked at the server (RFC 7009).
type revoker interface {
	// revoke revokes tok's refresh token, else its access token; it returns
	// errNoRevocationEndpoint when none is known.
	revoke(ctx context.Context, tok *oauth2.Token) error
}

// The built-in sources that implement them.
var (
	_ interactive = (*authCodeSource)(nil)
	_ interactive = (*deviceSource)(nil)
	_ revoker     = (*authCodeSource)(nil)
	_ revoker     = (*deviceSource)(nil)
	_ revoker     = (*refreshTokenSource)(nil)
)

// errNoRevocationEndpoint is a revoker that knows no revocation endpoint
// for its grant: the server cannot be told.
var errNoRevocationEndpoint = errors.New("oauthtransport: no revocation endpoint is known; the server was not told")

// errLoginNeeded is an interactive Source's Token without a refresh
// token: only its login may ask the person for a grant.
var errLoginNeeded = errors.New("oauthtransport: no refresh token to refresh with; a person must log in")

// defaultLoginTimeout is how long a person may take by default.
const defaultLoginTimeout = 5 * time.Minute

// WithIssuer names the authorization server that issues the grant by its
// issuer identifier, an https URL (http only on loopback). Its metadata,
// found as [Discover] finds it (OpenID Connect discovery, else RFC 8414),
// gives the issuer that the iss of an authorization response (RFC 9207)
// must name in [AuthorizationCode], and the revocation endpoint (RFC 7009)
// of [AuthorizationCode], [DeviceAuthorization] and [RefreshToken].
//
// Without it, AuthorizationCode and DeviceAuthorization look for the
// metadata at the origin of cfg.Endpoint.AuthURL (else TokenURL), and
// RefreshToken knows no revocation endpoint. When no metadata is found, a
// login still works: an iss that is present is then compared with issuer
// when WithIssuer gave one, and not checked otherwise. The metadata is
// fetched through the token client ([TokenClient]). Other sources ignore
// this option.
func WithIssuer(issuer string) SourceOption {
	return func(o *sourceOptions) { o.issuer = issuer }
}

// withKnownMetadata hands a person's grant the issuer's metadata that
// ProtectedResource found: it is not discovered again.
func withKnownMetadata(md *ServerMetadata) SourceOption {
	return func(o *sourceOptions) { o.md, o.issuer = md, md.Issuer }
}

// withAssertionAudience makes client assertions name the issuer as
// their audience (RFC 7523bis, FAPI 2.0) rather than the token endpoint:
// ProtectedResource knows it.
func withAssertionAudience(issuer string) SourceOption {
	return func(o *sourceOptions) { o.aud = issuer }
}

// WithLoginTimeout bounds how long a person may take to log in with
// [AuthorizationCode] or [DeviceAuthorization]: from the start of the
// login until its token is obtained. The default is 5 minutes, and
// [WithRefreshTimeout] does not bound a login. A login that runs out of
// time fails with a [*TokenError] matching [ErrAuthorizationDenied]. A d
// that is not positive is an error, reported when the Source is used.
// Other sources ignore this option.
func WithLoginTimeout(d time.Duration) SourceOption {
	return func(o *sourceOptions) {
		if d <= 0 {
			o.errs = append(o.errs, fmt.Errorf("WithLoginTimeout: %v is not a positive duration", d))
			return
		}
		o.timeout = d
	}
}

// personGrant is what both interactive sources share: the config, the
// options, the token endpoint, and the refresh of the grant a person gave.
type personGrant struct {
	cfg *oauth2.Config
	o   sourceOptions
	ep  endpoint
	rt  refreshTokenSource // refreshes with the current refresh token
}

func newPersonGrant(cfg *oauth2.Config, opts []SourceOption) *personGrant {
	o := applySourceOptions(opts)
	if cfg == nil {
		cfg = &oauth2.Config{}
		o.errs = append(o.errs, errors.New("no oauth2.Config"))
	}
	ep := newEndpoint(cfg.ClientID, cfg.ClientSecret, cfg.Endpoint.TokenURL, cfg.Endpoint.AuthStyle, o)
	return &personGrant{cfg: cfg, o: o, ep: ep, rt: refreshTokenSource{cfg: cfg, o: o, ep: ep}}
}

// Token refreshes the grant with current.RefreshToken, as [RefreshToken]
// does. Without a refresh token it never asks the person: it returns a
// *TokenError wrapping errLoginNeeded.
func (g *personGrant) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	if current == nil || current.RefreshToken == "" {
		return nil, &TokenError{Err: errLoginNeeded}
	}
	return g.rt.Token(ctx, current)
}

// SpendsRefreshToken reports true: refreshes present the grant's refresh
// token, which the server may rotate.
func (g *personGrant) SpendsRefreshToken() bool { return true }

func (g *personGrant) rotationGrace() time.Duration { return g.o.grace }

func (g *personGrant) loginTimeout() time.Duration {
	if g.o.timeout > 0 {
		return g.o.timeout
	}
	return defaultLoginTimeout
}

// misconfigured is what the options or the config got wrong, checked
// before a person is asked (a token request would report it only after).
func (g *personGrant) misconfigured() error {
	if g.ep.errs != nil {
		return &TokenError{Err: g.ep.errs}
	}
	return nil
}

// metadata returns the issuer's metadata: WithIssuer's issuer, else the
// origin of the authorization (else token) endpoint; an error when none
// was found.
func (g *personGrant) metadata(ctx context.Context) (*ServerMetadata, error) {
	if g.o.md != nil {
		return g.o.md, nil
	}
	issuer := g.o.issuer
	if issuer == "" {
		issuer = originOfURL(g.cfg.Endpoint.AuthURL)
		if issuer == "" {
			issuer = originOfURL(g.cfg.Endpoint.TokenURL)
		}
	}
	if issuer == "" {
		return nil, errors.New("oauthtransport: no issuer to discover: set WithIssuer or the config's endpoint")
	}
	return Discover(ctx, issuer)
}

// originOfURL is the origin of an absolute URL (scheme://host[:port]),
// empty when raw is not one.
func originOfURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return string(appendOrigin(nil, u))
}

// issuerCheck is what the iss of an authorization response (RFC 9207) is
// checked against.
type issuerCheck struct {
	issuer   string // the issuer iss must name; empty: an iss is not checked
	required bool   // the metadata says the server sends iss: a missing one is refused
}

// issuerCheck returns the check of this login: the metadata's issuer
// and whether it sends iss, else WithIssuer's issuer when a present iss
// is to be checked without metadata.
func (g *personGrant) issuerCheck(ctx context.Context) issuerCheck {
	md, err := g.metadata(ctx)
	if err != nil {
		return issuerCheck{issuer: g.o.issuer}
	}
	sends, _ := md.Raw["authorization_response_iss_parameter_supported"].(bool)
	return issuerCheck{issuer: md.Issuer, required: sends}
}

// verify checks the iss of an authorization response's query.
func (c issuerCheck) verify(q url.Values) error {
	iss, present := q["iss"]
	switch {
	case !present && c.required:
		return errors.New("the authorization response has no iss, which the issuer's metadata says it sends (RFC 9207); refused")
	case present && c.issuer != "" && (len(iss) != 1 || iss[0] != c.issuer):
		return fmt.Errorf("the authorization response names another issuer than %s (RFC 9207 iss): a mix-up; refused", c.issuer)
	}
	return nil
}

// loginEnded is the error of a login whose context ended: a login that
// ran out of time (ErrAuthorizationDenied), else one its caller
// abandoned. refused counts the requests to the redirect URI without the
// right state, worth knowing when the person never came back.
func loginEnded(ctx context.Context, refused int64) error {
	cause := context.Cause(ctx)
	if refused > 0 {
		cause = fmt.Errorf("%w (%d requests to the redirect URI refused: no or wrong state)", cause, refused)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &TokenError{Err: cause, denied: true}
	}
	return &TokenError{Err: fmt.Errorf("the login was abandoned: %w", cause)}
}

// tokenErrorCode is the token endpoint's error code in err, if any.
func tokenErrorCode(err error) string {
	if te, ok := errors.AsType[*TokenError](err); ok {
		return te.Code
	}
	return ""
}
