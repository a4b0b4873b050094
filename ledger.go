package oauthtransport

// The ledger: what this process knows of a key beyond its token and
// cannot afford to forget, kept per store key for the Transport's life, so
// that it outlives a keyed Transport's eviction of the key: refresh tokens
// it presented and cannot be sure about, and claims a claims challenge
// asked for. Entries are rare (an answer lost, a mark left behind, a
// challenge) and end when a new grant is set or adopted, or the claims
// obtained; a key holds none otherwise.

import (
	"sync"
	"time"
)

// ledger is one Transport's; safe for concurrent use.
type ledger struct{ m sync.Map } // store key → *ledgerEntry

// ledgerEntry is never modified once stored: a change stores a new one.
type ledgerEntry struct {
	lostRT string    // a refresh token whose refresh answer was lost
	lostAt time.Time // when that refresh was sent
	// ownMark is a Spent mark (Unix ms) this process left in the store for
	// a refresh the server answered with an error (clearing it failed):
	// that refresh token is unspent.
	ownMark int64
	// claims: what a claims challenge asked for, until a token obtained
	// with them is installed; token requests meanwhile ask for the same.
	claims string
}

func (l *ledger) entry(key string) ledgerEntry {
	if v, ok := l.m.Load(key); ok {
		return *v.(*ledgerEntry)
	}
	return ledgerEntry{}
}

// lost records that the answer to a refresh presenting rt was lost.
func (l *ledger) lost(key, rt string) {
	e := l.entry(key)
	e.lostRT, e.lostAt, e.ownMark = rt, time.Now(), 0
	l.m.Store(key, &e)
}

// leftMark records a Spent mark of this process's that clearing failed.
func (l *ledger) leftMark(key string, ms int64) {
	e := l.entry(key)
	e.ownMark = ms
	l.m.Store(key, &e)
}

// forget ends what the ledger knows of key: a new grant replaced it.
func (l *ledger) forget(key string) { l.m.Delete(key) }

// askClaims records that a claims challenge asked for claims.
func (l *ledger) askClaims(key, claims string) {
	e := l.entry(key)
	e.claims = claims
	l.m.Store(key, &e)
}

// gotClaims records that a token obtained with claims was installed.
func (l *ledger) gotClaims(key, claims string) {
	if e := l.entry(key); e.claims == claims {
		e.claims = ""
		l.store(key, e)
	}
}

// store keeps e, or forgets key when e knows nothing.
func (l *ledger) store(key string, e ledgerEntry) {
	if e == (ledgerEntry{}) {
		l.m.Delete(key)
		return
	}
	l.m.Store(key, &e)
}
