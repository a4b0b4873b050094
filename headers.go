package oauthtransport

// Parsers of untrusted input: WWW-Authenticate, Retry-After and the rate-limit
// headers, problem+json and other JSON error bodies, and JWT expiry. Each is
// fuzzed in headers_test.go; none panics, and garbage yields "nothing".

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1), with the parameters RFC 6750 defines for Bearer.
type Challenge struct {
	Scheme           string // as sent, e.g. "Bearer"; compare case-insensitively
	Realm            string
	Error            string // e.g. "invalid_token", "insufficient_scope"
	ErrorDescription string
	Scope            string
	// Params holds every auth-param, names lower-cased. A token68
	// credential, if any, is under the empty name.
	Params map[string]string
}

// Problem holds RFC 9457 problem details.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Instance string `json:"instance"`
}

// maxChallenges bounds what one response can make us allocate.
const maxChallenges = 16

// parseChallenges parses the values of every WWW-Authenticate header.
// Malformed parts are skipped.
func parseChallenges(values []string) []Challenge {
	var out []Challenge
	for _, v := range values {
		p := challengeParser{s: v}
		for len(out) < maxChallenges {
			c, ok := p.next()
			if !ok {
				break
			}
			out = append(out, c)
		}
	}
	return out
}

// pickChallenge returns the challenge for scheme, else the first, else none.
func pickChallenge(cs []Challenge, scheme string) Challenge {
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, scheme) {
			return c
		}
	}
	if len(cs) > 0 {
		return cs[0]
	}
	return Challenge{}
}

// offersScheme reports whether the challenges accept scheme. No challenge at
// all counts as yes: the server did not say a token cannot help.
func offersScheme(cs []Challenge, scheme string) bool {
	if len(cs) == 0 {
		return true
	}
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, scheme) {
			return true
		}
	}
	return false
}

type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) skipSpace() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *challengeParser) skipSpaceAndCommas() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == ',') {
		p.i++
	}
}

// skipElement skips to the next top-level comma, stepping over quoted strings.
func (p *challengeParser) skipElement() {
	for p.i < len(p.s) && p.s[p.i] != ',' {
		if p.s[p.i] == '"' {
			p.quoted()
			continue
		}
		p.i++
	}
}

func (p *challengeParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTchar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

// quoted reads a quoted-string at p.i (which is '"'), undoing escapes. An
// unterminated string runs to the end.
func (p *challengeParser) quoted() string {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String()
		case c == '\\' && p.i+1 < len(p.s):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return b.String()
}

// token68 reads a token68 at p.i if one stands there alone (followed by
// spaces and then a comma or the end), else leaves p.i unchanged.
func (p *challengeParser) token68() (string, bool) {
	j := p.i
	for j < len(p.s) && isToken68Char(p.s[j]) {
		j++
	}
	if j == p.i {
		return "", false
	}
	for j < len(p.s) && p.s[j] == '=' {
		j++
	}
	k := j
	for k < len(p.s) && (p.s[k] == ' ' || p.s[k] == '\t') {
		k++
	}
	if k < len(p.s) && p.s[k] != ',' {
		return "", false
	}
	v := p.s[p.i:j]
	p.i = k
	return v, true
}

// paramAhead reports whether an auth-param (token BWS "=") starts at p.i,
// as opposed to the scheme of a new challenge.
func (p *challengeParser) paramAhead() bool {
	save := p.i
	defer func() { p.i = save }()
	if p.token() == "" {
		return false
	}
	p.skipSpace()
	return p.i < len(p.s) && p.s[p.i] == '='
}

func (p *challengeParser) next() (Challenge, bool) {
	for {
		p.skipSpaceAndCommas()
		if p.i >= len(p.s) {
			return Challenge{}, false
		}
		scheme := p.token()
		if scheme == "" {
			p.skipElement() // not a scheme: skip this element
			continue
		}
		c := Challenge{Scheme: scheme}
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' && p.s[p.i] != ',' {
			p.skipElement() // "scheme" glued to garbage
			return c, true
		}
		p.skipSpace()
		if v, ok := p.token68(); ok {
			c.Params = map[string]string{"": v}
			return c, true
		}
		p.params(&c)
		return c, true
	}
}

