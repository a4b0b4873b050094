package oauthtransport

// Following a protected resource's lead (RFC 9728, RFC 8414, the MCP
// authorization profile): the resource's metadata, then its
// authorization server's, each an untrusted document fetched with the
// token client's guards (no redirect to another origin, no plain http to
// a remote host) and bounded in size and time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// metadataTimeout bounds one metadata or registration request.
const metadataTimeout = 10 * time.Second

// The documents a MetadataError names.
const (
	docResource     = "protected resource metadata"
	docServer       = "authorization server metadata"
	docRegistration = "client registration"
)

// lead is what a protected resource says about how to get a token for it.
type lead struct {
	resource string   // the resource to ask tokens for (RFC 8707)
	servers  []string // its authorization servers' issuers
	scopes   []string // scopes_supported
	from     string   // the metadata's URL; "" for a resource without metadata
	dpop     bool     // dpop_bound_access_tokens_required
}

// errNotFound is a document the server does not have (a status other
// than 200): the next place is tried.
var errNotFound = errors.New("not found")

// findLead reads the metadata of the resource at resourceURL: from named
// (a challenge's resource_metadata) when given, else the well-known
// URLs, path-aware first. A resource without metadata (the MCP 2025-03-26
// servers) is its own authorization server, at its origin.
func findLead(ctx context.Context, resourceURL, named string) (*lead, error) {
	ru, err := url.Parse(resourceURL)
	if err != nil || ru.Host == "" || (ru.Scheme != "https" && ru.Scheme != "http") {
		return nil, &MetadataError{Document: docResource, Reason: "the resource URL is not an absolute http(s) URL"}
	}
	places := wellKnown(ru, "/.well-known/oauth-protected-resource")
	if named != "" {
		places = append([]string{named}, places...)
	}
	for _, where := range places {
		data, err := getDocument(ctx, docResource, where)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := wire.ParseResourceMetadata(data)
		if err != nil {
			return nil, refused(docResource, where, err.Error())
		}
		if !resourceMatches(m.Resource, ru) {
			return nil, refused(docResource, where, fmt.Sprintf("it is for resource %q, not %s",
				wire.OneLine(wire.ScrubURLs(m.Resource), 200), wire.RedactURL(ru)))
		}
		if len(m.AuthorizationServers) == 0 {
			return nil, refused(docResource, where, "it names no authorization server")
		}
		return &lead{resource: m.Resource, servers: m.AuthorizationServers, scopes: m.ScopesSupported, from: where, dpop: m.DPoPRequired}, nil
	}
	return &lead{resource: resourceURL, servers: []string{string(appendOrigin(nil, ru))}}, nil
}

// wellKnown lists where a document under suffix is, for u: with u's path
// after the suffix, then without it.
func wellKnown(u *url.URL, suffix string) []string {
	origin := string(appendOrigin(nil, u))
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	if path == "" {
		return []string{origin + suffix}
	}
	return []string{origin + suffix + path, origin + suffix}
}

// resourceMatches reports whether the metadata's resource names the URL
// called: the same origin, and a path that is the URL's or a prefix of it
// ending at a segment boundary (RFC 9728 §3.3, as MCP clients read it).
func resourceMatches(resource string, called *url.URL) bool {
	r, err := url.Parse(resource)
	if err != nil || r.Host == "" || r.User != nil || r.RawQuery != "" || r.Fragment != "" || !sameOrigin(r, called) {
		return false
	}
	rp, cp := strings.TrimSuffix(r.EscapedPath(), "/"), strings.TrimSuffix(called.EscapedPath(), "/")
	return rp == cp || strings.HasPrefix(cp, rp+"/")
}

// discoverServer finds the metadata of the authorization server issuer in
// the MCP order: RFC 8414 then OpenID discovery, path-aware. Its issuer
// must be issuer exactly. A server of a resource without metadata
// (legacy) that publishes none gets the default endpoints at its origin.
func discoverServer(ctx context.Context, issuer string, legacy bool) (*ServerMetadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !trustedScheme(u) {
		return nil, refused(docServer, "", fmt.Sprintf("the issuer %q is not an https URL (http only on loopback) without userinfo, query or fragment",
			wire.OneLine(wire.ScrubURLs(issuer), 200)))
	}
	origin, path := string(appendOrigin(nil, u)), strings.TrimSuffix(u.EscapedPath(), "/")
	places := []string{origin + "/.well-known/oauth-authorization-server" + path, origin + "/.well-known/openid-configuration" + path}
	if path != "" {
		places = append(places, origin+path+"/.well-known/openid-configuration")
	}
	var refusals []error
	for _, where := range places {
		data, err := getDocument(ctx, docServer, where)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err == nil {
			want := issuer
			if legacy {
				want = ownIssuer(data, u)
			}
			var md *ServerMetadata
			if md, err = parseMetadata(data, want); err == nil {
				return md, checkEndpoints(md, where)
			}
			err = refused(docServer, where, err.Error())
		}
		if _, ok := errors.AsType[*MetadataError](err); !ok {
			return nil, err // the server could not be asked: not a refusal
		}
		refusals = append(refusals, err)
	}
	switch {
	case len(refusals) > 0:
		return nil, refusals[0]
	case legacy:
		return defaultEndpoints(origin), nil
	}
	return nil, refused(docServer, wire.RedactURL(u), "no metadata was found (RFC 8414, OpenID discovery)")
}

