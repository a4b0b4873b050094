package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/oauth2"
)

// ErrCorrupt is matched by the error of a Load that found data it cannot
// read: a damaged file, an unknown format version, or a ciphertext that
// does not decrypt. The Transport then fetches a new token and overwrites it.
var ErrCorrupt = errors.New("store: stored token is corrupt or of an unknown format")

// formatVersion is the version of the encoding written by MarshalToken.
const formatVersion = 1

// extras are the token response members, beyond the standard ones, that
// are kept with a token, and where it came from (IssuerKey, ClientIDKey).
var extras = []string{"scope", "id_token", "issued_token_type", "refresh_token_expires_in", IssuerKey, ClientIDKey}

type encoded struct {
	Version      int            `json:"version"`
	AccessToken  string         `json:"access_token"`
	TokenType    string         `json:"token_type,omitempty"`
	RefreshToken string         `json:"refresh_token,omitempty"`
	Expiry       *time.Time     `json:"expiry,omitempty"`
	ExpiresIn    int64          `json:"expires_in,omitempty"`
	Extra        map[string]any `json:"extra,omitempty"`
	// The bookkeeping of [Meta]; absent in records written before it.
	Generation uint64   `json:"generation,omitempty"`
	Obtained   int64    `json:"obtained_ms,omitempty"`
	Spent      int64    `json:"spent_ms,omitempty"`
	Dead       int64    `json:"dead_ms,omitempty"`
	Refusal    *Refusal `json:"refusal,omitempty"`
}

// MarshalToken encodes tok in the versioned JSON format the file and Redis
// stores use: type, access and refresh token, expiry, the lifetime the
// server granted, the extras that matter (scope, id_token,
// issued_token_type, refresh_token_expires_in) and the Transport's
// bookkeeping ([Meta]). It is exported for stores written outside this
// module.
func MarshalToken(tok *oauth2.Token) ([]byte, error) {
	if tok == nil {
		return nil, errors.New("store: nil token")
	}
	m := MetaOf(tok)
	e := encoded{Version: formatVersion, AccessToken: tok.AccessToken, TokenType: tok.TokenType,
		RefreshToken: tok.RefreshToken, ExpiresIn: tok.ExpiresIn,
		Generation: m.Generation, Obtained: unixMillis(m.Obtained), Spent: unixMillis(m.Spent),
		Dead: unixMillis(m.Dead), Refusal: m.Refusal}
	if !tok.Expiry.IsZero() {
		exp := tok.Expiry.UTC()
		e.Expiry = &exp
	}
	for _, k := range extras {
		if v := tok.Extra(k); v != nil && v != "" {
			if e.Extra == nil {
				e.Extra = make(map[string]any)
			}
			e.Extra[k] = v
		}
	}
	return json.Marshal(e)
}

// UnmarshalToken decodes what [MarshalToken] wrote. Data it cannot read
// gives an error matching [ErrCorrupt]; the error never quotes the data.
func UnmarshalToken(data []byte) (*oauth2.Token, error) {
	var e encoded
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("%w: not a JSON token record (%d bytes)", ErrCorrupt, len(data))
	}
	if e.Version != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, e.Version, formatVersion)
	}
	if e.AccessToken == "" && e.Spent <= 0 && e.Dead <= 0 {
		return nil, fmt.Errorf("%w: no access token", ErrCorrupt) // only a bookkeeping record has none
	}
	tok := &oauth2.Token{AccessToken: e.AccessToken, TokenType: e.TokenType, RefreshToken: e.RefreshToken, ExpiresIn: e.ExpiresIn}
	if e.Expiry != nil {
		if y := e.Expiry.UTC().Year(); y < 1970 || y > 9999 {
			return nil, fmt.Errorf("%w: expiry year %d out of range", ErrCorrupt, y)
		}
		tok.Expiry = *e.Expiry
	}
	if len(e.Extra) > 0 {
		tok = tok.WithExtra(e.Extra)
	}
	if e.Generation > 0 || e.Obtained > 0 || e.Spent > 0 || e.Dead > 0 {
		tok = WithMeta(tok, Meta{Generation: min(e.Generation, 1<<62), Obtained: millis(e.Obtained), Spent: millis(e.Spent),
			Dead: millis(e.Dead), Refusal: e.Refusal})
	}
	return tok, nil
}
