package oauthtransport

// Keep-alive: refreshing, in the background, the tokens of keys nobody
// uses, before the IdP lets their refresh tokens lapse for disuse.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

type keepAlivePolicy struct {
	idle      time.Duration // refresh a token obtained longer ago than this
	perSecond float64       // at most this many refreshes a second
}

// WithKeepAlive keeps refresh tokens from lapsing for disuse: many IdPs
// expire a refresh token nobody has presented for a while (Microsoft Entra
// ID after 90 days, Google after six months, others by policy). Off by
// default. With it, the Transport looks at every key's stored token in the
// background, a pass every idle/4 (at most an hour apart), and refreshes
// each one obtained longer than idle ago (that has a refresh token and no
// dead grant), at most perSecond refreshes a second, under the same single
// flight, store lock and cool-downs as any refresh: a fleet sharing the
// store refreshes each key once, and the processes that look later find
// the new token.
//
// The keys are those of the WithStore key: on a keyed Transport, every key
// the store holds when it is a [store.Lister] (the file, Redis and SQL
// stores are), else the keys in memory.
func WithKeepAlive(idle time.Duration, perSecond float64) Option {
	return func(o *options) {
		if idle <= 0 || !(perSecond > 0) {
			o.errs = append(o.errs, fmt.Errorf("WithKeepAlive: idle %v and perSecond %v must be positive", idle, perSecond))
			return
		}
		o.keepAlive = keepAlivePolicy{idle: idle, perSecond: perSecond}
	}
}

// startKeepAlive runs the keep-alive passes until Close.
func (t *Transport) startKeepAlive() {
	if t.opts.keepAlive.idle <= 0 || !t.life.enter() {
		return
	}
	go func() {
		defer t.life.wg.Done()
		every := min(t.opts.keepAlive.idle/4, time.Hour)
		tick := time.NewTicker(every)
		defer tick.Stop()
		pace := &pacer{gap: time.Duration(float64(time.Second) / t.opts.keepAlive.perSecond)}
		for {
			select {
			case <-t.life.ctx.Done():
				return
			case <-tick.C:
				t.keepAlivePass(t.life.ctx, pace)
			}
		}
	}()
}

// keepAlivePass refreshes every idle key's token once, and logs a summary.
func (t *Transport) keepAlivePass(ctx context.Context, pace *pacer) {
	var checked, refreshed, failed int
	for key, err := range t.keepAliveKeys(ctx) {
		if err != nil {
			t.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: keep-alive: listing the store's keys failed",
				slog.String("error", err.Error()))
			break
		}
		checked++
		switch did, err := t.keepAlive(ctx, key, pace); {
		case ctx.Err() != nil:
			return
		case err != nil:
			failed++
			t.env.log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: keep-alive refresh failed",
				slog.String("key", key.stored), slog.String("error", err.Error()))
		case did:
			refreshed++
		}
	}
	t.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: keep-alive pass",
		slog.Int("keys", checked), slog.Int("refreshed", refreshed), slog.Int("failed", failed))
}

// storedKey is a key a keep-alive pass looks at: its store key, and the
// name of its credential cache (the WithKey key; "" with one token).
type storedKey struct{ stored, name string }

// keepAliveKeys yields the keys a pass looks at: with one token, its own;
// on a keyed Transport the store's keys under the WithStore key when the
// store can list them, else the keys in memory.
func (t *Transport) keepAliveKeys(ctx context.Context) iter.Seq2[storedKey, error] {
	return func(yield func(storedKey, error) bool) {
		if t.keyed == nil {
			yield(storedKey{stored: t.cache.storeKey()}, nil)
			return
		}
		if l, ok := t.env.store.(store.Lister); ok {
			prefix, listed := t.opts.key+"/", true
			for k, err := range l.Keys(ctx, prefix) {
				if errors.Is(err, store.ErrCannotList) {
					listed = false // an Encrypted store over one that cannot list
					break
				}
				name := strings.TrimPrefix(k, prefix)
				if i := strings.LastIndex(name, "#resource:"); i >= 0 {
					name = name[:i] // the source's WithResource suffix
				}
				if !yield(storedKey{stored: k, name: name}, err) || err != nil {
					return
				}
			}
			if listed {
				return
			}
		}
		for _, c := range t.keyed.caches() {
			if !yield(storedKey{stored: c.storeKey(), name: c.name}, nil) {
				return
			}
		}
	}
}

// keepAlive refreshes key's token if it was obtained longer than the idle
// time ago, and reports whether it did.
func (t *Transport) keepAlive(ctx context.Context, key storedKey, pace *pacer) (bool, error) {
	tok, err := t.env.store.Load(ctx, key.stored)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !t.due(tok)) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	k := t.cache
	if t.keyed != nil {
		if k, err = t.keyed.idle(key.name); err != nil {
			return false, err
		}
	}
	if k.storeKey() != key.stored {
		return false, nil // stored for resources the key's source no longer asks for
	}
	if err := pace.wait(ctx); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.refreshTimeout)
	defer cancel()
	c, err := k.current(ctx) // the stored token, or a new one if it had expired
	if err != nil || time.Since(time.UnixMilli(c.rec.meta.obtained)) < t.opts.keepAlive.idle {
		return err == nil, err
	}
	_, err = k.renew(ctx)
	return err == nil, err
}

// due reports whether a stored token needs its refresh token presented.
func (t *Transport) due(tok *oauth2.Token) bool {
	m := store.MetaOf(tok)
	return tok.RefreshToken != "" && m.Dead.IsZero() && time.Since(m.Obtained) >= t.opts.keepAlive.idle
}

// pacer spaces the keep-alive's refreshes gap apart. One goroutine uses it.
type pacer struct {
	gap  time.Duration
	next time.Time
}

func (p *pacer) wait(ctx context.Context) error {
	if d := time.Until(p.next); d > 0 {
		timer := time.NewTimer(d)
		defer timer.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
	}
	p.next = time.Now().Add(p.gap)
	return nil
}
