package oauthtransport

// The refresh protocol: how one key's token is renewed without ever
// spending a refresh token twice, whatever the store does.
//
// Every stored record carries [store.Meta]: a generation (one more than
// the token it was obtained from), when it was obtained, and Spent and
// Dead marks. A refresh of key K in process P, with M the newest token P
// has seen:
//
//	LOCK    Take K's lock (when the store is a store.Locker). If it
//	        cannot be had (the store is down): a grant that spends no
//	        refresh token (client credentials) goes on without it; one that
//	        does (a refresh-token grant) does not refresh: requests keep the
//	        current token while it is valid, then get a temporary
//	        *TokenError saying why. Within P, one key has one cache, and a
//	        cache one refresh at a time (flight.go; keyed.go retires an
//	        evicted key's cache).
//	READ    Load the record R. A read that fails is a failure (temporary
//	        for a grant that spends), never an empty store.
//	        R newer than M: adopt R if its access token is still good
//	        (done), else R is the base.
//	        R older than M, or missing (the store lost P's save, or was
//	        restored from an older copy): write M back (REPAIR); M is the
//	        base. A stored token never replaces a newer one, and P never
//	        presents a refresh token older than one it has seen.
//	        R is M: R is the base (its copy holds the latest marks).
//	CHECK   The base's refresh token must be unspent. A Spent mark that
//	        another process set means its refresh has not been saved: P
//	        does not refresh (a temporary *TokenError; ErrReauthRequired
//	        once the mark is older than 10 minutes). A refresh token whose
//	        answer P lost is never presented again (ErrReauthRequired; the
//	        ledger keeps that beyond an eviction). Within the source's
//	        rotation grace period both may be presented once more. A
//	        refresh token the token endpoint refused (Dead) is not
//	        presented again for 5 minutes by any process: the error
//	        repeats the refusal's code, description and status.
//	MARK    Write the base back with Spent set: with a Locker (peers
//	        find it), and in the Transport's own memory store (it outlives
//	        a keyed Transport's eviction of the key); not in a shared store
//	        without a lock, where it could overwrite a peer's newer token.
//	        For a key's first refresh (the refresh token lives in the
//	        Source) a record of the mark alone. If that fails, do not
//	        refresh.
//	FETCH   Call the Source with the base.
//	        A token N, one generation newer than the base: PUBLISH.
//	        An error the server answered: the refresh token was not
//	        spent; write the base back unmarked. A refusal of the grant
//	        (invalid_grant) re-reads the store first (a peer may have
//	        rotated it a moment ago); if nothing newer is there, the base
//	        is written back with a Dead mark and the refusal.
//	        No answer after the request went out (the connection dropped,
//	        the timeout hit): the server may have rotated it. The mark
//	        stays, P remembers, ErrReauthRequired.
//	PUBLISH Save N and install it, in one step with no other write of K
//	        in between, unless a token newer than N's base was installed
//	        meanwhile (SetToken; a refresh abandoned for its slowness
//	        returns late): N is then dropped, never saved. When the lock
//	        may have lapsed, the store is read first, and a newer record
//	        there drops N too. If the save fails, N is used from memory and
//	        written again in the background, and P keeps the lock until a
//	        write lands: the store still holds a spent refresh token. A
//	        peer that gets the lock once it expires finds the Spent mark
//	        (CHECK). Close writes an unsaved token once more, and says so
//	        when it cannot.
//	UNLOCK
//
// Users' code (Source, Store, Locker, WithAuthorization) runs under
// protect (cache.go): a panic becomes a *TokenError for the waiting
// callers.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// protocol is one run of the protocol for one key: what it needs of the
// key's cache, handed to it.
type protocol struct {
	env        *env
	src        Source
	slot       slot
	seen       *atomic.Pointer[record] // the newest token known
	persist    *persister
	install    func(rec *record, fetched bool) (*credential, error) // under the persister's order
	drop       func(rec *record)                                    // a revoked grant: no token; under the persister's order
	background bool
	mayLogin   bool   // a caller waits: an interactive source may ask the person
	claims     string // asked for by a claims challenge: the token must be fetched with them
	bound      string // the certificate in use when the token was requested (WithBoundCertificate)
}

// spentPatience is how long a peer's Spent mark counts as a refresh that
// may still be saved, before the grant is reported dead.
const spentPatience = 10 * time.Minute

// errSuperseded is a refresh whose token came from a base older than the
// token installed meanwhile: it is dropped.
var errSuperseded = errors.New("oauthtransport: a newer token was installed while the refresh ran")

