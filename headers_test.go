package oauthtransport

import (
	"errors"
	"net/http"
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
		assert.Equal(t, tt.want, parseChallenges(tt.in), "%q", tt.in)
	}
}

func TestOffersScheme(t *testing.T) {
	t.Parallel()
	assert.True(t, offersScheme(nil, "Bearer"), "no challenge: a new token may help")
	assert.True(t, offersScheme(parseChallenges([]string{`Basic, bearer`}), "Bearer"))
	assert.False(t, offersScheme(parseChallenges([]string{`Basic realm="x"`}), "Bearer"))
}

func TestRetryHint(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name string
		h    http.Header
		want time.Duration
		ok   bool
	}{
		{"none", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"120"}}, 2 * time.Minute, true},
		{"zero", http.Header{"Retry-After": {"0"}}, 0, true},
		{"negative", http.Header{"Retry-After": {"-5"}}, 0, false},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, false},
		{"huge: believed, clamped", http.Header{"Retry-After": {"99999999999999999999999"}}, maxHint, true},
		{"55 years: believed", http.Header{"Retry-After": {"1743441600"}}, 1743441600 * time.Second, true},
		{"8 days: believed", http.Header{"Retry-After": {"691200"}}, 8 * 24 * time.Hour, true},
		{"date", http.Header{"Retry-After": {date(90 * time.Second)}}, 90 * time.Second, true},
		{"past date", http.Header{"Retry-After": {date(-time.Hour)}}, 0, true},
		{"date vs server clock", http.Header{"Retry-After": {date(time.Hour + 30*time.Second)}, "Date": {date(time.Hour)}}, 30 * time.Second, true},
		{"ansi c date", http.Header{"Retry-After": {now.Add(time.Minute).Format(time.ANSIC)}}, time.Minute, true},
		{"ms", http.Header{"Retry-After-Ms": {"1500"}}, 1500 * time.Millisecond, true},
		{"x-ms", http.Header{"X-Ms-Retry-After-Ms": {"250.5"}}, 250*time.Millisecond + 500*time.Microsecond, true},
		{"NaN ms", http.Header{"Retry-After-Ms": {"NaN"}}, 0, false},
		{"retry-after wins", http.Header{"Retry-After": {"3"}, "Retry-After-Ms": {"10"}}, 3 * time.Second, true},
		{"ratelimit field", http.Header{"Ratelimit": {`"default";r=0;t=30`}}, 30 * time.Second, true},
		{"ratelimit field with quota", http.Header{"Ratelimit": {`"default";r=5;t=30`}}, 0, false},
		{"ratelimit field two", http.Header{"Ratelimit": {`"burst";r=3;t=1, "day";r=0;t=600`}}, 10 * time.Minute, true},
		{"ratelimit malformed", http.Header{"Ratelimit": {`;;;r=x`}}, 0, false},
		{"ratelimit-reset", http.Header{"Ratelimit-Reset": {"7"}}, 7 * time.Second, true},
		{"x-ratelimit-reset-after", http.Header{"X-Ratelimit-Reset-After": {"1.25"}}, 1250 * time.Millisecond, true},
		{"x-ratelimit-reset epoch", http.Header{"X-Ratelimit-Reset": {"1795435260"}, "X-Ratelimit-Remaining": {"0"}, "Date": {time.Unix(1795435200, 0).UTC().Format(http.TimeFormat)}}, time.Minute, true},
		{"x-ratelimit-reset delay", http.Header{"X-Ratelimit-Reset": {"42"}}, 42 * time.Second, true},
		{"x-ratelimit-reset with quota left", http.Header{"X-Ratelimit-Reset": {"42"}, "X-Ratelimit-Remaining": {"10"}}, 0, false},
		{"x-ratelimit-reset enormous", http.Header{"X-Ratelimit-Reset": {"9223372036854775807"}}, maxHint, true},
		{"x-ratelimit-reset epoch ms", http.Header{"X-Ratelimit-Reset": {"1795435260500"}, "Date": {time.Unix(1795435200, 0).UTC().Format(http.TimeFormat)}}, time.Minute + 500*time.Millisecond, true},
		{"x-ratelimit-reset fractional epoch", http.Header{"X-Ratelimit-Reset": {"1795435230.25"}, "Date": {time.Unix(1795435200, 0).UTC().Format(http.TimeFormat)}}, 30*time.Second + 250*time.Millisecond, true},
		{"x-ratelimit-reset fractional delay", http.Header{"X-Ratelimit-Reset": {"1.5"}}, 1500 * time.Millisecond, true},
		{"x-ratelimit-reset negative", http.Header{"X-Ratelimit-Reset": {"-3"}}, 0, false},
		{"resource-until, quota spent", http.Header{"X-Ratelimit-Resource-Until": {date(5 * time.Second)}, "X-Ratelimit-Resource-Remaining": {"0"}}, 5 * time.Second, true},
		{"resource-until, quota left", http.Header{"X-Ratelimit-Resource-Until": {date(6 * time.Hour)}, "X-Ratelimit-Resource-Remaining": {"9000"}}, 0, false},
		{"resource-until alone", http.Header{"X-Ratelimit-Resource-Until": {date(6 * time.Hour)}}, 0, false},
	}
	for _, tt := range tests {
		got, ok := retryHint(tt.h, now)
		assert.Equal(t, tt.ok, ok, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
}

func TestRateLimitQuota(t *testing.T) {
	t.Parallel()
	now := time.Now()
	l, r, reset := rateLimitQuota(http.Header{"Ratelimit": {`"default";r=0;t=30`}, "Ratelimit-Policy": {`"default";q=100;w=60`}}, now)
	assert.Equal(t, []any{100, 0, 30 * time.Second}, []any{l, r, reset})
	l, r, reset = rateLimitQuota(http.Header{"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset-After": {"12"}}, now)
	assert.Equal(t, []any{5000, 0, 12 * time.Second}, []any{l, r, reset})
	l, r, reset = rateLimitQuota(http.Header{}, now)
	assert.Equal(t, []any{-1, -1, time.Duration(0)}, []any{l, r, reset})
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`{"title":"Out of credit","detail":"Your balance is 30"}`:                             "Out of credit: Your balance is 30",
		`{"error":"invalid_request","error_description":"missing\nparam"}`:                    "invalid_request: missing param",
		`{"error":{"code":403,"message":"The caller does not have permission","status":"X"}}`: "The caller does not have permission",
		`{"errors":[{"code":"E42","message":"quota"}]}`:                                       "E42: quota",
		`{"errors":[{"code":42,"message":"quota"}]}`:                                          "42: quota",
		`{"message":"Not Found"}`:                                                             "Not Found",
		`<html>oops</html>`:                                                                   "",
		`{"error":` + strings.Repeat(`[`, 10000):                                              "",
		`{"message":"` + strings.Repeat("x", 500) + `"}`:                                      strings.Repeat("x", 200) + "…",
	}
	for in, want := range tests {
		assert.Equal(t, want, errorMessage(parseProblem([]byte(in)), []byte(in)), in[:min(len(in), 40)])
	}
}

