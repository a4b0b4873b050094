package oauthtransport

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/internal/wire"
	"github.com/oauthtransport/oauthtransport/store"
)

// credential is a token ready for the hot path: its header value and
// deadlines are computed once, when it is installed, and two timers move
// its state from fresh to stale to expired, so that a request reads no
// clock.
type credential struct {
	rec  *record  // never modified once installed
	auth []string // the Authorization header value

	timers *credentialTimers // move state, and the header of a bare request; nil with a clock
	// With a clock (a keyed Transport), there are no timers: the state is
	// read from the clock against staleAt and expireAt (Unix ns, 0: never).
	clock             *coarseClock
	staleAt, expireAt int64

	state atomic.Uint32 // a tokenState, moved by the timers
	// accepted: a response other than 401 came back for it.
	accepted atomic.Bool
	// late: the token was already expired when it arrived (a negative
	// expires_in, a JWT exp in the past): used as stale, never expiring.
	late bool
	// fetched: obtained from the Source, not adopted from the store.
	fetched bool
}

// credentialTimers move a credential's state without a clock (a Transport
// with one token), and hold the header of a request that has none but the
// credential's, shared read-only by every such request (a RoundTripper
// must not modify a request): no map per request on the hot path. A keyed
// Transport keeps none, for its memory per key.
type credentialTimers struct {
	stale, expire *time.Timer
	header        http.Header
}

// bareHeader is the header of a request that carries nothing else, or nil.
func (c *credential) bareHeader() http.Header {
	if c.timers == nil {
		return nil
	}
	return c.timers.header
}

// tokenState is where a credential is in its life.
type tokenState uint32

const (
	fresh   tokenState = iota // used as is
	stale                     // used while one background refresh runs
	expired                   // not used: callers wait for a new token
)

func (s tokenState) String() string {
	switch s {
	case fresh:
		return "fresh"
	case stale:
		return "stale"
	}
	return "expired"
}

func (c *credential) load() tokenState {
	if c.clock == nil {
		return tokenState(c.state.Load())
	}
	if c.late {
		return stale
	}
	now := c.clock.read()
	switch {
	case c.expireAt != 0 && now >= c.expireAt:
		return expired
	case c.staleAt != 0 && now >= c.staleAt:
		return stale
	}
	return fresh
}

// record is a token with the bookkeeping that orders it among the tokens
// of one key (see [store.Meta]).
type record struct {
	tok   *oauth2.Token
	meta  meta
	bound *string // the thumbprint of the certificate the token is bound to (WithBoundCertificate); nil without
}

// stored returns the token as a store keeps it: with its bookkeeping.
func (r *record) stored() *oauth2.Token { return store.WithMeta(r.tok, r.meta.public()) }

// marker reports a record of bookkeeping only: a key's first refresh
// token, which lives in the Source, presented (spent) or refused (dead).
func (r *record) marker() bool {
	return r.tok.AccessToken == "" && (r.meta.spent != 0 || r.meta.dead != 0)
}

// token is what a Source is given as current: nil for a marker.
func (r *record) token() *oauth2.Token {
	if r == nil || r.marker() {
		return nil
	}
	return store.Clone(r.tok)
}

// secrets are the values to redact from anything a failure about r says.
func (r *record) secrets() []string {
	if r == nil {
		return nil
	}
	return []string{r.tok.AccessToken, r.tok.RefreshToken}
}

// sourcesOwn stands for the refresh token a Source holds itself (a key's
// first refresh: nothing stored, or a record of marks alone).
const sourcesOwn = "\x00the source's own refresh token"

// refreshTokenOf is the refresh token a refresh from rec presents:
// sourcesOwn when it is the Source's.
func refreshTokenOf(rec *record) string {
	if rec == nil || rec.marker() || rec.tok.RefreshToken == "" {
		return sourcesOwn
	}
	return rec.tok.RefreshToken
}

// meta is a record's [store.Meta] in 40 bytes (Unix milliseconds, the
// precision stores keep; 0 for none): a keyed Transport holds one per key.
type meta struct {
	gen                   uint64
	obtained, spent, dead int64
	refusal               *store.Refusal // why it is dead, when known
}

func metaOf(m store.Meta) meta {
	ms := func(t time.Time) int64 {
		if t.IsZero() {
			return 0
		}
		return t.UnixMilli()
	}
	return meta{gen: m.Generation, obtained: ms(m.Obtained), spent: ms(m.Spent), dead: ms(m.Dead), refusal: m.Refusal}
}

func (m meta) public() store.Meta {
	t := func(ms int64) time.Time {
		if ms == 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms)
	}
	return store.Meta{Generation: m.gen, Obtained: t(m.obtained), Spent: t(m.spent), Dead: t(m.dead), Refusal: m.refusal}
}

// newestGen is the highest generation of rs (nil ones skipped).
func newestGen(rs ...*record) uint64 {
	var gen uint64
	for _, r := range rs {
		if r != nil {
			gen = max(gen, r.meta.gen)
		}
	}
	return gen
}

