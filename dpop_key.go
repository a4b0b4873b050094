package oauthtransport

// A DPoP key that survives a restart: kept in the store beside the tokens
// it binds, so that a restarted process still holds the key its
// DPoP-bound refresh token needs.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
)

// dpopKeyType marks a store record that holds a DPoP private key, as a
// JWK in its AccessToken.
const dpopKeyType = "oauthtransport-dpop-key"

// DPoPKeyFromStore returns the DPoP private key kept in s for the
// Transport whose [WithStore] key is key, generating an ECDSA P-256 key
// and saving it there the first time. Pass the result to [WithDPoP] and s
// to WithStore: a restarted process then finds both its key and the
// tokens bound to it, and goes on refreshing its DPoP-bound refresh token.
// The key is saved as a private JWK under key and "#dpop-key"; wrap s in
// [store.Encrypted] to encrypt it at rest, as the tokens.
//
// When s is a [store.Locker], the first key is made under its lock, so
// that processes starting together share one. Otherwise each process
// uses the key it reads back after saving its own, and two processes
// starting at the same moment may hold different keys (each then keeps
// tokens of its own; neither adopts the other's). A record that is not a
// DPoP key (corrupt, or encrypted with another key) is an error, never
// overwritten: it may be the only key a refresh token works with. Errors
// name the store key, never the key's private part.
func DPoPKeyFromStore(ctx context.Context, s store.Store, key string) (crypto.Signer, error) {
	if s == nil || key == "" {
		return nil, errors.New("oauthtransport: DPoPKeyFromStore: a store and a key are needed")
	}
	if c, ok := s.(store.Checker); ok {
		if err := c.Check(); err != nil {
			return nil, fmt.Errorf("oauthtransport: DPoPKeyFromStore: %w", err)
		}
	}
	k := dpopKeyStoreKey(key)
	signer, err := loadDPoPKey(ctx, s, k)
	if !errors.Is(err, store.ErrNotFound) {
		return signer, err
	}
	if l, ok := s.(store.Locker); ok {
		unlock, err := l.Lock(ctx, k, 30*time.Second)
		if err != nil {
			return nil, fmt.Errorf("oauthtransport: locking the DPoP key %q: %w", k, err)
		}
		defer unlock()
		if signer, err := loadDPoPKey(ctx, s, k); !errors.Is(err, store.ErrNotFound) {
			return signer, err // another process made it meanwhile
		}
	}
	if err := saveNewDPoPKey(ctx, s, k); err != nil {
		return nil, err
	}
	return loadDPoPKey(ctx, s, k) // what is stored, should another process have saved since
}

// loadDPoPKey reads the key saved under k; an error matching
// store.ErrNotFound when there is none.
func loadDPoPKey(ctx context.Context, s store.Store, k string) (crypto.Signer, error) {
	tok, err := s.Load(ctx, k)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("oauthtransport: loading the DPoP key %q: %w", k, err)
	}
	var jwk jose.JSONWebKey
	if tok.TokenType != dpopKeyType || json.Unmarshal([]byte(tok.AccessToken), &jwk) != nil || jwk.IsPublic() || !jwk.Valid() {
		return nil, fmt.Errorf("oauthtransport: loading the DPoP key %q: %w: the record is not a private JWK (left as it is)", k, store.ErrCorrupt)
	}
	signer, ok := jwk.Key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("oauthtransport: loading the DPoP key %q: a %T cannot sign", k, jwk.Key)
	}
	return signer, nil
}

// saveNewDPoPKey generates an ECDSA P-256 key and saves it under k.
func saveNewDPoPKey(ctx context.Context, s store.Store, k string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("oauthtransport: generating a DPoP key: %w", err)
	}
	data, err := json.Marshal(jose.JSONWebKey{Key: key, Algorithm: "ES256", Use: "sig"})
	if err != nil {
		return fmt.Errorf("oauthtransport: encoding the DPoP key: %w", err)
	}
	if err := s.Save(ctx, k, &oauth2.Token{AccessToken: string(data), TokenType: dpopKeyType}); err != nil {
		return fmt.Errorf("oauthtransport: saving the DPoP key %q: %w", k, err)
	}
	return nil
}
