package oauthtransport

// ProtectedResource's Source: the chain it runs on first use and when a
// challenge asks (resourcemeta.go, registration.go), the grant it then
// runs, and what challenges ask of it.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport/internal/wire"
	"github.com/oauthtransport/oauthtransport/store"
)

// protectedResource is a ProtectedResource whose grant needs no person
// (client credentials, the enterprise-managed flow); personResource adds
// the login of the authorization code grant.
type protectedResource struct {
	resource string
	client   ClientConfig
	opts     []SourceOption // the caller's, passed on to the grant
	mu       sync.Mutex     // guards what follows: FollowChallenge runs concurrently with Token
	sess     *session       // the chain as last run; nil before the first use
	named    string         // a challenge's resource_metadata that sess did not come from
	asked    []string       // the scopes challenges asked for
	stepUp   bool           // a 403 asked for more scopes: the next token must have them (a person's: a login)
	issued   [32]byte       // a hash of the last access token obtained
	heard    bool           // a challenge came: no more requests without a token (challengeFirst)
	empty    bool           // the store was found without a token for the key (challengeFirst)
	ids      map[string]identity
}

// session is the chain as it was run: the resource's lead, its server's
// metadata, the client there, the scopes asked, and the grant.
type session struct {
	lead   *lead
	md     *ServerMetadata
	id     identity
	scopes []string
	grant  Source
}

// personResource is a ProtectedResource a person logs in to; grace and
// timeout are its options' WithRotationGrace and WithLoginTimeout.
type personResource struct {
	*protectedResource
	grace, timeout time.Duration
}

// The interfaces they implement.
var (
	_ ChallengeFollower = (*protectedResource)(nil)
	_ ChallengeFollower = personResource{}
	_ interactive       = personResource{}
	_ revoker           = personResource{}
)

func newProtectedResource(resourceURL string, client *ClientConfig, opts []SourceOption) Source {
	p := &protectedResource{resource: resourceURL, opts: opts, ids: make(map[string]identity)}
	if client != nil {
		p.client = *client
	}
	if p.person() {
		o := applySourceOptions(opts)
		r := personResource{protectedResource: p, grace: o.grace, timeout: o.timeout}
		if r.timeout <= 0 {
			r.timeout = defaultLoginTimeout
		}
		return r
	}
	return p
}

// person reports whether the grant is a person's (the authorization code).
func (p *protectedResource) person() bool { return p.client.Enterprise == nil && p.client.Open != nil }

// grantType is the grant the client runs, as a registration names it.
func (p *protectedResource) grantType() string {
	switch {
	case p.client.Enterprise != nil:
		return "urn:ietf:params:oauth:grant-type:jwt-bearer"
	case p.person():
		return "authorization_code"
	}
	return "client_credentials"
}

// maxScopes bounds the scopes a resource's challenges may make a client
// ask for: step-ups stop there.
const maxScopes = 64

// Token obtains a token with the grant of the current chain (running it
// first when needed). It spends no refresh token.
func (p *protectedResource) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	s, err := p.session(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := s.grant.Token(ctx, nil)
	if err != nil && (clientRejected(err) || scopeRefused(err)) && s.id.Dynamic {
		if s, err = p.registerAgain(ctx, s); err != nil {
			return nil, err
		}
		tok, err = s.grant.Token(ctx, nil)
	}
	return p.obtained(s, tok, err, true)
}

// obtained records a token obtained under s (tagged with where it came
// from): the one the next challenges are measured against, and, for a
// token asked for with s's scopes (not a refresh of an older grant), the
// end of a step-up that s asked for.
func (p *protectedResource) obtained(s *session, tok *oauth2.Token, err error, asked bool) (*oauth2.Token, error) {
	if err != nil || tok == nil {
		return nil, err
	}
	p.mu.Lock()
	p.issued = sha256.Sum256([]byte(tok.AccessToken))
	p.stepUp = p.stepUp && !(asked && subset(p.asked, s.scopes))
	p.mu.Unlock()
	return s.tag(tok), nil
}

// SpendsRefreshToken reports false.
func (p *protectedResource) SpendsRefreshToken() bool { return false }

func (p *protectedResource) storeScope() string { return resourceScope([]string{p.resource}) }

