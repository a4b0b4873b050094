package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"
)

// Lock takes the lock on key, waiting until it is free or ctx is done. A
// row in the lock table holds it: inserted, or taken over once its expiry
// (read on the database's clock) has passed, in one statement. The
// returned unlock deletes the row only while it still names this owner, so
// a holder whose lock expired and was taken never releases the other's. A
// database error is returned at once, so a process can carry on without
// the lock when the database is down.
func (s *Store) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	owner, k := hex.EncodeToString(b[:]), encodeKey(key)
	wait := 5 * time.Millisecond
	for {
		res, err := s.db.ExecContext(ctx, s.q.lock, k, owner, max(ttl.Milliseconds(), 1))
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("sqlstore: locking key %q: %w", key, context.Cause(ctx))
			}
			return nil, fmt.Errorf("sqlstore: locking key %q: %w", key, err)
		}
		if n == 1 {
			return sync.OnceFunc(func() { s.unlock(k, owner) }), nil
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("sqlstore: locking key %q: %w", key, context.Cause(ctx))
		case <-timer.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

// unlock deletes the lock row if this owner still holds it. If that
// fails, the lock expires by itself.
func (s *Store) unlock(k, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = s.db.ExecContext(ctx, s.q.unlock, k, owner)
}