// run performs the protocol and returns the credential to use and what it
// did (outcomeFetched, outcomeAdopted).
func (p *protocol) run(ctx context.Context) (*credential, string, error) {
	l, err := p.lock(ctx)
	if err != nil {
		return nil, "", err
	}
	defer l.release()
	base, adopt, err := p.read(ctx)
	if err != nil {
		return nil, "", err
	}
	if adopt && p.claims == "" {
		c, err := p.publish(ctx, nil, base, nil, false)
		return c, outcomeAdopted, err
	}
	if p.interactive() && (refreshTokenOf(base) == sourcesOwn || loginFirst(p.src, base)) {
		return p.login(ctx, base, l) // no grant yet, a revoked one, or one that cannot serve
	}
	if err := p.check(base); err != nil {
		return p.loginAfter(ctx, base, l, err)
	}
	rec, err := p.spend(ctx, base, l)
	if err != nil {
		c, err := p.afterFailure(ctx, base, err)
		if err != nil {
			return p.loginAfter(ctx, base, l, err)
		}
		return c, outcomeAdopted, nil
	}
	if p.env.opts.boundCert != nil {
		rec.bound = boundTo(rec.tok, func() string { return p.bound })
	}
	c, err := p.publish(ctx, base, rec, l, true)
	if err != nil {
		return nil, "", err
	}
	p.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetched", slog.String("key", p.slot.key),
		slog.String("token", c.fingerprint()), slog.Time("expiry", c.rec.tok.Expiry), slog.Bool("background", p.background))
	return c, outcomeFetched, nil
}

// lock takes the key's lock in the store (LOCK). It returns a nil lease
// when there is no Locker, or when a grant that spends no refresh token
// goes on without the lock.
func (p *protocol) lock(ctx context.Context) (*lease, error) {
	if p.env.locker == nil {
		return nil, nil
	}
	if h := p.persist.held.Swap(nil); h != nil {
		h.free() // our own, kept for an unsaved token: take it anew
	}
	ttl := p.env.opts.refreshTimeout + min(p.env.opts.refreshTimeout, 5*time.Second) // outlasts one refresh
	if d, login := needsLogin(p.src, p.seen.Load(), p.env.ledger.entry(p.slot.key).lostRT != ""); login && p.mayLogin {
		ttl += d // held for the whole login: no other process starts one
	}
	unlock, err := p.env.locker.Lock(ctx, p.slot.key, ttl)
	switch {
	case err == nil:
		return &lease{unlock: unlock, until: time.Now().Add(ttl)}, nil
	case ctx.Err() != nil:
		return nil, temporaryError(fmt.Errorf("waiting for the store's lock on key %q: %w", p.slot.key, err))
	case spends(p.src, p.seen.Load()):
		return nil, temporaryError(fmt.Errorf("the store's lock on key %q cannot be taken (%w); "+
			"a refresh token shared through the store is not spent without it", p.slot.key, err))
	}
	p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: store lock failed; refreshing without it",
		slog.String("key", p.slot.key), slog.String("error", err.Error()))
	return nil, nil
}

// read compares the stored record with the newest token seen (READ). It
// returns the base of the refresh, and whether to adopt it as it is.
func (p *protocol) read(ctx context.Context) (*record, bool, error) {
	seen := p.seen.Load()
	stored, err := load(ctx, p.slot)
	if err != nil {
		if spends(p.src, seen) {
			return nil, false, temporaryError(fmt.Errorf("a refresh token is not presented without knowing the newest: %w", err))
		}
		p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: loading token from store failed; refreshing without it",
			slog.String("key", p.slot.key), slog.String("error", err.Error()))
		return seen, false, nil
	}
	switch {
	case newer(stored, seen):
		return stored, usable(stored, p.env.sched), nil
	case stored == nil || newer(seen, stored):
		if seen != nil {
			p.repair(ctx, seen, stored)
		}
		return seen, false, nil
	}
	return stored, false, nil
}

// repair writes the newest token seen back to a store that lost it or
// went back to an older copy (REPAIR).
func (p *protocol) repair(ctx context.Context, seen, stored *record) {
	if stored != nil && !stored.marker() {
		p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: the store holds an older token than this process; writing the newer one back",
			slog.String("key", p.slot.key), slog.Uint64("stored_generation", stored.meta.gen), slog.Uint64("generation", seen.meta.gen))
	}
	p.persist.saveOrLog(ctx, p.slot, seen, "writing the newer token back")
}

