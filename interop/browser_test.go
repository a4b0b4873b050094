package interop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/oauth2"
)

// person is a headless browser and the person at it: it follows an
// authorization server's redirects and pages with a cookie jar, signs in
// with any login, gives consent, and stops at the loopback redirect. Its
// errors name a status and a path, never a URL's query (which carries
// codes and state). Safe for concurrent use; each approval runs alone.
type person struct {
	client *http.Client
	mu     sync.Mutex // one approval at a time: they share the cookie jar
	wg     sync.WaitGroup
	opens  atomic.Int64 // calls of open
	shows  atomic.Int64 // calls of show
}

// maxPages bounds an approval: a page that keeps coming back (a refused
// form) ends it with an error instead of a loop.
const maxPages = 20

// newPerson returns a person with a fresh cookie jar (no session yet); its
// connections are closed and its background approvals joined when t ends.
func newPerson(t *testing.T) *person {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &person{client: &http.Client{Transport: tr, Jar: jar, Timeout: 30 * time.Second, // a loose bound: a page that hangs ends the approval
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(func() { p.wg.Wait(); tr.CloseIdleConnections() })
	return p
}

// open is an open func for AuthorizationCode: the person approves authURL
// and the browser then GETs the loopback redirect, as a browser would.
func (p *person) open(ctx context.Context, authURL string) error {
	p.opens.Add(1)
	callback, err := p.approveCode(ctx, authURL)
	if err != nil {
		return err
	}
	return p.deliver(ctx, callback)
}

// show is a show func for DeviceAuthorization: the person approves the
// user code in the background, while the device polls; t's cleanup joins it.
func (p *person) show(t *testing.T) func(context.Context, *oauth2.DeviceAuthResponse) error {
	return func(ctx context.Context, da *oauth2.DeviceAuthResponse) error {
		p.shows.Add(1)
		uri, code := da.VerificationURI, da.UserCode // typed in by hand, not verification_uri_complete
		p.wg.Go(func() {
			if err := p.approveDevice(context.WithoutCancel(ctx), uri, code); err != nil {
				t.Errorf("the person could not approve the device: %v", err)
			}
		})
		return nil
	}
}

// approveCode follows authURL's pages as a person who approves, and
// returns the URL the authorization server redirected the browser to (the
// client's loopback redirect, with code, state and iss or an error),
// without requesting it.
func (p *person) approveCode(ctx context.Context, authURL string) (callbackURL string, err error) {
	u, err := url.Parse(authURL)
	if err != nil {
		return "", errors.New("the authorization URL does not parse")
	}
	redirect, err := url.Parse(u.Query().Get("redirect_uri"))
	if err != nil || redirect.Host == "" {
		return "", errors.New("the authorization URL has no redirect_uri")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.follow(ctx, http.MethodGet, authURL, nil, func(loc *url.URL) bool {
		return loc.Scheme == redirect.Scheme && loc.Host == redirect.Host && loc.Path == redirect.Path
	}, nil)
}

// approveDevice opens verificationURI, types userCode into its form,
// confirms, signs in and consents; it returns once the server shows a page
// without a form (its success page). With a verification_uri_complete,
// pass it with an empty userCode.
func (p *person) approveDevice(ctx context.Context, verificationURI, userCode string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.follow(ctx, http.MethodGet, verificationURI, nil, func(*url.URL) bool { return false },
		map[string]string{"user_code": userCode})
	return err
}

// deliver GETs the loopback redirect: the client's listener takes the code.
func (p *person) deliver(ctx context.Context, callbackURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, callbackURL, nil)
	if err != nil {
		return errors.New("the redirect does not parse")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("the loopback redirect: %w", redact(err))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		return fmt.Errorf("the loopback redirect answered %d", resp.StatusCode)
	}
	return nil
}

// follow requests target, then follows redirects and submits forms until
// a redirect stop accepts (returned, not requested) or a page without a
// form (returned as ""). fill gives the values of empty text fields by
// name, besides a login and a password.
func (p *person) follow(ctx context.Context, method, target string, body url.Values, stop func(*url.URL) bool, fill map[string]string) (string, error) {
	for range maxPages {
		resp, err := p.request(ctx, method, target, body)
		if err != nil {
			return "", err
		}
		base := resp.Request.URL
		if loc := resp.Header.Get("Location"); resp.StatusCode/100 == 3 && loc != "" {
			resp.Body.Close()
			next, err := base.Parse(loc)
			if err != nil {
				return "", fmt.Errorf("a redirect from %s does not parse", base.Path)
			}
			if stop(next) {
				return next.String(), nil
			}
			method, target, body = http.MethodGet, next.String(), nil
			continue
		}
		f, err := readForm(resp)
		if err != nil || f == nil {
			return "", err
		}
		action, err := base.Parse(f.action)
		if err != nil {
			return "", fmt.Errorf("a form on %s has an action that does not parse", base.Path)
		}
		method, target, body = f.method, action.String(), f.filled(fill)
	}
	return "", fmt.Errorf("no end after %d pages", maxPages)
}

func (p *person) request(ctx context.Context, method, target string, form url.Values) (*http.Response, error) {
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		u, err := url.Parse(target)
		if err != nil {
			return nil, errors.New("a form's action does not parse")
		}
		u.RawQuery = form.Encode()
		target = u.String()
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, errors.New("a request does not build")
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, redact(err)
	}
	return resp, nil
}

// redact drops the URL (and its query) from a *url.Error.
func redact(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// form is the first form of a page: where it goes and its fields.
type form struct {
	action, method string
	fields         url.Values
	empty          []string // text and password fields without a value
}

// readForm reads the first form of an HTML page answered 200, or nil for a
// page without one; any other status is an error naming it and the path.
func readForm(resp *http.Response) (*form, error) {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %d", resp.Request.URL.Path, resp.StatusCode)
	}
	doc, err := html.Parse(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("the page at %s does not parse", resp.Request.URL.Path)
	}
	for n := range doc.Descendants() {
		if n.Type == html.ElementNode && n.Data == "form" {
			return newForm(n), nil
		}
	}
	return nil, nil
}

func newForm(n *html.Node) *form {
	f := &form{action: attr(n, "action"), method: strings.ToUpper(attr(n, "method")), fields: url.Values{}}
	if f.method == "" {
		f.method = http.MethodGet
	}
	for in := range n.Descendants() {
		if in.Type == html.ElementNode && in.Data == "input" {
			f.add(in)
		}
	}
	return f
}

// add records an input the way a browser submits it (no buttons, no
// unchecked boxes).
func (f *form) add(n *html.Node) {
	name, typ := attr(n, "name"), strings.ToLower(attr(n, "type"))
	switch {
	case name == "" || typ == "submit" || typ == "button":
	case (typ == "checkbox" || typ == "radio") && !hasAttr(n, "checked"):
	case (typ == "" || typ == "text" || typ == "password" || typ == "email") && attr(n, "value") == "":
		f.empty = append(f.empty, name)
	default:
		f.fields.Add(name, attr(n, "value"))
	}
}

// filled is what the person submits: the form's values, with its empty
// fields typed in (any login, any password, fill's values by name).
func (f *form) filled(fill map[string]string) url.Values {
	v := url.Values{}
	for k, vs := range f.fields {
		v[k] = append([]string(nil), vs...)
	}
	for _, name := range f.empty {
		switch {
		case fill[name] != "":
			v.Set(name, fill[name])
		case name == "password":
			v.Set(name, "any password")
		default:
			v.Set(name, "person-1") // the login: any will do
		}
	}
	return v
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}
