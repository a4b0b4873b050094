package drivertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/internal/pgtest"
	"github.com/oauthtransport/oauthtransport/oauthtest"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
)

// PostgreSQL stops while a keyed Transport runs on it: keys holding a
// valid token keep working; a key that must refresh gets a temporary
// *TokenError and its refresh token is not spent without the lock; once
// the database is back everything works, and no refresh token was
// presented twice.
func TestPostgresDownAndBack(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	db := open(t, "pgx", pg.DSN())
	s, err := sqlstore.New(db)
	require.NoError(t, err)
	idp := oauthtest.NewServer(t, oauthtest.Lifetime(time.Hour))
	refresh := map[string]string{"alice": idp.IssueRefreshToken(), "bob": idp.IssueRefreshToken()}
	tr, err := oauthtransport.NewKeyed(func(key string) (oauthtransport.Source, error) {
		return oauthtransport.RefreshToken(idp.OAuth2Config(), &oauth2.Token{RefreshToken: refresh[key]}), nil
	}, oauthtransport.WithStore(s, "app"), oauthtransport.WithRefreshTimeout(2*time.Second))
	require.NoError(t, err)
	defer tr.Close()

	require.NoError(t, get(tr, "alice", idp.APIURL))
	require.NoError(t, pg.Kill())
	require.NoError(t, get(tr, "alice", idp.APIURL), "a valid cached token needs no database")
	err = get(tr, "bob", idp.APIURL)
	te, ok := errors.AsType[*oauthtransport.TokenError](err)
	require.True(t, ok, "bob with the database down: err = %v, want a *TokenError", err)
	assert.True(t, te.Temporary(), "the database being down is temporary")
	assert.Equal(t, int64(1), idp.TokenCalls(), "bob's refresh token was not spent without the lock")

	require.NoError(t, pg.Start())
	require.Eventually(t, func() bool { return get(tr, "bob", idp.APIURL) == nil }, 40*time.Second, 100*time.Millisecond,
		"bob works once the database is back")
	assert.Equal(t, int64(2), idp.TokenCalls())
	assert.Zero(t, idp.Reuses())
	saved, err := s.Load(context.Background(), "app/bob")
	require.NoError(t, err, "bob's token was saved once the database came back")
	assert.True(t, idp.Live(saved.AccessToken))
}
