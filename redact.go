package oauthtransport

// Keeping secrets out of errors and logs: the values the SDK sent (access
// and refresh tokens, client secrets) are replaced wherever a server may
// echo them, before anything is cut short, and URLs lose their user info,
// query and fragment.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

const redacted = "[REDACTED]"

// redact replaces every non-empty secret in s.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// redactBytes is redact for a body; b itself is not modified.
func redactBytes(b []byte, secrets ...string) []byte {
	for _, sec := range secrets {
		if sec != "" && bytes.Contains(b, []byte(sec)) {
			b = bytes.ReplaceAll(b, []byte(sec), []byte(redacted))
		}
	}
	return b
}

// sentForms returns secrets with the forms they took on the wire, any of
// which a server may echo: URL-encoded (a form body), JSON-escaped, and
// clientID with clientSecret as HTTP Basic credentials, as x/oauth2 sends
// them (each URL-encoded, then base64) and unencoded. Longest first, so
// that a longer form is redacted whole before a shorter one cuts it.
func sentForms(clientID, clientSecret string, secrets ...string) []string {
	forms := make([]string, 0, 3*len(secrets)+5)
	add := func(s string) {
		if s != "" {
			forms = append(forms, s, url.QueryEscape(s), jsonEscaped(s))
		}
	}
	for _, s := range secrets {
		add(s)
	}
	add(clientSecret)
	if clientSecret != "" {
		forms = append(forms, basicCredentials(url.QueryEscape(clientID), url.QueryEscape(clientSecret)),
			basicCredentials(clientID, clientSecret))
	}
	slices.SortFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return forms
}

// basicCredentials is the value of an HTTP Basic Authorization header
// after "Basic ".
func basicCredentials(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// jsonEscaped is s as a JSON string holds it, without the quotes.
func jsonEscaped(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// redactURL returns u without user info, query or fragment.
func redactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
	return c.String()
}

// scrubURLs removes user info, query and fragment from every URL in s, an
// error's text that may quote one (as *url.Error does).
func scrubURLs(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		end := i + 3 + strings.IndexAny(s[i+3:]+" ", " \t\"'<>")
		b.WriteString(s[:i])
		if u, err := url.Parse(schemeBefore(s, i) + s[i:end]); err == nil && u.Host != "" {
			b.WriteString(strings.TrimPrefix(redactURL(u), u.Scheme))
		} else {
			b.WriteString("://" + redacted)
		}
		s = s[end:]
	}
}

// schemeBefore returns the scheme that ends at s[i] ("https" in
// "Post https://..."); it was already written, so it is only needed to
// parse the URL.
func schemeBefore(s string, i int) string {
	j := i
	for j > 0 && (isAlnum(s[j-1]) || s[j-1] == '+' || s[j-1] == '-' || s[j-1] == '.') {
		j--
	}
	if j == i {
		return "x"
	}
	return s[j:i]
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// withoutSecrets returns te with secrets redacted from its text: its
// description, and the text of its cause (which still unwraps as before).
func (e *TokenError) withoutSecrets(secrets ...string) *TokenError {
	c := *e
	c.Code = cleanCode(c.Code, secrets)
	c.Description = redact(c.Description, secrets...)
	if c.Err != nil {
		c.Err = &redactedError{err: c.Err, secrets: secrets}
	}
	return &c
}

// redactedError is an error whose text has secrets redacted.
type redactedError struct {
	err     error
	secrets []string
}

func (e *redactedError) Error() string { return redact(e.err.Error(), e.secrets...) }
func (e *redactedError) Unwrap() error { return e.err }
