package oauthtransport_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// TestHelperCommand is the program the command tests run: this test
// binary, started with -test.run=^TestHelperCommand$ and, after "--",
// "assertion-helper", a file whose content it prints on its standard
// output, a line for its standard error and its exit status. Run by go
// test, it does nothing.
func TestHelperCommand(t *testing.T) {
	args := flag.Args()
	if len(args) != 4 || args[0] != "assertion-helper" {
		t.Skip("the program of the assertion command tests")
	}
	out, _ := os.ReadFile(args[1])
	_, _ = os.Stdout.Write(out)
	_, _ = fmt.Fprintln(os.Stderr, args[2])
	code, _ := strconv.Atoi(args[3])
	os.Exit(code)
}

// helperCommand is AssertionFromCommand running TestHelperCommand.
func helperCommand(stdoutFile, stderr string, exit int) oauthtransport.AssertionFunc {
	return oauthtransport.AssertionFromCommand(os.Args[0], "-test.run=^TestHelperCommand$", "--",
		"assertion-helper", stdoutFile, stderr, strconv.Itoa(exit))
}

// A command's assertion is reused while fresh (the program runs once);
// one without exp runs the program for every token request.
func TestAssertionFromCommand(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()), oauthtest.ReusableAssertions(),
		oauthtest.Lifetime(time.Hour))
	out := filepath.Join(t.TempDir(), "stdout")
	first := p.clientJWT(t, srv, 4*time.Minute)
	writeAtomically(t, out, first+"\n")
	tr := newTransport(t, assertionClient(srv, helperCommand(out, "", 0)))
	mustGet(t, tr.Client(), srv.APIURL+"things")
	writeAtomically(t, out, p.clientJWT(t, srv, 4*time.Minute))
	_, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	assertSecrets(t, []string{first, first}, sentAssertions(srv), "fresh: the program did not run again")

	// An opaque subject token (no exp) for a token exchange: read anew each time.
	writeAtomically(t, out, "opaque-subject-1")
	tr = newTransport(t, oauthtransport.TokenExchange(&oauthtransport.TokenExchangeConfig{ClientID: oauthtest.ClientID,
		ClientSecret: oauthtest.ClientSecret, TokenURL: srv.TokenURL,
		SubjectToken: helperCommand(out, "", 0).OfType(oauthtransport.TokenTypeJWT)}))
	_, err = tr.Token(context.Background())
	require.NoError(t, err)
	writeAtomically(t, out, "opaque-subject-2")
	_, err = tr.Refresh(context.Background())
	require.NoError(t, err)
	reqs := srv.TokenRequests()[2:]
	require.Len(t, reqs, 2)
	assertSecrets(t, []string{"opaque-subject-1", "opaque-subject-2"},
		[]string{reqs[0].Form.Get("subject_token"), reqs[1].Form.Get("subject_token")}, "read anew for each exchange")
	assert.Equal(t, oauthtransport.TokenTypeJWT, reqs[1].Form.Get("subject_token_type"))
}

// A failing command: its last good assertion serves while valid; without
// one, the error names the command, its status and the first line of its
// standard error, with whatever looks like a credential redacted.
func TestAssertionFromCommandFails(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()), oauthtest.ReusableAssertions())
	dir := t.TempDir()
	out := filepath.Join(dir, "stdout")
	now := time.Now()
	aging := p.jwt(t, oauthtest.ClientID, oauthtest.ClientID, srv.TokenURL, now.Add(-4*time.Minute), now.Add(time.Minute))
	writeAtomically(t, out, aging)
	f := helperCommand(out, "", 0)
	a, err := f(context.Background())
	require.NoError(t, err)
	assertSecrets(t, []string{aging}, []string{a}, "the program's assertion")
	require.NoError(t, os.Remove(out)) // the program now prints nothing
	a, err = f(context.Background())
	require.NoError(t, err, "the last good assertion, still valid")
	assertSecrets(t, []string{aging}, []string{a}, "the last good assertion")

	leaked := p.clientJWT(t, srv, time.Minute)
	stderr := "ERROR: not logged in: token=" + leaked + " key=AKIA0123456789ABCDEF\nsecond line"
	bad := helperCommand(filepath.Join(dir, "missing"), stderr, 3)
	tr := newTransport(t, assertionClient(srv, bad))
	_, err = tr.Token(context.Background())
	requireAssertionError(t, err, fmt.Sprintf("command %q", os.Args[0]), leaked, "AKIA0123456789ABCDEF")
	assert.ErrorContains(t, err, "exit status 3")
	assert.ErrorContains(t, err, "ERROR: not logged in")
	assert.NotContains(t, err.Error(), "second line")
	assert.NotContains(t, err.Error(), "TestHelperCommand", "the arguments are not quoted")
	assert.Zero(t, srv.TokenCalls())

	_, err = oauthtransport.AssertionFromCommand(filepath.Join(dir, "no-such-program"))(context.Background())
	requireAssertionError(t, err, fmt.Sprintf("command %q", filepath.Join(dir, "no-such-program")))
}
