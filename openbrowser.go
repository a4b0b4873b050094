package oauthtransport

// Opening the person's browser on an authorization URL.

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"runtime"
	"strings"
	"unicode"
)

// OpenBrowser opens authURL in the person's browser with the platform's
// opener: xdg-open on Linux and the BSDs, open on macOS, rundll32
// url.dll,FileProtocolHandler on Windows. It is meant as the open function
// of an interactive Source.
//
// Only an absolute http or https URL with a host is opened; anything else
// (javascript:, file:, data:, a relative URL, a URL holding a control
// character or a space, or one starting with '-' that an opener could take
// for a flag) is refused with an error that names the scheme, and nothing
// is run. The opener is run directly, never through a shell, with the URL
// as its single argument; OpenBrowser waits for it to exit, at most until
// ctx is done (then the opener is killed), and returns an error for its
// failure that holds its exit status but neither its output nor the URL.
// It is safe for concurrent use.
func OpenBrowser(ctx context.Context, authURL string) error {
	if err := checkBrowserURL(authURL); err != nil {
		return err
	}
	name, args, err := browserOpener(runtime.GOOS)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, name, append(args, authURL)...)
	// Stdin, Stdout and Stderr stay nil (the null device): the opener's
	// output is never read, so it cannot reach an error or a log.
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("oauthtransport: opening the browser with %s: %w", name, ctxErr)
		}
		return fmt.Errorf("oauthtransport: opening the browser with %s: %w", name, err)
	}
	return nil
}

// checkBrowserURL refuses what OpenBrowser must not open. Its errors name
// the scheme at most: never the URL, whose query holds the state and the
// PKCE challenge.
func checkBrowserURL(raw string) error {
	switch {
	case raw == "":
		return errors.New("oauthtransport: refusing to open an empty URL in the browser")
	case strings.HasPrefix(raw, "-"):
		return errors.New("oauthtransport: refusing to open a URL starting with '-' in the browser")
	case strings.ContainsFunc(raw, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		return errors.New("oauthtransport: refusing to open a URL with a control character or a space in the browser")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error's text holds the whole URL: leave it out.
		return errors.New("oauthtransport: refusing to open an invalid URL in the browser")
	}
	switch {
	case u.Scheme == "":
		return errors.New("oauthtransport: refusing to open a URL without a scheme in the browser; only http and https URLs are opened")
	case u.Scheme != "http" && u.Scheme != "https":
		// url.Parse admits only letters, digits, '+', '-' and '.' in a
		// scheme, and lowercases it.
		return fmt.Errorf("oauthtransport: refusing to open a %q URL in the browser; only http and https URLs are opened", u.Scheme)
	case u.Opaque != "" || u.Hostname() == "":
		return fmt.Errorf("oauthtransport: refusing to open a %q URL without a host in the browser", u.Scheme)
	}
	return nil
}

// browserOpener returns the command that opens a URL in the browser on
// goos, the URL to be appended as its last argument.
func browserOpener(goos string) (name string, args []string, err error) {
	switch goos {
	case "darwin":
		return "open", nil, nil
	case "windows":
		return "rundll32", []string{"url.dll,FileProtocolHandler"}, nil
	case "linux", "freebsd", "openbsd", "netbsd", "dragonfly", "solaris", "illumos":
		return "xdg-open", nil, nil
	}
	return "", nil, fmt.Errorf("oauthtransport: no browser opener known on %s", goos)
}
