package wire

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

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
		got, ok := RetryHint(tt.h, now)
		assert.Equal(t, tt.ok, ok, tt.name)
		assert.Equal(t, tt.want, got, tt.name)
	}
}

func TestRateLimitQuota(t *testing.T) {
	t.Parallel()
	now := time.Now()
	l, r, reset := RateLimitQuota(http.Header{"Ratelimit": {`"default";r=0;t=30`}, "Ratelimit-Policy": {`"default";q=100;w=60`}}, now)
	assert.Equal(t, []any{100, 0, 30 * time.Second}, []any{l, r, reset})
	l, r, reset = RateLimitQuota(http.Header{"X-Ratelimit-Limit": {"5000"}, "X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset-After": {"12"}}, now)
	assert.Equal(t, []any{5000, 0, 12 * time.Second}, []any{l, r, reset})
	l, r, reset = RateLimitQuota(http.Header{}, now)
	assert.Equal(t, []any{-1, -1, time.Duration(0)}, []any{l, r, reset})
}

func TestLimit403(t *testing.T) {
	t.Parallel()
	assert.Equal(t, LimitWait, Limit403(http.Header{"X-Ratelimit-Remaining": {"0"}}, nil))
	assert.Equal(t, LimitWait, Limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"userRateLimitExceeded"}]}}`)))
	assert.Equal(t, LimitWait, Limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"quotaExceeded"}]}}`)))
	assert.Equal(t, LimitDaily, Limit403(http.Header{}, []byte(`{"error":{"errors":[{"reason":"dailyLimitExceeded"}]}}`)))
	assert.Equal(t, LimitWait, Limit403(http.Header{"Retry-After": {"60"}}, []byte(`{"message":"x"}`)))
	assert.Equal(t, LimitWait, Limit403(http.Header{}, []byte(`{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`)))
	assert.Equal(t, NotLimited, Limit403(http.Header{"X-Ratelimit-Remaining": {"12"}}, []byte(`{"error":{"errors":[{"reason":"forbidden"}]}}`)))
}

// FuzzRetryHint: the rate-limit parsers never panic, every wait they read
// lies in [0, maxHint], and the hint header logged is one short line.
// Seeds are in testdata/fuzz.
func FuzzRetryHint(f *testing.F) {
	f.Add("120", "", "", "")
	f.Add("Wed, 21 Oct 2015 07:28:00 GMT", "", "", "")
	f.Add("", "1500", `"default";r=0;t=30`, "1795435260")
	f.Add("-1", "NaN", `x;r=-1;t=99999999999999999999`, "9223372036854775807")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, ra, ms, rl, reset string) {
		h := http.Header{"Retry-After": {ra}, "Retry-After-Ms": {ms}, "Ratelimit": {rl}, "X-Ratelimit-Reset": {reset}, "Ratelimit-Reset": {reset}, "X-Ratelimit-Reset-After": {ms}}
		if d, ok := RetryHint(h, now); d < 0 || d > maxHint || (!ok && d != 0) {
			t.Fatalf("RetryHint = %v, %v", d, ok)
		}
		if _, _, reset := RateLimitQuota(h, now); reset < 0 || reset > maxHint {
			t.Fatalf("reset = %v", reset)
		}
		if d, ok := ResourceUntil(http.Header{"X-Ratelimit-Resource-Until": {ra}}, now); d < 0 || d > maxHint || (!ok && d != 0) {
			t.Fatalf("ResourceUntil = %v, %v", d, ok)
		}
		if hh := HintHeader(h); len(hh) > 160 || strings.ContainsAny(hh, "\r\n") {
			t.Fatalf("hint header not one short line: %q", hh)
		}
	})
}
