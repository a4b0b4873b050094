package wire

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []string
		want []Challenge
	}{
		{[]string{`Bearer`}, []Challenge{{Scheme: "Bearer"}}},
		{[]string{`Bearer realm="example"`}, []Challenge{{Scheme: "Bearer", Realm: "example", Params: map[string]string{"realm": "example"}}}},
		{[]string{`Bearer realm="api", error="insufficient_scope", scope="read write", error_description="needs \"write\""`},
			[]Challenge{{Scheme: "Bearer", Realm: "api", Error: "insufficient_scope", Scope: "read write", ErrorDescription: `needs "write"`,
				Params: map[string]string{"realm": "api", "error": "insufficient_scope", "scope": "read write", "error_description": `needs "write"`}}}},
		{[]string{`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`},
			[]Challenge{
				{Scheme: "Newauth", Realm: "apps", Params: map[string]string{"realm": "apps", "type": "1", "title": `Login to "apps"`}},
				{Scheme: "Basic", Realm: "simple", Params: map[string]string{"realm": "simple"}},
			}},
		{[]string{`Negotiate abc+/def==, Bearer ERROR = invalid_token`},
			[]Challenge{
				{Scheme: "Negotiate", Params: map[string]string{"": "abc+/def=="}},
				{Scheme: "Bearer", Error: "invalid_token", Params: map[string]string{"error": "invalid_token"}},
			}},
		{[]string{`Basic`, `Bearer error="invalid_token"`},
			[]Challenge{{Scheme: "Basic"}, {Scheme: "Bearer", Error: "invalid_token", Params: map[string]string{"error": "invalid_token"}}}},
		{[]string{`, ,Basic ,, Digest`}, []Challenge{{Scheme: "Basic"}, {Scheme: "Digest"}}},
		{[]string{`"garbage", Bearer`}, []Challenge{{Scheme: "Bearer"}}},
		{[]string{`Bearer realm="unterminated`}, []Challenge{{Scheme: "Bearer", Realm: "unterminated", Params: map[string]string{"realm": "unterminated"}}}},
		{[]string{``}, nil},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, ParseChallenges(tt.in), "%q", tt.in)
	}
}

func TestOffersScheme(t *testing.T) {
	t.Parallel()
	assert.True(t, OffersScheme(nil, "Bearer"), "no challenge: a new token may help")
	assert.True(t, OffersScheme(ParseChallenges([]string{`Basic, bearer`}), "Bearer"))
	assert.False(t, OffersScheme(ParseChallenges([]string{`Basic realm="x"`}), "Bearer"))
}

func TestStepUp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		acr    []string
		maxAge time.Duration
		has    bool
	}{
		{`Bearer error="insufficient_user_authentication", acr_values="phr phrh", max_age="5"`, []string{"phr", "phrh"}, 5 * time.Second, true},
		{`Bearer error="insufficient_user_authentication", max_age=0`, []string{}, 0, true},
		{`Bearer error="insufficient_user_authentication", acr_values="x", max_age="-1"`, []string{"x"}, 0, false},
		{`Bearer error="insufficient_user_authentication", max_age="2147483648"`, []string{}, 0, false},
		{`Bearer error="insufficient_user_authentication", max_age="soon"`, []string{}, 0, false},
	}
	for _, tt := range tests {
		cs := ParseChallenges([]string{tt.in})
		acr, maxAge, has := StepUp(cs[0])
		assert.Equal(t, []any{tt.acr, tt.maxAge, tt.has}, []any{acr, maxAge, has}, tt.in)
		assert.True(t, RefreshCannotHelp(cs), tt.in)
	}
	assert.False(t, RefreshCannotHelp(ParseChallenges([]string{`Bearer error="invalid_token"`})))
	assert.True(t, RefreshCannotHelp(ParseChallenges([]string{`Basic, Bearer error="insufficient_scope"`})))
}

// FuzzParseChallenges: the parser never panics, what it returns stays
// bounded, and a step-up challenge asks for nothing malformed and is never
// answered with a refresh. Seeds are in testdata/fuzz.
func FuzzParseChallenges(f *testing.F) {
	f.Add(`Bearer realm="api", error="invalid_token", error_description="the \"token\""`)
	f.Add(`Newauth realm="apps", type=1, title="Login", Basic realm="simple"`)
	f.Add(`Negotiate abc==, Bearer`)
	f.Add(`Bearer error="insufficient_user_authentication", acr_values="phr phrh", max_age="5", resource_metadata="https://r/.well-known/oauth-protected-resource"`)
	f.Add(`DPoP algs="ES256", error="use_dpop_nonce"`)
	f.Fuzz(func(t *testing.T, s string) {
		cs := ParseChallenges([]string{s, s})
		if len(cs) > 2*len(s) {
			t.Fatalf("%d challenges from %d bytes", len(cs), 2*len(s))
		}
		for _, c := range cs {
			if c.Scheme == "" {
				t.Fatal("challenge without a scheme")
			}
			if len(c.Params) > 32 {
				t.Fatalf("%d params", len(c.Params))
			}
			if c.Error != "insufficient_user_authentication" {
				continue
			}
			acr, maxAge, _ := StepUp(c)
			if maxAge < 0 || slices.Contains(acr, "") {
				t.Fatalf("step-up %q, max age %v", acr, maxAge)
			}
			if !RefreshCannotHelp(cs) {
				t.Fatal("a step-up challenge would refresh the token")
			}
		}
	})
}

func TestClaims(t *testing.T) {
	t.Parallel()
	want := `{"access_token":{"nbf":{"essential":true,"value":"1726258122"}}}`
	std := base64.StdEncoding.EncodeToString([]byte(want))
	tests := []struct {
		header string
		want   string
		ok     bool
	}{
		{`Bearer realm="", error="insufficient_claims", claims="` + std + `"`, want, true},
		{`Bearer error="insufficient_claims", claims="` + base64.RawURLEncoding.EncodeToString([]byte(want)) + `"`, want, true},
		{`Bearer error="invalid_token", claims="` + std + `"`, "", false},
		{`Bearer error="insufficient_claims", claims="not base64!"`, "", false},
		{`Bearer error="insufficient_claims", claims="` + base64.StdEncoding.EncodeToString([]byte(`"a string"`)) + `"`, "", false},
		{`Bearer error="insufficient_claims"`, "", false},
	}
	for _, tt := range tests {
		got, ok := Claims(ParseChallenges([]string{tt.header}))
		if got != tt.want || ok != tt.ok {
			t.Errorf("Claims(%s) = %q, %v; want %q, %v", tt.header, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzClaims(f *testing.F) {
	f.Add(`Bearer realm="", error="insufficient_claims", claims="eyJhY2Nlc3NfdG9rZW4iOnsibmJmIjp7ImVzc2VudGlhbCI6dHJ1ZX19fQ=="`)
	f.Add(`Bearer error="insufficient_claims", claims="e30"`)
	f.Add(`Bearer error="insufficient_claims", claims=""`)
	f.Fuzz(func(t *testing.T, s string) {
		claims, ok := Claims(ParseChallenges([]string{s}))
		if !ok {
			return
		}
		if len(claims) > maxClaims || !json.Valid([]byte(claims)) || !strings.HasPrefix(strings.TrimSpace(claims), "{") {
			t.Fatalf("claims %q: not a bounded JSON object", claims)
		}
	})
}
