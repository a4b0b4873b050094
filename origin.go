package oauthtransport

// Where a token may go: the hosts allowed, the origin of a redirect chain,
// and plain http to a host that is not loopback.

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// attachTo reports whether req gets a token: its host is allowed, and it is
// not a redirect hop to another origin than the request that began the
// chain. net/http compares only host names when it strips headers on
// redirect, so the origin check is ours.
func attachTo(allowed []hostPattern, req *http.Request) bool {
	if allowed != nil && !hostAllowed(allowed, req.URL) {
		return false
	}
	if req.Response == nil {
		return true
	}
	first := req
	for i := 0; i < 64 && first.Response != nil && first.Response.Request != nil; i++ {
		first = first.Response.Request
	}
	return sameOrigin(first.URL, req.URL)
}

func hostAllowed(allowed []hostPattern, u *url.URL) bool {
	host, port := u.Hostname(), portOrDefault(u.Scheme, u.Port())
	for _, p := range allowed {
		if strings.EqualFold(p.host, host) && (p.port == "" || p.port == port) {
			return true
		}
	}
	return false
}

// sameOrigin compares scheme, host and port, default ports made explicit.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		portOrDefault(a.Scheme, a.Port()) == portOrDefault(b.Scheme, b.Port())
}

func portOrDefault(scheme, port string) string {
	if port != "" {
		return port
	}
	switch strings.ToLower(scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

// insecureURL reports whether u is plain http to a host that is not loopback.
func insecureURL(u *url.URL) bool {
	if !strings.EqualFold(u.Scheme, "http") {
		return false
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.Unmap().IsLoopback()
}
