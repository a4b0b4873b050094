package oauthtransport

import (
	"context"
	"errors"
	"net/http"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Source obtains a new token. current is the last token known for this
// transport's store key (nil when there is none); a refresh-token grant reads
// current.RefreshToken. Source is called only by the refresher, never
// concurrently for the same Transport, and always under a context that
// bounds the fetch; it must not keep ctx.
type Source interface {
	Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)
}

// SourceFunc adapts a function to a [Source].
type SourceFunc func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error)

// Token calls f.
func (f SourceFunc) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	return f(ctx, current)
}

// ClientCredentials returns a Source for the OAuth2 client-credentials grant
// (RFC 6749 §4.4). Every call asks the token endpoint for a new token; the
// [Transport] caches it. The token request never follows a redirect to
// another origin, since it carries the client secret.
func ClientCredentials(cfg *clientcredentials.Config) Source {
	return SourceFunc(func(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
		return cfg.Token(tokenContext(ctx))
	})
}

// RefreshToken returns a Source for the refresh-token grant (RFC 6749 §6).
// It refreshes with current.RefreshToken, or initial's when the store holds
// nothing yet. When the server rotates the refresh token, the new one is in
// the returned token and the Transport saves it to the store before using
// the new access token; when the response has no refresh token, the old one
// is kept. If initial holds a still valid access token, it is used first
// without a request. The token request never follows a redirect to another
// origin.
func RefreshToken(cfg *oauth2.Config, initial *oauth2.Token) Source {
	return SourceFunc(func(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
		if current == nil && initial != nil && initial.AccessToken != "" && initial.Valid() {
			c := *initial
			return &c, nil
		}
		rt := ""
		if current != nil {
			rt = current.RefreshToken
		}
		if rt == "" && initial != nil {
			rt = initial.RefreshToken
		}
		if rt == "" {
			return nil, &TokenError{Code: "invalid_grant", Err: errors.New("no refresh token to refresh with")}
		}
		tok, err := cfg.TokenSource(tokenContext(ctx), &oauth2.Token{RefreshToken: rt}).Token()
		if err != nil {
			return nil, err
		}
		if tok.RefreshToken == "" {
			tok.RefreshToken = rt
		}
		return tok, nil
	})
}

// FromTokenSource adapts any x/oauth2 TokenSource. ts.Token takes no
// context, so a fetch cannot be cancelled, and a caching TokenSource (such as
// one from oauth2.ReuseTokenSource) keeps returning the token a server
// rejected until that token expires: the Transport then cannot replace a
// rejected token early. Prefer [ClientCredentials], [RefreshToken] or a
// [SourceFunc] where you can.
func FromTokenSource(ts oauth2.TokenSource) Source {
	return SourceFunc(func(context.Context, *oauth2.Token) (*oauth2.Token, error) {
		return ts.Token()
	})
}

// tokenClient sends token requests. It refuses redirects to another origin:
// a token request carries a client secret or a refresh token.
var tokenClient = &http.Client{
	Transport:     http.DefaultTransport,
	CheckRedirect: sameOriginRedirect,
}

// tokenContext hands tokenClient to x/oauth2, which reads its HTTP client
// from the context. This is the only context value the package sets.
func tokenContext(ctx context.Context) context.Context {
	if _, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok {
		return ctx
	}
	return context.WithValue(ctx, oauth2.HTTPClient, tokenClient)
}

func sameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("oauthtransport: token endpoint: too many redirects")
	}
	if !sameOrigin(req.URL, via[0].URL) {
		return errors.New("oauthtransport: token endpoint redirected to another origin; not following")
	}
	return nil
}
