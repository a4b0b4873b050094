package wire

// Retry-After and the rate-limit headers: how long a server asks a client
// to wait, the quota it announces, and whether a 403 or a 420 is a rate
// limit. Fuzzed in ratelimit_test.go; garbage yields "nothing".

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxHint is where a server's hint is clamped: a well-formed hint is
// believed however long (it then exceeds MaxRetryAfter and fails fast with
// RateLimitError.RetryAfter set); only this keeps time arithmetic from
// overflowing.
const maxHint = 100 * 365 * 24 * time.Hour

// RetryHint returns how long the server asked the client to wait, and
// whether it asked at all. Sources, in order: Retry-After (seconds or an
// HTTP-date), retry-after-ms, x-ms-retry-after-ms, the RateLimit structured
// field, RateLimit-Reset, X-RateLimit-Reset-After, X-RateLimit-Reset,
// X-RateLimit-Resource-Until (only once X-RateLimit-Resource-Remaining is
// 0: Yandex sends it on every response). Dates are measured against the response's Date
// header when it has one, so a client with a wrong clock still waits right.
// A past date means "now". Invalid, negative or absurd values are ignored.
func RetryHint(h http.Header, now time.Time) (time.Duration, bool) {
	if len(h) == 0 {
		return 0, false
	}
	serverNow := ServerTime(h, now)
	if d, ok := retryAfter(h, serverNow); ok {
		return d, true
	}
	return resetHint(h, serverNow)
}

// ServerTime is the response's Date, else now.
func ServerTime(h http.Header, now time.Time) time.Time {
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		return d
	}
	return now
}

// retryAfter reads the headers that name a wait: Retry-After (seconds or
// an HTTP-date), retry-after-ms, x-ms-retry-after-ms.
func retryAfter(h http.Header, serverNow time.Time) (time.Duration, bool) {
	if v := h.Get("Retry-After"); v != "" {
		if d, ok := parseSeconds(v, false); ok {
			return d, true
		}
		if t, err := http.ParseTime(strings.TrimSpace(v)); err == nil {
			return untilDate(t, serverNow)
		}
	}
	for _, k := range [...]string{"Retry-After-Ms", "X-Ms-Retry-After-Ms"} {
		if d, ok := parseMillis(h.Get(k)); ok {
			return d, true
		}
	}
	return 0, false
}

// resetHint reads the rate-limit headers that name when an exhausted quota
// resets: the RateLimit field, RateLimit-Reset, X-RateLimit-Reset-After,
// X-RateLimit-Reset, and Yandex's X-RateLimit-Resource-Until once
// X-RateLimit-Resource-Remaining is 0.
func resetHint(h http.Header, serverNow time.Time) (time.Duration, bool) {
	if d, ok := resourceHint(h, serverNow); ok {
		return d, true
	}
	if r, t, ok := parseRateLimitField(h.Values("Ratelimit")); ok && r == 0 && t >= 0 {
		return time.Duration(t) * time.Second, true
	}
	if remainingZeroOrAbsent(h.Get("Ratelimit-Remaining")) {
		if d, ok := parseSeconds(h.Get("Ratelimit-Reset"), false); ok {
			return d, true
		}
	}
	if !remainingZeroOrAbsent(h.Get("X-Ratelimit-Remaining")) {
		return 0, false
	}
	if d, ok := parseSeconds(h.Get("X-Ratelimit-Reset-After"), true); ok {
		return d, true
	}
	return parseReset(h.Get("X-Ratelimit-Reset"), serverNow)
}

// Yandex Market sends X-RateLimit-Resource-Limit, -Remaining and -Until on
// every response: a quota over a long window (often a day), and the date
// it ends. The date is a wait only once the quota is spent; a 420 for too
// many parallel requests, or a 503, says nothing about it.

// resourceHint is the wait until X-RateLimit-Resource-Until when
// X-RateLimit-Resource-Remaining is 0.
func resourceHint(h http.Header, serverNow time.Time) (time.Duration, bool) {
	if strings.TrimSpace(h.Get("X-Ratelimit-Resource-Remaining")) != "0" {
		return 0, false
	}
	return ResourceUntil(h, serverNow)
}