// newer reports whether a is a later token than b for the same key: by
// generation when both have one, else (an unversioned record) by expiry.
func newer(a, b *record) bool {
	switch {
	case b == nil:
		return a != nil
	case a == nil:
		return false
	case a.meta.gen > 0 && b.meta.gen > 0:
		if a.meta.gen != b.meta.gen {
			return a.meta.gen > b.meta.gen
		}
		return a.meta.obtained > b.meta.obtained
	}
	return a.tok.Expiry.After(b.tok.Expiry)
}

// schedulePolicy holds the options that place a token's refresh.
type schedulePolicy struct {
	window    time.Duration // refresh this long before expiry; see windowSet
	windowSet bool          // false: a quarter of the lifetime, at most DefaultMaxRefreshWindow
	skew      time.Duration // stop using a token this long before expiry
}

// schedule returns when tok, installed at now, goes stale (a background
// refresh starts) and when it expires (requests wait for a new token); a
// zero time means never. Its expiry is tok.Expiry, else a JWT access
// token's exp; without either a token lives until a 401. The lifetime is
// what the server granted (ExpiresIn), else what remains. The skew is at
// most a tenth of the lifetime; the window, lengthened by up to a fifth by
// jitter (in [0, 1)) so that a fleet does not refresh in lock-step, is at
// most half the lifetime, and none when it does not exceed the skew.
func schedule(tok *oauth2.Token, now time.Time, p schedulePolicy, jitter float64) (staleAt, expireAt time.Time) {
	exp := tok.Expiry
	if exp.IsZero() {
		exp = wire.JWTExpiry(tok.AccessToken)
	}
	if exp.IsZero() {
		return time.Time{}, time.Time{}
	}
	lifetime := time.Duration(tok.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = max(exp.Sub(now), 0)
	}
	skew := min(p.skew, lifetime/10)
	window := min(lifetime/4, DefaultMaxRefreshWindow)
	if p.windowSet {
		window = p.window
	}
	if window > 0 {
		window += time.Duration(jitter * float64(window/5))
		window = min(window, lifetime/2)
	}
	if window > skew {
		staleAt = exp.Add(-window)
	}
	return staleAt, exp.Add(-skew)
}

// newCredential prepares rec for the hot path. authorization, the user's
// WithAuthorization function, may panic: callers run under protect. A
// token that cannot be carried in a header (CR, LF, other control bytes)
// is refused here, once, rather than failing every request.
func newCredential(rec *record, authorization func(*oauth2.Token) string) (*credential, error) {
	var auth string
	if authorization != nil {
		auth = authorization(store.Clone(rec.tok))
	} else {
		auth = rec.tok.Type() + " " + rec.tok.AccessToken
	}
	if i := invalidHeaderByte(auth); i >= 0 {
		return nil, &TokenError{Err: fmt.Errorf("the token (%s) cannot be sent in an Authorization header: byte %d of the value is 0x%02x",
			fingerprint(rec.tok.AccessToken), i, auth[i])}
	}
	return &credential{rec: rec, auth: []string{auth}}, nil
}

// scheme is the first word of the Authorization header value.
func (c *credential) scheme() string {
	s, _, _ := strings.Cut(c.auth[0], " ")
	return s
}

// fingerprint names the token in logs and spans (computed when needed:
// a keyed Transport holds many credentials).
func (c *credential) fingerprint() string { return fingerprint(c.rec.tok.AccessToken) }

// invalidHeaderByte returns the index of the first byte a header field
// value may not hold (RFC 9110 §5.5: visible characters, space, tab,
// obs-text), or -1.
func invalidHeaderByte(v string) int {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return i
		}
	}
	return -1
}

// arm sets the state for now and starts the timers that advance it. It
// runs before c is published. A token that has just arrived (fetched)
// already expired is used all the same, as stale: the server's clock or
// ours is off, and refusing it would turn every request into a fetch.
func (c *credential) arm(now time.Time, p schedulePolicy, fetched bool, clock *coarseClock) {
	staleAt, expireAt := schedule(c.rec.tok, now, p, rand.Float64())
	if clock != nil {
		c.clock, c.staleAt, c.expireAt = clock, unixNano(staleAt), unixNano(expireAt)
		c.late = fetched && c.expireAt != 0 && now.UnixNano() >= c.expireAt
		return
	}
	c.timers = &credentialTimers{header: http.Header{"Authorization": c.auth}}
	switch {
	case !expireAt.IsZero() && !now.Before(expireAt) && fetched:
		c.late = true
		c.state.Store(uint32(stale))
		return
	case !expireAt.IsZero() && !now.Before(expireAt):
		c.state.Store(uint32(expired))
		return
	case !staleAt.IsZero() && !now.Before(staleAt):
		c.state.Store(uint32(stale))
	case !staleAt.IsZero():
		c.timers.stale = time.AfterFunc(staleAt.Sub(now), func() { c.state.CompareAndSwap(uint32(fresh), uint32(stale)) })
	}
	if !expireAt.IsZero() {
		c.timers.expire = time.AfterFunc(expireAt.Sub(now), func() { c.state.Store(uint32(expired)) })
	}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// disarm stops c's timers once it is no longer current.
func (c *credential) disarm() {
	if c.timers == nil {
		return
	}
	for _, tm := range [...]*time.Timer{c.timers.stale, c.timers.expire} {
		if tm != nil {
			tm.Stop()
		}
	}
}

// fingerprint identifies a token in logs without revealing it.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "sha256:" + hex.EncodeToString(sum[:6])
}
