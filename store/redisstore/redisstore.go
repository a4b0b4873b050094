// Package redisstore keeps tokens in Redis, shared by every process of a
// fleet, with a lock so that one process refreshes while the others wait
// for its result.
//
// It works with any go-redis v9 client: standalone, Sentinel (failover) or
// Cluster. A token's key and its lock's key share a hash tag, so they live
// in the same cluster slot.
package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// Store is a [store.Store] and [store.Locker] backed by Redis. It is safe
// for concurrent use.
type Store struct {
	client redis.UniversalClient
	prefix string
	margin time.Duration
}

// Option configures a Store.
type Option func(*Store)

// DefaultPrefix is prepended to every key unless [WithPrefix] says otherwise.
const DefaultPrefix = "oauthtransport:"

// WithPrefix sets the prefix of every Redis key the store writes
// (default "oauthtransport:"). It must not contain "{" or "}".
func WithPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithExpiryMargin sets how long past its expiry a token without a refresh
// token stays in Redis (default 5 minutes). Tokens with a refresh token
// never expire from Redis: the refresh token outlives the access token.
func WithExpiryMargin(d time.Duration) Option { return func(s *Store) { s.margin = d } }

// New returns a Store using client.
func New(client redis.UniversalClient, opts ...Option) *Store {
	s := &Store{client: client, prefix: DefaultPrefix, margin: 5 * time.Minute}
	for _, o := range opts {
		o(s)
	}
	return s
}

// tokenKey and lockKey share the hash tag {key}: same cluster slot.
func (s *Store) tokenKey(key string) string { return s.prefix + "{" + key + "}" }
func (s *Store) lockKey(key string) string  { return s.prefix + "{" + key + "}:lock" }

// Load returns the token saved under key, or an error matching
// [store.ErrNotFound].
func (s *Store) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	data, err := s.client.Get(ctx, s.tokenKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: loading key %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: loading key %q: %w", key, err)
	}
	tok, err := store.UnmarshalToken(data)
	if err != nil {
		return nil, fmt.Errorf("redisstore: loading key %q: %w", key, err)
	}
	return tok, nil
}

// Save stores tok under key. A token without a refresh token expires from
// Redis a little after the token itself.
func (s *Store) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	data, err := store.MarshalToken(tok)
	if err != nil {
		return fmt.Errorf("redisstore: saving key %q: %w", key, err)
	}
	var ttl time.Duration // zero: keep
	if tok.RefreshToken == "" && !tok.Expiry.IsZero() {
		ttl = max(time.Until(tok.Expiry)+s.margin, time.Second)
	}
	if err := s.client.Set(ctx, s.tokenKey(key), data, ttl).Err(); err != nil {
		return fmt.Errorf("redisstore: saving key %q: %w", key, err)
	}
	return nil
}

// Delete removes the token saved under key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, s.tokenKey(key)).Err(); err != nil {
		return fmt.Errorf("redisstore: deleting key %q: %w", key, err)
	}
	return nil
}

// unlockScript deletes the lock only if it still holds our value, so a
// holder whose lock expired and was taken by another never releases the
// other's lock.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

// Lock takes the lock on key with SET NX PX ttl, waiting until it is free
// or ctx is done. The lock expires after ttl if never released. A Redis
// error is returned at once, so a process can carry on without the lock
// when Redis is down.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	value := hex.EncodeToString(b[:])
	lk := s.lockKey(key)
	wait := 5 * time.Millisecond
	for {
		ok, err := s.client.SetNX(ctx, lk, value, ttl).Result()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("redisstore: locking key %q: %w", key, context.Cause(ctx))
			}
			return nil, fmt.Errorf("redisstore: locking key %q: %w", key, err)
		}
		if ok {
			return sync.OnceFunc(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = unlockScript.Run(ctx, s.client, []string{lk}, value).Err()
			}), nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("redisstore: locking key %q: %w", key, context.Cause(ctx))
		case <-timer.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}
