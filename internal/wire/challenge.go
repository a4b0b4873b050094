package wire

// WWW-Authenticate (RFC 9110 §11.6.1), parsed from untrusted input, and
// what its challenges ask of a client: another scheme, a step-up (RFC
// 9470), more scope.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 9110 §11.6.1), with the parameters RFC 6750 defines for Bearer.
// The root package re-exports it; its doc comment there is the one users
// read.
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

// maxChallengeBytes bounds what one response can make us parse, and so
// allocate: a Bearer challenge after any number of others within it is
// seen; beyond it nothing is.
const maxChallengeBytes = 16 << 10

// ParseChallenges parses the values of every WWW-Authenticate header, up
// to maxChallengeBytes in all. Malformed parts are skipped.
func ParseChallenges(values []string) []Challenge {
	var out []Challenge
	budget := maxChallengeBytes
	for _, v := range values {
		if len(v) > budget {
			v = v[:budget]
		}
		budget -= len(v)
		p := challengeParser{s: v}
		for {
			c, ok := p.next()
			if !ok {
				break
			}
			out = append(out, c)
		}
	}
	return out
}

// PickChallenge returns the challenge for scheme, else the first, else none.
func PickChallenge(cs []Challenge, scheme string) Challenge {
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

// OffersScheme reports whether the challenges accept scheme. No challenge at
// all counts as yes: the server did not say a token cannot help.
func OffersScheme(cs []Challenge, scheme string) bool {
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

// RefreshCannotHelp reports a 401 whose challenge asks for what a new
// token from the same grant cannot give: a stronger or more recent user
// authentication (RFC 9470), or more scope.
func RefreshCannotHelp(challenges []Challenge) bool {
	for _, c := range challenges {
		if c.Error == "insufficient_user_authentication" || c.Error == "insufficient_scope" {
			return true
		}
	}
	return false
}

// StepUp reads what a step-up challenge (RFC 9470) asks for: the
// acr_values, and max_age when it is a whole number of seconds in
// [0, 2³¹).
func StepUp(c Challenge) (acrValues []string, maxAge time.Duration, hasMaxAge bool) {
	acrValues = strings.Fields(c.Params["acr_values"])
	if v, ok := c.Params["max_age"]; ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n >= 0 && n < 1<<31 {
			return acrValues, time.Duration(n) * time.Second, true
		}
	}
	return acrValues, 0, false
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
		if name, val, ok := p.param(); ok {
			c.set(name, val)
		}
		p.skipSpace()
		if p.i < len(p.s) && p.s[p.i] != ',' {
			p.skipElement()
		}
	}
}

// param reads one name=value; a malformed one is skipped.
func (p *challengeParser) param() (name, val string, ok bool) {
	name = strings.ToLower(p.token())
	p.skipSpace()
	if name == "" || p.i >= len(p.s) || p.s[p.i] != '=' {
		p.skipElement()
		return "", "", false
	}
	p.i++ // '='
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '"' {
		return name, p.quoted(), true
	}
	return name, p.token(), true
}

// set records an auth-param; the first of duplicates wins, and at most 32
// are kept.
func (c *Challenge) set(name, val string) {
	if c.Params == nil {
		c.Params = make(map[string]string)
	}
	if _, dup := c.Params[name]; dup || len(c.Params) >= 32 {
		return
	}
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

// maxClaims bounds the claims a challenge may ask for, decoded.
const maxClaims = 8 << 10

// Claims returns the claims an insufficient_claims challenge asks for
// (Microsoft Entra's continuous access evaluation): its "claims"
// parameter, base64 (standard or URL alphabet, padded or not) of a JSON
// object, decoded and checked to be one; at most 8 KiB.
func Claims(challenges []Challenge) (string, bool) {
	for _, c := range challenges {
		if c.Error != "insufficient_claims" {
			continue
		}
		raw := strings.TrimRight(strings.TrimSpace(c.Params["claims"]), "=")
		if raw == "" || len(raw) > maxClaims*4/3+4 {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			b, err := enc.DecodeString(raw)
			if err == nil && len(b) <= maxClaims && json.Valid(b) && bytes.HasPrefix(bytes.TrimSpace(b), []byte("{")) {
				return string(b), true
			}
		}
	}
	return "", false
}