// FollowChallenge records what a 401 or a 403 insufficient_scope asks for:
// another resource metadata document, more scopes (see insufficientScope).
func (p *protectedResource) FollowChallenge(c *ResourceChallenge) bool {
	bearer := pickBearer(c.Challenges)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.heard = true
	if m := bearer.Params["resource_metadata"]; m != "" && (p.sess == nil || m != p.sess.lead.from) {
		p.named = m
	}
	switch {
	case bearer.Error == "insufficient_user_authentication":
		return false // a step-up of the authentication (RFC 9470): not a new token's to answer
	case c.StatusCode == 403 || bearer.Error == "insufficient_scope":
		return p.insufficientScope(c, bearer)
	}
	scopes := strings.Fields(bearer.Scope)
	if all := p.union(scopes); len(all) <= maxScopes && len(all) > len(p.union(nil)) {
		p.asked = all
		// Scopes beyond a grant's: a refresh keeps the grant's, so the next
		// token is asked for (a person logs in again).
		p.stepUp = p.stepUp || p.sess != nil
	}
	return c.StatusCode == 401
}

// insufficientScope answers a 403 insufficient_scope (under p.mu): scopes
// not asked for yet start a step-up (at most maxScopes in all); scopes
// asked for already are followed only by a request whose token is older
// than the step-up that asked for them (it gets the newer token): the
// newest token refused for them is final, so a resource that keeps
// refusing gets one step-up, not a loop.
func (p *protectedResource) insufficientScope(c *ResourceChallenge, bearer Challenge) bool {
	scopes := strings.Fields(bearer.Scope)
	if bearer.Error != "insufficient_scope" || len(scopes) == 0 {
		return false
	}
	all := p.union(scopes)
	switch {
	case len(all) > maxScopes:
		return false
	case len(all) > len(p.union(nil)):
		p.asked, p.stepUp = union(p.asked, scopes), true
		return true
	}
	return p.stepUp || (c.Token != nil && sha256.Sum256([]byte(c.Token.AccessToken)) != p.issued)
}

// challengeFirst reports that no challenge came yet, no chain ran and the
// store holds no token (looked at once): the Transport sends the request
// without a token, and its 401 says where the resource's metadata is and
// which scopes to ask for.
func (p *protectedResource) challengeFirst(stored func() bool) bool {
	p.mu.Lock()
	first, looked := !p.heard && p.sess == nil, p.empty
	p.mu.Unlock()
	if !first || looked {
		return first
	}
	if stored() {
		return false
	}
	p.mu.Lock()
	p.empty = true
	p.mu.Unlock()
	return true
}

// union is the scopes asked so far (by the chain and by challenges) and
// more; under p.mu.
func (p *protectedResource) union(more []string) []string {
	var all []string
	if p.sess != nil {
		all = p.sess.scopes
	}
	return union(union(all, p.asked), more)
}

// session returns the chain to use: the last one, with the scopes
// challenges asked for since, or a new run when there is none or a
// challenge named other metadata.
func (p *protectedResource) session(ctx context.Context) (*session, error) {
	p.mu.Lock()
	s, named, asked := p.sess, p.named, slices.Clone(p.asked)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, chainTimeout(ctx))
	defer cancel()
	switch {
	case s != nil && named == "" && s.id.Dynamic && s.id.expired():
		scopes := union(s.scopes, asked)
		id, err := p.identify(ctx, s.md, false, scopes) // the registration's secret expired: a new one
		if err != nil {
			return nil, notPresented(err)
		}
		s = p.build(s.lead, s.md, id, scopes)
	case s != nil && named == "" && subset(asked, s.scopes):
		return s, nil
	case s != nil && named == "":
		s = p.build(s.lead, s.md, s.id, union(s.scopes, asked))
	default:
		var err error
		if s, err = p.run(ctx, named, asked); err != nil {
			return nil, notPresented(err)
		}
	}
	p.mu.Lock()
	p.sess = s
	if p.named == named {
		p.named = ""
	}
	p.mu.Unlock()
	return s, nil
}

