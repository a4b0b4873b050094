package oauthtransport

// One token request of a built-in source, for any grant: the grant's
// parameters, the client authenticated as configured (a secret in the
// header or the body, or a JWT assertion), sent with x/oauth2 through the
// Transport's token client (which adds DPoP proofs when asked).

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// endpoint is a token endpoint and how the client authenticates to it.
type endpoint struct {
	clientID, secret, url string
	aud                   string           // of client assertions: o.aud, else url
	style                 oauth2.AuthStyle // as configured; AutoDetect probes
	probe                 *authStyleProbe
	params                url.Values // sent with every request (EndpointParams, resource)
	auth                  clientAuth // nil: the client secret, as style says
	errs                  error      // a misused SourceOption
}

// newEndpoint is the endpoint of a built-in source's config and options.
func newEndpoint(clientID, secret, tokenURL string, style oauth2.AuthStyle, o sourceOptions) endpoint {
	params := url.Values{}
	for _, r := range o.resources {
		params.Add("resource", r)
	}
	if secret == "" && o.auth == nil && style == oauth2.AuthStyleAutoDetect {
		style = oauth2.AuthStyleInParams // no secret (tls_client_auth, a public client): client_id in the body, no Basic header
	}
	aud := o.aud
	if aud == "" {
		aud = tokenURL
	}
	return endpoint{clientID: clientID, secret: secret, url: tokenURL, aud: aud, style: style, probe: &authStyleProbe{},
		auth: o.auth, params: params, errs: errors.Join(o.errs...)}
}

// request sends one token request. grant holds the grant's parameters
// (grant_type, refresh_token, ...; none for client credentials); secrets
// are redacted from the error, with the client's own. A 400
// use_dpop_nonce (RFC 9449 §8) is answered once with a new request: its
// proof carries the nonce, and its client assertion is a fresh one (a
// server refuses an assertion ID it has seen).
func (e *endpoint) request(ctx context.Context, scopes []string, grant url.Values, secrets ...string) (*oauth2.Token, error) {
	if e.errs != nil {
		return nil, &TokenError{Err: e.errs}
	}
	v := make(url.Values, len(e.params)+len(grant)+2)
	for k, vs := range e.params {
		v[k] = vs
	}
	for k, vs := range grant {
		v[k] = vs
	}
	if claims := RequestedClaims(ctx); claims != "" {
		v.Set("claims", claims)
	}
	ctx = context.WithValue(ctx, ownNonceRetryKey{}, true) // dpopTokenTransport leaves the retry to us
	tok, err := e.attempt(ctx, scopes, v, secrets)
	if nonceDemanded(err) {
		tok, err = e.attempt(ctx, scopes, v, secrets)
	}
	return tok, err
}

// attempt builds and sends one token request, with a fresh client
// assertion when the client authenticates with one.
func (e *endpoint) attempt(ctx context.Context, scopes []string, v url.Values, secrets []string) (*oauth2.Token, error) {
	if e.auth != nil {
		a, err := e.auth.assertion(ctx, e.clientID, e.secret, e.aud)
		if err != nil {
			return nil, &TokenError{Err: err}
		}
		v.Set("client_assertion_type", clientAssertionType)
		v.Set("client_assertion", a)
		tok, err := e.send(ctx, "", oauth2.AuthStyleInParams, scopes, v)
		return tok, tokenFailure(err, e.clientID, e.secret, append(secrets, a)...)
	}
	return e.probe.request(e.style, func(style oauth2.AuthStyle) (*oauth2.Token, error) {
		tok, err := e.send(ctx, e.secret, style, scopes, v)
		return tok, tokenFailure(err, e.clientID, e.secret, secrets...)
	})
}

// nonceDemanded reports a token endpoint's 400 use_dpop_nonce that came
// with a nonce to use.
func nonceDemanded(err error) bool {
	re, ok := errors.AsType[*oauth2.RetrieveError](err)
	return ok && re.Response != nil && re.Response.StatusCode == http.StatusBadRequest &&
		re.ErrorCode == "use_dpop_nonce" && re.Response.Header.Get("DPoP-Nonce") != ""
}

// send is one request: x/oauth2's client-credentials request with the
// grant type and parameters overridden (it allows grant_type to be).
func (e *endpoint) send(ctx context.Context, secret string, style oauth2.AuthStyle, scopes []string, v url.Values) (*oauth2.Token, error) {
	c := &clientcredentials.Config{ClientID: e.clientID, ClientSecret: secret, TokenURL: e.url, Scopes: scopes,
		EndpointParams: v, AuthStyle: style}
	return c.Token(tokenContext(ctx))
}
