package oauthtransport

// ProtectedResource's client identity, over real HTTP: a dynamic
// registration replaced once after invalid_client, kept in the store by
// issuer and grant, replaced when expired; a Client ID Metadata Document;
// no registration.

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func TestProtectedResourceRegistrationReplaced(t *testing.T) {
	t.Parallel()
	t.Run("machine", func(t *testing.T) {
		t.Parallel()
		e := newMCPEnv(t, nil)
		tr := e.transport(t, &ClientConfig{})
		mustCall(t, tr, e.res.ResourceURL)
		e.as.ForgetRegistrations()
		e.as.RevokeAll() // the resource refuses the token: a new one is needed
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "registered again exactly once")
		assert.EqualValues(t, 3, e.as.TokenCalls(), "the token, the refused one, the one of the new registration")
		reqs := e.as.TokenRequests()
		require.Len(t, reqs, 2, "the refused request's client was not authenticated")
		assert.NotEqual(t, reqs[0].ClientID, reqs[1].ClientID, "the new registration")
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "and kept")
	})
	t.Run("person", func(t *testing.T) {
		t.Parallel()
		e := newMCPEnv(t, nil)
		tr := e.transport(t, e.person())
		mustCall(t, tr, e.res.ResourceURL)
		e.as.ForgetRegistrations()
		e.as.RevokeAll()
		mustCall(t, tr, e.res.ResourceURL)
		assert.Equal(t, 2, e.as.Registrations(), "registered again exactly once")
		assert.Equal(t, int64(2), e.b.opens.Load(), "the refresh was refused (invalid_client): the person logs in with the new client")
		asked := e.as.AuthorizationRequests()
		require.Len(t, asked, 2)
		assert.NotEqual(t, asked[0].Get("client_id"), asked[1].Get("client_id"))
	})
}

func TestProtectedResourceRegistrationExpiresAtOnce(t *testing.T) {
	t.Parallel()
	// Every secret expires before it can be used: the client registers
	// again once per token it needs, and fails, never in a loop.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.RegistrationLifetime(time.Nanosecond)})
	tr := e.transport(t, &ClientConfig{})
	_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
	te, ok := errors.AsType[*TokenError](err)
	require.True(t, ok, "a *TokenError, got %v", err)
	assert.Equal(t, "invalid_client", te.Code)
	assert.Equal(t, 2, e.as.Registrations(), "the first registration, and one more after invalid_client")
	assert.EqualValues(t, 2, e.as.TokenCalls())
	secrets := registeredSecrets(t, e.as)
	secretFree(t, "the error", err.Error(), secrets...)
	assert.Len(t, tokensSeen(e.res), 0, "no token reached the resource")
}

// registeredSecrets are the secrets of the clients registered at as.
func registeredSecrets(t *testing.T, as *oauthtest.Server) []string {
	t.Helper()
	var secrets []string
	for _, r := range as.RegistrationRequests() {
		if r.ClientSecret != "" {
			secrets = append(secrets, r.ClientSecret)
		}
	}
	require.NotEmpty(t, secrets)
	return secrets
}

// secretFree fails if text holds any secret, or any 16-byte piece of one
// (as hostile_test.go's assertNoSecret, for this package's tests).
func secretFree(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for i, s := range secrets {
		for j := 0; j == 0 || j+16 <= len(s); j += 8 {
			if strings.Contains(text, s[j:min(j+16, len(s))]) {
				t.Errorf("%s holds (part of) secret #%d", what, i)
				break
			}
		}
	}
}

func TestProtectedResourceRegistrationKeptInTheStore(t *testing.T) {
	t.Parallel()
	for name, st := range map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return store.NewMemory() },
		"file":   func(t *testing.T) store.Store { return store.NewFile(t.TempDir()) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			other := oauthtest.NewResource(t, e.as) // another resource of the same server
			s := st(t)
			first := e.transport(t, e.person(), WithStore(s, "app"))
			mustCall(t, first, e.res.ResourceURL)
			require.NoError(t, first.Close())

			// Another process: the same store, a resource it never used.
			second := protectedTransport(t, other.ResourceURL, e.person(), WithStore(s, "app"))
			mustCall(t, second, other.ResourceURL)
			assert.Equal(t, 1, e.as.Registrations(), "the registration was kept, by issuer")
			asked := e.as.AuthorizationRequests()
			require.Len(t, asked, 2)
			assert.Equal(t, asked[0].Get("client_id"), asked[1].Get("client_id"))
			assert.Equal(t, asked[0].Get("redirect_uri"), asked[1].Get("redirect_uri"), "with its redirect URI")
			assert.Equal(t, []string{other.ResourceURL}, asked[1]["resource"])

			// A third on the first resource: its token is in the store.
			third := e.transport(t, e.person(), WithStore(s, "app"))
			mustCall(t, third, e.res.ResourceURL)
			assert.Equal(t, int64(2), e.b.opens.Load(), "no login for a token kept")
			assert.Equal(t, 1, e.as.Registrations())
		})
	}
}

func TestProtectedResourceKeptRegistrationExpired(t *testing.T) {
	t.Parallel()
	// A registration kept in the store whose secret has expired
	// (client_secret_expires_at passed) is replaced before it is presented.
	e := newMCPEnv(t, nil)
	s := store.NewMemory()
	old := identity{ClientID: "dyn-expired", Secret: "expired-secret-0123456789abcdef", Method: "client_secret_basic",
		Expires: time.Now().Add(-time.Minute).Unix(), Dynamic: true}
	require.NoError(t, registry{s: s, prefix: "app"}.save(context.Background(), e.as.URL, old))
	tr := e.transport(t, &ClientConfig{}, WithStore(s, "app"))
	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, 1, e.as.Registrations())
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.NotEqual(t, old.ClientID, reqs[0].ClientID)
	assert.EqualValues(t, 1, e.as.TokenCalls(), "the expired secret was never presented")
}

