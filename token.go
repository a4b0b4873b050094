package oauthtransport

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// cached is a token ready for the hot path: its header value and deadlines
// are computed once, when it is installed, and two timers move its state
// from fresh to stale to expired, so that a request reads no clock.
type cached struct {
	tok      *oauth2.Token // never modified once installed
	auth     []string      // the Authorization header value
	scheme   string        // the first word of auth
	fp       string        // fingerprint for logs
	staleAt  time.Time     // start a background refresh from here; zero: never
	expireAt time.Time     // stop using the token from here; zero: never

	state  atomic.Uint32 // fresh, stale or expired
	timers [2]*time.Timer
}

// Token states.
const (
	fresh uint32 = iota
	stale
	expired
)

// arm sets the state for now and starts the timers that advance it. It runs
// before c is published.
func (c *cached) arm(now time.Time) {
	switch {
	case !c.expireAt.IsZero() && !now.Before(c.expireAt):
		c.state.Store(expired)
		return
	case !c.staleAt.IsZero() && !now.Before(c.staleAt):
		c.state.Store(stale)
	case !c.staleAt.IsZero():
		c.timers[0] = time.AfterFunc(c.staleAt.Sub(now), func() { c.state.CompareAndSwap(fresh, stale) })
	}
	if !c.expireAt.IsZero() {
		c.timers[1] = time.AfterFunc(c.expireAt.Sub(now), func() { c.state.Store(expired) })
	}
}

// disarm stops c's timers once it is no longer current.
func (c *cached) disarm() {
	for _, tm := range c.timers {
		if tm != nil {
			tm.Stop()
		}
	}
}

// install makes tok the current token.
func (t *Transport) install(tok *oauth2.Token) *cached {
	now := time.Now()
	c := t.newCached(tok, now)
	c.arm(now)
	t.lastSeen.Store(tok)
	if old := t.cur.Swap(c); old != nil {
		old.disarm()
	}
	return c
}

// invalidate drops c after the server rejected it, unless a newer token has
// been installed meanwhile.
func (t *Transport) invalidate(c *cached) {
	cleared := t.cur.CompareAndSwap(c, nil)
	if cleared {
		c.disarm()
		t.stats.invalidations.Add(1)
	}
	t.log.LogAttrs(context.Background(), slog.LevelDebug, "oauthtransport: token rejected",
		slog.String("token", c.fp), slog.Bool("cleared", cleared))
}

func (t *Transport) newCached(tok *oauth2.Token, now time.Time) *cached {
	var auth string
	if t.opts.authorization != nil {
		auth = t.opts.authorization(store.Clone(tok))
	} else {
		auth = tok.Type() + " " + tok.AccessToken
	}
	scheme, _, _ := strings.Cut(auth, " ")
	c := &cached{tok: tok, auth: []string{auth}, scheme: scheme, fp: fingerprint(tok.AccessToken)}

	exp := tok.Expiry
	if exp.IsZero() {
		exp = jwtExpiry(tok.AccessToken)
	}
	if exp.IsZero() {
		return c // lives until a 401 says otherwise
	}
	// The lifetime the server granted; for a token loaded from a store it
	// is longer than what remains, and the window is measured against it.
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = max(exp.Sub(now), 0)
	}
	skew := min(t.opts.skew, lifetime/10)
	c.expireAt = exp.Add(-skew)
	window := min(lifetime/4, DefaultMaxRefreshWindow)
	if t.opts.windowSet {
		window = t.opts.window
	}
	if window > 0 {
		window += rand.N(window/5 + 1) // jitter: a fleet does not refresh in lock-step
		window = min(window, lifetime/2)
		if window > skew {
			c.staleAt = exp.Add(-window)
		}
	}
	return c
}

// fingerprint identifies a token in logs without revealing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:6])
}
