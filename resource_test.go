package oauthtransport_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store"
)

// Tokens for different resources never mix, even under one store key.
func TestResourceIndicatorsKeepTokensApart(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	shared := store.NewMemory()
	token := func(resources ...string) string {
		tr := ccTransport(t, srv, oauthtransport.WithStore(shared, "svc"))
		if len(resources) > 0 {
			tr = newTransport(t, oauthtransport.ClientCredentials(srv.ClientCredentials(), oauthtransport.WithResource(resources...)),
				oauthtransport.WithStore(shared, "svc"))
		}
		tok, err := tr.Token(context.Background())
		require.NoError(t, err)
		return tok.AccessToken
	}
	orders := token("https://orders.example.com/")
	assert.Equal(t, orders, token("https://orders.example.com/"), "the same resource shares the stored token")
	billing := token("https://billing.example.com/")
	assert.NotEqual(t, orders, billing)
	both := token("https://billing.example.com/", "https://orders.example.com/")
	assert.Equal(t, both, token("https://orders.example.com/", "https://billing.example.com/"), "order does not matter")
	plain := token()
	assert.NotContains(t, []string{orders, billing, both}, plain)
	assert.Equal(t, int64(4), srv.TokenCalls())
	reqs := srv.TokenRequests()
	assert.Equal(t, []string{"https://orders.example.com/"}, reqs[0].Form["resource"])
	assert.Equal(t, []string{"https://billing.example.com/", "https://orders.example.com/"}, reqs[2].Form["resource"])
	assert.Empty(t, reqs[3].Form["resource"])
}

func TestResourceMustBeAnAbsoluteURI(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	tr := newTransport(t, oauthtransport.ClientCredentials(srv.ClientCredentials(), oauthtransport.WithResource("orders#x")))
	_, err := tr.Token(context.Background())
	require.ErrorContains(t, err, "WithResource")
	assert.Zero(t, srv.TokenCalls())
}
