package oauthtransport_test

// OpenBrowser on Linux, with a fake xdg-open first on PATH that records
// its arguments. These tests set PATH, so none of them runs in parallel.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/oauthtransport/oauthtransport"
)

// fakeOpener puts an xdg-open first on PATH that writes its argument
// count to dir/argc and its first argument to dir/arg1, then runs tail
// (a shell fragment). It returns dir.
func fakeOpener(t *testing.T, tail string) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the fake opener is xdg-open, the Linux one")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nprintf '%s' \"$#\" > '" + dir + "/argc'\nprintf '%s' \"$1\" > '" + dir + "/arg1'\n" + tail + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o755))
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func TestOpenBrowserPassesTheURLAsOneArgument(t *testing.T) {
	dir := fakeOpener(t, "exit 0")
	// Everything a shell would act on, and a query that must arrive whole.
	authURL := "https://login.example.com:8443/authorize?response_type=code&client_id=a%20b" +
		"&state=$(touch%20pwned)&redirect_uri=http%3A%2F%2F127.0.0.1%3A5555%2Fcallback;echo'\"`id`|x>y*?#frag"
	require.NoError(t, oauthtransport.OpenBrowser(context.Background(), authURL))

	argc, err := os.ReadFile(filepath.Join(dir, "argc"))
	require.NoError(t, err)
	assert.Equal(t, "1", string(argc), "the URL is one argument")
	arg, err := os.ReadFile(filepath.Join(dir, "arg1"))
	require.NoError(t, err)
	assert.Equal(t, authURL, string(arg), "byte for byte: no shell saw it")
}

func TestOpenBrowserRefusesWhatIsNotAWebPage(t *testing.T) {
	dir := fakeOpener(t, "exit 0")
	for _, tc := range []struct{ url, says string }{
		{"javascript:alert(document.cookie)//?secret=q1", `"javascript"`},
		{"file:///etc/passwd?secret=q1", `"file"`},
		{"data:text/html,<script>alert(1)</script>?secret=q1", `"data"`},
		{"JavaScript:alert(1)?secret=q1", `"javascript"`},
		{"ftp://example.com/x?secret=q1", `"ftp"`},
		{"https:opaque?secret=q1", "without a host"},
		{"http:///path?secret=q1", "without a host"},
		{"http://:80/path?secret=q1", "without a host"},
		{"//example.com/authorize?secret=q1", "without a scheme"},
		{"/authorize?secret=q1", "without a scheme"},
		{"-a https://example.com/?secret=q1", "'-'"},
		{"--help", "'-'"},
		{"https://example.com/?secret=q1\n--new-window", "control character"},
		{"https://example.com/?secret=q1\x00x", "control character"},
		{"https://example.com/?secret=q1\u0085x", "control character"},
		{"https://example.com/a b?secret=q1", "space"},
		{" https://example.com/?secret=q1", "space"},
		{"https://exa%mple.com/?secret=q1", "invalid URL"},
		{"", "empty"},
	} {
		err := oauthtransport.OpenBrowser(context.Background(), tc.url)
		require.Error(t, err, "%q", tc.url)
		assert.Contains(t, err.Error(), tc.says, "%q", tc.url)
		assert.False(t, strings.Contains(err.Error(), "secret"), "the error never holds the URL's query (%q)", tc.says)
		assert.True(t, strings.HasPrefix(err.Error(), "oauthtransport: "), err.Error())
		assert.NoFileExists(t, filepath.Join(dir, "argc"), "the opener never ran for %q", tc.url)
	}
}

func TestOpenBrowserReportsTheOpenersFailure(t *testing.T) {
	dir := fakeOpener(t, "echo 'opener says secret-output' >&2\nexit 3")
	err := oauthtransport.OpenBrowser(context.Background(), "https://login.example.com/authorize?state=secret-state")
	require.Error(t, err)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode())
	assert.Contains(t, err.Error(), "xdg-open")
	assert.Contains(t, err.Error(), "exit status 3")
	assert.False(t, strings.Contains(err.Error(), "secret"), "neither the opener's output nor the URL")
	assert.FileExists(t, filepath.Join(dir, "arg1"))
}

func TestOpenBrowserMissingOpener(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("xdg-open is the Linux opener")
	}
	t.Setenv("PATH", t.TempDir())
	err := oauthtransport.OpenBrowser(context.Background(), "https://login.example.com/authorize?state=secret-state")
	require.ErrorIs(t, err, exec.ErrNotFound)
	assert.False(t, strings.Contains(err.Error(), "secret"), "not the URL")
}

func TestOpenBrowserStopsWithItsContext(t *testing.T) {
	fakeOpener(t, "exec sleep 60")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := oauthtransport.OpenBrowser(ctx, "https://login.example.com/authorize")
	require.ErrorIs(t, err, context.DeadlineExceeded, "the opener was killed when ctx was done")
	assert.NotErrorIs(t, err, context.Canceled)
}
