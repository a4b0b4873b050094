package oauthtransport

// Discovery: an authorization server's metadata (RFC 8414, OpenID Connect
// Discovery 1.0), fetched once an hour per issuer and checked.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// ServerMetadata is what an authorization server publishes about itself.
// Raw holds every member of the document, those not named here included.
// DPoPBoundAccessTokensRequired says the server issues DPoP-bound access
// tokens only: RFC 9728 defines dpop_bound_access_tokens_required for a
// protected resource's metadata, and an authorization server that
// publishes it in its own says the same of its tokens ([WithServerMetadata]
// checks it).
type ServerMetadata struct {
	Issuer                                     string            `json:"issuer"`
	AuthorizationEndpoint                      string            `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                              string            `json:"token_endpoint"`
	JWKSURI                                    string            `json:"jwks_uri,omitempty"`
	RevocationEndpoint                         string            `json:"revocation_endpoint,omitempty"`
	DeviceAuthorizationEndpoint                string            `json:"device_authorization_endpoint,omitempty"`
	IntrospectionEndpoint                      string            `json:"introspection_endpoint,omitempty"`
	PushedAuthorizationRequestEndpoint         string            `json:"pushed_authorization_request_endpoint,omitempty"`
	GrantTypesSupported                        []string          `json:"grant_types_supported,omitempty"`
	ScopesSupported                            []string          `json:"scopes_supported,omitempty"`
	TokenEndpointAuthMethodsSupported          []string          `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgValuesSupported []string          `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	DPoPSigningAlgValuesSupported              []string          `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired              bool              `json:"dpop_bound_access_tokens_required,omitempty"`
	TLSClientCertificateBoundAccessTokens      bool              `json:"tls_client_certificate_bound_access_tokens,omitempty"`
	MTLSEndpointAliases                        map[string]string `json:"mtls_endpoint_aliases,omitempty"`
	Raw                                        map[string]any    `json:"-"`
}

// Endpoint returns the server's endpoints for an oauth2.Config
// (authorization, token, device authorization), with the
// client authentication its metadata prefers: client_secret_basic when
// offered (or when the server lists no method: the RFC 8414 default),
// else client_secret_post.
func (m *ServerMetadata) Endpoint() oauth2.Endpoint {
	ep := oauth2.Endpoint{AuthURL: m.AuthorizationEndpoint, TokenURL: m.TokenEndpoint, DeviceAuthURL: m.DeviceAuthorizationEndpoint}
	methods := m.TokenEndpointAuthMethodsSupported
	switch {
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		ep.AuthStyle = oauth2.AuthStyleInHeader
	case slices.Contains(methods, "client_secret_post"):
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return ep
}

// WithServerMetadata checks the Transport's options against md, what the
// authorization server publishes about itself (see [Discover]), when
// [New] or [NewKeyed] runs, so that a configuration the server refuses
// fails at once rather than at the first token request: a server whose
// metadata says dpop_bound_access_tokens_required issues DPoP-bound
// tokens only, and a Transport without [WithDPoP] fails saying so; a DPoP
// key whose algorithm is not among the server's
// dpop_signing_alg_values_supported (when it lists them) fails too. md is
// copied; nothing is fetched. Without it, nothing is checked.
func WithServerMetadata(md *ServerMetadata) Option {
	return func(o *options) {
		if md == nil {
			o.errs = append(o.errs, errors.New("WithServerMetadata: nil metadata"))
			return
		}
		o.metadata = md.clone()
	}
}

// checkMetadata is WithServerMetadata's check, once every option is in.
func (o *options) checkMetadata() error {
	md := o.metadata
	if md == nil {
		return nil
	}
	issuer := wire.OneLine(wire.ScrubURLs(md.Issuer), 200)
	if md.DPoPBoundAccessTokensRequired && o.dpop == nil {
		return fmt.Errorf("WithServerMetadata: %q issues DPoP-bound access tokens only (dpop_bound_access_tokens_required): "+
			"add WithDPoP with a key (DPoPKeyFromStore keeps one across restarts)", issuer)
	}
	if algs := md.DPoPSigningAlgValuesSupported; o.dpop != nil && len(algs) > 0 && !slices.Contains(algs, o.dpop.signer.alg) {
		return fmt.Errorf("WithServerMetadata: %q accepts DPoP proofs signed with %s, and the WithDPoP key signs with %s",
			issuer, wire.OneLine(strings.Join(algs, ", "), 200), o.dpop.signer.alg)
	}
	return nil
}

// discoveryTTL is how long Discover keeps a server's metadata.
const discoveryTTL = time.Hour

// maxDiscovered bounds how many issuers Discover keeps metadata for.
const maxDiscovered = 100

// maxMetadataBytes bounds a metadata document.
const maxMetadataBytes = 1 << 20

var discovered = struct {
	sync.Mutex
	m map[string]cachedMetadata
}{m: make(map[string]cachedMetadata)}

type cachedMetadata struct {
	md *ServerMetadata // never handed out: callers get copies
	at time.Time
}

// Discover returns the metadata of the authorization server issuer: its
// OpenID Connect discovery document (issuer + /.well-known/openid-configuration),
// else its RFC 8414 one (/.well-known/oauth-authorization-server inserted
// before the issuer's path). The document's issuer must be issuer exactly,
// and its token endpoint an https URL (or http on loopback). Results are
// kept for an hour per issuer, for the 100 issuers fetched last; failures
// are not. Every call returns a copy of its own, which the caller may
// modify. The request uses the client under oauth2.HTTPClient in ctx if
// any, with the redirect and plain-http guards of token requests. It is
// safe for concurrent use.
func Discover(ctx context.Context, issuer string) (*ServerMetadata, error) {
	discovered.Lock()
	c, ok := discovered.m[issuer]
	discovered.Unlock()
	if ok && time.Since(c.at) < discoveryTTL {
		return c.md.clone(), nil
	}
	md, err := discover(ctx, issuer)
	if err != nil {
		return nil, err
	}
	keepMetadata(issuer, md)
	return md.clone(), nil
}

// keepMetadata caches md for issuer, dropping the entries that expired
// and, past maxDiscovered issuers, the oldest.
func keepMetadata(issuer string, md *ServerMetadata) {
	now := time.Now()
	discovered.Lock()
	defer discovered.Unlock()
	for k, c := range discovered.m {
		if now.Sub(c.at) >= discoveryTTL {
			delete(discovered.m, k)
		}
	}
	delete(discovered.m, issuer)
	for len(discovered.m) >= maxDiscovered {
		oldest := ""
		for k, c := range discovered.m {
			if oldest == "" || c.at.Before(discovered.m[oldest].at) {
				oldest = k
			}
		}
		delete(discovered.m, oldest)
	}
	discovered.m[issuer] = cachedMetadata{md: md, at: now}
}

// clone is a deep copy of m: no slice or map is shared (a slice or map
// field added to ServerMetadata must be copied here too).
func (m *ServerMetadata) clone() *ServerMetadata {
	c := *m
	c.GrantTypesSupported = slices.Clone(m.GrantTypesSupported)
	c.ScopesSupported = slices.Clone(m.ScopesSupported)
	c.TokenEndpointAuthMethodsSupported = slices.Clone(m.TokenEndpointAuthMethodsSupported)
	c.TokenEndpointAuthSigningAlgValuesSupported = slices.Clone(m.TokenEndpointAuthSigningAlgValuesSupported)
	c.DPoPSigningAlgValuesSupported = slices.Clone(m.DPoPSigningAlgValuesSupported)
	c.MTLSEndpointAliases = maps.Clone(m.MTLSEndpointAliases)
	c.Raw, _ = cloneJSON(m.Raw).(map[string]any)
	return &c
}

// cloneJSON is a deep copy of a value encoding/json decoded into an any.
func cloneJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		if v == nil {
			return v
		}
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = cloneJSON(e)
		}
		return c
	case []any:
		if v == nil {
			return v
		}
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = cloneJSON(e)
		}
		return c
	}
	return v // string, float64, json.Number, bool, nil: immutable
}

