package oauthtransport

// Grants that carry a token or an assertion from elsewhere: token
// exchange (RFC 8693) and the JWT-bearer grant (RFC 7523 §2.1).

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// Token type identifiers of RFC 8693 §3, for subject, actor and requested
// token types.
const (
	TokenTypeAccessToken  = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	TokenTypeIDToken      = "urn:ietf:params:oauth:token-type:id_token"
	TokenTypeJWT          = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeSAML2        = "urn:ietf:params:oauth:token-type:saml2"
)

// TokenExchangeConfig configures a token exchange (RFC 8693): the
// client trades a token it holds (the subject, and optionally an actor's)
// for another, for an audience or resource.
type TokenExchangeConfig struct {
	ClientID     string
	ClientSecret string           // empty with an assertion (WithPrivateKeyJWT, ...) or a public client
	TokenURL     string           // the authorization server's token endpoint
	AuthStyle    oauth2.AuthStyle // how ClientSecret is sent; auto-detected by default

	// SubjectToken returns the token to exchange and its type
	// (TokenTypeAccessToken when empty), for each exchange: the user's
	// token, on whose behalf the new one acts. On a keyed Transport,
	// NewKeyed's sources function builds one per key, so the key can be the
	// subject (on-behalf-of). A workload's own identity fits through
	// [AssertionFunc.OfType]: AssertionFromFile(path).OfType(TokenTypeJWT).
	SubjectToken func(ctx context.Context) (token, tokenType string, err error)
	// ActorToken, when set, returns the acting party's token and type
	// (delegation, RFC 8693 §1.1).
	ActorToken func(ctx context.Context) (token, tokenType string, err error)

	RequestedTokenType string   // empty: the server's default, usually an access token
	Audience           []string // logical names of the target services
	Resource           []string // URIs of the target services (RFC 8707)
	Scopes             []string
}

// TokenExchange returns a Source that exchanges cfg.SubjectToken for a new
// token (RFC 8693) each time one is needed; the Transport caches it. The
// subject and actor tokens are redacted from errors and logs. It spends no
// refresh token.
func TokenExchange(cfg *TokenExchangeConfig, opts ...SourceOption) Source {
	o := applySourceOptions(opts)
	o.resources = append(o.resources, cfg.Resource...)
	return &tokenExchange{cfg: cfg, o: o, ep: newEndpoint(cfg.ClientID, cfg.ClientSecret, cfg.TokenURL, cfg.AuthStyle, o)}
}

type tokenExchange struct {
	cfg *TokenExchangeConfig
	o   sourceOptions
	ep  endpoint
}

func (s *tokenExchange) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	if s.cfg.SubjectToken == nil {
		return nil, &TokenError{Err: errors.New("token exchange: no SubjectToken function")}
	}
	v := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}}
	subject, err := exchangeToken(ctx, s.cfg.SubjectToken, "subject", v)
	if err != nil {
		return nil, err
	}
	secrets := []string{subject}
	if s.cfg.ActorToken != nil {
		actor, err := exchangeToken(ctx, s.cfg.ActorToken, "actor", v)
		if err != nil {
			return nil, err
		}
		secrets = append(secrets, actor)
	}
	setAll(v, "requested_token_type", s.cfg.RequestedTokenType)
	setAll(v, "audience", s.cfg.Audience...) // resources: in the endpoint's parameters
	if len(s.cfg.Scopes) > 0 {
		v.Set("scope", strings.Join(s.cfg.Scopes, " "))
	}
	return s.ep.request(ctx, nil, v, secrets...)
}

// exchangeToken puts the token f returns, and its type, in v under role
// ("subject" or "actor").
func exchangeToken(ctx context.Context, f func(context.Context) (string, string, error), role string, v url.Values) (string, error) {
	tok, typ, err := f(ctx)
	if err != nil {
		return "", &TokenError{Err: fmt.Errorf("token exchange: the %s token: %w", role, err)}
	}
	if tok == "" {
		return "", &TokenError{Err: fmt.Errorf("token exchange: the %s token is empty", role)}
	}
	if typ == "" {
		typ = TokenTypeAccessToken
	}
	v.Set(role+"_token", tok)
	v.Set(role+"_token_type", typ)
	return tok, nil
}

func setAll(v url.Values, key string, values ...string) {
	for _, s := range values {
		if s != "" {
			v.Add(key, s)
		}
	}
}

// SpendsRefreshToken reports false: each exchange presents the subject
// token, not a refresh token.
func (s *tokenExchange) SpendsRefreshToken() bool { return false }

// JWTBearerConfig configures the JWT-bearer grant (RFC 7523 §2.1): a JWT
// issued elsewhere (by a workload identity provider, another IdP, a
// signing service) is the grant.
type JWTBearerConfig struct {
	ClientID     string // empty: the assertion alone authenticates
	ClientSecret string
	TokenURL     string
	AuthStyle    oauth2.AuthStyle
	// Assertion returns the JWT to present, for each token request:
	// [AssertionFromFile], [AssertionFromGitHubActions] and
	// [AssertionFromCommand] make one from a workload's identity.
	Assertion func(ctx context.Context) (string, error)
	Scopes    []string
}

// JWTBearer returns a Source for the JWT-bearer grant: each token request
// presents a fresh assertion from cfg.Assertion, which is never logged or
// put in an error. It spends no refresh token.
func JWTBearer(cfg *JWTBearerConfig, opts ...SourceOption) Source {
	o := applySourceOptions(opts)
	style := cfg.AuthStyle
	if cfg.ClientID == "" && o.auth == nil {
		style = oauth2.AuthStyleInParams // no client to authenticate: send nothing for it
	}
	return &jwtBearer{cfg: cfg, o: o, ep: newEndpoint(cfg.ClientID, cfg.ClientSecret, cfg.TokenURL, style, o)}
}

type jwtBearer struct {
	cfg *JWTBearerConfig
	o   sourceOptions
	ep  endpoint
}

func (s *jwtBearer) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	if s.cfg.Assertion == nil {
		return nil, &TokenError{Err: errors.New("JWT bearer: no Assertion function")}
	}
	a, err := s.cfg.Assertion(ctx)
	if err != nil {
		return nil, &TokenError{Err: fmt.Errorf("JWT bearer: the assertion: %w", err)}
	}
	v := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {a}}
	return s.ep.request(ctx, s.cfg.Scopes, v, a)
}

// SpendsRefreshToken reports false.
func (s *jwtBearer) SpendsRefreshToken() bool { return false }
