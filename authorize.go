package oauthtransport

import (
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// authorizer puts a credential on each attempt of a request and decides
// what a 401 to it means. Bearer tokens (and any WithAuthorization
// header) are today's one kind; a scheme that signs each request (DPoP)
// is another.
type authorizer interface {
	// authorize returns the request to send: a shallow copy of req with
	// body and c's credentials. req is never modified.
	authorize(req *http.Request, body io.ReadCloser, c *credential) (*http.Request, error)
	// rejected says what to do after a 401 to a request sent with c.
	rejected(resp *http.Response, c *credential) onReject
	// observe sees every response, to the request out that was sent.
	observe(out *http.Request, resp *http.Response)
}

// onReject is what a 401 calls for.
type onReject int

const (
	rejectFinal  onReject = iota // a new token cannot help: return the 401
	rejectRenew                  // drop the token, get a new one, replay once
	rejectResign                 // keep the token, sign again, replay once
	rejectClaims                 // drop the token, get one with the claims asked for, replay once
)

// headerAuthorizer sends the credential's Authorization value as it is.
type headerAuthorizer struct{}

func (headerAuthorizer) authorize(req *http.Request, body io.ReadCloser, c *credential) (*http.Request, error) {
	return withAuth(req, body, c.auth, c.bareHeader()), nil
}

func (headerAuthorizer) observe(*http.Request, *http.Response) {}

// rejected renews the token unless the server's challenges name only
// other schemes than ours, or ask for a step-up or more scope: then a
// fresh token cannot help.
func (headerAuthorizer) rejected(resp *http.Response, c *credential) onReject {
	challenges := wire.ParseChallenges(resp.Header.Values("Www-Authenticate"))
	switch {
	case !wire.OffersScheme(challenges, c.scheme()) || wire.RefreshCannotHelp(challenges):
		return rejectFinal
	case hasClaims(challenges):
		return rejectClaims
	}
	return rejectRenew
}

// withAuth returns a shallow copy of req with body and the Authorization
// header auth. The header map is new; its values are shared with req's,
// which neither we nor a RoundTripper modify.
func withAuth(req *http.Request, body io.ReadCloser, auth []string, bare http.Header) *http.Request {
	r := new(http.Request)
	*r = *req
	r.Body = body
	if len(req.Header) == 0 {
		r.Header = bare // shared, never modified: see credentialTimers
		if bare == nil {
			r.Header = http.Header{"Authorization": auth}
		}
		return r
	}
	h := maps.Clone(req.Header) // copies small maps wholesale, no rehashing
	for k := range h {
		if len(k) == len("Authorization") && k != "Authorization" && strings.EqualFold(k, "Authorization") {
			delete(h, k) // a non-canonical spelling would be sent as a second header
		}
	}
	h["Authorization"] = auth
	r.Header = h
	return r
}

func hasClaims(challenges []Challenge) bool {
	_, ok := wire.Claims(challenges)
	return ok
}
