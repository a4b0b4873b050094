package oauthtransport

// Calling the Source (FETCH in refresher.go): what is retried, and what a
// failure says about the refresh token that was presented.

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// fetch calls the Source, retrying failures that are safe to retry: the
// token endpoint answered 5xx or 429, or no connection was made. A
// request whose answer was lost is never retried here. The tokens handed
// to the Source are redacted from what a failure logs and returns: a
// Source's error may quote them.
func (k *credentialCache) fetch(ctx context.Context, base *record) (*oauth2.Token, error) {
	var current *oauth2.Token
	secrets := k.secrets()
	if base != nil {
		current = store.Clone(base.tok)
		secrets = append(secrets, base.tok.AccessToken, base.tok.RefreshToken)
	}
	tok, err := k.fetchRetrying(ctx, current, secrets)
	if err != nil {
		return nil, asTokenError(err).withoutSecrets(secrets...)
	}
	return tok, nil
}

func (k *credentialCache) fetchRetrying(ctx context.Context, current *oauth2.Token, secrets []string) (*oauth2.Token, error) {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(200*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second),
		backoff.WithMaxElapsedTime(0),
	)
	ctx = withTokenClient(ctx, k.env.tokenClient)
	ctx = context.WithValue(ctx, oauth2.HTTPClient, k.env.tokenClient) // for x/oauth2 configs inside a SourceFunc
	return backoff.RetryWithData(func() (*oauth2.Token, error) {
		tok, err := k.src.Token(ctx, store.Clone(current))
		switch {
		case err != nil && ctx.Err() == nil && safeToRetryFetch(err) && asTokenError(err).RetryAfter == 0:
			k.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetch failed; retrying",
				slog.String("error", asTokenError(err).withoutSecrets(secrets...).Error()))
			return nil, err
		case err != nil:
			return nil, backoff.Permanent(err)
		case tok == nil || tok.AccessToken == "":
			return nil, backoff.Permanent(&TokenError{Err: errors.New("the source returned no access token")})
		}
		return tok, nil
	}, backoff.WithContext(backoff.WithMaxRetries(b, 2), ctx))
}

// next makes the record of a token fetched from base: one generation
// newer than any known, the granted lifetime recorded (x/oauth2's
// client-credentials source leaves it out, and a process loading the token
// measures its refresh window against it), the refresh token kept when the
// server sent none.
func (k *credentialCache) next(base *record, tok *oauth2.Token) *record {
	tok = store.Clone(tok)
	if tok.ExpiresIn == 0 && !tok.Expiry.IsZero() {
		tok.ExpiresIn = int64(time.Until(tok.Expiry).Round(time.Second) / time.Second)
	}
	var gen uint64
	if base != nil {
		gen = base.meta.gen
		if tok.RefreshToken == "" {
			tok.RefreshToken = base.tok.RefreshToken
		}
	}
	if s := k.seen.Load(); s != nil {
		gen = max(gen, s.meta.gen)
	}
	return &record{tok: tok, meta: meta{gen: gen + 1, obtained: time.Now().UnixMilli()}}
}

func safeToRetryFetch(err error) bool {
	if code, ok := answeredStatus(err); ok {
		return code >= 500 || code == http.StatusTooManyRequests
	}
	return notSent(err)
}

// answeredStatus returns the status of the token endpoint's error answer.
func answeredStatus(err error) (int, bool) {
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil {
		return re.Response.StatusCode, true
	}
	if te, ok := errors.AsType[*TokenError](err); ok && te.StatusCode != 0 {
		return te.StatusCode, true
	}
	return 0, false
}

// notSent reports failures that happened before a request went out: no
// connection could be made.
func notSent(err error) bool {
	if errors.Is(err, ErrInsecureTransport) {
		return true
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(err, &dns)
}

// errAnswerLost marks a failure of a built-in source after its request
// went out and before an answer could be read: the server may have acted.
var errAnswerLost = errors.New("the token endpoint's answer was lost")

type lostError struct{ err error }

func (e *lostError) Error() string   { return e.err.Error() }
func (e *lostError) Unwrap() []error { return []error{e.err, errAnswerLost} }

// possiblySpent reports whether a failed refresh may have reached the
// server and spent the refresh token: no answer was read, yet the request
// may have gone out. The built-in sources say so precisely; for others a
// failure of the connection or the context counts.
func possiblySpent(err error) bool {
	if errors.Is(err, errAnswerLost) {
		return true
	}
	if _, answered := answeredStatus(err); answered || notSent(err) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}
