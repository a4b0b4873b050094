package oauthtransport

// ProtectedResource against hostile or broken metadata and registration:
// each refusal is a *MetadataError inside the *TokenError a caller gets
// (through *url.Error), nothing is sent to the server it names, no
// browser is opened, no secret is in the error, and the Transport serves
// once the documents are sane again.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// refusal requires err to be a *MetadataError for doc, found with
// errors.As through the *url.Error and the *TokenError around it.
func refusal(t *testing.T, err error, doc string) *MetadataError {
	t.Helper()
	require.Error(t, err)
	_, ok := errors.AsType[*url.Error](err)
	assert.True(t, ok, "the client's *url.Error: %v", err)
	_, ok = errors.AsType[*TokenError](err)
	require.True(t, ok, "a *TokenError: %v", err)
	me, ok := errors.AsType[*MetadataError](err)
	require.True(t, ok, "a *MetadataError, got %v", err)
	assert.Equal(t, doc, me.Document)
	assert.NotContains(t, err.Error(), "\n")
	return me
}

// assertNothingSent checks that the authorization server got no token
// request, the person was not asked, and the resource saw no token.
func (e *mcpEnv) assertNothingSent(t *testing.T) {
	t.Helper()
	assert.Zero(t, e.as.TokenCalls(), "nothing sent to the token endpoint")
	assert.Empty(t, e.as.AuthorizationRequests())
	assert.Zero(t, e.b.opens.Load(), "no browser opened")
	assert.Empty(t, tokensSeen(e.res), "no token sent to the resource")
}

// switchable serves bad until good is set, then the resource's real
// metadata document.
type switchable struct {
	good atomic.Bool
	bad  http.HandlerFunc
	doc  func() any
}

func (s *switchable) serve(w http.ResponseWriter, r *http.Request) {
	if !s.good.Load() {
		s.bad(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(s.doc())
}

// hostileMetadata is an environment whose resource serves bad in place
// of its metadata until sw.good is set.
func hostileMetadata(t *testing.T, bad http.HandlerFunc) (*mcpEnv, *switchable) {
	t.Helper()
	sw := &switchable{bad: bad}
	e := newMCPEnv(t, nil, oauthtest.MetadataHandler(sw.serve))
	sw.doc = func() any {
		return map[string]any{"resource": e.res.ResourceURL, "authorization_servers": []string{e.as.URL}}
	}
	return e, sw
}

func TestProtectedResourceMetadataTooLarge(t *testing.T) {
	t.Parallel()
	huge := append(append([]byte(`{"resource":"x","pad":"`), bytes.Repeat([]byte("a"), 10<<20)...), `"}`...)
	e, sw := hostileMetadata(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(huge)
	})
	tr := e.transport(t, e.person())
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	me := refusal(t, err, "protected resource metadata")
	assert.Equal(t, e.res.MetadataURL, me.URL)
	assert.Contains(t, me.Reason, "exceeds")
	e.assertNothingSent(t)
	assert.Zero(t, e.as.Registrations())

	sw.good.Store(true)
	mustCall(t, tr, e.res.ResourceURL) // the Transport is not stuck on the refusal
	assert.Equal(t, int64(1), e.b.opens.Load())
}

func TestProtectedResourceMetadataRedirectsElsewhere(t *testing.T) {
	t.Parallel()
	var contacted atomic.Int64
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		contacted.Add(1)
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(elsewhere.Close)
	e, sw := hostileMetadata(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	})
	tr := e.transport(t, e.person())
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	me := refusal(t, err, "protected resource metadata")
	assert.Contains(t, me.Reason, "redirect")
	assert.Zero(t, contacted.Load(), "the other origin is never contacted")
	e.assertNothingSent(t)

	sw.good.Store(true)
	mustCall(t, tr, e.res.ResourceURL)
}

