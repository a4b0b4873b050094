package oauthtransport

// The enterprise-managed flow of a protected resource (cross-app access,
// MCP's SEP-990): the person's ID token at the enterprise identity
// provider is exchanged there (RFC 8693) for an identity assertion grant
// (ID-JAG) for the resource's authorization server, which the client
// presents at that server with the JWT-bearer grant (RFC 7523).

import (
	"context"
	"errors"

	"golang.org/x/oauth2"
)

// TokenTypeIDJAG is the token type of an identity assertion grant
// (ID-JAG), asked for by the enterprise-managed flow's token exchange.
const TokenTypeIDJAG = "urn:ietf:params:oauth:token-type:id-jag"

// crossApp is the enterprise-managed flow at one authorization server.
type crossApp struct {
	exchange Source // at the identity provider: ID token → ID-JAG
	bearer   Source // at the resource's server: ID-JAG → access token
}

func newCrossApp(idp *EnterpriseIdP, md *ServerMetadata, id identity, resource string, scopes []string, opts []SourceOption) *crossApp {
	c := &crossApp{}
	c.exchange = TokenExchange(&TokenExchangeConfig{ClientID: idp.ClientID, ClientSecret: idp.ClientSecret, TokenURL: idp.TokenURL,
		SubjectToken: func(ctx context.Context) (string, string, error) {
			if idp.IDToken == nil {
				return "", "", errors.New("EnterpriseIdP has no IDToken function")
			}
			tok, err := idp.IDToken(ctx)
			return tok, TokenTypeIDToken, err
		},
		RequestedTokenType: TokenTypeIDJAG, Audience: []string{md.Issuer}, Resource: []string{resource}, Scopes: scopes})
	_, style := id.authOptions() // opts authenticate the client as id
	c.bearer = JWTBearer(&JWTBearerConfig{ClientID: id.ClientID, ClientSecret: id.Secret, TokenURL: md.TokenEndpoint, AuthStyle: style,
		Scopes: scopes, Assertion: c.assertion}, opts...)
	return c
}

// assertion is the ID-JAG the identity provider issues for this request.
func (c *crossApp) assertion(ctx context.Context) (string, error) {
	tok, err := c.exchange.Token(ctx, nil)
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

func (c *crossApp) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	return c.bearer.Token(ctx, nil)
}