func discover(ctx context.Context, issuer string) (*ServerMetadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Scheme != "https" && !insecureOK(u)) {
		return nil, fmt.Errorf("oauthtransport: discovery: the issuer must be an https URL without userinfo, query or fragment: %q",
			wire.OneLine(wire.ScrubURLs(issuer), 200))
	}
	path := strings.TrimSuffix(u.Path, "/")
	oidc, rfc8414 := *u, *u
	oidc.Path = path + "/.well-known/openid-configuration"
	rfc8414.Path = "/.well-known/oauth-authorization-server" + path
	var errs []error
	for _, where := range []*url.URL{&oidc, &rfc8414} {
		md, err := fetchMetadata(ctx, where.String(), issuer)
		if err == nil {
			return md, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("oauthtransport: discovery of %s: %w", wire.RedactURL(u), errors.Join(errs...))
}

// fetchMetadata gets and checks one metadata document.
func fetchMetadata(ctx context.Context, where, issuer string) (*ServerMetadata, error) {
	client, _ := tokenContext(ctx).Value(oauth2.HTTPClient).(*http.Client)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", where, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadataBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMetadataBytes {
		return nil, fmt.Errorf("GET %s: the document exceeds %d bytes", where, maxMetadataBytes)
	}
	return parseMetadata(data, issuer)
}

// parseMetadata reads a metadata document (untrusted input; fuzzed).
func parseMetadata(data []byte, issuer string) (*ServerMetadata, error) {
	var md ServerMetadata
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("the metadata is not a JSON object of the expected members: %w", err)
	}
	if err := json.Unmarshal(data, &md.Raw); err != nil {
		return nil, err
	}
	if md.Issuer != issuer {
		return nil, fmt.Errorf("the metadata names issuer %q, not %q (RFC 8414 §3.3)", wire.OneLine(md.Issuer, 200), issuer)
	}
	tu, err := url.Parse(md.TokenEndpoint)
	if err != nil || tu.Host == "" || (tu.Scheme != "https" && !insecureOK(tu)) {
		return nil, fmt.Errorf("the metadata's token endpoint %q is not an https URL", wire.OneLine(md.TokenEndpoint, 200))
	}
	return &md, nil
}

// insecureOK allows plain http on loopback, as token requests do.
func insecureOK(u *url.URL) bool { return u.Scheme == "http" && !insecureURL(u) }
