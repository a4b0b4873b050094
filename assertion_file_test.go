package oauthtransport_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/oauthtest"
)

// A projected token rewritten while requests flow: the next token request
// carries the new assertion, and no request fails.
func TestAssertionFileRewrittenMidTraffic(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()))
	path := filepath.Join(t.TempDir(), "token")
	first, second := p.clientJWT(t, srv, 4*time.Minute), p.clientJWT(t, srv, 4*time.Minute)
	writeAtomically(t, path, first)
	tr := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(path)))

	load := startTraffic(t, tr.Client(), srv.APIURL+"things")
	within(t, load.after(20), "20 requests with the first token")
	writeAtomically(t, path, second+"\n") // the kubelet's rename; trailing white space is trimmed
	_, err := tr.Refresh(context.Background())
	require.NoError(t, err)
	within(t, load.after(20), "20 requests with the second token")
	load.end()

	assertSecrets(t, []string{first, second}, sentAssertions(srv), "the rewritten file's assertion went with the next token request")
	assert.Zero(t, load.failures.Load(), "failed requests")
}

// A file that vanishes: the last good assertion is sent while it is
// valid; a token request with no good assertion fails with an error
// naming the file, never an assertion.
func TestAssertionFileVanishes(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()), oauthtest.ReusableAssertions())
	path := filepath.Join(t.TempDir(), "token")
	good := p.clientJWT(t, srv, 4*time.Minute)
	writeAtomically(t, path, good)
	tr := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(path)))
	mustGet(t, tr.Client(), srv.APIURL+"things")

	require.NoError(t, os.Remove(path))
	_, err := tr.Refresh(context.Background())
	require.NoError(t, err, "the last good assertion, still valid")
	assertSecrets(t, []string{good, good}, sentAssertions(srv), "the last good assertion, twice")

	fresh := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(path)))
	_, err = fresh.Token(context.Background())
	requireAssertionError(t, err, `file "`+path+`"`, good)
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorIs(t, err, oauthtransport.ErrToken)
}

// An expired assertion in the file is an error of its own; so are an
// empty file and one too large to be an assertion.
func TestAssertionFileUnusable(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	srv := oauthtest.NewServer(t, oauthtest.ClientKey(p.key.Public()))
	dir := t.TempDir()
	old := time.Now().Add(-time.Hour)
	expired := p.jwt(t, oauthtest.ClientID, oauthtest.ClientID, srv.TokenURL, old, old.Add(10*time.Minute))
	for name, c := range map[string]struct{ content, says string }{
		"expired": {expired, "expired at"},
		"empty":   {" \n", "empty"},
		"huge":    {strings.Repeat("a", 65<<10), "exceeds"},
	} {
		path := filepath.Join(dir, name)
		writeAtomically(t, path, c.content)
		tr := newTransport(t, assertionClient(srv, oauthtransport.AssertionFromFile(path)))
		_, err := tr.Token(context.Background())
		requireAssertionError(t, err, `file "`+path+`"`, expired)
		assert.ErrorContains(t, err, c.says, name)
	}
	assert.Zero(t, srv.TokenCalls(), "nothing was sent")
}

// In virtual time: an unchanged file is not read again until 5 minutes
// pass or its assertion enters the last quarter of its life; a changed
// one is read at once; a vanished one's last assertion serves until 30 s
// before its exp, then the error names the file.
func TestAssertionFileReadAgain(t *testing.T) {
	t.Parallel()
	p := newPlatform(t)
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(dir, "token")
		mint := func(ttl time.Duration) string { return p.jwt(t, "k8s", "sa", "idp", time.Now(), time.Now().Add(ttl)) }
		f := oauthtransport.AssertionFromFile(path)
		read := func() string {
			a, err := f(context.Background())
			require.NoError(t, err)
			return a
		}
		a1 := mint(time.Hour)
		writeAtomically(t, path, a1)
		assertSecrets(t, []string{a1}, []string{read()}, "the first read")

		a2 := mint(time.Hour) // the same length; written in place, its modification time put back
		info, _ := os.Stat(path)
		require.NoError(t, os.WriteFile(path, []byte(a2), 0o600))
		require.NoError(t, os.Chtimes(path, info.ModTime(), info.ModTime()))
		assertSecrets(t, []string{a1}, []string{read()}, "looks unchanged: not read")
		time.Sleep(5 * time.Minute)
		assertSecrets(t, []string{a2}, []string{read()}, "read again after 5 minutes")

		a3 := mint(8 * time.Minute)
		writeAtomically(t, path, a3)
		assertSecrets(t, []string{a3}, []string{read()}, "changed: read at once")
		time.Sleep(6*time.Minute + time.Second) // its last quarter, from 6 minutes on
		require.NoError(t, os.Remove(path))
		assertSecrets(t, []string{a3}, []string{read()}, "vanished: the last good one, 30 s or more from its exp")
		time.Sleep(90 * time.Second)
		_, err := f(context.Background())
		requireAssertionError(t, err, `file "`+path+`"`, a1, a2, a3)
		assert.ErrorIs(t, err, fs.ErrNotExist)
	})
}

// requireAssertionError requires err to be an *AssertionError from
// source, holding no assertion.
func requireAssertionError(t *testing.T, err error, source string, assertions ...string) {
	t.Helper()
	require.Error(t, err)
	ae, ok := errors.AsType[*oauthtransport.AssertionError](err)
	require.True(t, ok, "not an *AssertionError: %v", err)
	assert.Equal(t, source, ae.Source)
	assert.Contains(t, err.Error(), source)
	assertNoSecret(t, "the error", err.Error(), assertions...)
}
