package oauthtransport

// Who the client is at an authorization server a protected resource
// names: a client registered beforehand, a Client ID Metadata Document,
// or a dynamic registration (RFC 7591), which is kept in the Transport's
// store by issuer.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
	"github.com/oauthtransport/oauthtransport/store"
)

// identity is the client at one issuer.
type identity struct {
	ClientID string        `json:"client_id"`
	Secret   string        `json:"client_secret,omitempty"`
	Method   string        `json:"method"` // token_endpoint_auth_method
	Expires  int64         `json:"expires,omitempty"`
	Redirect string        `json:"redirect_uri,omitempty"`
	Dynamic  bool          `json:"dynamic,omitempty"` // registered here: kept in the store, registered again when refused
	key      crypto.Signer // private_key_jwt
	kid, alg string
}

// expired reports a dynamic registration whose secret has expired.
func (id identity) expired() bool {
	return id.Expires > 0 && time.Now().Unix() >= id.Expires
}

// authOptions are the SourceOptions that authenticate as id, and the
// auth style of its secret.
func (id identity) authOptions() ([]SourceOption, oauth2.AuthStyle) {
	switch id.Method {
	case "private_key_jwt":
		opts := []SourceOption{WithPrivateKeyJWT(id.key, id.kid)}
		if id.alg != "" {
			opts = append(opts, WithAssertionAlgorithm(id.alg))
		}
		return opts, oauth2.AuthStyleInParams
	case "client_secret_post", "none":
		return nil, oauth2.AuthStyleInParams
	}
	return nil, oauth2.AuthStyleInHeader
}

// registered is the identity of a client registered beforehand.
func registered(c RegisteredClient, redirect string) identity {
	id := identity{ClientID: c.ClientID, Secret: c.ClientSecret, Method: c.AuthMethod, Redirect: redirect,
		key: c.Key, kid: c.KeyID, alg: c.Algorithm}
	if id.Method == "" {
		switch {
		case c.Key != nil:
			id.Method = "private_key_jwt"
		case c.ClientSecret != "":
			id.Method = "client_secret_basic"
		default:
			id.Method = "none"
		}
	}
	return id
}

// registry is where dynamic registrations are kept: the Transport's
// store, under its WithStore key and "#client:" with a hash of the issuer
// and the grant (a person's client and a machine's are registered apart).
// A Source used outside a Transport has none.
type registry struct {
	s      store.Store
	prefix string
	grant  string // what the client is registered for: "authorization_code", "client_credentials"
}

type registryKey struct{}

func withRegistry(ctx context.Context, r registry) context.Context {
	return context.WithValue(ctx, registryKey{}, r)
}

type chainTimeoutKey struct{}

// chainTimeout bounds the work of following a resource's lead (metadata,
// registration), a machine's work even within a person's login: the
// Transport's refresh timeout, else defaultRefreshTimeout.
func chainTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(chainTimeoutKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return defaultRefreshTimeout
}

type dpopOnKey struct{}

// dpopOn reports whether the Transport binds its tokens with DPoP
// (WithDPoP); unknown outside a Transport (taken as yes: nothing is
// refused there).
func dpopOn(ctx context.Context) bool {
	on, ok := ctx.Value(dpopOnKey{}).(bool)
	return on || !ok
}

type loggerKey struct{}

// loggerOf is the Transport's logger (WithLogger) in a Source's context;
// one that discards outside a Transport.
func loggerOf(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

func registryOf(ctx context.Context) (registry, bool) {
	r, ok := ctx.Value(registryKey{}).(registry)
	return r, ok && r.s != nil
}

func (r registry) key(issuer string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + r.grant))
	return r.prefix + "#client:" + hex.EncodeToString(sum[:16])
}

// registrationType marks a stored registration.
const registrationType = "oauthtransport-client-registration"

// load returns the registration kept for issuer, if any.
func (r registry) load(ctx context.Context, issuer string) (identity, bool) {
	tok, err := r.s.Load(ctx, r.key(issuer))
	if err != nil || tok == nil || tok.TokenType != registrationType {
		return identity{}, false
	}
	var id identity
	if json.Unmarshal([]byte(tok.AccessToken), &id) != nil || id.ClientID == "" || !id.Dynamic {
		return identity{}, false
	}
	return id, true
}

// save keeps id for issuer; a failure is returned for the log, the
// registration is used all the same.
func (r registry) save(ctx context.Context, issuer string, id identity) error {
	data, err := json.Marshal(id)
	if err != nil {
		return err
	}
	return r.s.Save(ctx, r.key(issuer), &oauth2.Token{AccessToken: string(data), TokenType: registrationType})
}