// params reads auth-params until the next challenge or the end.
func (p *challengeParser) params(c *Challenge) {
	for {
		p.skipSpace()
		if p.i >= len(p.s) {
			return
		}
		if p.s[p.i] == ',' {
			save := p.i
			p.skipSpaceAndCommas()
			if !p.paramAhead() {
				p.i = save
				return
			}
		}
		name := strings.ToLower(p.token())
		p.skipSpace()
		if name == "" || p.i >= len(p.s) || p.s[p.i] != '=' {
			p.skipElement()
			continue
		}
		p.i++ // '='
		p.skipSpace()
		var val string
		if p.i < len(p.s) && p.s[p.i] == '"' {
			val = p.quoted()
		} else {
			val = p.token()
		}
		if c.Params == nil {
			c.Params = make(map[string]string)
		}
		if _, dup := c.Params[name]; !dup && len(c.Params) < 32 {
			c.Params[name] = val
			switch name {
			case "realm":
				c.Realm = val
			case "error":
				c.Error = val
			case "error_description":
				c.ErrorDescription = val
			case "scope":
				c.Scope = val
			}
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] != ',' {
			p.skipElement()
		}
	}
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

// maxHint is the longest server hint that is believed; anything longer is
// garbage and ignored, not obeyed.
const maxHint = 7 * 24 * time.Hour

// retryHint returns how long the server asked the client to wait, and
// whether it asked at all. Sources, in order: Retry-After (seconds or an
// HTTP-date), retry-after-ms, x-ms-retry-after-ms, the RateLimit structured
// field, RateLimit-Reset, X-RateLimit-Reset-After, X-RateLimit-Reset,
// X-RateLimit-Resource-Until. Dates are measured against the response's Date
// header when it has one, so a client with a wrong clock still waits right.
// A past date means "now". Invalid, negative or absurd values are ignored.
func retryHint(h http.Header, now time.Time) (time.Duration, bool) {
	if len(h) == 0 {
		return 0, false
	}
	serverNow := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		serverNow = d
	}
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
	if _, r, t, ok := parseRateLimitField(h.Values("Ratelimit")); ok && r == 0 && t >= 0 {
		return time.Duration(t) * time.Second, true
	}
	if remainingZeroOrAbsent(h.Get("Ratelimit-Remaining")) {
		if d, ok := parseSeconds(h.Get("Ratelimit-Reset"), false); ok {
			return d, true
		}
	}
	if remainingZeroOrAbsent(h.Get("X-Ratelimit-Remaining")) {
		if d, ok := parseSeconds(h.Get("X-Ratelimit-Reset-After"), true); ok {
			return d, true
		}
		if d, ok := parseReset(h.Get("X-Ratelimit-Reset"), serverNow); ok {
			return d, true
		}
		if t, err := http.ParseTime(strings.TrimSpace(h.Get("X-Ratelimit-Resource-Until"))); err == nil {
			return untilDate(t, serverNow)
		}
	}
	return 0, false
}

func remainingZeroOrAbsent(v string) bool {
	v = strings.TrimSpace(v)
	return v == "" || v == "0"
}

func untilDate(t, now time.Time) (time.Duration, bool) {
	d := t.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxHint:
		return 0, false
	}
	return d.Round(time.Millisecond), true
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
		if err != nil || n > uint64(maxHint/time.Second) {
			return 0, false
		}
		return time.Duration(n) * time.Second, true
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxHint.Seconds() {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)).Round(time.Millisecond), true
}

func parseMillis(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > float64(maxHint/time.Millisecond) {
		return 0, false
	}
	return time.Duration(f * float64(time.Millisecond)), true
}

// epochThreshold separates epoch seconds from delays in X-RateLimit-Reset:
// no delay is that long, and no reset epoch that small (2001-09-09).
const epochThreshold = 1_000_000_000

func parseReset(v string, serverNow time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	if n >= epochThreshold {
		if n > 1<<40 { // far beyond any real date; would overflow time
			return 0, false
		}
		return untilDate(time.Unix(n, 0), serverNow)
	}
	return parseSeconds(v, false)
}

// parseRateLimitField reads the IETF RateLimit structured field
// (draft-ietf-httpapi-ratelimit-headers): a list of `"name";r=R;t=T`. It
// returns the member with the least remaining quota. ok is false when no
// member is well formed.
func parseRateLimitField(values []string) (name string, r, t int64, ok bool) {
	r, t = -1, -1
	for _, v := range values {
		for member := range strings.SplitSeq(v, ",") {
			parts := strings.Split(strings.TrimSpace(member), ";")
			if len(parts) < 2 || len(parts) > 8 {
				continue
			}
			mr, mt := int64(-1), int64(-1)
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
					mr = n
				case "t":
					mt = n
				}
			}
			if mr < 0 {
				continue
			}
			if !ok || mr < r || (mr == r && mt > t) {
				name, r, t, ok = strings.Trim(parts[0], `" `), mr, mt, true
			}
		}
	}
	return name, r, t, ok
}