func TestLimit403(t *testing.T) {
	t.Parallel()
	assert.Equal(t, limitWait, limit403(http.Header{"X-Ratelimit-Remaining": {"0"}}, nil))
	assert.Equal(t, limitWait, limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"userRateLimitExceeded"}]}}`)))
	assert.Equal(t, limitWait, limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"quotaExceeded"}]}}`)))
	assert.Equal(t, limitDaily, limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"dailyLimitExceeded"}]}}`)))
	assert.Equal(t, limitWait, limit403(http.Header{"Retry-After": {"60"}}, []byte(`{"message":"x"}`)))
	assert.Equal(t, limitWait, limit403(http.Header{}, []byte(`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`)))
	assert.Equal(t, notLimited, limit403(http.Header{"X-Ratelimit-Remaining": {"12"}}, []byte(`{"error":{"errors":[{"reason":"forbidden"}]}}`)))
}

func TestJWTExpiry(t *testing.T) {
	t.Parallel()
	assert.Equal(t, time.Unix(1800000000, 0), jwtExpiry("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig"))
	assert.True(t, jwtExpiry("opaque-token").IsZero())
	assert.True(t, jwtExpiry("a.b.c.d").IsZero())
	assert.True(t, jwtExpiry("eyJhbGciOiJub25lIn0.eyJleHAiOiJzb29uIn0.sig").IsZero(), `exp:"soon"`)
}

// Fuzz targets: none of the parsers of untrusted input may panic, and each
// result stays bounded. Seeds are in testdata/fuzz.

func FuzzParseChallenges(f *testing.F) {
	f.Add(`Bearer realm="api", error="invalid_token", error_description="the \"token\""`)
	f.Add(`Newauth realm="apps", type=1, title="Login", Basic realm="simple"`)
	f.Add(`Negotiate abc==, Bearer`)
	f.Add(`Bearer error="insufficient_user_authentication", acr_values="phr phrh", max_age="5", resource_metadata="https://r/.well-known/oauth-protected-resource"`)
	f.Add(`DPoP algs="ES256", error="use_dpop_nonce"`)
	f.Fuzz(func(t *testing.T, s string) {
		cs := parseChallenges([]string{s, s})
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
		}
		e := newUnauthorizedError(ResponseError{}, cs)
		if e.StepUp != nil && (e.StepUp.MaxAge < 0 || slices.Contains(e.StepUp.ACRValues, "")) {
			t.Fatalf("step-up %+v", e.StepUp)
		}
		if e.StepUp != nil && !refreshCannotHelp(cs) {
			t.Fatal("a step-up challenge would refresh the token")
		}
	})
}

func FuzzRetryHint(f *testing.F) {
	f.Add("120", "", "", "")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", "", "", "")
	f.Add("", "1500", `"default";r=0;t=30`, "1795435260")
	f.Add("-1", "NaN", `x;r=-1;t=99999999999999999999`, "9223372036854775807")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ra, ms, rl, reset string) {
		h := http.Header{"Retry-After": {ra}, "Retry-After-Ms": {ms}, "Ratelimit": {rl}, "X-Ratelimit-Reset": {reset}, "Ratelimit-Reset": {reset}, "X-Ratelimit-Reset-After": {ms}}
		if d, ok := retryHint(h, now); d < 0 || d > maxHint || (!ok && d != 0) {
			t.Fatalf("retryHint = %v, %v", d, ok)
		}
		if _, _, reset := rateLimitQuota(h, now); reset < 0 || reset > maxHint {
			t.Fatalf("reset = %v", reset)
		}
	})
}

func FuzzErrorBody(f *testing.F) {
	f.Add([]byte(`{"type":"about:blank","title":"Bad","status":400,"detail":"x"}`))
	f.Add([]byte(`{"error":{"code":403,"message":"no","errors":[{"reason":"rateLimitExceeded"}]}}`))
	f.Add([]byte(`{"errors":[{"code":1,"message":"m"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		msg := errorMessage(parseProblem(body), body)
		if len(msg) > 210 || strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("message not one short line: %q", msg)
		}
		_ = limit403(http.Header{}, body)
	})
}

