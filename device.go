package oauthtransport

// The device authorization grant (RFC 8628): a person approves on another
// device, with a user code shown here, while the client polls the token
// endpoint.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"
)

// deviceGrantType is the grant_type of a device access token request.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// devicePollInterval is the interval of a server that announces none
// (RFC 8628 §3.2), and slowDownStep what a slow_down adds to it (§3.5).
const (
	devicePollInterval = 5 * time.Second
	slowDownStep       = 5 * time.Second
)

// DeviceAuthorization returns a Source for the device authorization grant
// (RFC 8628), for a device without a browser or an easy keyboard: a person
// approves the client on another device, with a user code.
//
// Its Token refreshes the grant like [RefreshToken], with the current
// refresh token, and never asks the person: without a refresh token it
// fails. The person is asked by a login, which the Transport runs for a
// caller that is waiting, never in the background, one at a time. A login
// asks cfg.Endpoint.DeviceAuthURL for a device code for cfg.Scopes (a
// confidential client sends its secret, or an assertion with
// [WithPrivateKeyJWT] and kin, in the body), and calls show once with the
// answer: the user code and the verification URIs, which must be http or
// https URLs. show's error fails the login. The login then polls
// cfg.Endpoint.TokenURL, the client authenticated as configured, with the
// resources of [WithResource]: at the interval the server asks for (5
// seconds when it names none), 5 seconds slower after each slow_down,
// until the person decides, the device code expires, or
// [WithLoginTimeout] (5 minutes by default) passes. A refusal
// (access_denied), a device code that expired (expired_token, or its
// expires_in passed) and the timeout fail the login with a [*TokenError]
// matching [ErrAuthorizationDenied].
//
// It spends its refresh token (see [RefreshTokenSpender]). It is safe for
// concurrent use.
func DeviceAuthorization(cfg *oauth2.Config, show func(ctx context.Context, da *oauth2.DeviceAuthResponse) error, opts ...SourceOption) Source {
	return &deviceSource{personGrant: newPersonGrant(cfg, opts), show: show}
}

type deviceSource struct {
	*personGrant
	show func(ctx context.Context, da *oauth2.DeviceAuthResponse) error
}

// errDeviceCodeExpired ends a login whose device code expired (its
// expires_in passed) before the person decided.
var errDeviceCodeExpired = errors.New("the device code expired")

// login asks for a device code, shows it to the person, and polls until
// they decide.
func (s *deviceSource) login(ctx context.Context) (*oauth2.Token, error) {
	ctx, cancel := context.WithTimeout(ctx, s.loginTimeout())
	defer cancel()
	if err := s.misconfigured(); err != nil {
		return nil, err
	}
	if s.show == nil {
		return nil, &TokenError{Err: errors.New("DeviceAuthorization: no show function")}
	}
	da, err := s.authorize(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, loginEnded(ctx, 0)
		}
		return nil, err
	}
	if err := s.show(ctx, da); err != nil {
		if ctx.Err() != nil {
			return nil, loginEnded(ctx, 0)
		}
		return nil, &TokenError{Err: fmt.Errorf("showing the user code: %w", err)}
	}
	return s.poll(ctx, da)
}

// authorize sends the device authorization request (RFC 8628 §3.1) with
// x/oauth2, through the token client.
func (s *deviceSource) authorize(ctx context.Context) (*oauth2.DeviceAuthResponse, error) {
	var opts []oauth2.AuthCodeOption
	var secrets []string
	switch {
	case s.ep.auth != nil:
		a, err := s.ep.auth.assertion(ctx, s.ep.clientID, s.ep.secret, s.ep.url)
		if err != nil {
			return nil, &TokenError{Err: err}
		}
		opts = append(opts, oauth2.SetAuthURLParam("client_assertion_type", clientAssertionType),
			oauth2.SetAuthURLParam("client_assertion", a))
		secrets = append(secrets, a)
	case s.cfg.ClientSecret != "":
		// x/oauth2 sends only the client_id: RFC 8628 §3.1 wants the
		// client authenticated as at the token endpoint.
		opts = append(opts, oauth2.SetAuthURLParam("client_secret", s.cfg.ClientSecret))
	}
	da, err := s.cfg.DeviceAuth(boundTokenContext(ctx), opts...)
	if err != nil {
		err = tokenFailure(err, s.ep.clientID, s.ep.secret, secrets...)
		if _, ok := errors.AsType[*TokenError](err); !ok {
			err = &TokenError{Err: fmt.Errorf("device authorization: %w", err)}
		}
		return nil, err
	}
	if err := checkDeviceAuth(da); err != nil {
		return nil, &TokenError{Err: err}
	}
	return da, nil
}

// boundTokenContext is tokenContext with the token client's requests
// bound to ctx: x/oauth2's DeviceAuth sends its request without it, so
// that nothing else would end a request that hangs.
func boundTokenContext(ctx context.Context) context.Context {
	ctx = tokenContext(ctx)
	c := *ctx.Value(oauth2.HTTPClient).(*http.Client)
	c.Transport = boundTransport{ctx: ctx, base: transportOf(&c)}
	return context.WithValue(ctx, oauth2.HTTPClient, &c)
}

// boundTransport sends every request under its context.
type boundTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t boundTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// checkDeviceAuth refuses a device authorization response without codes,
// or whose verification URIs are not http or https URLs.
func checkDeviceAuth(da *oauth2.DeviceAuthResponse) error {
	switch {
	case da.DeviceCode == "" || da.UserCode == "":
		return errors.New("device authorization: the response has no device_code or no user_code")
	case checkBrowserURL(da.VerificationURI) != nil:
		return fmt.Errorf("device authorization: verification_uri: %w", checkBrowserURL(da.VerificationURI))
	case da.VerificationURIComplete != "" && checkBrowserURL(da.VerificationURIComplete) != nil:
		return fmt.Errorf("device authorization: verification_uri_complete: %w", checkBrowserURL(da.VerificationURIComplete))
	}
	return nil
}

// poll asks the token endpoint for the device code's tokens (RFC 8628
// §3.4, §3.5) every interval until the person decides, the code expires or
// ctx ends.
func (s *deviceSource) poll(ctx context.Context, da *oauth2.DeviceAuthResponse) (*oauth2.Token, error) {
	if !da.Expiry.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadlineCause(ctx, da.Expiry, errDeviceCodeExpired)
		defer cancel()
	}
	interval := time.Duration(da.Interval) * time.Second
	if interval <= 0 {
		interval = devicePollInterval
	}
	grant := url.Values{"grant_type": {deviceGrantType}, "device_code": {da.DeviceCode}}
	wait := time.NewTimer(interval)
	defer wait.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, loginEnded(ctx, 0)
		case <-wait.C:
		}
		tok, err := s.ep.request(ctx, nil, grant, da.DeviceCode)
		switch code := tokenErrorCode(err); {
		case err == nil:
			return tok, nil
		case code == "slow_down":
			interval += slowDownStep
		case code == "authorization_pending":
		case ctx.Err() != nil:
			return nil, loginEnded(ctx, 0)
		default:
			return nil, err
		}
		wait.Reset(interval)
	}
}
