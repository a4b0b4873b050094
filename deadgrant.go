package oauthtransport

// Dead grants: a refresh token the token endpoint refused for good is
// marked Dead in the store, so that no process of a fleet asks the token
// endpoint for that key again for a while; a token a person authorized
// again (SetToken) replaces it everywhere.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// deadPatience is how long a Dead mark keeps every process from
// presenting that refresh token again; then one process may try once more
// (and marks it again if it is still refused).
const deadPatience = maxTerminalCooldown

// peekInterval spaces out the store reads of a key whose grant is dead,
// looking for a token a person authorized again.
const peekInterval = time.Second

// markDead writes base back with a Dead mark (and no Spent mark): the
// refresh was refused, so the refresh token was not spent, but it is
// worthless.
func (k *credentialCache) markDead(ctx context.Context, base *record) {
	if base == nil {
		return
	}
	dead := &record{tok: base.tok, meta: base.meta}
	dead.meta.spent, dead.meta.dead = 0, time.Now().UnixMilli()
	if err := k.save(ctx, dead); err != nil {
		k.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: recording a dead grant in the store failed",
			slog.String("key", k.storeKey()), slog.String("error", err.Error()))
		return
	}
	if s := k.seen.Load(); s != nil && !newer(s, dead) {
		k.seen.CompareAndSwap(s, dead)
	}
}

// checkDead refuses to present a refresh token marked Dead recently.
func checkDead(base *record) error {
	if base == nil || base.meta.dead == 0 {
		return nil
	}
	if age := time.Since(time.UnixMilli(base.meta.dead)); age < deadPatience {
		return reauthError(fmt.Errorf("the token endpoint refused this key's refresh token %v ago (recorded in the "+
			"store); it is not presented again before %v have passed, or until a new token is set",
			age.Round(time.Second), deadPatience))
	}
	return nil
}

// revived reports whether a key cooling down after err (a dead grant)
// found a newer, live token in the store, and installed it: one a person
// authorized again and another process set. The store is read at most
// once a second per key.
func (k *credentialCache) revived(ctx context.Context, err error) bool {
	last := k.failure.last.Load()
	if last == nil || !errors.Is(err, ErrReauthRequired) {
		return false
	}
	now := time.Now().UnixNano()
	nb := last.peekNotBefore.Load()
	if now < nb || !last.peekNotBefore.CompareAndSwap(nb, now+int64(peekInterval)) {
		return false
	}
	rec := k.load(ctx)
	if rec == nil || rec.meta.dead != 0 || !newer(rec, k.seen.Load()) {
		return false
	}
	if _, err := k.adopt(ctx, rec); err != nil {
		return false
	}
	k.failure.reset()
	k.lost.Store(nil)
	return true
}

// set makes tok, which a person just authorized, the key's token: newer
// than any token seen or stored, saved before it is used, so that every
// process adopts it.
func (k *credentialCache) set(ctx context.Context, tok *oauth2.Token) (*credential, error) {
	if err := k.awaitFlight(ctx); err != nil {
		return nil, err
	}
	l, err := k.lock(ctx) // as a refresh does: takes over a lock kept for an unsaved token
	if err != nil {
		return nil, fmt.Errorf("oauthtransport: SetToken: %w", err)
	}
	defer l.release()
	gen := uint64(0)
	for _, r := range []*record{k.seen.Load(), k.load(ctx)} {
		if r != nil {
			gen = max(gen, r.meta.gen)
		}
	}
	rec := &record{tok: store.Clone(tok), meta: meta{gen: gen + 1, obtained: time.Now().UnixMilli()}}
	if err := k.save(ctx, rec); err != nil {
		return nil, fmt.Errorf("oauthtransport: SetToken: %w", err)
	}
	c, err := k.install(rec, false)
	if err != nil {
		return nil, err
	}
	k.failure.reset()
	k.lost.Store(nil)
	k.renewStreak.Store(0)
	return c, nil
}

// awaitFlight waits for the refresh in flight, if any, to end.
func (k *credentialCache) awaitFlight(ctx context.Context) error {
	k.mu.Lock()
	f := k.fl
	k.mu.Unlock()
	if f == nil {
		return nil
	}
	select {
	case <-f.done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// SetToken makes tok the token of ctx's key ([WithKey] on a keyed
// Transport): one a person has just authorized, after a dead grant
// ([ErrReauthRequired]) or to connect an account. It waits for a refresh
// in flight, saves tok to the store as newer than any token held there or
// here, so that every process sharing the store adopts it (a process
// cooling down after the dead grant looks at the store once a second),
// and uses it at once; the key's failure cool-down ends. It fails, and
// changes nothing, when the store's lock cannot be taken or the save
// fails. tok needs an access token: an expired one will do, with the
// refresh token that replaces it.
func (t *Transport) SetToken(ctx context.Context, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("oauthtransport: SetToken: the token has no access token")
	}
	k, err := t.cacheFor(ctx)
	if err != nil {
		return err
	}
	_, err = k.set(ctx, tok)
	return err
}