// run follows the resource's lead to a grant: its metadata, its server's,
// the client there, and the scopes.
func (p *protectedResource) run(ctx context.Context, named string, asked []string) (*session, error) {
	ld, err := findLead(ctx, p.resource, named)
	if err != nil {
		return nil, err
	}
	if ld.dpop && !dpopOn(ctx) {
		return nil, refused(docResource, ld.from, "it accepts DPoP-bound access tokens only (dpop_bound_access_tokens_required): add WithDPoP to the Transport")
	}
	md, err := discoverServer(ctx, p.pickServer(ld.servers), ld.from == "")
	if err != nil {
		return nil, err
	}
	if p.person() && !supportsS256(md) {
		return nil, refused(docServer, md.Issuer, "it does not list PKCE S256 in code_challenge_methods_supported")
	}
	scopes := p.scopesFor(ld, md, asked)
	id, err := p.identify(ctx, md, false, scopes)
	if err != nil {
		return nil, err
	}
	s := p.build(ld, md, id, scopes)
	loggerOf(ctx).LogAttrs(ctx, slog.LevelDebug, "oauthtransport: following the resource's lead",
		slog.String("resource", wire.ScrubURLs(ld.resource)), slog.String("metadata", wire.ScrubURLs(ld.from)), slog.String("issuer", md.Issuer),
		slog.String("client_id", id.ClientID), slog.String("grant", p.grantType()), slog.String("scope", strings.Join(s.scopes, " ")))
	return s, nil
}

// pickServer is the first authorization server the client is registered
// at, else the first listed.
func (p *protectedResource) pickServer(servers []string) string {
	for _, s := range servers {
		if _, ok := p.client.Registered[s]; ok {
			return s
		}
	}
	return servers[0]
}

// scopesFor is what to ask for: the challenge's scopes, else the
// resource's scopes_supported, else none; offline_access for a person's
// grant when the server lists it.
func (p *protectedResource) scopesFor(ld *lead, md *ServerMetadata, asked []string) []string {
	scopes := asked
	if len(scopes) == 0 {
		scopes = slices.Clone(ld.scopes)
	}
	if p.person() && slices.Contains(md.ScopesSupported, "offline_access") && !slices.Contains(scopes, "offline_access") {
		scopes = append(scopes, "offline_access")
	}
	return scopes
}

// identify returns the client at md's issuer: registered beforehand, a
// Client ID Metadata Document, a registration kept, or a new one (always
// a new one when fresh).
func (p *protectedResource) identify(ctx context.Context, md *ServerMetadata, fresh bool, scopes []string) (identity, error) {
	c, ok := p.client.Registered[md.Issuer]
	if !ok {
		c, ok = p.client.Registered[""]
	}
	switch {
	case ok:
		return registered(c, p.client.RedirectURL), nil
	case p.client.MetadataDocument != "" && md.Raw["client_id_metadata_document_supported"] == true:
		return identity{ClientID: p.client.MetadataDocument, Method: "none", Redirect: p.client.RedirectURL}, nil
	case p.client.NoRegistration:
		return identity{}, refused(docRegistration, md.Issuer, "no client is registered for this issuer, and ClientConfig.NoRegistration forbids registering one")
	}
	reg, kept := registryOf(ctx)
	if !kept {
		reg = registry{s: store.NewMemory()} // this Source's alone
	}
	reg.grant = p.grantType()
	unlock, err := reg.lock(ctx, md.Issuer)
	if err != nil {
		return identity{}, err
	}
	defer unlock()
	if id, ok := p.kept(ctx, reg, md.Issuer, fresh); ok {
		return id, nil
	}
	return p.register(ctx, md, reg, kept, scopes)
}

// kept is the registration kept for issuer, looked for (with the lock
// held) in memory, then in the store, where a peer may have put a newer
// one. fresh: the one in use was refused; only another one will do.
func (p *protectedResource) kept(ctx context.Context, reg registry, issuer string, fresh bool) (identity, bool) {
	p.mu.Lock()
	mine, ok := p.ids[issuer]
	p.mu.Unlock()
	if ok && !fresh && !mine.expired() {
		return mine, true
	}
	stored, found := reg.load(ctx, issuer)
	if !found || stored.expired() || (ok && stored.ClientID == mine.ClientID) {
		return identity{}, false // none, or the one refused or expired: register
	}
	p.mu.Lock()
	p.ids[issuer] = stored
	p.mu.Unlock()
	return stored, true
}

