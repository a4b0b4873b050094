package oauthtransport

// Revocation of a grant at its server (RFC 7009): the revocation endpoint
// from the issuer's metadata, the client authenticated as at the token
// endpoint, the request sent through the token client.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// revoke revokes tok at the revocation endpoint of the issuer's metadata
// (WithIssuer's, else the one found at the endpoints' origin).
func (g *personGrant) revoke(ctx context.Context, tok *oauth2.Token) error {
	md, err := g.metadata(ctx)
	return g.ep.revokeAt(ctx, md, err, tok)
}

// revoke revokes tok at the revocation endpoint of WithIssuer's metadata;
// without WithIssuer none is known.
func (s *refreshTokenSource) revoke(ctx context.Context, tok *oauth2.Token) error {
	if s.o.issuer == "" {
		return fmt.Errorf("%w: set WithIssuer to name the issuer", errNoRevocationEndpoint)
	}
	md, err := Discover(ctx, s.o.issuer)
	return s.ep.revokeAt(ctx, md, err, tok)
}

// revokeAt revokes tok's refresh token, else its access token, at md's
// revocation endpoint; mdErr is why there is no md.
func (e *endpoint) revokeAt(ctx context.Context, md *ServerMetadata, mdErr error, tok *oauth2.Token) error {
	switch {
	case mdErr != nil:
		return fmt.Errorf("%w: %w", errNoRevocationEndpoint, mdErr)
	case md.RevocationEndpoint == "":
		return fmt.Errorf("%w: the issuer's metadata names none", errNoRevocationEndpoint)
	case tok == nil || tok.RefreshToken == "" && tok.AccessToken == "":
		return errors.New("oauthtransport: revocation: no token to revoke")
	}
	token, hint := tok.RefreshToken, "refresh_token"
	if token == "" {
		token, hint = tok.AccessToken, "access_token"
	}
	req, sent, err := e.revocationRequest(ctx, md.RevocationEndpoint, url.Values{"token": {token}, "token_type_hint": {hint}})
	if err != nil {
		return err
	}
	where := wire.RedactURL(req.URL)
	resp, err := TokenClient(ctx).Do(req)
	if err != nil {
		return fmt.Errorf("oauthtransport: revocation at %s: %w", where, err)
	}
	code, body := wire.OAuthErrorCode(resp)
	_, _ = io.Copy(io.Discard, io.LimitReader(body, wire.MaxDrain))
	_ = body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	if code = cleanCode(code, sent); code != "" {
		code = ": " + code
	}
	return fmt.Errorf("oauthtransport: revocation at %s: the server answered %d%s", where, resp.StatusCode, code)
}

// revocationRequest is the POST of form to where, the client
// authenticated as at the token endpoint (RFC 7009 §2.1), and the forms
// of the secrets it carries.
func (e *endpoint) revocationRequest(ctx context.Context, where string, form url.Values) (*http.Request, []string, error) {
	sent := sentForms(e.clientID, e.secret, form.Get("token"))
	basic := false
	switch {
	case e.auth != nil:
		a, err := e.auth.assertion(ctx, e.clientID, e.secret, e.url)
		if err != nil {
			return nil, nil, fmt.Errorf("oauthtransport: revocation: %w", err)
		}
		form.Set("client_id", e.clientID)
		form.Set("client_assertion_type", clientAssertionType)
		form.Set("client_assertion", a)
		sent = append(sent, a)
	case e.secret != "" && e.revocationStyle() == oauth2.AuthStyleInHeader:
		basic = true
	case e.secret != "":
		form.Set("client_id", e.clientID)
		form.Set("client_secret", e.secret)
	default:
		form.Set("client_id", e.clientID) // a public client
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, where, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, errors.New("oauthtransport: revocation: the metadata's revocation endpoint is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(e.clientID), url.QueryEscape(e.secret))
	}
	return req, sent, nil
}

// revocationStyle is how the client secret goes: as configured, else as
// the token endpoint was found to want it, else in the header.
func (e *endpoint) revocationStyle() oauth2.AuthStyle {
	if e.style != oauth2.AuthStyleAutoDetect {
		return e.style
	}
	if found := oauth2.AuthStyle(e.probe.found.Load()); found != oauth2.AuthStyleAutoDetect {
		return found
	}
	return oauth2.AuthStyleInHeader
}
