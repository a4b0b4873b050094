package oauthtransport

// The loopback redirect of a native app's login (RFC 8252 §7.3): a
// listener on 127.0.0.1 (or [::1]) that lives for one login and takes
// the first authorization response that carries its state.

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oauthtransport/oauthtransport/internal/wire"
)

// defaultRedirect is the redirect URI when the config names none; the
// port is a free one.
const defaultRedirect = "http://127.0.0.1/callback"

// redirectListener receives the authorization response of one login.
type redirectListener struct {
	uri   string // the redirect URI the authorization request names
	path  string
	state string
	check issuerCheck

	srv     *http.Server
	serving sync.WaitGroup
	result  chan authResponse // the one response that ends the login
	ended   atomic.Bool       // result was sent
	refused atomic.Int64      // requests without the right state
}

// authResponse is an authorization response that ends the login: a code,
// or why there is none.
type authResponse struct {
	code string
	err  error // a *TokenError
}

// errCannotListen is a login whose redirect URI cannot be listened on.
var errCannotListen = errors.New("cannot listen for the redirect")

// listenLoopback listens for the redirect URI configured (empty:
// defaultRedirect), on its port or a free one, until close.
func listenLoopback(configured, state string, check issuerCheck) (*redirectListener, error) {
	u, host, err := parseRedirect(configured)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		if port == "" {
			port = "0"
		}
		return nil, fmt.Errorf("oauthtransport: %w on %s port %s (is it in use?): %w", errCannotListen, host, port, err)
	}
	uri := configured
	if port == "" || port == "0" {
		u.Host = net.JoinHostPort(u.Hostname(), fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
		uri = u.String()
	}
	l := &redirectListener{uri: uri, path: u.Path, state: state, check: check, result: make(chan authResponse, 1)}
	l.srv = &http.Server{Handler: l, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	l.srv.SetKeepAlivesEnabled(false)
	l.serving.Go(func() { _ = l.srv.Serve(ln) })
	return l, nil
}

// parseRedirect checks a redirect URI and returns it (its path at least
// "/") and the address to listen on: 127.0.0.1 for 127.0.0.1 and
// localhost, ::1 for [::1].
func parseRedirect(raw string) (*url.URL, string, error) {
	if raw == "" {
		raw = defaultRedirect
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return nil, "", errors.New("oauthtransport: the RedirectURL must be a loopback http URL without user info or fragment (RFC 8252 §7.3), such as http://127.0.0.1:PORT/callback")
	}
	var host string
	switch h := u.Hostname(); {
	case h == "127.0.0.1", strings.EqualFold(h, "localhost"):
		host = "127.0.0.1"
	case h == "::1":
		host = "::1"
	default:
		return nil, "", fmt.Errorf("oauthtransport: the RedirectURL's host %q is not 127.0.0.1, [::1] or localhost (RFC 8252 §7.3)", wire.OneLine(h, 100))
	}
	if u.Path == "" {
		u.Path = "/"
	}
	return u, host, nil
}

// wait returns the code of the authorization response, or why there is
// none: the server's refusal, a failed iss check, or the end of ctx.
func (l *redirectListener) wait(ctx context.Context) (string, error) {
	select {
	case r := <-l.result:
		return r.code, r.err
	case <-ctx.Done():
		return "", loginEnded(ctx, l.refused.Load())
	}
}

// answered returns the authorization response already received, if any.
func (l *redirectListener) answered() (authResponse, bool) {
	select {
	case r := <-l.result:
		return r, true
	default:
		return authResponse{}, false
	}
}

// close stops the listener, once the page being served is sent (a
// second at most).
func (l *redirectListener) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if l.srv.Shutdown(ctx) != nil {
		_ = l.srv.Close()
	}
	l.serving.Wait()
}

// ServeHTTP takes an authorization response at the redirect path: one
// without the right state is refused and the login goes on (anyone on
// this machine can reach the port); the first with it ends the login.
func (l *redirectListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != l.path:
		http.NotFound(w, r)
		return
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(l.state)) != 1 {
		l.refused.Add(1)
		page(w, http.StatusBadRequest, pageFailed)
		return
	}
	if !l.ended.CompareAndSwap(false, true) {
		page(w, http.StatusBadRequest, pageFailed) // a second response: the login took the first
		return
	}
	resp := l.check.response(q)
	l.result <- resp
	switch te, _ := resp.err.(*TokenError); {
	case resp.err == nil:
		page(w, http.StatusOK, pageDone)
	case te != nil && te.Code != "":
		page(w, http.StatusForbidden, pageFailed) // the server refused
	default:
		page(w, http.StatusBadRequest, pageFailed)
	}
}

// response reads an authorization response whose state was right.
func (c issuerCheck) response(q url.Values) authResponse {
	if err := c.verify(q); err != nil {
		return authResponse{err: &TokenError{Err: err}}
	}
	if code := q.Get("error"); code != "" {
		return authResponse{err: &TokenError{Code: cleanCode(code, nil), Description: wire.OneLine(q.Get("error_description"), 300),
			Err: errors.New("the authorization server refused the authorization request")}}
	}
	if code := q.Get("code"); code != "" {
		return authResponse{code: code}
	}
	return authResponse{err: &TokenError{Err: errors.New("the authorization response holds neither a code nor an error")}}
}

// The pages the browser shows at the end: nothing from the request in them.
const (
	pageDone   = `<!doctype html><meta charset="utf-8"><title>Signed in</title><p>You are signed in. You can close this tab.</p>`
	pageFailed = `<!doctype html><meta charset="utf-8"><title>Sign-in failed</title><p>The sign-in failed. You can close this tab and try again from the application.</p>`
)

func page(w http.ResponseWriter, status int, html string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL holds the code
	h.Set("Content-Security-Policy", "default-src 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, html)
}
