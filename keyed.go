package oauthtransport

// Many tokens in one Transport: one credential cache per key (a user, a
// tenant, a connection), found without a lock, bounded in number by CLOCK
// eviction (a second-chance approximation of least recently used), with
// no goroutine and no timer per key.

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/oauthtransport/oauthtransport/store"
)

// ErrNoKey is returned by a keyed Transport (see [NewKeyed]) for a request
// whose context names no key ([WithKey]). Nothing was sent.
var ErrNoKey = errors.New("oauthtransport: a keyed Transport got a request without WithKey; nothing was sent")

// DefaultMaxTokens is how many keys' tokens a keyed Transport keeps in
// memory unless [WithMaxTokens] says otherwise.
const DefaultMaxTokens = 10_000

type keyContext struct{}

// WithKey returns a context that makes a keyed Transport use key's token
// for a request (req.WithContext), for Token, Refresh and SetToken. A
// Transport made with [New] ignores it.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyContext{}, key)
}

// keyOf returns the key ctx names.
func keyOf(ctx context.Context) (string, bool) {
	key, ok := ctx.Value(keyContext{}).(string)
	return key, ok
}

// WithMaxTokens bounds how many keys' tokens a keyed Transport keeps in
// memory (default DefaultMaxTokens). Beyond it the least recently used
// key is dropped from memory, never one with a refresh in flight or an
// unsaved token; its token stays in the store and is reloaded without a
// fetch when the key is used again. Without [WithStore], the Transport's
// own in-memory store then drops the key's token too, unless it holds a
// refresh token (or a mark of one being spent or refused): that exists
// nowhere else, so it stays, about 0.5 KiB a key; keep many users'
// refresh tokens in a store of your own. It is an error on a Transport
// made with [New].
func WithMaxTokens(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("WithMaxTokens: %d is not positive", n))
			return
		}
		o.maxTokens = n
		o.maxTokensSet = true
	}
}

// keyedCaches is the bounded set of a keyed Transport's credential caches.
type keyedCaches struct {
	env     *env
	sources func(string) (Source, error)
	max     int

	m    sync.Map   // key → *credentialCache: lookups take no lock
	mu   sync.Mutex // guards ring and hand: inserts and evictions
	ring []*credentialCache
	hand int
}

// get returns key's credential cache, making it on first use; used marks
// it used (the keep-alive's are not).
func (kc *keyedCaches) get(ctx context.Context, key string, used bool) (*credentialCache, error) {
	if v, ok := kc.m.Load(key); ok {
		c := v.(*credentialCache)
		if used && !c.used.Load() {
			c.used.Store(true)
		}
		return c, nil
	}
	src, err := kc.source(ctx, key)
	if err != nil {
		return nil, err
	}
	kc.mu.Lock()
	defer kc.mu.Unlock()
	if v, ok := kc.m.Load(key); ok { // made meanwhile
		return v.(*credentialCache), nil
	}
	c := newCredentialCache(kc.env, src, key)
	c.used.Store(used)
	kc.insert(c)
	kc.m.Store(key, c)
	return c, nil
}

// source calls the NewKeyed sources function for key: a panic is a
// *TokenError, and a call that hangs holds the caller no longer than its
// context (it is left to return by itself).
func (kc *keyedCaches) source(ctx context.Context, key string) (Source, error) {
	type result struct {
		src Source
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = protect(ctx, kc.env.log, "the NewKeyed sources function", nil, func() (err error) {
			r.src, err = kc.sources(key)
			return err
		})
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		r.err = fmt.Errorf("the NewKeyed sources function did not return: %w", context.Cause(ctx))
	}
	if r.err == nil && r.src == nil {
		r.err = errors.New("nil Source")
	}
	if r.err != nil {
		return nil, &TokenError{Err: fmt.Errorf("no Source for key %q: %w", key, r.err)}
	}
	return r.src, nil
}

// insert puts e in the ring, evicting by CLOCK once it is full: the hand
// gives each entry used since it last passed a second chance, and skips
// those it must not drop (a refresh in flight, an unsaved token). kc.mu is
// held.
func (kc *keyedCaches) insert(e *credentialCache) {
	if len(kc.ring) < kc.max {
		kc.ring = append(kc.ring, e)
		return
	}
	for range 3 * len(kc.ring) {
		v := kc.ring[kc.hand]
		if !v.used.Swap(false) && v.retire() {
			kc.m.Delete(v.name)
			kc.forget(v)
			kc.ring[kc.hand] = e
			kc.hand = (kc.hand + 1) % len(kc.ring)
			return
		}
		kc.hand = (kc.hand + 1) % len(kc.ring)
	}
	kc.ring = append(kc.ring, e) // everything busy: grow rather than drop a token
}

// forget drops an evicted key's token from the Transport's own in-memory
// store when another can be fetched: it holds no refresh token and no
// mark. A refresh token exists nowhere else, so it stays.
func (kc *keyedCaches) forget(v *credentialCache) {
	if !kc.env.private {
		return
	}
	s := v.slot()
	tok, err := s.store.Load(context.Background(), s.key) // the memory store: no I/O
	if err != nil {
		return
	}
	if m := store.MetaOf(tok); tok.RefreshToken == "" && m.Spent.IsZero() && m.Dead.IsZero() {
		_ = s.store.Delete(context.Background(), s.key)
	}
}

// caches returns every cache in memory, for Close and the keep-alive.
func (kc *keyedCaches) caches() []*credentialCache {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return append([]*credentialCache(nil), kc.ring...)
}
