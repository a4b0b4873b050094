package oauthtransport

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestBrowserOpenerPerPlatform(t *testing.T) {
	t.Parallel()
	for goos, want := range map[string][]string{
		"linux":   {"xdg-open"},
		"freebsd": {"xdg-open"},
		"darwin":  {"open"},
		"windows": {"rundll32", "url.dll,FileProtocolHandler"},
	} {
		name, args, err := browserOpener(goos)
		assert.NoError(t, err, goos)
		assert.Equal(t, want, append([]string{name}, args...), goos)
	}
	_, _, err := browserOpener("plan9")
	assert.ErrorContains(t, err, "no browser opener known on plan9")
}
