package oauthtransport

// Dead grants and new ones: a refresh token the token endpoint refused is
// marked Dead in the store, with the refusal, so that no process of a
// fleet asks the token endpoint for that key again for a while and each
// reports the same answer; a token a person authorized again (SetToken)
// replaces it everywhere, and processes cooling down find it (revive).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// deadPatience is how long a Dead mark keeps every process from
// presenting that refresh token again; then one process may try once more
// (and marks it again if it is still refused).
const deadPatience = 5 * time.Minute

// peekInterval spaces out the store reads of a key whose grant is dead,
// looking for a token a person authorized again.
const peekInterval = time.Second

// markDead writes base back with a Dead mark and the refusal te (and no
// Spent mark): the refresh was refused, so the refresh token was not
// spent, but it is worthless. A key's first refresh token, the Source's,
// is marked by a record of the mark alone.
func (p *protocol) markDead(ctx context.Context, base *record, te *TokenError) {
	dead := &record{tok: &oauth2.Token{}}
	if base != nil {
		dead.tok, dead.meta = base.tok, base.meta
	}
	dead.meta.spent, dead.meta.dead = 0, time.Now().UnixMilli()
	dead.meta.refusal = &store.Refusal{Code: te.Code, Description: te.Description, Status: te.StatusCode}
	if err := p.persist.save(ctx, p.slot, dead); err != nil {
		p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: recording a dead grant in the store failed",
			slog.String("key", p.slot.key), slog.String("error", err.Error()))
		return
	}
	if s := p.seen.Load(); s != nil && !newer(s, dead) {
		p.seen.CompareAndSwap(s, dead)
	}
}

// checkDead refuses to present a refresh token marked Dead recently; the
// error carries the refusal that killed it.
func checkDead(base *record) error {
	if base == nil || base.meta.dead == 0 {
		return nil
	}
	age := time.Since(time.UnixMilli(base.meta.dead))
	var te *TokenError
	switch revoked := base.meta.refusal != nil && base.meta.refusal.Code == revokedCode; {
	case revoked:
		te = reauthError(errors.New("the grant was ended by Transport.Revoke"))
	case age >= deadPatience:
		return nil
	default:
		te = reauthError(fmt.Errorf("the token endpoint refused this key's refresh token %v ago (recorded in the "+
			"store); it is not presented again before %v have passed, or until a new token is set",
			age.Round(time.Second), deadPatience))
	}
	if r := base.meta.refusal; r != nil {
		te.Code, te.Description, te.StatusCode = r.Code, r.Description, r.Status
	}
	return te
}

// peekDue reports whether a key whose grant is dead may look at the store
// now (at most once per peekInterval), and books the look.
func peekDue(at *atomic.Int64) bool {
	now := time.Now().UnixNano()
	nb := at.Load()
	return now >= nb && at.CompareAndSwap(nb, now+int64(peekInterval))
}

// revive installs a newer, live token found in the store, one a person
// authorized again and another process set, and reports whether it did.
func (p *protocol) revive(ctx context.Context) bool {
	rec, err := load(ctx, p.slot)
	if err != nil || rec == nil || rec.marker() || rec.meta.dead != 0 || !newer(rec, p.seen.Load()) {
		return false
	}
	if _, err := p.publish(ctx, nil, rec, nil, false); err != nil {
		return false
	}
	p.env.ledger.forget(p.slot.key)
	p.env.rec.adopted(ctx)
	return true
}

// set makes tok, which a person just authorized, the key's token: newer
// than any token seen or stored, saved before it is used, so that every
// process adopts it. It fails, and changes nothing, when the store's lock
// cannot be taken, the store cannot be read, or the save fails.
func (p *protocol) set(ctx context.Context, tok *oauth2.Token) error {
	l, err := p.lock(ctx) // as a refresh does: takes over a lock kept for an unsaved token
	if err != nil {
		return fmt.Errorf("oauthtransport: SetToken: %w", err)
	}
	defer l.release()
	stored, err := load(ctx, p.slot)
	if err != nil {
		return fmt.Errorf("oauthtransport: SetToken: %w", err)
	}
	err = p.persist.ordered(func() error {
		rec := &record{tok: store.Clone(tok), meta: meta{gen: newestGen(p.seen.Load(), stored) + 1, obtained: time.Now().UnixMilli()}}
		if err := p.persist.saveLocked(ctx, p.slot, rec); err != nil {
			return fmt.Errorf("oauthtransport: SetToken: %w", err)
		}
		_, err := p.install(rec, false)
		return err
	})
	if err == nil {
		p.env.ledger.forget(p.slot.key)
	}
	return err
}
