package oauthtransport

// The authorization code grant with PKCE, as a native app runs it (RFC
// 6749 §4.1, RFC 7636, RFC 8252): the person logs in in a browser, which
// the server sends back to a listener on loopback with a code.

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"golang.org/x/oauth2"
)

// AuthorizationCode returns a Source for the authorization code grant
// with PKCE (RFC 6749 §4.1, RFC 7636), as a native app runs it (RFC 8252):
// a person logs in in their browser and authorizes the client.
//
// Its Token refreshes the grant like [RefreshToken], with the current
// refresh token, and never asks the person: without a refresh token it
// fails. The person is asked by a login, which the Transport runs for a
// caller that is waiting, never in the background, one at a time. A login
// listens on loopback for the redirect, then calls open with the
// authorization URL ([OpenBrowser], or a function that shows the URL);
// open should return once the browser was asked, without waiting for the
// person, and its error fails the login. The authorization endpoint
// (cfg.Endpoint.AuthURL) must be https, or http on loopback: any other
// URL is refused before open is called. The authorization request asks
// for cfg.Scopes and the resources of [WithResource], with an S256 PKCE
// challenge and a random state. A login lasts at most [WithLoginTimeout]
// (5 minutes by default).
//
// The listener is on 127.0.0.1 (on [::1] when cfg.RedirectURL names it;
// for localhost, on 127.0.0.1 with the redirect URI kept as configured),
// at the port and path of cfg.RedirectURL, on a free port when it names
// none, and at http://127.0.0.1:PORT/callback when it is empty; a port in
// use fails the login. It lives only during the login. It answers 404 on
// another path and 400 to a redirect without the login's state, and the
// login goes on; the first redirect with the state ends it. When the
// issuer's metadata is found (see [WithIssuer]), the redirect's iss (RFC
// 9207) must name the issuer, and must be present when the metadata says
// the server sends it. A refusal by the server fails the login with a
// [*TokenError] holding its error code (access_denied matches
// [ErrAuthorizationDenied]). The code is exchanged at
// cfg.Endpoint.TokenURL with the client authenticated as configured: its
// secret, an assertion ([WithPrivateKeyJWT] and kin), or only its client
// ID for a public client.
//
// It spends its refresh token (see [RefreshTokenSpender]). Token is safe
// for concurrent use; two logins may run at once only on different ports.
func AuthorizationCode(cfg *oauth2.Config, open func(ctx context.Context, authURL string) error, opts ...SourceOption) Source {
	return &authCodeSource{personGrant: newPersonGrant(cfg, opts), open: open}
}

type authCodeSource struct {
	*personGrant
	open func(ctx context.Context, authURL string) error
}

// login asks the person to authorize the client in a browser and
// exchanges the code the redirect brings back.
func (s *authCodeSource) login(ctx context.Context) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.loginTimeout())
	defer cancel()
	if err := s.ready(); err != nil {
		return nil, &TokenError{Err: err}
	}
	state, verifier := randomID(), oauth2.GenerateVerifier()
	l, err := listenLoopback(s.cfg.RedirectURL, state, s.issuerCheck(ctx))
	if err != nil {
		return nil, &TokenError{Err: err}
	}
	defer l.close()
	authURL := s.authURL(l.uri, state, verifier)
	if err := checkBrowserURL(authURL); err != nil {
		return nil, &TokenError{Err: err}
	}
	if err := s.open(ctx, authURL); err != nil {
		if r, answered := l.answered(); answered && r.err != nil {
			return nil, r.err // the server's refusal reached the listener before open returned
		}
		if ctx.Err() != nil {
			return nil, loginEnded(ctx, l.refused.Load())
		}
		return nil, &TokenError{Err: fmt.Errorf("opening the authorization URL: %w", err)}
	}
	code, err := l.wait(ctx)
	if err != nil {
		return nil, err
	}
	grant := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {l.uri}, "code_verifier": {verifier}}
	tok, err := s.ep.request(ctx, nil, grant, code, verifier)
	if err != nil && ctx.Err() != nil {
		return nil, loginEnded(ctx, 0)
	}
	return tok, err
}

// ready reports what would make a login fail whatever the person does.
func (s *authCodeSource) ready() error {
	if err := s.misconfigured(); err != nil {
		return err
	}
	if s.open == nil {
		return errors.New("AuthorizationCode: no open function")
	}
	return checkAuthorizationEndpoint(s.cfg.Endpoint.AuthURL)
}

// checkAuthorizationEndpoint refuses an authorization endpoint that is
// not https (http only on loopback), naming its scheme at most.
func checkAuthorizationEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return errors.New("oauthtransport: the config has no authorization endpoint (Endpoint.AuthURL)")
	case err != nil:
		return errors.New("oauthtransport: the authorization endpoint is not a valid URL")
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && u.Host != "" && !insecureURL(u):
		return nil
	case u.Scheme == "http" && u.Host != "":
		return errors.New("oauthtransport: the authorization endpoint is plain http to a host that is not loopback; it must be https")
	}
	return fmt.Errorf("oauthtransport: the authorization endpoint is a %q URL without a host or with another scheme; it must be https (http only on loopback)", u.Scheme)
}

// authURL is the authorization request: cfg's client and scopes, the
// redirect URI listened on, the state, the S256 challenge of verifier,
// and the resources.
func (s *authCodeSource) authURL(redirect, state, verifier string) string {
	c := *s.cfg
	c.RedirectURL = redirect
	authURL := c.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier))
	if len(s.o.resources) > 0 {
		authURL += "&" + url.Values{"resource": s.o.resources}.Encode() // AuthCodeURL always ends with a query
	}
	return authURL
}