func FuzzJWTExpiry(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJleHAiOjE4MDAwMDAwMDB9.sig")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		if exp := jwtExpiry(tok); !exp.IsZero() && (exp.Unix() <= 0 || exp.Unix() > 1<<40) {
			t.Fatalf("exp = %v", exp)
		}
	})
}

func TestTokenGuardAllowsPlainHTTPWhenAsked(t *testing.T) {
	t.Parallel()
	var sent int
	base := roundTripper(func(*http.Request) (*http.Response, error) {
		sent++
		return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
	})
	req, _ := http.NewRequest(http.MethodPost, "http://192.0.2.1/token", nil)
	if _, err := (&tokenGuard{base: base}).RoundTrip(req); !errors.Is(err, ErrInsecureTransport) || sent != 0 {
		t.Fatalf("refused: err %v, sent %d", err, sent)
	}
	if _, err := (&tokenGuard{base: base, insecureOK: true}).RoundTrip(req); err != nil || sent != 1 {
		t.Fatalf("WithInsecureHTTP: err %v, sent %d", err, sent)
	}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestScrubURLs(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		`Post "https://user:pw@idp.example/token?secret=1#f": dial tcp: refused`: `Post "https://idp.example/token": dial tcp: refused`,
		`no url here`:                       `no url here`,
		`a http://h/p?q b https://h2/x?y=z`: `a http://h/p b https://h2/x`,
		`broken ://`:                        `broken ://[REDACTED]`,
	}
	for in, want := range tests {
		if got := scrubURLs(in); got != want {
			t.Errorf("scrubURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzScrubURLs(f *testing.F) {
	f.Add(`Post "https://user:pw@idp.example/token?secret=1#f": EOF`)
	f.Add(`://?://@://#`)
	f.Fuzz(func(t *testing.T, s string) {
		out := scrubURLs(s)
		if again := scrubURLs(out); again != out {
			t.Fatalf("scrubbing is not stable: %q became %q", out, again)
		}
	})
}