// register registers a client at the server's registration endpoint
// (RFC 7591) for grant and scopes, with the token endpoint authentication
// the server supports.
func register(ctx context.Context, md *ServerMetadata, name, redirect, grant string, scopes []string) (identity, error) {
	person := grant == "authorization_code"
	endpoint := stringMember(md.Raw, "registration_endpoint")
	if endpoint == "" {
		return identity{}, refused(docRegistration, md.Issuer, "the server offers no registration endpoint, and no client is registered for it")
	}
	method := registrationMethod(md.TokenEndpointAuthMethodsSupported, person)
	body := map[string]any{"client_name": name, "token_endpoint_auth_method": method}
	if len(scopes) > 0 {
		body["scope"] = strings.Join(scopes, " ") // a server may let a client ask only for these (Hydra)
	}
	if person {
		body["redirect_uris"], body["grant_types"], body["response_types"] = []string{redirect}, []string{"authorization_code", "refresh_token"}, []string{"code"}
		body["application_type"] = "native"
	} else {
		// No response_types would mean ["code"] (RFC 7591 §2), for which a
		// server requires redirect URIs.
		body["grant_types"], body["response_types"] = []string{grant}, []string{}
	}
	data, status, err := post(ctx, endpoint, body)
	if _, scoped := body["scope"]; scoped && status == http.StatusBadRequest {
		delete(body, "scope") // a server may refuse scopes it does not know of (oidc-provider's resource scopes)
		data, _, err = post(ctx, endpoint, body)
	}
	if err != nil {
		return identity{}, err
	}
	reg, err := wire.ParseRegistration(data)
	if err != nil {
		return identity{}, refused(docRegistration, endpoint, err.Error())
	}
	id := identity{ClientID: reg.ClientID, Secret: reg.ClientSecret, Method: reg.TokenEndpointAuthMethod,
		Expires: reg.ClientSecretExpiresAt, Redirect: redirect, Dynamic: true}
	if id.Method == "" {
		id.Method = method
	}
	if id.Secret != "" && id.Method == "none" {
		id.Method = "client_secret_basic"
	}
	return id, nil
}

// registrationMethod picks the token endpoint authentication to register:
// none for a person's client when the server takes it (a native app has
// no secret to keep), else client_secret_basic, else client_secret_post.
func registrationMethod(supported []string, person bool) string {
	if len(supported) == 0 {
		if person {
			return "none"
		}
		return "client_secret_basic"
	}
	order := []string{"client_secret_basic", "client_secret_post", "none"}
	if person {
		order = []string{"none", "client_secret_basic", "client_secret_post"}
	}
	for _, m := range order {
		if slices.Contains(supported, m) {
			return m
		}
	}
	return supported[0]
}

// post sends a registration request and returns the answer's body; a
// status other than 201 or 200 is a *MetadataError with the server's
// error code, and that status.
func post(ctx context.Context, endpoint string, body map[string]any) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	data, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(data))
	if err != nil {
		return nil, 0, refused(docRegistration, "", "the registration endpoint is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := TokenClient(ctx).Do(req)
	if err != nil {
		if errors.Is(err, errRedirected) {
			return nil, 0, refused(docRegistration, endpoint, "it redirects to another origin")
		}
		return nil, 0, fmt.Errorf("oauthtransport: client registration at %s: %w", wire.RedactURL(req.URL), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		code, _ := wire.OAuthErrorCode(resp)
		wire.Drain(resp)
		return nil, resp.StatusCode, refused(docRegistration, endpoint, fmt.Sprintf("the server answered %d %s", resp.StatusCode, wire.OneLine(code, 100)))
	}
	answer, err := readDocument(resp.Body, docRegistration, req.URL)
	return answer, resp.StatusCode, err
}

// One at a time within the process: registering a client at one issuer,
// and logging in on one redirect URI (a kept registration fixes its
// port). Waits end with the context; unrelated names never wait for each
// other.
var (
	registering = newNamedLocks()
	loggingIn   = newNamedLocks()
)

// namedLocks are locks by name, each kept while someone holds or waits
// for it.
type namedLocks struct {
	mu sync.Mutex
	m  map[string]*namedLock
}

type namedLock struct {
	held  chan struct{}
	users int // holding or waiting
}

func newNamedLocks() *namedLocks { return &namedLocks{m: make(map[string]*namedLock)} }

// hold waits for name's lock and returns its release.
func (n *namedLocks) hold(ctx context.Context, name string) (func(), error) {
	n.mu.Lock()
	l := n.m[name]
	if l == nil {
		l = &namedLock{held: make(chan struct{}, 1)}
		n.m[name] = l
	}
	l.users++
	n.mu.Unlock()
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; n.leave(name, l) }, nil
	case <-ctx.Done():
		n.leave(name, l)
		return nil, ctx.Err()
	}
}

func (n *namedLocks) leave(name string, l *namedLock) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l.users--; l.users == 0 {
		delete(n.m, name)
	}
}

// lock serializes registering at issuer: within the process, and across
// the processes sharing the store when it is a store.Locker.
func (r registry) lock(ctx context.Context, issuer string) (func(), error) {
	release, err := registering.hold(ctx, r.key(issuer))
	if err != nil {
		return nil, fmt.Errorf("oauthtransport: waiting to register a client: %w", err)
	}
	l, ok := r.s.(store.Locker)
	if !ok {
		return release, nil
	}
	unlock, err := l.Lock(ctx, r.key(issuer), 3*metadataTimeout)
	if err != nil {
		release()
		return nil, fmt.Errorf("oauthtransport: the store's lock for a client registration: %w", err)
	}
	return func() { unlock(); release() }, nil
}

// loopbackRedirect is the redirect URI of a person's login when the
// config names none: on a port free now, kept with the registration.
func loopbackRedirect() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("oauthtransport: finding a free loopback port for the redirect: %w", err)
	}
	defer l.Close()
	return (&url.URL{Scheme: "http", Host: l.Addr().String(), Path: "/callback"}).String(), nil
}
