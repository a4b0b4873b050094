package sqlstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"iter"
	"strings"
	"unicode/utf8"
)

const (
	// maxPlainKey is the longest key stored as it is, and maxEncodedKey
	// the longest stored as base64url: both well within an index entry.
	maxPlainKey   = 1000
	maxEncodedKey = 700
	listPage      = 500
)

// encodeKey maps any key a Store accepts to text a TEXT column and its
// index take: the key itself when it is plain (not empty, valid UTF-8, no
// NUL, not starting with "~", at most 1000 bytes; the empty key sorts
// before any page of Keys); else "~" and its unpadded
// base64url when at most 700 bytes; else "~#" and the base64url of its
// SHA-256, which cannot be listed. A plain key never starts with "~", and
// "#" is not base64url: the three never collide.
func encodeKey(key string) string {
	switch {
	case key != "" && len(key) <= maxPlainKey && utf8.ValidString(key) && !strings.ContainsRune(key, 0) && !strings.HasPrefix(key, "~"):
		return key
	case len(key) <= maxEncodedKey:
		return "~" + base64.RawURLEncoding.EncodeToString([]byte(key))
	}
	sum := sha256.Sum256([]byte(key))
	return "~#" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// decodeKey reverses encodeKey; false for a hashed key.
func decodeKey(stored string) (string, bool) {
	enc, ok := strings.CutPrefix(stored, "~")
	if !ok {
		return stored, true
	}
	key, err := base64.RawURLEncoding.DecodeString(enc)
	return string(key), err == nil
}

// Keys yields the keys saved under prefix, a page of rows at a time (no
// query stays open while the caller works). Keys longer than 700 bytes
// that are not plain text are kept under their hash and not yielded.
func (s *Store) Keys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		after := ""
		for {
			page, err := s.keysAfter(ctx, after)
			if err != nil {
				yield("", fmt.Errorf("sqlstore: listing keys: %w", err))
				return
			}
			for _, stored := range page {
				if key, ok := decodeKey(stored); ok && strings.HasPrefix(key, prefix) && !yield(key, nil) {
					return
				}
			}
			if len(page) < listPage {
				return
			}
			after = page[len(page)-1]
		}
	}
}

// keysAfter returns the next page of stored keys, in the table's order.
func (s *Store) keysAfter(ctx context.Context, after string) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, s.q.keys, after, listPage)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var page []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		page = append(page, k)
	}
	return page, rows.Err()
}