// rateLimitQuota returns the limit, remaining quota and time to reset that
// the server announced; -1, -1, 0 where it announced nothing.
func rateLimitQuota(h http.Header, now time.Time) (limit, remaining int, reset time.Duration) {
	limit, remaining = -1, -1
	atoi := func(v string) int {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return -1
		}
		return n
	}
	serverNow := now
	if d, err := http.ParseTime(h.Get("Date")); err == nil {
		serverNow = d
	}
	if _, r, t, ok := parseRateLimitField(h.Values("Ratelimit")); ok {
		remaining = int(r)
		if t > 0 {
			reset = time.Duration(t) * time.Second
		}
		for _, p := range h.Values("Ratelimit-Policy") {
			if i := strings.Index(p, ";q="); i >= 0 {
				q := p[i+3:]
				if j := strings.IndexByte(q, ';'); j >= 0 {
					q = q[:j]
				}
				if j := strings.IndexByte(q, ','); j >= 0 {
					q = q[:j]
				}
				limit = atoi(q)
				break
			}
		}
		return limit, remaining, reset
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
	}
	return limit, remaining, reset
}

// rateLimited403 reports whether a 403 is really a rate limit: GitHub's
// X-RateLimit-Remaining: 0, or Google's rateLimitExceeded reasons.
func rateLimited403(h http.Header, body []byte) bool {
	if strings.TrimSpace(h.Get("X-Ratelimit-Remaining")) == "0" {
		return true
	}
	if !looksLikeObject(body) {
		return false
	}
	var g struct {
		Error struct {
			Errors []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	_ = json.Unmarshal(body, &g) // partial results are fine
	for _, e := range g.Error.Errors {
		if e.Reason == "rateLimitExceeded" || e.Reason == "userRateLimitExceeded" {
			return true
		}
	}
	return false
}

func isProblemJSON(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/problem+json"
}

// parseProblem decodes RFC 9457 problem details; members of the wrong type
// are left empty. It returns nil when body is not a JSON object.
func parseProblem(body []byte) *Problem {
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		if _, typeErr := err.(*json.UnmarshalTypeError); !typeErr {
			return nil
		}
	}
	return &p
}

// errorMessage picks a short, one-line message from the usual JSON error
// shapes: problem details, OAuth (RFC 6749 §5.2), Google's error.message,
// an errors[] list of {code, message}, or a top-level message.
func errorMessage(p *Problem, body []byte) string {
	const n = 200
	if p != nil && (p.Title != "" || p.Detail != "") {
		switch {
		case p.Title == "":
			return oneLine(p.Detail, n)
		case p.Detail == "":
			return oneLine(p.Title, n)
		}
		return oneLine(p.Title+": "+p.Detail, n)
	}
	if !looksLikeObject(body) {
		return ""
	}
	var m struct {
		Title   string          `json:"title"`
		Detail  string          `json:"detail"`
		Error   json.RawMessage `json:"error"`
		Desc    string          `json:"error_description"`
		Message string          `json:"message"`
		Errors  []struct {
			Code    json.RawMessage `json:"code"`
			Message string          `json:"message"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(body, &m) // partial results are fine
	var code string
	if json.Unmarshal(m.Error, &code) == nil && code != "" {
		if m.Desc != "" {
			return oneLine(code+": "+m.Desc, n)
		}
		return oneLine(code, n)
	}
	var g struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(m.Error, &g) == nil && g.Message != "" {
		return oneLine(g.Message, n)
	}
	if m.Title != "" || m.Detail != "" {
		return errorMessage(&Problem{Title: m.Title, Detail: m.Detail}, nil)
	}
	for _, e := range m.Errors {
		if e.Message == "" {
			continue
		}
		var c string
		if json.Unmarshal(e.Code, &c) != nil {
			c = strings.Trim(string(e.Code), `" `)
		}
		if c != "" && len(c) < 64 {
			return oneLine(c+": "+e.Message, n)
		}
		return oneLine(e.Message, n)
	}
	return oneLine(m.Message, n)
}

// jwtExpiry returns the exp claim of a JWT access token, or the zero time
// when tok is not a JWT or has no usable exp. The signature is not checked:
// exp only schedules refreshes.
func jwtExpiry(tok string) time.Time {
	if len(tok) > 16<<10 {
		return time.Time{}
	}
	first := strings.IndexByte(tok, '.')
	if first <= 0 {
		return time.Time{}
	}
	rest := tok[first+1:]
	second := strings.IndexByte(rest, '.')
	if second <= 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(rest[:second], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	f, err := claims.Exp.Float64()
	if err != nil || math.IsNaN(f) || f <= 0 || f > 1<<40 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

// looksLikeObject reports whether body starts, after white space, with "{".
func looksLikeObject(body []byte) bool {
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c == '{'
	}
	return false
}
