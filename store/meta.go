package store

import (
	"strconv"
	"time"

	"golang.org/x/oauth2"
)

// The Transport keeps a little bookkeeping with every token it saves, as
// extras of the token under these names (see [Meta]). A Store must keep a
// token's extras as they are; [MarshalToken] does. A store that drops them
// still works, but its records count as unversioned: the Transport then
// orders tokens by expiry, and cannot tell that a peer's refresh is under
// way.
const (
	GenerationKey = "oauthtransport_generation"
	ObtainedKey   = "oauthtransport_obtained"
	SpentKey      = "oauthtransport_spent"
	DeadKey       = "oauthtransport_dead"
	// The token endpoint's answer that made a grant dead (see [Refusal]).
	RefusalCodeKey        = "oauthtransport_refusal_code"
	RefusalDescriptionKey = "oauthtransport_refusal_description"
	RefusalStatusKey      = "oauthtransport_refusal_status"
	// The authorization server (its issuer) and the client a token was
	// obtained from, when the Source says (ProtectedResource does): a token
	// is never refreshed as another client's.
	IssuerKey   = "oauthtransport_issuer"
	ClientIDKey = "oauthtransport_client_id"
)

// Meta is the bookkeeping a Transport keeps with a stored token.
type Meta struct {
	// Generation counts the tokens obtained for one key: each fetch gets
	// one more than the newest it knew. Zero: an unversioned record (for
	// example one written before versions existed).
	Generation uint64
	// Obtained is when the token was obtained.
	Obtained time.Time
	// Spent, when set, is when a process presented this record's refresh
	// token to the token endpoint, before the result of that refresh was
	// saved. Nobody may present it again: the server may have rotated it.
	Spent time.Time
	// Dead, when set, is when the token endpoint refused this record's
	// refresh token for good (invalid_grant: revoked, expired, reused).
	// Every process sharing the store then reports ErrReauthRequired for
	// the key without asking the token endpoint, for a while, until a
	// newer token (one a person authorized again) replaces the record.
	Dead time.Time
	// Refusal is the token endpoint's answer that made the grant dead
	// (with Dead), so that every process reports the same; nil when
	// unknown.
	Refusal *Refusal
}

// Refusal is a token endpoint's error answer (RFC 6749 §5.2): its error
// code, error description and HTTP status.
type Refusal struct {
	Code        string `json:"code,omitempty"`
	Description string `json:"description,omitempty"`
	Status      int    `json:"status,omitempty"`
}

// A record without an access token carries only bookkeeping: a key's
// first refresh token, which the Source holds and no store has seen, was
// presented (Spent) or refused (Dead). Stores keep such records as they
// keep any other.

// MetaOf returns the bookkeeping kept with tok; the zero Meta when there is
// none.
func MetaOf(tok *oauth2.Token) Meta {
	if tok == nil {
		return Meta{}
	}
	m := Meta{
		Generation: uint64(extraInt(tok, GenerationKey)),
		Obtained:   millis(extraInt(tok, ObtainedKey)),
		Spent:      millis(extraInt(tok, SpentKey)),
		Dead:       millis(extraInt(tok, DeadKey)),
	}
	code, _ := tok.Extra(RefusalCodeKey).(string)
	desc, _ := tok.Extra(RefusalDescriptionKey).(string)
	if status := extraInt(tok, RefusalStatusKey); code != "" || desc != "" || status != 0 {
		m.Refusal = &Refusal{Code: code, Description: desc, Status: int(min(status, 999))}
	}
	return m
}

// WithMeta returns a copy of tok carrying m. Of tok's other extras it keeps
// those a store keeps (scope, id_token, issued_token_type,
// refresh_token_expires_in): oauth2.Token offers no way to list the rest.
func WithMeta(tok *oauth2.Token, m Meta) *oauth2.Token {
	raw := make(map[string]any, len(extras)+7)
	for _, k := range extras {
		if v := tok.Extra(k); v != nil && v != "" {
			raw[k] = v
		}
	}
	set := func(k string, n int64) {
		if n > 0 {
			raw[k] = strconv.FormatInt(n, 10)
		}
	}
	set(GenerationKey, int64(min(m.Generation, 1<<62)))
	set(ObtainedKey, unixMillis(m.Obtained))
	set(SpentKey, unixMillis(m.Spent))
	set(DeadKey, unixMillis(m.Dead))
	if r := m.Refusal; r != nil {
		raw[RefusalCodeKey], raw[RefusalDescriptionKey] = r.Code, r.Description
		set(RefusalStatusKey, int64(r.Status))
	}
	return Clone(tok).WithExtra(raw)
}

func extraInt(tok *oauth2.Token, key string) int64 {
	switch v := tok.Extra(key).(type) {
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		if err == nil && n > 0 {
			return n
		}
	case float64:
		if v > 0 && v < 1<<62 {
			return int64(v)
		}
	case int64:
		return max(v, 0)
	case int:
		return int64(max(v, 0))
	}
	return 0
}

func millis(n int64) time.Time {
	if n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

func unixMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
