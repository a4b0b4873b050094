package oauthtransport

// Store reads and writes of the refresh protocol (see refresher.go): one
// write at a time, the Spent mark, a token kept in memory when its save
// failed and written again in the background with the lock held, and
// Close's last write.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/oauthtransport/oauthtransport/store"
)

// lease is a held store lock.
type lease struct {
	once   sync.Once
	unlock func()
	kept   bool // handed to the background saver: not released by refresh
}

// release ends the lease unless the background saver keeps it.
func (l *lease) release() {
	if l != nil && !l.kept {
		l.free()
	}
}

func (l *lease) free() {
	if l != nil {
		l.once.Do(l.unlock)
	}
}

// load reads the store, treating any error as "nothing stored": a corrupt
// entry is replaced by the next fetch.
func (k *credentialCache) load(ctx context.Context) *record {
	tok, err := k.env.store.Load(ctx, k.storeKey())
	switch {
	case err == nil && tok != nil && tok.AccessToken != "":
		return &record{tok: tok, meta: metaOf(store.MetaOf(tok))}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: loading token from store failed",
			slog.String("key", k.storeKey()), slog.String("error", err.Error()))
	}
	return nil
}

// save writes rec. Once a write lands that is not older than the unsaved
// token, that token is no longer pending and the lock kept for it is
// released.
func (k *credentialCache) save(ctx context.Context, rec *record) error {
	k.saveMu.Lock()
	defer k.saveMu.Unlock()
	if err := k.env.store.Save(ctx, k.storeKey(), rec.stored()); err != nil {
		return fmt.Errorf("oauthtransport: saving token for key %q: %w", k.storeKey(), err)
	}
	if u := k.unsaved.Load(); u != nil && !newer(u, rec) && k.unsaved.CompareAndSwap(u, nil) {
		k.held.Swap(nil).free()
	}
	return nil
}

// repair writes the newest token seen back to a store that lost it or
// went back to an older copy (REPAIR).
func (k *credentialCache) repair(ctx context.Context, seen, stored *record) {
	if stored != nil {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: the store holds an older token than this process; writing the newer one back",
			slog.String("key", k.storeKey()), slog.Uint64("stored_generation", stored.meta.gen), slog.Uint64("generation", seen.meta.gen))
	}
	if err := k.save(ctx, seen); err != nil {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: writing the newer token back failed",
			slog.String("key", k.storeKey()), slog.String("error", err.Error()))
	}
}

// mark records in the store that base's refresh token is being presented
// (MARK). A refresh that cannot record it does not present it.
func (k *credentialCache) mark(ctx context.Context, base *record) error {
	now := time.Now()
	m := base.meta
	m.spent = now.UnixMilli()
	if err := k.save(ctx, &record{tok: base.tok, meta: m}); err != nil {
		return temporaryError(fmt.Errorf("cannot record in the store that the refresh token is being spent, so it is not: %w", err))
	}
	k.ownMark.Store(now.UnixMilli())
	return nil
}

// unmark writes base back without the mark after the server answered
// with an error: its refresh token was not spent.
func (k *credentialCache) unmark(ctx context.Context, base *record) {
	if err := k.save(ctx, base); err != nil {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: clearing the store's refresh mark failed",
			slog.String("key", k.storeKey()), slog.String("error", err.Error()))
	}
}

// keepUnsaved keeps rec in memory after its save failed, holds the lock
// l (if any) until a write lands, and writes it again in the background.
func (k *credentialCache) keepUnsaved(ctx context.Context, rec *record, l *lease, err error) {
	k.unsaved.Store(rec)
	if l != nil {
		l.kept = true
		k.held.Store(l)
	}
	k.env.log.LogAttrs(ctx, slog.LevelError, "oauthtransport: saving token to store failed; keeping it in memory and retrying",
		slog.String("key", k.storeKey()), slog.String("token", fingerprint(rec.tok.AccessToken)), slog.String("error", err.Error()))
	k.retrySavesInBackground()
}

// retrySavesInBackground writes the unsaved token again, with backoff,
// until a write lands or Close.
func (k *credentialCache) retrySavesInBackground() {
	if !k.retrying.CompareAndSwap(false, true) {
		return
	}
	if !k.env.life.enter() {
		k.retrying.Store(false)
		return
	}
	go func() {
		defer k.env.life.wg.Done()
		defer k.retrying.Store(false)
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(500*time.Millisecond),
			backoff.WithMaxInterval(30*time.Second),
			backoff.WithMaxElapsedTime(0),
		)
		_ = backoff.Retry(func() error {
			ctx, cancel := context.WithTimeout(k.env.life.ctx, 10*time.Second)
			defer cancel()
			return k.saveUnsaved(ctx)
		}, backoff.WithContext(b, k.env.life.ctx))
	}()
}

// saveUnsaved writes the unsaved token, if any, once.
func (k *credentialCache) saveUnsaved(ctx context.Context) error {
	rec := k.unsaved.Load()
	if rec == nil {
		return nil
	}
	err := protect(ctx, k.env.log, "Store.Save", k.secrets(), func() error { return k.save(ctx, rec) })
	if err == nil {
		k.env.log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: token saved to store after retrying",
			slog.String("key", k.storeKey()), slog.String("token", fingerprint(rec.tok.AccessToken)))
	}
	return err
}

// flush writes an unsaved token once more before Close returns, by
// deadline. It names the token's fingerprint when it could not.
func (k *credentialCache) flush(deadline time.Time) error {
	rec := k.unsaved.Load()
	if rec == nil {
		return nil
	}
	err := bounded(deadline, k.saveUnsaved)
	if err == nil {
		return nil
	}
	return fmt.Errorf("oauthtransport: closing: token %s for key %q was not saved to the store, and its refresh token "+
		"exists only in this process: %w", fingerprint(rec.tok.AccessToken), k.storeKey(), err)
}
