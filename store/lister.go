package store

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io/fs"
	"iter"
	"os"
	"strings"
)

// Lister is implemented by stores that can list their keys, so that a
// Transport can keep the refresh tokens of keys nobody uses alive
// (oauthtransport.WithKeepAlive), including keys no process has used since
// it started.
type Lister interface {
	// Keys yields every key that starts with prefix, in no particular
	// order, with a nil error; or a non-nil error, after which it stops.
	// Keys saved or deleted meanwhile may or may not be yielded.
	Keys(ctx context.Context, prefix string) iter.Seq2[string, error]
}

// ErrCannotList is yielded by the Keys of an [Encrypted] store whose inner
// store is not a [Lister].
var ErrCannotList = errors.New("store: the store cannot list its keys")

// Keys yields the keys saved under prefix.
func (m *Memory) Keys(_ context.Context, prefix string) iter.Seq2[string, error] {
	m.mu.RLock()
	var keys []string
	for k := range m.tokens {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	return func(yield func(string, error) bool) {
		for _, k := range keys {
			if !yield(k, nil) {
				return
			}
		}
	}
}

// Keys yields the keys saved under prefix. A key longer than 96 bytes is
// kept under its hash, and cannot be listed.
func (f *File) Keys(_ context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		entries, err := os.ReadDir(f.dir)
		if errors.Is(err, fs.ErrNotExist) {
			return
		}
		if err != nil {
			yield("", err)
			return
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), "token-")
			if !ok || !e.Type().IsRegular() || hashedName(name) {
				continue
			}
			key, err := base64.RawURLEncoding.DecodeString(name)
			if err != nil || !strings.HasPrefix(string(key), prefix) {
				continue // a hashed key, or a file of someone else's
			}
			if !yield(string(key), nil) {
				return
			}
		}
	}
}

// Keys yields the inner store's keys, or ErrCannotList.
func (e *encrypted) Keys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	if l, ok := e.inner.(Lister); ok {
		return l.Keys(ctx, prefix)
	}
	return func(yield func(string, error) bool) { yield("", ErrCannotList) }
}

// hashedName reports whether a file name holds a long key's hash ("h-"
// and 64 hex digits; see File.path) rather than the key.
func hashedName(name string) bool {
	h, ok := strings.CutPrefix(name, "h-")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}
