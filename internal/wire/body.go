package wire

// Reading response bodies without blocking on them: a body the caller
// gets back is peeked at for a bounded time, and a discarded one is
// drained in the background for a bounded time, then closed.

import (
	"bytes"
	"io"
	"net/http"
	"sync"
	"time"
)

const (
	// MaxBody bounds how much of a body is peeked at, and how much of it
	// an error keeps.
	MaxBody = 64 << 10
	// MaxDrain bounds how much more of a discarded body is read so that
	// its connection can be reused; a longer body is closed unread.
	MaxDrain = 4 << 10
	// peekWait bounds how long classifying a response (a 403 or 420 whose
	// body tells a rate limit) waits for its body.
	peekWait = 250 * time.Millisecond
	// drainWait bounds how long a discarded body is read so that its
	// connection can be reused; a slower body is closed unread.
	drainWait = 100 * time.Millisecond
)

// PeekBody returns the first 64 KiB of resp's body for inspection and puts
// them back in front of the rest, so nothing is lost. If the body has not
// arrived within peekWait, it returns nil, and the caller's first Read of
// resp.Body waits for the peek instead.
func PeekBody(resp *http.Response) []byte {
	if resp.Body == nil || resp.Body == http.NoBody {
		return nil
	}
	p := &peeked{done: make(chan struct{}), rest: resp.Body}
	go func() {
		defer close(p.done)
		p.head, _ = io.ReadAll(io.LimitReader(p.rest, MaxBody))
	}()
	resp.Body = p
	timer := time.NewTimer(peekWait)
	defer timer.Stop()
	select {
	case <-p.done:
		return p.head
	case <-timer.C:
		return nil
	}
}

// peeked is a body whose head a goroutine is reading or has read.
type peeked struct {
	done chan struct{} // closed once head is read
	head []byte
	rest io.ReadCloser
	r    io.Reader
}

func (p *peeked) Read(b []byte) (int, error) {
	if p.r == nil {
		<-p.done
		p.r = io.MultiReader(bytes.NewReader(p.head), p.rest)
	}
	return p.r.Read(b)
}

// Close closes the body, which also ends a peek still waiting for it.
func (p *peeked) Close() error { return p.rest.Close() }

// Drain discards up to MaxDrain bytes of a body that is not returned, so
// its connection can be reused, and closes it; in the background, and
// closing it after drainWait if it stalls.
func Drain(resp *http.Response) {
	body := resp.Body
	if body == nil {
		return
	}
	closeBody := sync.OnceValue(body.Close)
	go func() {
		stall := time.AfterFunc(drainWait, func() { _ = closeBody() })
		_, _ = io.CopyN(io.Discard, body, MaxDrain)
		stall.Stop()
		_ = closeBody()
	}()
}
