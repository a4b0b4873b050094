package wire

// Keeping secrets out of errors and logs: the values the SDK sent (access
// and refresh tokens, client secrets) are replaced wherever a server may
// echo them, before anything is cut short; URLs lose their user info,
// query and fragment; and untrusted text is cut to one short line.
// ScrubURLs is fuzzed in redact_test.go.

import (
	"bytes"
	"net/url"
	"strings"
)

const redacted = "[REDACTED]"

// Redact replaces every non-empty secret in s.
func Redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, redacted)
		}
	}
	return s
}

// RedactBytes is Redact for a body; b itself is not modified.
func RedactBytes(b []byte, secrets ...string) []byte {
	for _, sec := range secrets {
		if sec != "" && bytes.Contains(b, []byte(sec)) {
			b = bytes.ReplaceAll(b, []byte(sec), []byte(redacted))
		}
	}
	return b
}

// RedactURL returns u without user info, query or fragment.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath, Opaque: u.Opaque}
	return c.String()
}

// ScrubURLs removes user info, query and fragment from every URL in s, an
// error's text that may quote one (as *url.Error does).
func ScrubURLs(s string) string {
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
			b.WriteString(strings.TrimPrefix(RedactURL(u), u.Scheme))
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

// OneLine returns s on one line, at most n bytes long (and an ellipsis).
// Cut after redacting, never before: a secret cut in two is no longer
// found.
func OneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
