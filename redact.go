package oauthtransport

// Keeping secrets out of a TokenError: the values the SDK sent are
// redacted from its text with internal/wire's redaction, while its cause
// still unwraps as before.

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

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

// withoutSecrets returns te with secrets redacted from its text: its
// description, and the text of its cause (which still unwraps as before).
func (e *TokenError) withoutSecrets(secrets ...string) *TokenError {
	c := *e
	c.Code = cleanCode(c.Code, secrets)
	c.Description = wire.Redact(c.Description, secrets...)
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

func (e *redactedError) Error() string { return wire.Redact(e.err.Error(), e.secrets...) }
func (e *redactedError) Unwrap() error { return e.err }