// ResourceUntil is the wait until X-RateLimit-Resource-Until, whatever
// the quota left.
func ResourceUntil(h http.Header, serverNow time.Time) (time.Duration, bool) {
	t, err := http.ParseTime(strings.TrimSpace(h.Get("X-Ratelimit-Resource-Until")))
	if err != nil {
		return 0, false
	}
	return untilDate(t, serverNow)
}

// ResourceLimit420 reports whether a 420's body names a resource limit
// (the window quota) rather than the limit of parallel requests.
func ResourceLimit420(body []byte) bool {
	msg := strings.ToLower(string(body[:min(len(body), 4096)]))
	return strings.Contains(msg, "resource") && !strings.Contains(msg, "parallel")
}

func remainingZeroOrAbsent(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || v == "0"
}

func untilDate(t, now time.Time) (time.Duration, bool) {
	d := t.Sub(now)
	if d < 0 {
		return 0, true
	}
	return min(d, maxHint).Round(time.Millisecond), true
}

// parseSeconds parses a non-negative delay in seconds, an integer or, with
// fraction, a decimal number.
func parseSeconds(v string, fraction bool) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if !fraction {
		n, err := strconv.ParseUint(v, 10, 64)
		if errors.Is(err, strconv.ErrRange) {
			return maxHint, true // all digits, just enormous
		}
		if err != nil {
			return 0, false
		}
		return time.Duration(min(n, uint64(maxHint/time.Second))) * time.Second, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if (err != nil && !errors.Is(err, strconv.ErrRange)) || math.IsNaN(f) || f < 0 {
		return 0, false
	}
	return time.Duration(min(f, maxHint.Seconds()) * float64(time.Second)).Round(time.Millisecond), true
}

func parseMillis(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if (err != nil && !errors.Is(err, strconv.ErrRange)) || math.IsNaN(f) || f < 0 {
		return 0, false
	}
	return time.Duration(min(f, float64(maxHint/time.Millisecond)) * float64(time.Millisecond)), true
}

// X-RateLimit-Reset is a delay in seconds, an epoch in seconds, or an
// epoch in milliseconds, told apart by size: below 10⁹ a delay (no delay
// is 31 years), from 10⁹ to 10¹² epoch seconds (2001 to the year 33658),
// from 10¹² epoch milliseconds. Fractions are allowed in each.
const (
	epochSeconds = 1e9
	epochMillis  = 1e12
)

func parseReset(v string, serverNow time.Time) (time.Duration, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, false
	}
	switch {
	case f < epochSeconds:
		return time.Duration(f * float64(time.Second)).Round(time.Millisecond), true
	case f < epochMillis:
		return untilDate(time.UnixMilli(int64(f*1000)), serverNow)
	case f < 1e17: // beyond, int64 nanoseconds would overflow
		return untilDate(time.UnixMilli(int64(f)), serverNow)
	}
	return maxHint, true
}

// parseRateLimitField reads the IETF RateLimit structured field
// (draft-ietf-httpapi-ratelimit-headers): a list of `"name";r=R;t=T`. It
// returns r and t of the member with the least remaining quota; ok is false
// when no member is well formed.
func parseRateLimitField(values []string) (r, t int64, ok bool) {
	r, t = -1, -1
	for _, v := range values {
		for member := range strings.SplitSeq(v, ",") {
			mr, mt, valid := parseRateLimitMember(member)
			if valid && (!ok || mr < r || (mr == r && mt > t)) {
				r, t, ok = mr, mt, true
			}
		}
	}
	return r, t, ok
}

// parseRateLimitMember reads r and t (-1 when absent) of one
// `"name";r=R;t=T` member; ok is false without a valid r.
func parseRateLimitMember(member string) (r, t int64, ok bool) {
	parts := strings.Split(strings.TrimSpace(member), ";")
	if len(parts) < 2 || len(parts) > 8 {
		return -1, -1, false
	}
	r, t = -1, -1
	for _, kv := range parts[1:] {
		k, val, found := strings.Cut(strings.TrimSpace(kv), "=")
		if !found {
			continue
		}
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil || n < 0 || n > int64(maxHint/time.Second) {
			continue
		}
		switch k {
		case "r":
			r = n
		case "t":
			t = n
		}
	}
	return r, t, r >= 0
}

