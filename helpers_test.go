package oauthtransport_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
)

// newTransport returns a Transport closed when t ends.
func newTransport(t testing.TB, src oauthtransport.Source, opts ...oauthtransport.Option) *oauthtransport.Transport {
	t.Helper()
	tr, err := oauthtransport.New(src, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// fakeSource issues tokens "tok-1", "tok-2", ... living lifetime, without
// the network, for tests that run in a synctest bubble.
type fakeSource struct {
	lifetime time.Duration
	calls    atomic.Int64
	mu       sync.Mutex
	err      error // returned instead of a token while set
}

func (s *fakeSource) Token(ctx context.Context, _ *oauth2.Token) (*oauth2.Token, error) {
	n := s.calls.Add(1)
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	tok := &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer"}
	if s.lifetime > 0 {
		tok.Expiry = time.Now().Add(s.lifetime)
		tok.ExpiresIn = int64(s.lifetime / time.Second)
	}
	return tok, nil
}

func (s *fakeSource) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

// memBase is an in-memory base RoundTripper: it answers 200, or 401 to
// tokens in reject, and records the Authorization values it saw.
type memBase struct {
	mu     sync.Mutex
	seen   []string
	reject map[string]bool
	calls  atomic.Int64
}

func (b *memBase) RoundTrip(req *http.Request) (*http.Response, error) {
	b.calls.Add(1)
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	auth := req.Header.Get("Authorization")
	b.mu.Lock()
	b.seen = append(b.seen, auth)
	rejected := b.reject[strings.TrimPrefix(auth, "Bearer ")]
	b.mu.Unlock()
	status := http.StatusOK
	if rejected {
		status = http.StatusUnauthorized
	}
	return &http.Response{StatusCode: status, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: req}, nil
}

func (b *memBase) rejectToken(tok string) {
	b.mu.Lock()
	if b.reject == nil {
		b.reject = make(map[string]bool)
	}
	b.reject[tok] = true
	b.mu.Unlock()
}

func (b *memBase) lastAuth() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.seen) == 0 {
		return ""
	}
	return b.seen[len(b.seen)-1]
}

// logBuffer collects every log line a Transport writes, at every level.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed at the next write
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
	return l.buf.Write(p)
}

// waitFor waits until a line containing s has been written: a test
// synchronises on the event, never on a sleep.
func (l *logBuffer) waitFor(t testing.TB, s string) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if strings.Contains(l.buf.String(), s) {
			l.mu.Unlock()
			return
		}
		if l.changed == nil {
			l.changed = make(chan struct{})
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no log line with %q after 10s", s)
		}
	}
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func get(t testing.TB, client *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	return client.Do(req)
}

// mustGet sends a GET and requires a 200, closing the body.
func mustGet(t testing.TB, client *http.Client, url string) {
	t.Helper()
	resp, err := get(t, client, url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
}
