package oauthtransport

// Keeping secrets out of a TokenError: the values the SDK sent are
// redacted from its text with internal/wire's redaction, while its cause
// still unwraps as before.

import "github.com/oauthtransport/oauthtransport/internal/wire"

// withoutSecrets returns te with secrets redacted from its text: its
// description, and the text of its cause (which still unwraps as before).
func (e *TokenError) withoutSecrets(secrets ...string) *TokenError {
	c := *e
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