// usable reports whether rec's access token may still be used.
func usable(rec *record, sched schedulePolicy) bool {
	if rec.marker() {
		return false
	}
	now := time.Now()
	_, expireAt := schedule(rec.tok, now, sched, 0)
	return expireAt.IsZero() || now.Before(expireAt)
}

// check refuses to present a refresh token that may be spent or is dead
// (CHECK).
func (p *protocol) check(base *record) error {
	if !spends(p.src, base) {
		return nil
	}
	grace := graceOf(p.src)
	known := p.env.ledger.entry(p.slot.key)
	if known.lostRT != "" && known.lostRT == refreshTokenOf(base) {
		if time.Since(known.lostAt) < grace {
			return nil
		}
		return reauthError(fmt.Errorf("the answer to a refresh sent at %s was lost, and the server may have rotated "+
			"the refresh token; it is not presented again (see WithRotationGrace)", known.lostAt.Format(time.RFC3339)))
	}
	if err := checkDead(base); err != nil {
		return err
	}
	if base == nil || base.meta.spent == 0 || base.meta.spent == known.ownMark {
		return nil
	}
	spent := time.UnixMilli(base.meta.spent)
	switch age := time.Since(spent); {
	case age < grace:
		return nil
	case age < spentPatience:
		return temporaryError(fmt.Errorf("another process presented the stored refresh token %v ago and has not "+
			"saved the result yet; not presenting it again", age.Round(time.Millisecond)))
	}
	return reauthError(fmt.Errorf("the stored refresh token was presented at %s by a refresh whose result "+
		"was never saved", spent.Format(time.RFC3339)))
}

// spend marks the base spent in the store (MARK) and calls the Source
// (FETCH).
func (p *protocol) spend(ctx context.Context, base *record, l *lease) (*record, error) {
	spending := spends(p.src, base)
	var marked *record
	if spending && (l != nil || p.env.private) {
		var err error
		if marked, err = p.mark(ctx, base); err != nil {
			return nil, err
		}
	}
	tok, err := p.fetch(ctx, base)
	switch {
	case err == nil:
		return next(base, tok), nil
	case spending && possiblySpent(err):
		p.env.ledger.lost(p.slot.key, refreshTokenOf(base))
		return nil, reauthError(fmt.Errorf("the answer to the refresh was lost, and the server may have rotated "+
			"the refresh token; it is not presented again (see WithRotationGrace): %w", err))
	case marked != nil:
		p.unmark(ctx, base, marked)
	}
	return nil, err
}

// mark records in the store that base's refresh token is being presented
// (MARK), and returns the record written. A refresh that cannot record it
// does not present it.
func (p *protocol) mark(ctx context.Context, base *record) (*record, error) {
	m := meta{spent: time.Now().UnixMilli()}
	tok := &oauth2.Token{} // the key's first refresh: the refresh token is the Source's
	if base != nil {
		m.gen, m.obtained, tok = base.meta.gen, base.meta.obtained, base.tok
	}
	marked := &record{tok: tok, meta: m}
	if err := p.persist.save(ctx, p.slot, marked); err != nil {
		return nil, temporaryError(fmt.Errorf("cannot record in the store that the refresh token is being spent, so it is not: %w", err))
	}
	return marked, nil
}

// unmark writes base back without the mark after the server answered
// with an error: its refresh token was not spent. When that fails the
// ledger remembers the mark as this process's own.
func (p *protocol) unmark(ctx context.Context, base, marked *record) {
	var err error
	if base == nil {
		err = p.slot.store.Delete(ctx, p.slot.key)
	} else {
		err = p.persist.save(ctx, p.slot, base)
	}
	if err != nil {
		p.env.ledger.leftMark(p.slot.key, marked.meta.spent)
		p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: clearing the store's refresh mark failed",
			slog.String("key", p.slot.key), slog.String("error", err.Error()))
	}
}

