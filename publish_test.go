package oauthtransport_test

// Publishing a refreshed token: a result obtained from an older token than
// the one now held never replaces it, in memory or in the store.

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/redistest"
	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/redisstore"
)

// TestLateRefreshNeverReplacesASetToken: SetToken installs a new grant
// while a refresh of the old one, abandoned for its slowness (its Source
// ignores its context), is still out; when it returns, its token is
// dropped (issue 20, item 5).
func TestLateRefreshNeverReplacesASetToken(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { lateRefreshAfterSetToken(t, store.NewMemory()) })
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t)
		lateRefreshAfterSetToken(t, redisstore.New(srv.Client(t)))
	})
}

func lateRefreshAfterSetToken(t *testing.T, s store.Store) {
	src := &blockingSource{release: make(chan struct{}), rt: "old-grant-rt2"}
	tr, err := oauthtransport.New(spendingSource{src}, oauthtransport.WithStore(s, "k"),
		oauthtransport.WithBase(&memBase{}), oauthtransport.WithRefreshTimeout(200*time.Millisecond))
	require.NoError(t, err)
	_, err = tr.Token(context.Background()) // abandoned after 200 ms
	require.ErrorIs(t, err, oauthtransport.ErrToken)

	fresh := &oauth2.Token{AccessToken: "new-grant", RefreshToken: "new-grant-rt", Expiry: time.Now().Add(time.Hour)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, tr.SetToken(ctx, fresh))
	close(src.release) // the old grant's refresh returns now
	require.NoError(t, tr.Close())

	tok, err := tr.Token(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "new-grant", tok.AccessToken, "the late result replaced the new grant in memory")
	stored, err := s.Load(context.Background(), "k")
	require.NoError(t, err)
	assert.Equal(t, "new-grant-rt", stored.RefreshToken, "the late result replaced the new grant in the store")
	assert.Equal(t, int64(1), src.calls.Load())
}
