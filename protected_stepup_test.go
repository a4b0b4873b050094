package oauthtransport

// ProtectedResource's step-up: a 403 insufficient_scope asks the person
// (or the machine's grant) once more for the union of the scopes, and
// only once for the same scopes.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

func TestProtectedResourceStepUp(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	before := len(e.res.Requests())

	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the person is asked once more")
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.Equal(t, []string{"mcp:read", "mcp:write"}, scopeParam(asked[1]), "for the union of the scopes")
	assert.Equal(t, []string{e.res.ResourceURL}, asked[1]["resource"])
	got := e.res.Requests()[before:]
	require.Len(t, got, 2, "the request, replayed once")
	assert.Equal(t, http.StatusForbidden, got[0].Status)
	assert.Equal(t, http.StatusOK, got[1].Status)
	assert.Equal(t, "mcp:read mcp:write", e.as.Introspect(got[1].Token).Scope)

	mustCall(t, tr, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the new token serves from then on")
}

func TestProtectedResourceStepUpAfterARestart(t *testing.T) {
	t.Parallel()
	// A process that found its token in the store (its chain never ran)
	// steps up with a login, never with a refresh (which keeps the grant's
	// scopes).
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	s := store.NewMemory()
	first := e.transport(t, e.person(), WithStore(s, "app"))
	mustCall(t, first, e.res.ResourceURL)
	require.NoError(t, first.Close())

	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	second := e.transport(t, e.person(), WithStore(s, "app"))
	mustCall(t, second, e.res.ResourceURL)
	assert.Equal(t, int64(2), e.b.opens.Load(), "the person is asked once more")
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.Equal(t, []string{"mcp:read", "mcp:write"}, scopeParam(asked[1]))
	assert.Equal(t, 1, e.as.Registrations())
}

func TestProtectedResourceStepUpIsBounded(t *testing.T) {
	t.Parallel()
	// The server never grants mcp:admin: the resource keeps answering 403
	// for it.
	e := newMCPEnv(t, []oauthtest.Option{oauthtest.WithheldScopes("mcp:admin")},
		oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	before := len(e.res.Requests())

	e.res.SetRequiredScopes("mcp:read", "mcp:admin")
	for i := range 3 {
		_, err := callMCP(context.Background(), tr, e.res.ResourceURL)
		fe, ok := errors.AsType[*ForbiddenError](err)
		require.True(t, ok, "call %d: a *ForbiddenError, got %v", i, err)
		require.ErrorIs(t, err, ErrForbidden)
		secretFree(t, "the error", err.Error(), accessTokens(e.res)...)
		assert.Equal(t, http.StatusForbidden, fe.StatusCode)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "at most one more login")
	asked := e.as.AuthorizationRequests()
	require.Len(t, asked, 2)
	assert.Equal(t, []string{"mcp:admin", "mcp:read"}, scopeParam(asked[1]))
	assert.Len(t, e.res.Requests()[before:], 4, "the first call replayed once, the others sent once")
}

// accessTokens are the tokens res received.
func accessTokens(res *oauthtest.Resource) []string {
	var toks []string
	for tok := range tokensSeen(res) {
		toks = append(toks, tok)
	}
	return toks
}

func TestProtectedResourceMachineStepUp(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, &ClientConfig{})
	mustCall(t, tr, e.res.ResourceURL)
	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	mustCall(t, tr, e.res.ResourceURL)
	reqs := e.as.TokenRequests()
	require.Len(t, reqs, 2)
	assert.ElementsMatch(t, []string{"mcp:read", "mcp:write"}, strings.Fields(reqs[1].Form.Get("scope")), "the union")
	assert.Equal(t, 1, e.as.Registrations())
}

func TestProtectedResourceStepUpForConcurrentCallers(t *testing.T) {
	t.Parallel()
	e := newMCPEnv(t, nil, oauthtest.ResourceScopes("mcp:read"), oauthtest.RequireScopes("mcp:read"))
	tr := e.transport(t, e.person())
	mustCall(t, tr, e.res.ResourceURL)
	e.res.SetRequiredScopes("mcp:read", "mcp:write")
	for _, err := range together(6, func(int) error { return callOK(context.Background(), tr, e.res.ResourceURL) }) {
		assert.NoError(t, err)
	}
	assert.Equal(t, int64(2), e.b.opens.Load(), "one step-up login for them all")
}