// RateLimitQuota returns the limit, remaining quota and time to reset that
// the server announced; -1, -1, 0 where it announced nothing.
func RateLimitQuota(h http.Header, now time.Time) (limit, remaining int, reset time.Duration) {
	limit, remaining = -1, -1
	atoi := func(v string) int {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	serverNow := ServerTime(h, now)
	if r, t, ok := parseRateLimitField(h.Values("Ratelimit")); ok {
		remaining = int(r)
		if t > 0 {
			reset = time.Duration(t) * time.Second
		}
		return policyQuota(h.Values("Ratelimit-Policy"), atoi), remaining, reset
	}
	if v := h.Get("Ratelimit-Limit"); v != "" {
		limit = atoi(v)
		remaining = atoi(h.Get("Ratelimit-Remaining"))
		reset, _ = parseSeconds(h.Get("Ratelimit-Reset"), false)
		return limit, remaining, reset
	}
	if v := h.Get("X-Ratelimit-Limit"); v != "" || h.Get("X-Ratelimit-Remaining") != "" {
		limit = atoi(v)
		remaining = atoi(h.Get("X-Ratelimit-Remaining"))
		var ok bool
		if reset, ok = parseSeconds(h.Get("X-Ratelimit-Reset-After"), true); !ok {
			reset, _ = parseReset(h.Get("X-Ratelimit-Reset"), serverNow)
		}
		return limit, remaining, reset
	}
	if v := h.Get("X-Ratelimit-Resource-Limit"); v != "" || h.Get("X-Ratelimit-Resource-Remaining") != "" {
		limit = atoi(v)
		remaining = atoi(h.Get("X-Ratelimit-Resource-Remaining"))
		reset, _ = ResourceUntil(h, serverNow)
	}
	return limit, remaining, reset
}

// policyQuota is the q of the first RateLimit-Policy member that has one;
// -1 when none does.
func policyQuota(values []string, atoi func(string) int) int {
	for _, p := range values {
		if i := strings.Index(p, ";q="); i >= 0 {
			q := p[i+3:]
			if j := strings.IndexAny(q, ";,"); j >= 0 {
				q = q[:j]
			}
			return atoi(q)
		}
	}
	return -1
}

// Limit403Kind says what a 403 is.
type Limit403Kind uint8

const (
	NotLimited Limit403Kind = iota // a real 403
	LimitWait                      // a rate limit that waiting lifts
	LimitDaily                     // a daily quota: not before tomorrow
)

// Limit403 says whether a 403 is a rate limit: GitHub's primary limit
// (X-RateLimit-Remaining: 0) and secondary limits (a Retry-After, or the
// documented message), Google's rateLimitExceeded, userRateLimitExceeded
// and quotaExceeded; Google's dailyLimitExceeded is one that no wait
// within a request lifts.
func Limit403(h http.Header, body []byte) Limit403Kind {
	if strings.TrimSpace(h.Get("X-Ratelimit-Remaining")) == "0" || h.Get("Retry-After") != "" {
		return LimitWait
	}
	if !looksLikeObject(body) {
		return NotLimited
	}
	var g struct {
		Message string `json:"message"`
		Error   struct {
			Errors []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &g) // partial results are fine
	for _, e := range g.Error.Errors {
		switch e.Reason {
		case "rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded":
			return LimitWait
		case "dailyLimitExceeded":
			return LimitDaily
		}
	}
	msg := strings.ToLower(g.Message)
	if strings.Contains(msg, "secondary rate limit") || strings.Contains(msg, "abuse detection") {
		return LimitWait
	}
	return NotLimited
}

// hintHeaders are the headers RetryHint reads, in its order.
var hintHeaders = [...]string{"Retry-After", "Retry-After-Ms", "X-Ms-Retry-After-Ms", "Ratelimit", "Ratelimit-Reset",
	"X-Ratelimit-Reset-After", "X-Ratelimit-Reset", "X-Ratelimit-Resource-Until"}

// HintHeader names the first hint header h has, with its value, for logs.
func HintHeader(h http.Header) string {
	for _, k := range hintHeaders {
		if v := h.Get(k); v != "" {
			return k + ": " + OneLine(v, 100)
		}
	}
	return ""
}
