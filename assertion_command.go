package oauthtransport

// An assertion a program prints: a cloud CLI, a vault client, a script.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// AssertionFromCommand returns an [AssertionFunc] that runs the program
// name with args, without a shell, and reads the assertion from its
// standard output (surrounding white space trimmed, at most 64 KiB): a
// cloud CLI's identity token, a vault client's, a script's. The program
// inherits the process's environment and working directory, and is
// killed when ctx ends (for a Transport, after its refresh timeout). An
// assertion is reused until the last quarter of its life (from its iat
// claim, or when the program printed it, to its exp claim; at least 30 s
// before exp); one without exp runs the program for every call.
//
// When the program fails (it cannot start, exits with another status than
// 0, prints nothing or an expired assertion), the last good assertion is
// returned until 30 s before its exp; after that, the error is an
// [*AssertionError] naming the command by name (not its arguments) with
// its exit status and the first line of its standard error, cut to 200
// bytes, with anything that could be a credential redacted: the
// assertions it printed and every long or digit-bearing word. It is safe
// for concurrent use.
func AssertionFromCommand(name string, args ...string) AssertionFunc {
	c := &commandAssertion{name: name, args: slices.Clone(args)}
	return c.assertion
}

type commandAssertion struct {
	name string
	args []string
	last lastAssertion
}

func (c *commandAssertion) assertion(ctx context.Context) (string, error) {
	if a, ok := c.last.fresh(); ok {
		return a, nil
	}
	a, err := c.run(ctx)
	return c.last.keep(fmt.Sprintf("command %q", c.name), a, err)
}

// run runs the program once.
func (c *commandAssertion) run(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	stdout, stderr := &boundedBuffer{max: maxAssertionBytes + 1}, &boundedBuffer{max: 4 << 10}
	cmd := exec.CommandContext(ctx, c.name, c.args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a child that keeps the pipes open does not hold us
	err := cmd.Run()
	out := strings.TrimSpace(string(stdout.b))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return "", withStderr(err, stderr.b, out)
	}
	switch {
	case len(stdout.b) > maxAssertionBytes:
		return "", fmt.Errorf("its output exceeds %d bytes", maxAssertionBytes)
	case out == "":
		return "", withStderr(errors.New("it printed nothing"), stderr.b, "")
	}
	return out, nil
}

// withStderr adds the first line of the program's standard error to err,
// with secrets and whatever looks like a credential redacted.
func withStderr(err error, stderr []byte, secrets ...string) error {
	var line string
	for l := range strings.Lines(string(stderr)) {
		if line = strings.TrimSpace(l); line != "" {
			break
		}
	}
	if line == "" {
		return err
	}
	line = redactCredentialWords(wire.ScrubURLs(wire.Redact(line, secrets...)))
	return fmt.Errorf("%w: stderr: %s", err, wire.OneLine(line, 200))
}

// redactCredentialWords replaces in s every run of the characters tokens
// are made of (letters, digits, "-._~+/=") that is 40 bytes long or more,
// or 20 or more with a digit: a token, a key, a JWT.
func redactCredentialWords(s string) string {
	var b strings.Builder
	start := -1
	flush := func(end int) {
		if start < 0 {
			return
		}
		run := s[start:end]
		if len(run) >= 40 || (len(run) >= 20 && strings.ContainsAny(run, "0123456789")) {
			run = "[REDACTED]"
		}
		b.WriteString(run)
		start = -1
	}
	for i := range len(s) {
		c := s[i]
		if 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/=", c) >= 0 {
			if start < 0 {
				start = i
			}
			continue
		}
		flush(i)
		b.WriteByte(c)
	}
	flush(len(s))
	return b.String()
}

// boundedBuffer keeps the first max bytes written to it and discards the
// rest, so that a program's output never blocks it nor grows unbounded.
type boundedBuffer struct {
	b   []byte
	max int
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
