package oauthtest_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport/oauthtest"
)

func TestMetadataAdvertisesPersonGrants(t *testing.T) {
	t.Parallel()
	srv := oauthtest.NewServer(t)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		var md struct {
			Issuer                   string   `json:"issuer"`
			AuthorizationEndpoint    string   `json:"authorization_endpoint"`
			DeviceEndpoint           string   `json:"device_authorization_endpoint"`
			TokenEndpoint            string   `json:"token_endpoint"`
			RevocationEndpoint       string   `json:"revocation_endpoint"`
			ResponseTypes            []string `json:"response_types_supported"`
			ChallengeMethods         []string `json:"code_challenge_methods_supported"`
			ISSParameter             bool     `json:"authorization_response_iss_parameter_supported"`
			GrantTypes               []string `json:"grant_types_supported"`
			TokenEndpointAuthMethods []string `json:"token_endpoint_auth_methods_supported"`
			RevocationAuthMethods    []string `json:"revocation_endpoint_auth_methods_supported"`
		}
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&md))
		resp.Body.Close()
		assert.Equal(t, srv.URL, md.Issuer, path)
		assert.Equal(t, srv.AuthURL, md.AuthorizationEndpoint, path)
		assert.Equal(t, srv.DeviceAuthURL, md.DeviceEndpoint, path)
		assert.Equal(t, srv.TokenURL, md.TokenEndpoint, path)
		assert.Equal(t, srv.RevokeURL, md.RevocationEndpoint, path)
		assert.Equal(t, []string{"code"}, md.ResponseTypes, path)
		assert.Equal(t, []string{"S256"}, md.ChallengeMethods, path)
		assert.True(t, md.ISSParameter, path)
		assert.Subset(t, md.GrantTypes, []string{"authorization_code", "refresh_token",
			"urn:ietf:params:oauth:grant-type:device_code", "client_credentials"}, path)
		assert.Contains(t, md.TokenEndpointAuthMethods, "none", path)
		assert.Contains(t, md.RevocationAuthMethods, "none", path)
	}
}
