package oauthtransport

// The persister: one key's store writes. One write at a time; a token
// saved is installed before the next write (so that a token obtained from
// an older one never overwrites a newer one); a token the store failed to
// save is kept in memory, with the store's lock, and written again in the
// background; Close writes it once more.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"

	"github.com/oauthtransport/oauthtransport/store"
)

// persister writes one key's records.
type persister struct {
	mu       sync.Mutex             // one write at a time, and its install
	unsaved  atomic.Pointer[record] // a token the store failed to save
	held     atomic.Pointer[lease]  // the lock, kept until unsaved lands
	retrying atomic.Bool            // the background saver runs
}

// slot is where one key's records live: the store, the store key, and the
// logger that reports what happens there.
type slot struct {
	store store.Store
	key   string
	log   *slog.Logger
}

// lease is a held store lock.
type lease struct {
	once   sync.Once
	unlock func()
	until  time.Time // the lock's own expiry: a peer may take it then
	kept   bool      // handed to the background saver: not released by refresh
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

// lapsed reports whether the lock may have expired: a peer may hold it.
func (l *lease) lapsed() bool { return l != nil && !time.Now().Before(l.until) }

// load reads the key's record. Nothing stored, or a record the store
// cannot read (store.ErrCorrupt, replaced by the next save), is (nil,
// nil); any other failure is an error: never taken for an empty store.
func load(ctx context.Context, s slot) (*record, error) {
	tok, err := s.store.Load(ctx, s.key)
	switch {
	case err == nil && tok != nil:
		rec := &record{tok: tok, meta: metaOf(store.MetaOf(tok))}
		if tok.AccessToken != "" || rec.marker() {
			return rec, nil
		}
		return nil, nil
	case err == nil, errors.Is(err, store.ErrNotFound):
		return nil, nil
	case errors.Is(err, store.ErrCorrupt):
		s.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: the stored token cannot be read; the next token replaces it",
			slog.String("key", s.key), slog.String("error", err.Error()))
		return nil, nil
	}
	return nil, fmt.Errorf("oauthtransport: loading the token of key %q: %w", s.key, err)
}

// ordered runs f, which writes and installs, with no other write of the
// key in between.
func (p *persister) ordered(f func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return f()
}

// save writes rec. Once a write lands that is not older than the unsaved
// token, that token is no longer pending and the lock kept for it is
// released.
func (p *persister) save(ctx context.Context, s slot, rec *record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.saveLocked(ctx, s, rec)
}

func (p *persister) saveLocked(ctx context.Context, s slot, rec *record) error {
	if err := s.store.Save(ctx, s.key, rec.stored()); err != nil {
		return fmt.Errorf("oauthtransport: saving the token of key %q: %w", s.key, err)
	}
	if u := p.unsaved.Load(); u != nil && !newer(u, rec) && p.unsaved.CompareAndSwap(u, nil) {
		p.held.Swap(nil).free()
	}
	return nil
}

// saveOrLog writes rec, logging a failure as what.
func (p *persister) saveOrLog(ctx context.Context, s slot, rec *record, what string) {
	if err := p.save(ctx, s, rec); err != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: "+what+" failed",
			slog.String("key", s.key), slog.String("error", err.Error()))
	}
}

// keepUnsaved keeps rec in memory after its save failed, holds the lock
// l (if any) until a write lands, and writes it again in the background.
// Only a token whose refresh token exists nowhere else (critical) holds
// Close back.
func (p *persister) keepUnsaved(ctx context.Context, s slot, life *lifetime, rec *record, l *lease, critical bool, err error) {
	p.unsaved.Store(rec)
	if l != nil {
		l.kept = true
		p.held.Store(l)
	}
	s.log.LogAttrs(ctx, slog.LevelError, "oauthtransport: saving token to store failed; keeping it in memory and retrying",
		slog.String("key", s.key), slog.String("token", fingerprint(rec.tok.AccessToken)), slog.String("error", err.Error()))
	p.retryInBackground(s, life, critical)
}

// retryInBackground writes the unsaved token again, as saveWaits says,
// until a write lands or Close.
func (p *persister) retryInBackground(s slot, life *lifetime, critical bool) {
	if !p.retrying.CompareAndSwap(false, true) {
		return
	}
	if !life.enter(critical) {
		p.retrying.Store(false)
		return
	}
	go func() {
		defer life.leave(critical)
		defer p.retrying.Store(false)
		_ = backoff.Retry(func() error {
			ctx, cancel := context.WithTimeout(life.ctx, 10*time.Second)
			defer cancel()
			return p.saveUnsaved(ctx, s)
		}, backoff.WithContext(saveWaits.backOff(), life.ctx))
	}()
}

// saveUnsaved writes the unsaved token, if any, once.
func (p *persister) saveUnsaved(ctx context.Context, s slot) error {
	rec := p.unsaved.Load()
	if rec == nil {
		return nil
	}
	err := protect(ctx, s.log, "Store.Save", rec.secrets(), func() error { return p.save(ctx, s, rec) })
	if err == nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: token saved to store after retrying",
			slog.String("key", s.key), slog.String("token", fingerprint(rec.tok.AccessToken)))
	}
	return err
}

// flush writes an unsaved token whose refresh token exists only here once
// more before Close returns, by deadline, and names its fingerprint when
// it could not. A token that spends nothing is not waited for: another can
// be fetched.
func (p *persister) flush(s slot, deadline time.Time) error {
	rec := p.unsaved.Load()
	if rec == nil || rec.tok.RefreshToken == "" {
		return nil
	}
	err := bounded(deadline, func(ctx context.Context) error { return p.saveUnsaved(ctx, s) })
	if err == nil {
		return nil
	}
	return fmt.Errorf("oauthtransport: closing: token %s for key %q was not saved to the store, and its refresh token "+
		"exists only in this process: %w", fingerprint(rec.tok.AccessToken), s.key, err)
}

// busy reports whether the key's records need this persister to stay: a
// token not saved yet, or the lock kept for it.
func (p *persister) busy() bool {
	return p.unsaved.Load() != nil || p.held.Load() != nil || p.retrying.Load()
}
