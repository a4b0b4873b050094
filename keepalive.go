package oauthtransport

// Keep-alive: refreshing, in the background, the tokens of keys nobody
// uses, before the IdP lets their refresh tokens lapse for disuse.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
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

// keeper runs a Transport's keep-alive passes.
type keeper struct {
	env    *env
	policy keepAlivePolicy
	single *credentialCache // New's
	keyed  *keyedCaches     // NewKeyed's
}

// startKeepAlive runs the keep-alive passes until Close, if asked for.
func startKeepAlive(kp *keeper) {
	if kp.policy.idle <= 0 || !kp.env.life.enter(false) {
		return
	}
	go func() {
		life := kp.env.life
		defer life.leave(false)
		tick := time.NewTicker(min(kp.policy.idle/4, time.Hour))
		defer tick.Stop()
		pace := &pacer{gap: time.Duration(float64(time.Second) / kp.policy.perSecond)}
		for {
			select {
			case <-life.ctx.Done():
				return
			case <-tick.C:
				kp.pass(life.ctx, pace)
			}
		}
	}()
}

// pass refreshes every idle key's token once, and logs a summary.
func (kp *keeper) pass(ctx context.Context, pace *pacer) {
	var checked, refreshed, failed int
	log := kp.env.log
	for key, err := range kp.keys(ctx) {
		if err != nil {
			log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: keep-alive: listing the store's keys failed",
				slog.String("error", err.Error()))
			break
		}
		checked++
		switch did, err := kp.refresh(ctx, key, pace); {
		case ctx.Err() != nil:
			return
		case err != nil:
			failed++
			log.LogAttrs(ctx, slog.LevelInfo, "oauthtransport: keep-alive refresh failed",
				slog.String("key", key.stored), slog.String("error", err.Error()))
		case did:
			refreshed++
		}
	}
	log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: keep-alive pass",
		slog.Int("keys", checked), slog.Int("refreshed", refreshed), slog.Int("failed", failed))
}

// storedKey is a key a keep-alive pass looks at: its store key, and the
// name of its credential cache (the WithKey key; "" with one token).
type storedKey struct{ stored, name string }

// keys yields the keys a pass looks at: with one token, its own; on a
// keyed Transport the store's keys under the WithStore key when the store
// can list them, else the keys in memory.
func (kp *keeper) keys(ctx context.Context) iter.Seq2[storedKey, error] {
	return func(yield func(storedKey, error) bool) {
		if kp.keyed == nil {
			yield(storedKey{stored: kp.single.slot().key}, nil)
			return
		}
		if l, ok := kp.env.store.(store.Lister); ok {
			listed := true
			for k, err := range l.Keys(ctx, kp.env.keys.prefix()) {
				if errors.Is(err, store.ErrCannotList) {
					listed = false // an Encrypted store over one that cannot list
					break
				}
				name, _ := kp.env.keys.name(k)
				if !yield(storedKey{stored: k, name: name}, err) || err != nil {
					return
				}
			}
			if listed {
				return
			}
		}
		for _, c := range kp.keyed.caches() {
			if !yield(storedKey{stored: c.slot().key, name: c.name}, nil) {
				return
			}
		}
	}
}

// refresh refreshes key's token if it was obtained longer than the idle
// time ago, and reports whether it did.
func (kp *keeper) refresh(ctx context.Context, key storedKey, pace *pacer) (bool, error) {
	tok, err := kp.env.store.Load(ctx, key.stored)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !kp.due(tok)) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	k := kp.single
	if kp.keyed != nil {
		if k, err = kp.keyed.get(ctx, key.name, false); err != nil {
			return false, err
		}
	}
	if k.slot().key != key.stored {
		return false, nil // stored for resources the key's source no longer asks for
	}
	if err := pace.wait(ctx); err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(withoutLogin(ctx), kp.env.opts.refreshTimeout)
	defer cancel()
	c, err := k.current(ctx) // the stored token, or a new one if it had expired
	if err != nil || time.Since(time.UnixMilli(c.rec.meta.obtained)) < kp.policy.idle {
		return err == nil, err
	}
	_, err = k.renew(ctx)
	return err == nil, err
}

// due reports whether a stored token needs its refresh token presented.
func (kp *keeper) due(tok *oauth2.Token) bool {
	m := store.MetaOf(tok)
	return tok.RefreshToken != "" && m.Dead.IsZero() && time.Since(m.Obtained) >= kp.policy.idle
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
