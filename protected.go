package oauthtransport

// A protected resource that names its authorization server (RFC 9728; the
// MCP authorization profile): the Source that follows the resource's lead
// from its challenge to a token, and what the Transport tells it.

import (
	"context"
	"crypto"
	"net/http"

	"golang.org/x/oauth2"
)

// ProtectedResource returns a Source for a resource the program may never
// have seen before, such as an MCP server: on its first use, and whenever
// the resource's challenges ask for it, it runs the whole chain the MCP
// authorization specification (2025-11-25) describes, then behaves as the
// grant it ran (refresh, rotation, the store protocol, dead grants).
//
// As MCP clients do, a Transport sends the first request for a resource
// without a token (when its body can be sent again): the resource's 401
// says where its metadata is and which scopes to ask for. Then the chain:
//
//  1. The resource's metadata (RFC 9728): from the resource_metadata of
//     the 401 challenge, else /.well-known/oauth-protected-resource with
//     resourceURL's path, then without it. Its resource must name
//     resourceURL: the same origin, and a path that is resourceURL's path
//     or a whole-segment prefix of it. A resource that accepts DPoP-bound
//     tokens only (dpop_bound_access_tokens_required) needs [WithDPoP].
//     A resource that publishes no
//     metadata (the MCP 2025-03-26 servers) is its own authorization
//     server, at its origin.
//  2. The authorization server's metadata: RFC 8414, then OpenID
//     discovery, in the MCP order (path-aware); its issuer must be the
//     one named exactly. The authorization code grant refuses a server
//     that does not list S256 in code_challenge_methods_supported. A
//     2025-03-26 server publishes its metadata at its origin, where the
//     issuer it names may have a path; without metadata it gets
//     /authorize, /token and /register at its origin. Client assertions
//     (private_key_jwt) name the issuer as their audience.
//  3. A client identity for that issuer (see [ClientConfig]).
//  4. A token for the resource (RFC 8707 resource on every authorization
//     and token request), with the scopes of the challenge, else the
//     resource metadata's scopes_supported, else none; with
//     offline_access added for a person's grant when the server lists it.
//
// A 401 and a 403 insufficient_scope are handed to it by the Transport
// (see [ChallengeFollower]): a 403 insufficient_scope asks for the union
// of the scopes asked before and the challenged ones, a person's grant
// asks the person again, and the request is sent once more. A 403 for
// scopes all asked for already is final (a *[ForbiddenError]) when the
// refused token is the newest (a request that carried an older one gets
// the newer), so a resource that keeps refusing gets one step-up, not a
// loop. A 401 asking for scopes beyond the grant's asks for them too.
//
// Untrusted metadata is bounded: documents of at most 1 MiB, each request
// within 10 seconds and the whole chain (metadata, registration) within
// the refresh timeout, also during a login; https only (http on loopback), no
// redirect to another origin, and no URL but http(s) ever handed to
// [ClientConfig].Open. Each refusal is a *[MetadataError] inside the
// *[TokenError] the callers get.
//
// Tokens are kept under the Transport's store key and "#resource:" with
// a hash of resourceURL, tagged with the issuer and client they came
// from: a token from another issuer or client is never refreshed, and a
// person's grant asks the person again. One Transport holds tokens for
// several resources as a keyed one: NewKeyed with a ProtectedResource per
// key, and [WithKey] naming the resource on each request.
//
// opts are [SourceOption]s of the grant it runs: [WithRotationGrace],
// [WithLoginTimeout]. It is safe for concurrent use.
func ProtectedResource(resourceURL string, client *ClientConfig, opts ...SourceOption) Source {
	return newProtectedResource(resourceURL, client, opts)
}

