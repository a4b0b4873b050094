package drivertest

// A PostgreSQL connection dropped while the stored token is read: the
// failed read is a failure, never an empty store, so the Transport does
// not fall back to the Source's initial refresh token, rotated away long
// ago, and presents no refresh token twice.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport"
	"github.com/oauthtransport/oauthtransport/store/sqlstore"
)

func TestDroppedReadIsNotAnEmptyStore(t *testing.T) {
	t.Parallel()
	// restarted: the read is the first of a new process (nothing in
	// memory, the Source's initial refresh token long rotated away); else
	// of the process that saved the token.
	for _, restarted := range []bool{false, true} {
		t.Run(fmt.Sprintf("restarted=%v", restarted), func(t *testing.T) {
			t.Parallel()
			proxy, s, tbl := proxiedStore(t)
			idp := newRotatingEndpoint(t)
			tr := rotatingTransport(t, idp, s)
			first, err := tr.Token(context.Background()) // rt0 spent, rt1 stored
			require.NoError(t, err)
			if restarted {
				require.NoError(t, tr.Close())
				tr = rotatingTransport(t, idp, s)
			}
			proxy.arm([]byte("SELECT token FROM " + tbl))
			time.Sleep(time.Until(first.Expiry)) // the token expires; nothing reads the store meanwhile

			_, err = tr.Token(context.Background())
			assert.Positive(t, proxy.drops.Load(), "connections dropped on the read")
			assert.Equal(t, 1, idp.presented("rt0"), "times the initial refresh token was presented")
			assert.Zero(t, idp.repeats(), "refresh tokens presented more than once")
			assert.Equal(t, 1, idp.requests(), "token requests")
			require.ErrorIs(t, err, oauthtransport.ErrToken, "the stored token could not be read")
			te, ok := errors.AsType[*oauthtransport.TokenError](err)
			require.True(t, ok, "want a *TokenError")
			assert.True(t, te.Temporary(), "a failed read is temporary: %v", err)

			proxy.arm(nil)
			refreshedOnceBack(t, tr, idp)
		})
	}
}

// refreshedOnceBack checks that, once the database answers again, the
// Transport refreshes with the stored refresh token.
func refreshedOnceBack(t *testing.T, tr *oauthtransport.Transport, idp *rotatingEndpoint) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		tok, err := tr.Token(context.Background()) // the failure cool-down ends, then rt1 is spent
		if err == nil {
			assert.True(t, tok.AccessToken == "at-2", "the token was refreshed with the stored refresh token")
			break
		}
		require.True(t, time.Now().Before(deadline), "no token 10 s after the database answers again: %v", err)
		time.Sleep(50 * time.Millisecond)
	}
	assert.Equal(t, 1, idp.presented("rt1"), "times the stored refresh token was presented")
	assert.Equal(t, 1, idp.presented("rt0"), "times the initial refresh token was presented")
	assert.Zero(t, idp.repeats(), "refresh tokens presented more than once")
}

// proxiedStore is a sqlstore on the test cluster, reached through a
// dropProxy, in a table of its own.
func proxiedStore(t *testing.T) (*dropProxy, *sqlstore.Store, string) {
	pg := postgres(t)
	proxy := startDropProxy(t, fmt.Sprintf("127.0.0.1:%d", pg.Port))
	db := open(t, "pgx", fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", proxy.addr()))
	db.SetMaxIdleConns(0) // each statement on a new connection, whose Parse message carries its text
	tbl := table()
	s, err := sqlstore.New(db, sqlstore.WithTable(tbl))
	require.NoError(t, err)
	return proxy, s, tbl
}

// rotatingTransport refreshes from "rt0" at idp, with s as its store; it
// never refreshes in the background.
func rotatingTransport(t *testing.T, idp *rotatingEndpoint, s *sqlstore.Store) *oauthtransport.Transport {
	cfg := &oauth2.Config{ClientID: "client", ClientSecret: "secret",
		Endpoint: oauth2.Endpoint{TokenURL: idp.URL, AuthStyle: oauth2.AuthStyleInHeader}}
	tr, err := oauthtransport.New(oauthtransport.RefreshToken(cfg, &oauth2.Token{RefreshToken: "rt0"}),
		oauthtransport.WithStore(s, "k"), oauthtransport.WithRefreshWindow(0), oauthtransport.WithRefreshTimeout(5*time.Second))
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// rotatingEndpoint is a token endpoint for the refresh-token grant that
// rotates refresh tokens ("rt0", "rt1", ...), refuses any but the newest
// with invalid_grant, and records every refresh token presented. Its
// first token lives 2 s, the others an hour.
type rotatingEndpoint struct {
	*httptest.Server
	mu   sync.Mutex
	live string
	n    int
	seen map[string]int
}

func newRotatingEndpoint(t *testing.T) *rotatingEndpoint {
	e := &rotatingEndpoint{live: "rt0", seen: map[string]int{}}
	e.Server = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.Close)
	return e
}

func (e *rotatingEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "refresh_token" {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"unsupported_grant_type"}`)
		return
	}
	rt := r.PostForm.Get("refresh_token")
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen[rt]++
	if rt != e.live {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
		return
	}
	e.n++
	e.live = fmt.Sprintf("rt%d", e.n)
	lifetime := 3600
	if e.n == 1 {
		lifetime = 2
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", e.n), "token_type": "Bearer",
		"expires_in": lifetime, "refresh_token": e.live})
}

func (e *rotatingEndpoint) presented(rt string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[rt]
}

// requests counts the token requests.
func (e *rotatingEndpoint) requests() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.seen {
		n += c
	}
	return n
}

// repeats counts the presentations of refresh tokens beyond their first.
func (e *rotatingEndpoint) repeats() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.seen {
		n += c - 1
	}
	return n
}

// dropProxy forwards TCP connections to target. While armed with a
// statement's text, it drops a connection (both ways, without forwarding
// the message) whose client sends that text: in a Parse or Query message
// of PostgreSQL's protocol.
type dropProxy struct {
	ln     net.Listener
	target string
	needle atomic.Pointer[[]byte]
	drops  atomic.Int64
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startDropProxy(t *testing.T, target string) *dropProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dropProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *dropProxy) addr() string { return p.ln.Addr().String() }

// arm makes the proxy drop connections that send needle; nil disarms it.
func (p *dropProxy) arm(needle []byte) {
	if needle == nil {
		p.needle.Store(nil)
		return
	}
	p.needle.Store(&needle)
}

func (p *dropProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.serve(c) })
	}
}

// serve forwards one connection until either side closes it or the
// proxy drops it.
func (p *dropProxy) serve(client net.Conn) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil || !p.track(client, server) {
		return
	}
	defer p.untrack(client, server)
	defer server.Close()
	p.wg.Go(func() {
		_, _ = io.Copy(client, server)
		client.Close()
	})
	p.forward(server, client)
}

// forward copies what the client sends, watching for the armed text
// (across reads, so that a split message is still seen).
func (p *dropProxy) forward(server, client net.Conn) {
	buf := make([]byte, 32<<10)
	var tail []byte
	for {
		n, err := client.Read(buf)
		if n > 0 {
			window := append(tail, buf[:n]...)
			if needle := p.needle.Load(); needle != nil && bytes.Contains(window, *needle) {
				p.drops.Add(1)
				return
			}
			tail = window[max(0, len(window)-256):]
			if _, werr := server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *dropProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *dropProxy) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

// close stops accepting, closes every connection and waits for the
// proxy's goroutines.
func (p *dropProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
