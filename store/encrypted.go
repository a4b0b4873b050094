package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// ErrDecrypt is matched by the error of a Load through [Encrypted] whose
// stored data does not decrypt: a wrong key, or data that was altered. It
// also matches [ErrCorrupt], so a Transport replaces the token.
var ErrDecrypt = errors.New("store: stored token does not decrypt (wrong key or altered data)")

const (
	encryptedType   = "oauthtransport-aes256gcm"
	encryptedPrefix = "v1."
)

// Encrypted returns a Store that encrypts tokens with AES-256-GCM before
// handing them to inner, for tokens at rest in shared places (a file
// system, Redis). key must be 32 bytes; with any other length every
// operation fails with a clear error, and so does oauthtransport.New (see
// [Checker]). The key's name is authenticated with
// the ciphertext, so a record copied to another key does not decrypt.
//
// inner keeps only the expiry in the clear (so that stores can expire dead
// tokens); everything else, the refresh token included, is encrypted. A
// wrong key is an error matching [ErrDecrypt], never garbage handed to a
// server. If inner is a [Locker], so is the returned Store.
func Encrypted(inner Store, key []byte) Store {
	e := &encrypted{inner: inner}
	if len(key) != 32 {
		e.err = fmt.Errorf("store: Encrypted needs a 32-byte AES-256 key, got %d bytes", len(key))
	} else if block, err := aes.NewCipher(key); err != nil {
		e.err = fmt.Errorf("store: Encrypted: %w", err)
	} else if e.aead, err = cipher.NewGCM(block); err != nil {
		e.err = fmt.Errorf("store: Encrypted: %w", err)
	}
	if l, ok := inner.(Locker); ok {
		return &encryptedLocker{encrypted: e, locker: l}
	}
	return e
}

type encrypted struct {
	inner Store
	aead  cipher.AEAD
	err   error // a bad key
}

type encryptedLocker struct {
	*encrypted
	locker Locker
}

func (e *encryptedLocker) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	return e.locker.Lock(ctx, key, ttl)
}

// Check reports a key that is not 32 bytes long.
func (e *encrypted) Check() error { return e.err }

func (e *encrypted) Load(ctx context.Context, key string) (*oauth2.Token, error) {
	if e.err != nil {
		return nil, e.err
	}
	sealed, err := e.inner.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	bad := func(why string) error {
		return fmt.Errorf("store: loading key %q: %w (%s)", key, errors.Join(ErrDecrypt, ErrCorrupt), why)
	}
	rest, ok := strings.CutPrefix(sealed.AccessToken, encryptedPrefix)
	if !ok || sealed.TokenType != encryptedType {
		return nil, bad("not an encrypted record")
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(raw) < e.aead.NonceSize() {
		return nil, bad("malformed ciphertext")
	}
	nonce, ct := raw[:e.aead.NonceSize()], raw[e.aead.NonceSize():]
	plain, err := e.aead.Open(nil, nonce, ct, []byte(key))
	if err != nil {
		return nil, bad("authentication failed")
	}
	tok, err := UnmarshalToken(plain)
	if err != nil {
		return nil, fmt.Errorf("store: loading key %q: %w", key, err)
	}
	return tok, nil
}

func (e *encrypted) Save(ctx context.Context, key string, tok *oauth2.Token) error {
	if e.err != nil {
		return e.err
	}
	plain, err := MarshalToken(tok)
	if err != nil {
		return fmt.Errorf("store: saving key %q: %w", key, err)
	}
	nonce := make([]byte, e.aead.NonceSize(), e.aead.NonceSize()+len(plain)+e.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return fmt.Errorf("store: saving key %q: %w", key, err)
	}
	sealed := e.aead.Seal(nonce, nonce, plain, []byte(key))
	return e.inner.Save(ctx, key, &oauth2.Token{
		AccessToken: encryptedPrefix + base64.RawURLEncoding.EncodeToString(sealed),
		TokenType:   encryptedType,
		Expiry:      tok.Expiry,
		// The refresh token's presence, not its value, tells a store such
		// as Redis not to expire the record with the access token.
		RefreshToken: refreshMarker(tok),
	})
}

func refreshMarker(tok *oauth2.Token) string {
	if tok.RefreshToken != "" {
		return "encrypted"
	}
	return ""
}

func (e *encrypted) Delete(ctx context.Context, key string) error {
	if e.err != nil {
		return e.err
	}
	return e.inner.Delete(ctx, key)
}