// ClientConfig says who the client is at the authorization servers that
// protected resources name, and which grant it runs there.
//
// The client identity at an issuer, first that applies: the client in
// Registered for that issuer (else under ""), a Client ID Metadata
// Document (MetadataDocument, when the server's metadata says
// client_id_metadata_document_supported), else dynamic client
// registration (RFC 7591) unless NoRegistration. A dynamic registration
// is kept in the Transport's store, by issuer and grant, made once at a
// time per issuer (across processes with a store.Locker), and made again
// when the server answers invalid_client (once), when its secret expired,
// or when the loopback port it registered is taken by another program.
//
// The grant: the enterprise-managed flow when Enterprise is set, else the
// authorization code grant with PKCE when Open is set (a person logs in),
// else client credentials (a machine client; it needs a registered client
// with a secret or a key).
type ClientConfig struct {
	// Registered holds clients registered beforehand, by issuer exactly as
	// its metadata states it; under "" a client for any issuer that has
	// none of its own.
	Registered map[string]RegisteredClient
	// MetadataDocument is the https URL of the client's Client ID
	// Metadata Document: its client_id at servers that support them, a
	// public client (no secret). Set RedirectURL to a redirect URI the
	// document lists.
	MetadataDocument string
	// ClientName is the client_name of a dynamic registration ("" :
	// "oauthtransport").
	ClientName string
	// NoRegistration forbids dynamic registration: an issuer with no
	// other identity fails with a *MetadataError.
	NoRegistration bool

	// Open shows the person the authorization URL (see
	// [AuthorizationCode]): [OpenBrowser], or a function that prints it.
	Open func(ctx context.Context, authURL string) error
	// RedirectURL is the loopback redirect URI (see [AuthorizationCode]).
	// Empty: http://127.0.0.1:PORT/callback on a port free when the client
	// is first registered, the same for every login.
	RedirectURL string

	// Enterprise, when set, runs the enterprise-managed flow (cross-app
	// access) instead of a login.
	Enterprise *EnterpriseIdP
}

// RegisteredClient is a client registered beforehand at one
// authorization server.
type RegisteredClient struct {
	ClientID     string
	ClientSecret string // empty for a public client or with Key
	// AuthMethod is the token_endpoint_auth_method: client_secret_basic
	// (the default with a secret), client_secret_post, private_key_jwt
	// (the default with a Key), or none (the default otherwise).
	AuthMethod string
	// Key signs RFC 7523 client assertions (private_key_jwt); KeyID is
	// their kid, Algorithm their alg (by default from the key type).
	Key       crypto.Signer
	KeyID     string
	Algorithm string
}

// EnterpriseIdP is the enterprise identity provider of the
// enterprise-managed flow (cross-app access): the person's ID token there
// is exchanged (RFC 8693) for an identity assertion grant (ID-JAG) for
// the resource's authorization server, which the client presents there
// with the JWT-bearer grant (RFC 7523), authenticated as its registered
// client.
type EnterpriseIdP struct {
	// TokenURL is the identity provider's token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client at the identity
	// provider (client_secret_basic; none when ClientSecret is empty).
	ClientID     string
	ClientSecret string
	// IDToken returns the person's ID token at the identity provider.
	IDToken func(ctx context.Context) (string, error)
}

// ChallengeFollower is a [Source] that follows what a resource's
// challenges ask for: [ProtectedResource] is one. The Transport hands it
// the first 401, and the first 403, that a request gets (a request is
// sent at most twice for them); when FollowChallenge returns true, the
// Transport drops the token the request carried and sends the request
// once more with a token from the Source's next Token (or login).
// Otherwise the response is final, as without it.
//
// FollowChallenge is called concurrently, from the request's goroutine:
// it must not block (record what the challenge asks for; do the work in
// Token). A panic in it is contained and counts as false.
type ChallengeFollower interface {
	Source
	FollowChallenge(c *ResourceChallenge) bool
}

// ResourceChallenge is a 401 or 403 response as a [ChallengeFollower]
// sees it.
type ResourceChallenge struct {
	// StatusCode is 401 or 403.
	StatusCode int
	// URL is the request's URL without userinfo, query or fragment.
	URL string
	// Header is the response's header (read only).
	Header http.Header
	// Challenges are its WWW-Authenticate challenges.
	Challenges []Challenge
	// Token is a copy of the token the request carried; nil for a request
	// sent without one.
	Token *oauth2.Token
}

// MetadataError is a refusal of what a protected resource or its
// authorization server published (RFC 9728, RFC 8414, a client
// registration): a document too large, not JSON, naming another resource
// or issuer, a URL that is not https (http on loopback) or not http(s) at
// all, a redirect to another origin, a server without PKCE S256. It comes
// inside a *[TokenError]; nothing was sent to the server it names.
type MetadataError struct {
	// Document is what was refused: "protected resource metadata",
	// "authorization server metadata" or "client registration".
	Document string
	// URL is where it came from, without query or userinfo.
	URL string
	// Reason says why, without any secret.
	Reason string
}

// Error says which document was refused, from where and why, in one line
// without secrets.
func (e *MetadataError) Error() string {
	if e.URL == "" {
		return "oauthtransport: " + e.Document + " refused: " + e.Reason
	}
	return "oauthtransport: " + e.Document + " from " + e.URL + " refused: " + e.Reason
}