// fetch calls the Source (FETCH), retrying failures that are safe to
// retry (retryableFetch) as fetchWaits says, twice at most. A request
// whose answer was lost is never retried here. The tokens handed to the
// Source are redacted from what a failure logs and returns: a Source's
// error may quote them.
func (p *protocol) fetch(ctx context.Context, base *record) (*oauth2.Token, error) {
	current := base.token()
	secrets := append(p.seen.Load().secrets(), base.secrets()...)
	p.bound = ""
	if b := p.env.opts.boundCert; b != nil {
		p.bound = b() // the certificate this request presents
		if last := p.env.fetchedUnder.Swap(&p.bound); last != nil && *last != p.bound {
			// A connection made with the old certificate (a refresh that was
			// in flight when it changed) must not carry this request.
			p.env.tokenClient.CloseIdleConnections()
		}
	}
	ctx = sourceContext(ctx, p.env)
	if p.claims != "" {
		ctx = context.WithValue(ctx, claimsKey{}, p.claims)
	}
	tok, err := backoff.RetryWithData(func() (*oauth2.Token, error) {
		tok, err := p.src.Token(ctx, store.Clone(current))
		switch {
		case err != nil && ctx.Err() == nil && retryableFetch(err):
			p.env.log.LogAttrs(ctx, slog.LevelDebug, "oauthtransport: token fetch failed; retrying",
				slog.String("error", asTokenError(err).withoutSecrets(secrets...).Error()))
			return nil, err
		case err != nil:
			return nil, backoff.Permanent(err)
		case tok == nil || tok.AccessToken == "":
			return nil, backoff.Permanent(&TokenError{Err: errors.New("the source returned no access token")})
		}
		return tok, nil
	}, backoff.WithContext(backoff.WithMaxRetries(fetchWaits.backOff(), 2), ctx))
	if err != nil {
		return nil, asTokenError(err).withoutSecrets(secrets...)
	}
	return tok, nil
}

// next makes the record of a token fetched from base: one generation
// newer than base (so that a result arriving late is ordered by what it
// came from), the granted lifetime recorded (x/oauth2's client-credentials
// source leaves it out, and a process loading the token measures its
// refresh window against it), the refresh token kept when the server sent
// none.
func next(base *record, tok *oauth2.Token) *record {
	tok = store.Clone(tok)
	if tok.ExpiresIn == 0 && !tok.Expiry.IsZero() {
		tok.ExpiresIn = int64(time.Until(tok.Expiry).Round(time.Second) / time.Second)
	}
	var gen uint64
	if base != nil {
		gen = base.meta.gen
		if tok.RefreshToken == "" {
			tok.RefreshToken = base.tok.RefreshToken
		}
	}
	return &record{tok: tok, meta: meta{gen: gen + 1, obtained: time.Now().UnixMilli()}}
}

// afterFailure re-reads the store after the token endpoint refused a
// refresh token: a peer may have rotated it a moment ago. If nothing newer
// is there, the grant is dead.
func (p *protocol) afterFailure(ctx context.Context, base *record, err error) (*credential, error) {
	te := asTokenError(err)
	if !spends(p.src, base) || te.reauth || !grantRefused(te) {
		return nil, err
	}
	again, lerr := load(ctx, p.slot)
	if lerr == nil && again != nil && !again.marker() && newer(again, base) {
		if usable(again, p.env.sched) {
			return p.publish(ctx, nil, again, nil, false)
		}
		return nil, err // the next refresh spends the newer refresh token
	}
	p.markDead(ctx, base, te)
	dead := *te
	dead.reauth = true
	return nil, &dead
}

// publish saves rec and installs it with no other write of the key in
// between (PUBLISH), unless it is superseded. A fetched rec's base is
// base; an adopted one (fetched false) is already stored.
func (p *protocol) publish(ctx context.Context, base, rec *record, l *lease, fetched bool) (*credential, error) {
	var c *credential
	err := p.persist.ordered(func() error {
		if fetched && p.superseded(ctx, base, l) {
			return errSuperseded
		}
		if fetched {
			if err := p.persist.saveLocked(ctx, p.slot, rec); err != nil {
				p.persist.keepUnsaved(ctx, p.slot, p.env.life, rec, l, rec.tok.RefreshToken != "", err)
			}
		}
		var err error
		c, err = p.install(rec, fetched)
		return err
	})
	if errors.Is(err, errSuperseded) {
		p.env.log.LogAttrs(ctx, slog.LevelWarn, "oauthtransport: dropping a token obtained from an older one than the token now held",
			slog.String("key", p.slot.key), slog.String("token", fingerprint(rec.tok.AccessToken)))
		return nil, temporaryError(err)
	}
	return c, err
}

// superseded reports whether a token newer than base was installed (or,
// once the lock may have lapsed, stored) while the refresh ran.
func (p *protocol) superseded(ctx context.Context, base *record, l *lease) bool {
	if s := p.seen.Load(); s != base && newer(s, base) {
		return true
	}
	if !l.lapsed() {
		return false
	}
	stored, err := load(ctx, p.slot)
	return err == nil && stored != nil && !stored.marker() && newer(stored, base)
}
