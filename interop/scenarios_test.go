package interop

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store"
)

// authServer is what the scenarios need of a real authorization server and
// a protected API that validates its tokens by introspection.
type authServer interface {
	ClientCredentials() *clientcredentials.Config
	RefreshConfig() *oauth2.Config
	// NewRefreshToken returns a refresh token for RefreshConfig's client,
	// as an authorization-code grant would have.
	NewRefreshToken(t *testing.T) string
	// Revoke revokes an access token (RFC 7009).
	Revoke(t *testing.T, cfg *clientcredentials.Config, accessToken string)
	APIURL() string
	TokenCalls() int64
	Lifetime() time.Duration
}

func newTransport(t *testing.T, src oauthtransport.Source, opts ...oauthtransport.Option) *oauthtransport.Transport {
	t.Helper()
	tr, err := oauthtransport.New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func mustGet(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if !assert.NoError(t, err) {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// runScenarios runs every scenario against as.
func runScenarios(t *testing.T, as authServer) {
	t.Run("FirstFetch", func(t *testing.T) {
		before := as.TokenCalls()
		tr := newTransport(t, oauthtransport.ClientCredentials(as.ClientCredentials()))
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() { mustGet(t, tr.Client(), as.APIURL()) })
		}
		wg.Wait()
		assert.Equal(t, int64(1), as.TokenCalls()-before, "one fetch for 20 concurrent first requests")
	})

	t.Run("BackgroundRefreshUnderSteadyTraffic", func(t *testing.T) {
		// Servers stamp tokens in whole seconds, so a token of a few seconds
		// may end up to a second before expires_in says: refresh at half
		// its life.
		tr := newTransport(t, oauthtransport.ClientCredentials(as.ClientCredentials()),
			oauthtransport.WithRefreshWindow(as.Lifetime()/2))
		mustGet(t, tr.Client(), as.APIURL())
		deadline := time.Now().Add(as.Lifetime() + as.Lifetime()/2)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					mustGet(t, tr.Client(), as.APIURL())
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
		wg.Wait()
		st := tr.Stats()
		assert.GreaterOrEqual(t, st.BackgroundRefreshes, int64(1), "refreshed before expiry")
		assert.Equal(t, int64(1), st.Waits, "only the first request waited for a token")
		assert.Zero(t, st.Replays, "no request met an expired token")
	})

	t.Run("RevokedTokenRecoveredWithOneReplay", func(t *testing.T) {
		cfg := as.ClientCredentials()
		tr := newTransport(t, oauthtransport.ClientCredentials(cfg))
		mustGet(t, tr.Client(), as.APIURL())
		tok, err := tr.Token(context.Background())
		require.NoError(t, err)
		as.Revoke(t, cfg, tok.AccessToken)
		before := as.TokenCalls()
		mustGet(t, tr.Client(), as.APIURL())
		assert.Equal(t, int64(1), tr.Stats().Replays)
		assert.Equal(t, int64(1), as.TokenCalls()-before)
	})

	t.Run("RotatedRefreshTokenSurvivesRestart", func(t *testing.T) {
		dir := t.TempDir()
		initial := &oauth2.Token{RefreshToken: as.NewRefreshToken(t)}
		first, err := oauthtransport.New(oauthtransport.RefreshToken(as.RefreshConfig(), initial),
			oauthtransport.WithStore(store.NewFile(dir), "user"))
		require.NoError(t, err)
		mustGet(t, first.Client(), as.APIURL())
		require.NoError(t, first.Close())
		saved, err := store.NewFile(dir).Load(context.Background(), "user")
		require.NoError(t, err)
		require.True(t, saved.RefreshToken != "" && saved.RefreshToken != initial.RefreshToken, "the server rotated the refresh token and it was saved")

		// The "restarted" process is configured with the original refresh
		// token; it must refresh with the rotated one from the file, or the
		// server would see a reused token.
		time.Sleep(time.Until(saved.Expiry) + 100*time.Millisecond)
		before := as.TokenCalls()
		second := newTransport(t, oauthtransport.RefreshToken(as.RefreshConfig(), initial),
			oauthtransport.WithStore(store.NewFile(dir), "user"))
		mustGet(t, second.Client(), as.APIURL())
		assert.Equal(t, int64(1), as.TokenCalls()-before)
		again, err := store.NewFile(dir).Load(context.Background(), "user")
		require.NoError(t, err)
		assert.True(t, again.RefreshToken != saved.RefreshToken, "rotated once more")
	})

	t.Run("InvalidClientIsTokenError", func(t *testing.T) {
		cfg := as.ClientCredentials()
		cfg.ClientSecret = "not-the-secret"
		tr := newTransport(t, oauthtransport.ClientCredentials(cfg))
		_, err := tr.Client().Get(as.APIURL())
		require.ErrorIs(t, err, oauthtransport.ErrToken)
		var te *oauthtransport.TokenError
		require.True(t, errors.As(err, &te))
		assert.Equal(t, "invalid_client", te.Code)
		assert.Equal(t, http.StatusUnauthorized, te.StatusCode)
		assert.NotContains(t, err.Error(), "not-the-secret")
	})
}
