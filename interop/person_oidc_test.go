package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// The grants a person authorizes (issue 21) against oidc-provider, driven
// with x/oauth2 alone: the harness the SDK's AuthorizationCode and
// DeviceAuthorization are proved with (person_sdk_test.go).

func (s *oidcServer) Issuer() string        { return s.issuer }
func (s *oidcServer) RevocationURL() string { return s.issuer + "/token/revocation" }

// NativeConfig is native-client: public (no client authentication, so
// PKCE is required), a loopback redirect on any port, both grants.
func (s *oidcServer) NativeConfig(redirectURL string) *oauth2.Config {
	return &oauth2.Config{ClientID: "native-client", RedirectURL: redirectURL, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: s.issuer + "/auth", TokenURL: s.issuer + "/token",
			DeviceAuthURL: s.issuer + "/device/auth", AuthStyle: oauth2.AuthStyleInParams}}
}

// Active asks the introspection endpoint as the resource server.
func (s *oidcServer) Active(ctx context.Context, token string) (bool, error) {
	return introspect(ctx, s.issuer+"/token/introspection", token, func(r *http.Request) {
		r.SetBasicAuth("resource-server", "rs-secret-value")
	})
}

// Exchanges reads the server's count of a grant type's token requests.
func (s *oidcServer) Exchanges(ctx context.Context, grantType string) (exchanges, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.issuer+"/test/stats", nil)
	if err != nil {
		return exchanges{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return exchanges{}, redact(err)
	}
	defer resp.Body.Close()
	var out struct {
		Grants map[string]exchanges `json:"grants"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return exchanges{}, fmt.Errorf("/test/stats: %w", err)
	}
	return out.Grants[grantType], nil
}

// TestPersonOIDC runs its subtests one after the other: each compares the
// server's counts before and after.
func TestPersonOIDC(t *testing.T) {
	t.Parallel()
	s := startOIDC(t, time.Minute)
	t.Run("CodeFlow", func(t *testing.T) { testCodeFlow(t, s, true) })
	t.Run("PKCERequired", func(t *testing.T) { testPKCERequired(t, s) })
	t.Run("DeviceFlow", func(t *testing.T) { testDeviceFlow(t, s) })
}
