package redisstore

import (
	"context"
	"fmt"
	"iter"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Keys yields the keys whose tokens are saved under prefix, found with
// SCAN (on every master of a Cluster), so Redis is never blocked.
func (s *Store) Keys(ctx context.Context, prefix string) iter.Seq2[string, error] {
	match := s.prefix + "{" + globEscape(prefix) + "*"
	return func(yield func(string, error) bool) {
		if c, ok := s.client.(*redis.ClusterClient); ok {
			var keys []string
			err := c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
				it := node.Scan(ctx, 0, match, 1000).Iterator()
				for it.Next(ctx) {
					keys = append(keys, it.Val())
				}
				return it.Err()
			})
			for _, k := range keys {
				if key, ok := s.tokenKeyOf(k); ok && !yield(key, nil) {
					return
				}
			}
			if err != nil {
				yield("", fmt.Errorf("redisstore: listing keys: %w", err))
			}
			return
		}
		it := s.client.Scan(ctx, 0, match, 1000).Iterator()
		for it.Next(ctx) {
			if key, ok := s.tokenKeyOf(it.Val()); ok && !yield(key, nil) {
				return
			}
		}
		if err := it.Err(); err != nil {
			yield("", fmt.Errorf("redisstore: listing keys: %w", err))
		}
	}
}

// tokenKeyOf returns the key of a token's Redis key (prefix{key}); lock
// keys (prefix{key}:lock) are not tokens.
func (s *Store) tokenKeyOf(redisKey string) (string, bool) {
	rest, ok := strings.CutPrefix(redisKey, s.prefix+"{")
	if !ok || !strings.HasSuffix(rest, "}") {
		return "", false
	}
	return strings.TrimSuffix(rest, "}"), true
}

// globEscape escapes what SCAN's MATCH would read as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