// register registers the client dynamically and keeps the registration.
func (p *protectedResource) register(ctx context.Context, md *ServerMetadata, reg registry, kept bool, scopes []string) (identity, error) {
	redirect := p.client.RedirectURL
	if redirect == "" && p.person() {
		var err error
		if redirect, err = loopbackRedirect(); err != nil {
			return identity{}, err
		}
	}
	name := p.client.ClientName
	if name == "" {
		name = "oauthtransport"
	}
	id, err := register(ctx, md, name, redirect, reg.grant, scopes)
	if err != nil {
		return identity{}, err
	}
	loggerOf(ctx).LogAttrs(ctx, slog.LevelDebug, "oauthtransport: registered a client", slog.String("issuer", md.Issuer),
		slog.String("client_id", id.ClientID), slog.String("method", id.Method), slog.String("redirect_uri", id.Redirect))
	p.mu.Lock()
	p.ids[md.Issuer] = id
	p.mu.Unlock()
	if kept {
		_ = reg.save(ctx, md.Issuer, id) // kept in memory all the same
	}
	return id, nil
}

// registerAgain replaces a dynamic registration the server no longer
// accepts (invalid_client), once (or adopts the one a peer made
// meanwhile), and returns the chain with it.
func (p *protectedResource) registerAgain(ctx context.Context, s *session) (*session, error) {
	p.mu.Lock()
	p.ids[s.md.Issuer] = s.id // the refused one: never adopted again
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, chainTimeout(ctx))
	defer cancel()
	id, err := p.identify(ctx, s.md, true, s.scopes)
	if err != nil {
		return nil, notPresented(err)
	}
	s = p.build(s.lead, s.md, id, s.scopes)
	p.mu.Lock()
	p.sess = s
	p.mu.Unlock()
	return s, nil
}

// build makes the grant of a chain.
func (p *protectedResource) build(ld *lead, md *ServerMetadata, id identity, scopes []string) *session {
	s := &session{lead: ld, md: md, id: id, scopes: scopes}
	auth, style := id.authOptions()
	opts := append(append(slices.Clone(p.opts), auth...), WithResource(ld.resource), withAssertionAudience(md.Issuer))
	switch {
	case p.client.Enterprise != nil:
		s.grant = newCrossApp(p.client.Enterprise, md, id, ld.resource, scopes, opts)
	case p.person():
		cfg := &oauth2.Config{ClientID: id.ClientID, ClientSecret: id.Secret, RedirectURL: id.Redirect, Scopes: scopes,
			Endpoint: oauth2.Endpoint{AuthURL: md.AuthorizationEndpoint, TokenURL: md.TokenEndpoint, AuthStyle: style}}
		if _, defaults := md.Raw[legacyMark]; !defaults {
			opts = append(opts, withKnownMetadata(md))
		}
		s.grant = AuthorizationCode(cfg, p.client.Open, opts...)
	default:
		s.grant = ClientCredentials(&clientcredentials.Config{ClientID: id.ClientID, ClientSecret: id.Secret,
			TokenURL: md.TokenEndpoint, Scopes: scopes, AuthStyle: style}, opts...)
	}
	return s
}

// Tags of a token: where it came from.
const (
	issuerTag = store.IssuerKey
	clientTag = store.ClientIDKey
)

// tag records with tok the issuer and client it came from, and the scopes
// asked for when the server did not say which it granted.
func (s *session) tag(tok *oauth2.Token) *oauth2.Token {
	if tok == nil {
		return nil
	}
	raw := map[string]any{issuerTag: s.md.Issuer, clientTag: s.id.ClientID}
	for _, k := range []string{"scope", "id_token", "issued_token_type", "refresh_token_expires_in"} {
		if v := tok.Extra(k); v != nil && v != "" {
			raw[k] = v
		}
	}
	if _, ok := raw["scope"]; !ok && len(s.scopes) > 0 {
		raw["scope"] = strings.Join(s.scopes, " ")
	}
	return store.Clone(tok).WithExtra(raw)
}

// owns reports whether tok came from this chain's issuer and client.
func (s *session) owns(tok *oauth2.Token) bool {
	return tok != nil && tok.Extra(issuerTag) == s.md.Issuer && tok.Extra(clientTag) == s.id.ClientID
}