func TestProtectedResourceConfidentialPersonClient(t *testing.T) {
	t.Parallel()
	// A server that takes no public clients: the person's client registers
	// with a secret, which it sends as registered.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"token_endpoint_auth_methods_supported": []string{"client_secret_post"}})})
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	require.Equal(t, 1, e.as.Registrations())
	assert.Equal(t, "client_secret_post", e.as.RegistrationRequests()[0].TokenEndpointAuthMethod)
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "client_secret_post", reqs[0].AuthMethod)
}

func TestProtectedResourcesOfDifferentGrantsAtOneServer(t *testing.T) {
	t.Parallel()
	// One Transport, one store key: a person's resource and a machine's,
	// at the same server. Each needs a client registered for its grant.
	for name, personFirst := range map[string]bool{"person first": true, "machine first": false} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, nil)
			jobs := oauthtest.NewResource(t, e.as)
			tr := keyedProtected(t, func(key string) *ClientConfig {
				if key == jobs.ResourceURL {
					return &ClientConfig{}
				}
				return e.person()
			}, WithStore(store.NewMemory(), "app"))
			order := []*oauthtest.Resource{e.res, jobs}
			if !personFirst {
				order = []*oauthtest.Resource{jobs, e.res}
			}
			for _, res := range order {
				status, err := callMCP(WithKey(context.Background(), res.ResourceURL), tr, res.ResourceURL)
				require.NoError(t, err, res.ResourceURL)
				require.Equal(t, http.StatusOK, status)
			}
			assert.Equal(t, 2, e.as.Registrations())
		})
	}
}

func TestProtectedResourceWithoutRegistration(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		as     []oauthtest.Option
		client func(*mcpEnv) *ClientConfig
	}{
		"NoRegistration": {client: func(e *mcpEnv) *ClientConfig { return &ClientConfig{Open: e.b.open, NoRegistration: true} }},
		"a server without a registration endpoint": {as: []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"registration_endpoint": nil})},
			client: func(e *mcpEnv) *ClientConfig { return e.person() }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newMCPEnv(t, tc.as)
			_, err := callMCP(context.Background(), e.transport(t, tc.client(e)), e.res.ResourceURL)
			me, ok := errors.AsType[*MetadataError](err)
			require.True(t, ok, "a *MetadataError, got %v", err)
			assert.Equal(t, "client registration", me.Document)
			assert.Zero(t, e.as.Registrations())
			assert.Zero(t, e.b.opens.Load())
		})
	}
}

func TestProtectedResourceClientIDMetadataDocument(t *testing.T) {
	t.Parallel()
	// The server takes Client ID Metadata Documents: the document's URL is
	// the client_id, and nothing is registered. (oauthtest does not fetch
	// the document, so its authorization endpoint refuses the client.)
	const doc = "https://app.example/oauth/client.json"
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.MetadataMembers(map[string]any{"client_id_metadata_document_supported": true})})
	_, err := callMCP(context.Background(), e.transport(t, &ClientConfig{Open: e.b.open, MetadataDocument: doc}), e.res.ResourceURL)
	require.ErrorIs(t, err, ErrToken)
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 1)
	assert.Equal(t, doc, asked[0].Get("client_id"))
	assert.Zero(t, e.as.Registrations())
}

func TestProtectedResourceRegistrationExpiresWhileInUse(t *testing.T) {
	t.Parallel()
	// A dynamic registration whose secret expires while its chain runs is
	// replaced before the expired secret is presented.
	e := newMCPEnv(t, nil)
	src := ProtectedResource(e.res.ResourceURL, &ClientConfig{})
	tr, err := New(src)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	mustCall(t, tr, e.res.ResourceURL)
	p := src.(*protectedResource)
	p.mu.Lock()
	expired := *p.sess
	expired.id.Expires = time.Now().Add(-time.Second).Unix()
	p.sess, p.ids[e.as.URL] = &expired, expired.id
	p.mu.Unlock()

	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 2, e.as.Registrations())
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.NotEqual(t, reqs[0].ClientID, reqs[1].ClientID, "the expired client was not presented again")
	mustCall(t, tr, e.res.ResourceURL)
}

func TestProtectedResourceKeptRedirectPortTaken(t *testing.T) {
	t.Parallel()
	// The port of a kept registration's redirect URI is taken by another
	// program: the client registers again (with a free port) before the
	// person is asked, once.
	e := newMCPEnv(t, nil)
	other := oauthtest.NewResource(t, e.as)
	s := store.NewMemory()
	first := e.transport(t, e.person(), WithStore(s, "app"))
	mustCall(t, first, e.res.ResourceURL)
	require.NoError(t, first.Close())
	kept := e.as.AuthorizationRequests()[0].Get("redirect_uri")
	u, err := url.Parse(kept)
	require.NoError(t, err)
	squatter, err := net.Listen("tcp", u.Host)
	require.NoError(t, err, "taking the kept redirect port")
	t.Cleanup(func() { _ = squatter.Close() })

	second := protectedTransport(t, other.ResourceURL, e.person(), WithStore(s, "app"))
	mustCall(t, second, other.ResourceURL)
	assert.Equal(t, 2, e.as.Registrations())
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.NotEqual(t, kept, asked[1].Get("redirect_uri"))
	assert.Equal(t, int64(2), e.b.opens.Load(), "the person was asked once for each resource")
}