// ownIssuer is the issuer a document found at a legacy resource's origin
// names, when it is of that origin: a 2025-03-26 server may publish its
// metadata at its root for an issuer with a path (the MCP TypeScript SDK
// uses it so). Otherwise the expected one, which the document then fails.
func ownIssuer(data []byte, origin *url.URL) string {
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if json.Unmarshal(data, &doc) != nil {
		return origin.String()
	}
	if u, err := url.Parse(doc.Issuer); err == nil && u.Host != "" && sameOrigin(u, origin) {
		return doc.Issuer
	}
	return origin.String()
}

// defaultEndpoints are the endpoints of a 2025-03-26 MCP server without
// metadata: /authorize, /token and /register at its origin.
func defaultEndpoints(origin string) *ServerMetadata {
	return &ServerMetadata{Issuer: origin, AuthorizationEndpoint: origin + "/authorize", TokenEndpoint: origin + "/token",
		Raw: map[string]any{"registration_endpoint": origin + "/register", "code_challenge_methods_supported": []any{"S256"}, legacyMark: true}}
}

// legacyMark marks the endpoints of a server without metadata.
const legacyMark = "oauthtransport_defaults"

// checkEndpoints refuses metadata whose endpoints are not https URLs
// (http only on loopback): a file: or javascript: authorization endpoint
// is never opened.
func checkEndpoints(md *ServerMetadata, where string) error {
	for name, raw := range map[string]string{"authorization_endpoint": md.AuthorizationEndpoint,
		"registration_endpoint": stringMember(md.Raw, "registration_endpoint"), "revocation_endpoint": md.RevocationEndpoint} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || u.Host == "" || u.User != nil || !trustedScheme(u) {
			scheme := ""
			if err == nil {
				scheme = u.Scheme
			}
			return refused(docServer, where, fmt.Sprintf("its %s is a %q URL; only https (http on loopback) is used", name, wire.OneLine(scheme, 20)))
		}
	}
	return nil
}

// trustedScheme: https, or http on loopback.
func trustedScheme(u *url.URL) bool { return u.Scheme == "https" || insecureOK(u) }

func stringMember(raw map[string]any, name string) string {
	s, _ := raw[name].(string)
	return s
}

func listMember(raw map[string]any, name string) []string {
	l, _ := raw[name].([]any)
	out := make([]string, 0, len(l))
	for _, v := range l {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// supportsS256 reports whether the server lists PKCE S256.
func supportsS256(md *ServerMetadata) bool {
	return slices.Contains(listMember(md.Raw, "code_challenge_methods_supported"), "S256")
}

// getDocument GETs a JSON document of at most maxMetadataBytes, within
// metadataTimeout, with the token client. A status other than 200 is
// errNotFound; a document too large or a redirect to another origin is a
// *MetadataError.
func getDocument(ctx context.Context, doc, where string) ([]byte, error) {
	u, err := url.Parse(where)
	if err != nil || u.Host == "" || !trustedScheme(u) {
		return nil, refused(doc, "", fmt.Sprintf("%q is not an https URL (http only on loopback)", wire.OneLine(wire.ScrubURLs(where), 200)))
	}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return nil, refused(doc, wire.RedactURL(u), "not a valid URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := TokenClient(ctx).Do(req)
	if err != nil {
		if errors.Is(err, errRedirected) {
			return nil, refused(doc, wire.RedactURL(u), "it redirects to another origin")
		}
		return nil, fmt.Errorf("oauthtransport: GET %s: %w", wire.RedactURL(u), errors.Unwrap(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		wire.Drain(resp)
		return nil, errNotFound
	}
	return readDocument(resp.Body, doc, u)
}

// readDocument reads at most maxMetadataBytes of a document.
func readDocument(body io.Reader, doc string, u *url.URL) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(body, maxMetadataBytes+1))
	if err != nil {
		return nil, fmt.Errorf("oauthtransport: reading %s from %s: %w", doc, wire.RedactURL(u), err)
	}
	if len(data) > maxMetadataBytes {
		return nil, refused(doc, wire.RedactURL(u), fmt.Sprintf("it exceeds %d bytes", maxMetadataBytes))
	}
	return data, nil
}

// refused is a MetadataError; where is redacted here when it is a URL.
func refused(doc, where, reason string) *MetadataError {
	if u, err := url.Parse(where); err == nil && u.Host != "" {
		where = wire.RedactURL(u)
	}
	return &MetadataError{Document: doc, URL: where, Reason: reason}
}
