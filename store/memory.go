package store

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/oauth2"
)

// Memory is a [Store] that keeps tokens in the process's memory. It is safe
// for concurrent use and is what a Transport uses when no store is given.
// Tokens are copied on Save and on Load.
type Memory struct {
	mu     sync.RWMutex
	tokens map[string]*oauth2.Token
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{tokens: make(map[string]*oauth2.Token)}
}

// Load returns a copy of the token saved under key, or an error matching
// [ErrNotFound].
func (m *Memory) Load(_ context.Context, key string) (*oauth2.Token, error) {
	m.mu.RLock()
	tok, ok := m.tokens[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("store: loading key %q: %w", key, ErrNotFound)
	}
	return Clone(tok), nil
}

// Save stores a copy of tok under key.
func (m *Memory) Save(_ context.Context, key string, tok *oauth2.Token) error {
	if tok == nil {
		return fmt.Errorf("store: saving key %q: nil token", key)
	}
	m.mu.Lock()
	m.tokens[key] = Clone(tok)
	m.mu.Unlock()
	return nil
}

// Delete removes the token saved under key.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	delete(m.tokens, key)
	m.mu.Unlock()
	return nil
}