// Token refreshes the person's grant, when the current token came from
// this chain's issuer and client and has a refresh token; otherwise the
// person must log in again (a *TokenError matching ErrReauthRequired,
// before anything is sent).
func (r personResource) Token(ctx context.Context, current *oauth2.Token) (*oauth2.Token, error) {
	s, err := r.session(ctx)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	stepUp := r.stepUp
	r.mu.Unlock()
	if !s.owns(current) || current.RefreshToken == "" || stepUp {
		return nil, notPresented(reauthError(errors.New("the grant is for another server or client, or lacks scopes a resource asked for: a person must log in")))
	}
	tok, err := s.grant.Token(ctx, current)
	if err != nil && clientRejected(err) && s.id.Dynamic {
		if _, rerr := r.registerAgain(ctx, s); rerr != nil {
			return nil, rerr
		}
		return nil, reauthError(errors.New("the client's registration was refused and made again: a person must log in"))
	}
	return r.obtained(s, tok, err, false)
}

// SpendsRefreshToken reports true: refreshes present the grant's refresh
// token.
func (r personResource) SpendsRefreshToken() bool { return true }

func (r personResource) rotationGrace() time.Duration { return r.grace }

// login runs the chain if needed and asks the person. A dynamic
// registration whose redirect port another program took (found before
// the person is asked), or for which the server refuses the scopes asked
// (invalid_scope: it registered fewer), is replaced once, registering
// every scope asked.
func (r personResource) login(ctx context.Context) (*oauth2.Token, error) {
	s, err := r.session(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := r.loginAs(ctx, s)
	if s.id.Dynamic && (scopeRefused(err) || errors.Is(err, errCannotListen) && r.client.RedirectURL == "") {
		if s, err = r.registerAgain(ctx, s); err != nil {
			return nil, err
		}
		tok, err = r.loginAs(ctx, s)
	}
	if err != nil && clientRejected(err) && s.id.Dynamic {
		_, _ = r.registerAgain(ctx, s) // the next login uses the new registration
	}
	return r.obtained(s, tok, err, true)
}

// loginAs asks the person under s, one login at a time on a fixed
// redirect port (a kept registration's).
func (r personResource) loginAs(ctx context.Context, s *session) (*oauth2.Token, error) {
	if s.id.Redirect != "" {
		release, err := loggingIn.hold(ctx, s.id.Redirect)
		if err != nil {
			return nil, &TokenError{Err: fmt.Errorf("waiting for another login on %s: %w", s.id.Redirect, err)}
		}
		defer release()
	}
	return s.grant.(interactive).login(ctx)
}

func (r personResource) loginTimeout() time.Duration { return r.timeout }

// wantsLogin reports whether the next token must come from the person:
// a 403 asked for scopes the person has not granted (a refresh keeps the
// grant's), or current is from another issuer or client. It does no I/O.
func (r personResource) wantsLogin(current *oauth2.Token) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if current == nil || current.AccessToken == "" {
		return false
	}
	return r.stepUp || (r.sess != nil && !r.sess.owns(current))
}

// revoke revokes the grant at the revocation endpoint of the chain's
// server (running the chain first after a restart).
func (r personResource) revoke(ctx context.Context, tok *oauth2.Token) error {
	s, err := r.session(ctx)
	if err != nil {
		return err
	}
	return s.grant.(revoker).revoke(ctx, tok)
}

func subset(a, b []string) bool {
	for _, s := range a {
		if !slices.Contains(b, s) {
			return false
		}
	}
	return true
}

// union is a and what of b is not in a, in order.
func union(a, b []string) []string {
	all := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(all, s) {
			all = append(all, s)
		}
	}
	return all
}

// scopeRefused reports an invalid_scope (from the authorization or the
// token endpoint): a server may let a dynamic client ask only for the
// scopes it registered, so a step-up registers again with them all.
func scopeRefused(err error) bool {
	te, ok := errors.AsType[*TokenError](err)
	return ok && te.Code == "invalid_scope"
}

// clientRejected reports a token endpoint's invalid_client.
func clientRejected(err error) bool {
	te, ok := errors.AsType[*TokenError](err)
	return ok && te.Code == "invalid_client"
}

func pickBearer(cs []Challenge) Challenge {
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, "Bearer") {
			return c
		}
	}
	return Challenge{}
}
