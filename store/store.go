// Package store defines where an [oauthtransport.Transport] keeps its tokens,
// and provides an in-memory store.
//
// A [Store] holds one token per key. The Transport loads the token on first
// use, saves every token it obtains (so rotated refresh tokens are never
// lost), and reads the store again before refreshing, so that a token another
// process saved can be adopted instead of fetched again.
//
// A store shared between processes should also implement [Locker], so that
// one process refreshes while the others wait for its result.
//
// Implementations must be safe for concurrent use, must not keep the
// *oauth2.Token passed to Save (copy it) and must return a token the caller
// may modify from Load. Errors name the key, never the token.
package store

import (
	"context"
	"errors"
	"time"

	"golang.org/x/oauth2"
)

// ErrNotFound is returned by [Store.Load] when no token is stored under a key.
var ErrNotFound = errors.New("store: token not found")

// Store keeps one token per key.
type Store interface {
	// Load returns the token saved under key, or an error matching
	// ErrNotFound when there is none.
	Load(ctx context.Context, key string) (*oauth2.Token, error)
	// Save stores tok under key, replacing any previous token.
	Save(ctx context.Context, key string, tok *oauth2.Token) error
	// Delete removes the token stored under key. Deleting a missing key is
	// not an error.
	Delete(ctx context.Context, key string) error
}

// Locker is implemented by stores shared between processes, so that one
// process refreshes while the others wait for its result.
//
// Lock blocks until the lock on key is held or ctx is done. The lock expires
// by itself after ttl, so a crashed holder cannot block the others forever.
// unlock releases it; calling unlock after the lock expired and was taken by
// someone else must not release the other holder's lock.
type Locker interface {
	Lock(ctx context.Context, key string, ttl time.Duration) (unlock func(), err error)
}

// Checker is implemented by stores that can tell, without I/O, that they
// are misconfigured (an [Encrypted] store with a key of the wrong length).
// oauthtransport.New fails with the error of Check rather than leave a
// store that can never save.
type Checker interface {
	Check() error
}

// Clone returns a copy of tok that shares nothing mutable with it, or nil
// for a nil tok. Stores use it so that callers and the store never share a
// token value.
func Clone(tok *oauth2.Token) *oauth2.Token {
	if tok == nil {
		return nil
	}
	c := *tok
	return &c
}
