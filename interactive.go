package oauthtransport

// Grants a person authorizes, in the refresh protocol: when a key has no
// usable refresh token (none yet, a dead grant, a revoked one), an
// interactive Source asks the person (login) for a caller that waits, and
// never from a background refresh or the keep-alive; one login at a time
// per key, and with a store.Locker one across the processes sharing the
// store (the lock is held for the whole login). Revoke ends a grant at the
// server and in the store.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// revokedCode is the refusal a revoked grant is recorded with: unlike a
// dead grant's, it does not lapse.
const revokedCode = "revoked"

type noLoginKey struct{}

// withoutLogin marks ctx as background work (the keep-alive) that must
// never ask a person to sign in.
func withoutLogin(ctx context.Context) context.Context {
	return context.WithValue(ctx, noLoginKey{}, true)
}

func loginAllowed(ctx context.Context) bool {
	no, _ := ctx.Value(noLoginKey{}).(bool)
	return !no
}

// needsLogin predicts whether a refresh of an interactive source from
// seen will ask the person (no refresh token, or a dead grant), so that
// its flight and lock last the login; the protocol decides for sure.
func needsLogin(src Source, seen *record, lost bool) (time.Duration, bool) {
	in, ok := src.(interactive)
	if !ok || !(seen == nil || refreshTokenOf(seen) == sourcesOwn || seen.meta.dead != 0 || lost || loginFirst(src, seen)) {
		return 0, false
	}
	return in.loginTimeout(), true
}

// loginWanter is an interactive Source that may want a login although it
// holds a refresh token (ProtectedResource after a 403 insufficient_scope,
// or with a token of another client).
type loginWanter interface {
	wantsLogin(current *oauth2.Token) bool
}

// loginFirst reports whether the source wants a login rather than a
// refresh from base.
func loginFirst(src Source, base *record) bool {
	w, ok := src.(loginWanter)
	return ok && base != nil && w.wantsLogin(base.tok)
}

// interactive reports whether the source can ask a person.
func (p *protocol) interactive() bool {
	_, ok := p.src.(interactive)
	return ok
}

// loginAfter asks the person after err made the grant dead (a refusal, a
// revoked grant, a lost answer), when the source can and a caller waits;
// otherwise it returns err.
func (p *protocol) loginAfter(ctx context.Context, base *record, l *lease, err error) (*credential, string, error) {
	if !p.interactive() || !errors.Is(err, ErrReauthRequired) {
		return nil, "", err
	}
	return p.login(ctx, base, l)
}

// login asks the person for a grant (LOGIN), with the key's lock held, and
// publishes its token as newer than any known. Never for a background
// refresh.
func (p *protocol) login(ctx context.Context, base *record, l *lease) (*credential, string, error) {
	in := p.src.(interactive)
	if !p.mayLogin {
		return nil, "", reauthError(errors.New("a person must sign in; not asked from a background refresh"))
	}
	lctx, cancel := context.WithTimeout(ctx, in.loginTimeout())
	defer cancel()
	lctx = sourceContext(lctx, p.env)
	tok, err := in.login(lctx)
	switch {
	case err != nil:
		return nil, outcomeLogin, asTokenError(err)
	case tok == nil || tok.AccessToken == "":
		return nil, outcomeLogin, &TokenError{Err: errors.New("the login returned no access token")}
	}
	rec := next(&record{tok: &oauth2.Token{}, meta: meta{gen: newestGen(base, p.seen.Load())}}, tok)
	if b := p.env.opts.boundCert; b != nil {
		rec.bound = boundTo(rec.tok, b)
	}
	c, err := p.publish(ctx, base, rec, l, true)
	if err != nil {
		return nil, outcomeLogin, err
	}
	p.env.ledger.forget(p.slot.key)
	return c, outcomeLogin, nil
}

// revoke ends the key's grant: at the server (RFC 7009) when the source
// can, then in the store the way a dead grant is ended, for good: the
// token is replaced by a record of the revocation, so that no process
// sharing the store presents it or writes it back.
func (p *protocol) revoke(ctx context.Context) error {
	l, err := p.lock(ctx)
	if err != nil {
		return fmt.Errorf("oauthtransport: Revoke: %w", err)
	}
	defer l.release()
	stored, err := load(ctx, p.slot)
	if err != nil {
		return fmt.Errorf("oauthtransport: Revoke: %w", err)
	}
	newest := stored
	if seen := p.seen.Load(); newer(seen, stored) {
		newest = seen
	}
	told := p.tellServer(ctx, newest)
	ended := &record{tok: &oauth2.Token{}, meta: meta{dead: time.Now().UnixMilli(),
		refusal: &store.Refusal{Code: revokedCode, Description: "the grant was ended by Transport.Revoke"}}}
	if newest != nil {
		ended.meta.gen = newest.meta.gen + 1
	}
	err = p.persist.ordered(func() error {
		if err := p.persist.saveLocked(ctx, p.slot, ended); err != nil {
			return err
		}
		p.drop(ended)
		return nil
	})
	if err != nil {
		return fmt.Errorf("oauthtransport: Revoke: the grant was not ended in the store: %w", err)
	}
	p.env.ledger.forget(p.slot.key)
	if told != nil {
		return fmt.Errorf("oauthtransport: Revoke: the grant was ended here, but the server was not told: %w", told)
	}
	return nil
}

// tellServer revokes rec's grant at the server, if the source can.
func (p *protocol) tellServer(ctx context.Context, rec *record) error {
	if rec == nil || rec.marker() {
		return nil
	}
	r, ok := p.src.(revoker)
	if !ok {
		return errNoRevocationEndpoint
	}
	ctx = sourceContext(ctx, p.env)
	err := protect(ctx, p.env.log, "revoking the grant (Source)", rec.secrets(), func() error { return r.revoke(ctx, store.Clone(rec.tok)) })
	if err != nil {
		return asTokenError(err).withoutSecrets(rec.secrets()...)
	}
	return nil
}
