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
	"time"
)

// ErrNoKey is returned by a keyed Transport (see [NewKeyed]) for a request
// whose context names no key ([WithKey]). Nothing was sent.
var ErrNoKey = errors.New("oauthtransport: a keyed Transport got a request without WithKey; nothing was sent")

// DefaultMaxTokens is how many keys' tokens a keyed Transport keeps in
// memory unless [WithMaxTokens] says otherwise.
const DefaultMaxTokens = 10_000

type keyContext struct{}

// WithKey returns a context that makes a keyed Transport use key's token
// for a request (req.WithContext), for Token and for Refresh. A Transport
// made with [New] ignores it.
func WithKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, keyContext{}, key)
}

// WithMaxTokens bounds how many keys' tokens a keyed Transport keeps in
// memory (default DefaultMaxTokens). Beyond it the least recently used
// key is dropped from memory, never one with a refresh in flight or an
// unsaved token; its token stays in the store and is reloaded without a
// fetch when the key is used again.
func WithMaxTokens(n int) Option {
	return func(o *options) {
		if n < 1 {
			o.errs = append(o.errs, fmt.Errorf("WithMaxTokens: %d is not positive", n))
			return
		}
		o.maxTokens = n
	}
}

// NewKeyed returns a Transport with one token per key: a request (or a
// Token or Refresh call) names its key with [WithKey], and a request
// without one fails with [ErrNoKey]. sources returns the Source of a key
// when it is first used (an error fails that request only). Each key has
// its own token, refresh flight, failure cool-down and store entry (under
// the WithStore key, "/", and the key) and lock; the base RoundTripper, the
// retry budget, Stats and the metrics are shared. WithTokenChange is called
// with the WithKey key.
func NewKeyed(sources func(key string) (Source, error), opts ...Option) (*Transport, error) {
	if sources == nil {
		opts = append(opts, func(o *options) { o.errs = append(o.errs, errors.New("nil sources")) })
	}
	t, err := newTransport(nil, true, opts...)
	if err != nil {
		return nil, err
	}
	t.keyed = &keyedCaches{env: t.env, sources: sources, max: t.opts.maxTokens}
	t.startKeepAlive()
	return t, nil
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

// get returns key's credential cache, making it on first use.
func (kc *keyedCaches) get(key string) (*credentialCache, error) {
	if v, ok := kc.m.Load(key); ok {
		c := v.(*credentialCache)
		if !c.used.Load() {
			c.used.Store(true)
		}
		return c, nil
	}
	return kc.add(key, true)
}

// idle returns key's credential cache for the keep-alive, without marking
// it used.
func (kc *keyedCaches) idle(key string) (*credentialCache, error) {
	if v, ok := kc.m.Load(key); ok {
		return v.(*credentialCache), nil
	}
	return kc.add(key, false)
}

// add makes key's credential cache; one not used (the keep-alive's) is the
// first the eviction hand drops.
func (kc *keyedCaches) add(key string, used bool) (*credentialCache, error) {
	var src Source
	err := protect(context.Background(), kc.env.log, "the NewKeyed sources function", nil, func() (err error) {
		src, err = kc.sources(key)
		return err
	})
	if err == nil && src == nil {
		err = errors.New("nil Source")
	}
	if err != nil {
		return nil, &TokenError{Err: fmt.Errorf("no Source for key %q: %w", key, err)}
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
		if !v.used.Swap(false) && !v.busy() {
			kc.m.Delete(v.name)
			kc.ring[kc.hand] = e
			kc.hand = (kc.hand + 1) % len(kc.ring)
			return
		}
		kc.hand = (kc.hand + 1) % len(kc.ring)
	}
	kc.ring = append(kc.ring, e) // everything busy: grow rather than drop a token
}

// busy reports whether dropping k from memory could lose a token or start
// a second refresh for its key.
func (k *credentialCache) busy() bool {
	return k.refreshing.Load() || k.unsaved.Load() != nil || k.held.Load() != nil || k.retrying.Load()
}

// caches returns every cache in memory, for Close.
func (kc *keyedCaches) caches() []*credentialCache {
	kc.mu.Lock()
	defer kc.mu.Unlock()
	return append([]*credentialCache(nil), kc.ring...)
}

// cacheFor returns the credential cache a request or call uses.
func (t *Transport) cacheFor(ctx context.Context) (*credentialCache, error) {
	if t.keyed == nil {
		return t.cache, nil
	}
	key, ok := ctx.Value(keyContext{}).(string)
	if !ok {
		return nil, ErrNoKey
	}
	return t.keyed.get(key)
}

// flushAll writes every unsaved token once more, by deadline.
func (t *Transport) flushAll(deadline time.Time) error {
	if t.keyed == nil {
		return t.cache.flush(deadline)
	}
	var errs []error
	for _, c := range t.keyed.caches() {
		errs = append(errs, c.flush(deadline))
	}
	return errors.Join(errs...)
}