func TestProtectedResourceRefusesServerMetadata(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		as     []oauthtest.Option
		server func(as *oauthtest.Server) string // the authorization server the resource names
	}{
		"an issuer that differs by a trailing slash": {server: func(as *oauthtest.Server) string { return as.URL + "/" }},
		"a file: authorization endpoint": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"authorization_endpoint": "file:///etc/passwd"})},
			server: func(as *oauthtest.Server) string { return as.URL }},
		"a javascript: registration endpoint": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"registration_endpoint": "javascript:alert(1)"})},
			server: func(as *oauthtest.Server) string { return as.URL }},
		"no PKCE S256": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"code_challenge_methods_supported": []string{"plain"}})},
			server: func(as *oauthtest.Server) string { return as.URL }},
		"an issuer over plain http to a remote host": {server: func(*oauthtest.Server) string { return "http://192.0.2.1" }},
		"a document of 10 MB": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"padding": strings.Repeat("a", 10<<20)})},
			server: func(as *oauthtest.Server) string { return as.URL }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var e *mcpEnv
			e = newMCPEnv(t, tc.as, oauthtest.MetadataHandler(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"resource": e.res.ResourceURL, "authorization_servers": []string{tc.server(e.as)}})
			}))
			_, err := callMCP(context.Background(), e.transport(t, e.person()), e.res.ResourceURL)
			refusal(t, err, "authorization server metadata")
			e.assertNothingSent(t)
			assert.Zero(t, e.as.Registrations())
		})
	}
}

func TestProtectedResourceRefusesResourceMetadata(t *testing.T) {
	t.Parallel()
	for name, doc := range map[string]func(e *mcpEnv) string{
		"another resource": func(e *mcpEnv) string {
			return `{"resource":"https://evil.example/mcp","authorization_servers":["` + e.as.URL + `"]}`
		},
		"a sibling path": func(e *mcpEnv) string {
			return `{"resource":"` + e.res.URL + `/mc","authorization_servers":["` + e.as.URL + `"]}`
		},
		"no server": func(e *mcpEnv) string { return `{"resource":"` + e.res.ResourceURL + `"}` },
		"not JSON":  func(*mcpEnv) string { return `<html>` },
		"a server with a query": func(e *mcpEnv) string {
			return `{"resource":"` + e.res.ResourceURL + `","authorization_servers":["` + e.as.URL + `?x=1"]}`
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var e *mcpEnv
			e = newMCPEnv(t, nil, oauthtest.MetadataHandler(func(w http.ResponseWriter, _ *http.Request) {
				_, _ = w.Write([]byte(doc(e)))
			}))
			_, err := callMCP(context.Background(), e.transport(t, e.person()), e.res.ResourceURL)
			require.ErrorIs(t, err, ErrToken)
			_, ok := errors.AsType[*MetadataError](err)
			require.True(t, ok, "a *MetadataError, got %v", err)
			e.assertNothingSent(t)
		})
	}
}

func TestProtectedResourceRegistrationFails(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		fail oauthtest.Failure
		want string
	}{
		"500":                         {oauthtest.Failure{Status: 500}, "500"},
		"400 invalid_client_metadata": {oauthtest.Failure{Status: 400, Code: "invalid_client_metadata"}, "invalid_client_metadata"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			e.as.FailRegistrations(tc.fail)
			tr := e.transport(t, e.person())
			_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
			me := refusal(t, err, "client registration")
			assert.Contains(t, me.Reason, tc.want)
			assert.Equal(t, 1, e.as.Registrations())
			e.assertNothingSent(t)

			mustCall(t, tr, e.res.ResourceURL) // registered on the next try
			assert.Equal(t, 2, e.as.Registrations())
		})
	}
}

func TestProtectedResourceWithoutMetadataOnAnotherHost(t *testing.T) {
	t.Parallel()
	// A 2025-03-26 resource is its own authorization server: this one,
	// which is not, has no /register. Nothing goes to e.as.
	e := newMCPEnv(t, nil, oauthtest.NoResourceMetadata())
	_, err := callMCP(context.Background(), e.transport(t, e.person()), e.res.ResourceURL)
	me := refusal(t, err, "client registration")
	assert.True(t, strings.HasPrefix(me.URL, e.res.URL), "the registration endpoint was the resource's: %s", me.URL)
	e.assertNothingSent(t)
	assert.Zero(t, e.as.Registrations())
}

