package oauthtransport

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// load reads the store, treating any error as "nothing stored": a corrupt
// entry is replaced by the next fetch.
func (t *Transport) load(ctx context.Context) *oauth2.Token {
	tok, err := t.store.Load(ctx, t.opts.key)
	switch {
	case err == nil && tok != nil && tok.AccessToken != "":
		return tok
	case err != nil && !errors.Is(err, store.ErrNotFound):
		t.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: loading token from store failed; fetching a new one",
			slog.String("key", t.opts.key), slog.String("error", err.Error()))
	}
	return nil
}

// adoptable reports whether a stored token should be used instead of a
// fetch: it is not the token being replaced, and it has not expired.
func adoptable(stored, prev *oauth2.Token) bool {
	if stored == nil || (prev != nil && stored.AccessToken == prev.AccessToken) {
		return false
	}
	return stored.Expiry.IsZero() || time.Now().Before(stored.Expiry)
}

func (t *Transport) adopt(ctx context.Context, tok *oauth2.Token) *cached {
	c := t.install(tok)
	t.failure.reset()
	t.stats.adopted.Add(1)
	t.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token adopted from store",
		slog.String("token", c.fp), slog.Time("expiry", tok.Expiry))
	return c
}

// save writes tok to the store before it is used. On failure the token
// stays in memory, and the save is retried in the background with backoff
// (and before the next refresh) until it succeeds or a newer token is
// saved: a rotated refresh token is never dropped. Saves are serialized so
// that an older token never overwrites a newer one.
func (t *Transport) save(ctx context.Context, tok *oauth2.Token) {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	if err := t.store.Save(ctx, t.opts.key, tok); err != nil {
		t.unsaved.Store(tok)
		t.log.LogAttrs(ctx, slog.LevelError, "oauthtransport: saving token to store failed; keeping it in memory and retrying",
			slog.String("key", t.opts.key), slog.String("token", fingerprint(tok.AccessToken)), slog.String("error", err.Error()))
		t.retrySaveInBackground()
		return
	}
	t.unsaved.Store(nil)
}

// retryUnsaved tries once more to save a token whose save failed.
func (t *Transport) retryUnsaved(ctx context.Context) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	tok := t.unsaved.Load()
	if tok == nil {
		return nil
	}
	if err := t.store.Save(ctx, t.opts.key, tok); err != nil {
		return err
	}
	t.unsaved.Store(nil)
	t.log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: token saved to store after retrying",
		slog.String("key", t.opts.key), slog.String("token", fingerprint(tok.AccessToken)))
	return nil
}

func (t *Transport) retrySaveInBackground() {
	if !t.saveRetrying.CompareAndSwap(false, true) {
		return
	}
	if !t.enter() {
		t.saveRetrying.Store(false)
		return
	}
	go func() {
		defer t.wg.Done()
		defer t.saveRetrying.Store(false)
		b := backoff.NewExponentialBackOff(
			backoff.WithInitialInterval(500*time.Millisecond),
			backoff.WithMaxInterval(30*time.Second),
			backoff.WithMaxElapsedTime(0),
		)
		_ = backoff.Retry(func() error {
			ctx, cancel := context.WithTimeout(t.lifetime, 10*time.Second)
			defer cancel()
			return t.retryUnsaved(ctx)
		}, backoff.WithContext(b, t.lifetime))
	}()
}
