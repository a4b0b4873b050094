package interop

import "testing"

// TestPersonHydra: the code grant with PKCE against Ory Hydra v2.3.0
// (hydra_test.go), driven with x/oauth2 alone, one subtest after the other
// (each compares the counts before and after). Hydra v2.3.0 has no device
// grant (RFC 8628) and sends no iss in its authorization responses (RFC
// 9207).
func TestPersonHydra(t *testing.T) {
	t.Parallel()
	s := startHydra(t)
	t.Run("CodeFlow", func(t *testing.T) { testCodeFlow(t, s, false) })
	t.Run("PKCERequired", func(t *testing.T) { testPKCERequired(t, s) })
}
