package oauthtransport

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// PanicError is the cause of a [*TokenError] when user code the Transport
// called (a Source, a Store, a Locker, a WithAuthorization function, the
// signer of WithDPoP or WithPrivateKeyJWT, a NewKeyed sources function)
// panicked. The Transport recovers, logs the value and stack at error
// level, and keeps working; the callers waiting for that token get the
// error.
type PanicError struct {
	// In names what panicked, e.g. "Source.Token".
	In string
	// Value is the panic value, formatted, with the tokens the Transport
	// knew at the time redacted.
	Value string
}

func (e *PanicError) Error() string { return "oauthtransport: " + e.In + " panicked: " + e.Value }

// protect runs f, turning a panic into a *TokenError wrapping a
// *PanicError. secrets are redacted from the logged panic value.
func protect(ctx context.Context, log *slog.Logger, in string, secrets []string, f func() error) (err error) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		pe := &PanicError{In: in, Value: wire.OneLine(wire.Redact(fmt.Sprint(v), secrets...), 2000)} // redact, then cut
		log.LogAttrs(ctx, slog.LevelError, "oauthtransport: recovered from a panic",
			slog.String("in", in), slog.String("panic", pe.Value), slog.String("stack", wire.Redact(string(debug.Stack()), secrets...)))
		err = &TokenError{Err: pe}
	}()
	return f()
}