func TestProtectedResourceErrorsHoldNoSecret(t *testing.T) {
	t.Parallel()
	// A machine client registered with a secret, then forgotten by a
	// server that refuses every new registration: every error is about
	// the client, none holds its secret or a token.
	e := newMCPEnv(t, nil)
	tr := e.transport(t, &ClientConfig{})
	mustCall(t, tr, e.res.ResourceURL)
	e.as.ForgetRegistrations()
	e.as.RevokeAll()
	e.as.FailRegistrations(oauthtest.Failure{Status: 400, Code: "invalid_client_metadata"})
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	require.ErrorIs(t, err, ErrToken)
	secretFree(t, "the error", err.Error(), append(registeredSecrets(t, e.as), accessTokens(e.res)...)...)
}

func TestProtectedResourceChallengeNamesUntrustedMetadata(t *testing.T) {
	t.Parallel()
	for name, named := range map[string]string{
		"file:":                       "file:///etc/passwd",
		"plain http to a remote host": "http://192.0.2.1/.well-known/oauth-protected-resource",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int64
			res := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				calls.Add(1)
				w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+named+`"`)
				w.WriteHeader(http.StatusUnauthorized)
			}))
			t.Cleanup(res.Close)
			b := &browser{}
			_, err := callMCP(context.Background(), protectedTransport(t, res.URL+"/mcp", &ClientConfig{Open: b.open}), res.URL+"/mcp")
			refusal(t, err, "protected resource metadata")
			assert.EqualValues(t, 1, calls.Load(), "only the first request, without a token")
			assert.Zero(t, b.opens.Load())
		})
	}
}

func TestProtectedResourceMetadataNeverAnswers(t *testing.T) {
	t.Parallel()
	// The metadata's server accepts the request and never answers: the
	// caller's wait is bounded by the refresh timeout, and nothing is left
	// behind (goleak, in TestMain).
	e, sw := hostileMetadata(t, func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	tr := e.transport(t, e.person(), WithRefreshTimeout(300*time.Millisecond))
	start := time.Now()
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	_, ok := errors.AsType[*TokenError](err)
	require.True(t, ok, "a *TokenError, got %v", err)
	assert.Less(t, time.Since(start), 10*time.Second, "bounded by the refresh timeout, not the metadata's server")
	e.assertNothingSent(t)

	sw.good.Store(true)
	require.Eventually(t, func() bool {
		status, err := callMCP(context.Background(), tr, e.res.ResourceURL)
		return err == nil && status == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond, "served once the metadata answers (after the failure's cool-down)")
}

func TestProtectedResourceRequiresDPoP(t *testing.T) {
	t.Parallel()
	// The resource accepts DPoP-bound tokens only (RFC 9728
	// dpop_bound_access_tokens_required): a Transport without WithDPoP is
	// told so before anything is asked of the server.
	e, sw := hostileMetadata(t, nil)
	sw.doc = func() any {
		return map[string]any{"resource": e.res.ResourceURL, "authorization_servers": []string{e.as.URL}, "dpop_bound_access_tokens_required": true}
	}
	sw.good.Store(true)
	tr := e.transport(t, e.person())
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	me := refusal(t, err, "protected resource metadata")
	assert.Contains(t, me.Reason, "WithDPoP")
	e.assertNothingSent(t)
	assert.Zero(t, e.as.Registrations())

	// With WithDPoP the chain goes on (this resource knows only Bearer, so
	// the call itself ends in a 401).
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	bound := e.transport(t, e.person(), WithDPoP(key))
	_, err = callMCP(context.Background(), bound, e.res.ResourceURL)
	_, isMeta := errors.AsType[*MetadataError](err)
	assert.False(t, isMeta, "not refused: %v", err)
	assert.Equal(t, 1, e.as.Registrations(), "the chain went on to register")
}
