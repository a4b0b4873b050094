package store_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/oauthtransport/oauthtransport/store"
	"github.com/oauthtransport/oauthtransport/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMemory() })
}

func TestFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return store.NewFile(filepath.Join(t.TempDir(), "tokens")) })
}

func TestEncrypted(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	storetest.Run(t, func(*testing.T) store.Store { return store.Encrypted(store.NewMemory(), key) })
	storetest.Run(t, func(t *testing.T) store.Store { return store.Encrypted(store.NewFile(t.TempDir()), key) })
}

func TestFileLayout(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tokens")
	s := store.NewFile(dir)
	if err := s.Save(ctx, "../../escape", &oauth2.Token{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("dir holds %d entries, want 1 (no temp files left)", len(entries))
	}
	info, _ := entries[0].Info()
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode = %v, want 0600", info.Mode().Perm())
	}
	if parent, _ := os.ReadDir(filepath.Dir(dir)); len(parent) != 1 {
		t.Error("a key escaped the directory")
	}
}

func TestFileCorrupt(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := store.NewFile(dir)
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	path := filepath.Join(dir, entries[0].Name())
	for name, data := range map[string]string{
		"garbage":         "\x00\x01not json",
		"truncated":       `{"version":1,"access_tok`,
		"unknown version": `{"version":99,"access_token":"a"}`,
		"empty":           ``,
		"no token":        `{"version":1}`,
	} {
		if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(ctx, "k")
		if !errors.Is(err, store.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// A save replaces the damaged file.
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "b"}); err != nil {
		t.Fatal(err)
	}
	if tok, err := s.Load(ctx, "k"); err != nil || tok.AccessToken != "b" {
		t.Fatalf("Load after overwrite: err = %v", err)
	}
}

func TestEncryptedWrongKey(t *testing.T) {
	ctx := context.Background()
	inner := store.NewMemory()
	a := store.Encrypted(inner, bytes.Repeat([]byte{1}, 32))
	b := store.Encrypted(inner, bytes.Repeat([]byte{2}, 32))
	if err := a.Save(ctx, "k", &oauth2.Token{AccessToken: "secret-access", RefreshToken: "secret-refresh"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := inner.Load(ctx, "k")
	if bytes.Contains([]byte(raw.AccessToken+raw.RefreshToken), []byte("secret")) {
		t.Fatal("the inner store holds the token in the clear")
	}
	_, err := b.Load(ctx, "k")
	if !errors.Is(err, store.ErrDecrypt) || !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("wrong key: err = %v, want ErrDecrypt and ErrCorrupt", err)
	}
	// A record moved to another key does not decrypt either.
	_ = inner.Save(ctx, "other", raw)
	if _, err := a.Load(ctx, "other"); !errors.Is(err, store.ErrDecrypt) {
		t.Fatalf("moved record: err = %v, want ErrDecrypt", err)
	}
	bad := store.Encrypted(inner, []byte("short"))
	if err := bad.Save(ctx, "k", &oauth2.Token{AccessToken: "x"}); err == nil || bytes.Contains([]byte(err.Error()), []byte("short")) {
		t.Fatalf("short key: err = %v, want an error that does not quote the key", err)
	}
}

func FuzzUnmarshalToken(f *testing.F) {
	f.Add([]byte(`{"version":1,"access_token":"a","expiry":"2030-01-01T00:00:00Z","extra":{"scope":"x"}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := store.UnmarshalToken(data)
		if err != nil {
			if !errors.Is(err, store.ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		again, err := store.MarshalToken(tok)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.UnmarshalToken(again); err != nil {
			t.Fatalf("re-encoded token does not decode: %v", err)
		}
	})
}

func TestRecordsWithoutMetaStillLoad(t *testing.T) {
	// A record as written before generations existed.
	old := []byte(`{"version":1,"access_token":"a","token_type":"Bearer","refresh_token":"r","expiry":"2031-01-02T03:04:05Z","expires_in":3600,"extra":{"scope":"read"}}`)
	tok, err := store.UnmarshalToken(old)
	if err != nil {
		t.Fatal(err)
	}
	if m := store.MetaOf(tok); m.Generation != 0 || !m.Obtained.IsZero() || !m.Spent.IsZero() {
		t.Errorf("meta = %+v, want none", m)
	}
	if tok.RefreshToken != "r" || tok.Extra("scope") != "read" {
		t.Error("the old record lost a field")
	}
	data, err := store.MarshalToken(store.WithMeta(tok, store.Meta{Generation: 2}))
	if err != nil {
		t.Fatal(err)
	}
	again, err := store.UnmarshalToken(data)
	if err != nil || store.MetaOf(again).Generation != 2 || again.Extra("scope") != "read" {
		t.Errorf("re-encoded with a generation: %v, %+v", err, store.MetaOf(again))
	}
}

func TestFileRefusesSymlinks(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tokens")
	s := store.NewFile(dir)
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "real"}); err != nil {
		t.Fatal(err)
	}
	// A planted token: the token file replaced by a link to another file.
	planted := filepath.Join(t.TempDir(), "planted")
	other := store.NewFile(filepath.Dir(planted))
	if err := other.Save(ctx, "x", &oauth2.Token{AccessToken: "planted"}); err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "token-*"))
	plantedFiles, _ := filepath.Glob(filepath.Join(filepath.Dir(planted), "token-*"))
	if len(entries) != 1 || len(plantedFiles) != 1 {
		t.Fatalf("token files: %v, %v", entries, plantedFiles)
	}
	if err := os.Remove(entries[0]); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(plantedFiles[0], entries[0]); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Load(ctx, "k")
	if err == nil || tok != nil {
		t.Fatal("a token file that is a symbolic link was followed")
	}
	if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error = %v, want one naming the symbolic link", err)
	}

	// A lock file that is a link: its target is never created.
	target := filepath.Join(t.TempDir(), "created-by-mistake")
	lock := strings.Replace(entries[0], "token-", "lock-", 1)
	if err := os.Symlink(target, lock); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock(ctx, "k", time.Second); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Lock through a link: err = %v", err)
	}
	if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
		t.Error("the lock link's target was created")
	}
}

func TestFileDirectoryOthersCanWrite(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tokens")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := store.NewFile(dir)
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "a"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("our own directory: mode %v, want it tightened to 0700", st.Mode().Perm())
	}
	if os.Geteuid() != 0 {
		t.Skip("giving the directory to another user needs root")
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Skip("chown:", err)
	}
	if _, err := s.Load(ctx, "k"); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("Load from another user's world-writable directory: err = %v", err)
	}
	if err := s.Save(ctx, "k", &oauth2.Token{AccessToken: "b"}); err == nil {
		t.Error("Save into another user's world-writable directory succeeded")
	}
}

func TestEncryptedWithABadKeyTellsAtOnce(t *testing.T) {
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{1}, 16)} {
		s := store.Encrypted(store.NewMemory(), key)
		c, ok := s.(store.Checker)
		if !ok || c.Check() == nil || !strings.Contains(c.Check().Error(), "32-byte") {
			t.Errorf("key of %d bytes: Check does not report it", len(key))
		}
	}
	if c := store.Encrypted(store.NewMemory(), bytes.Repeat([]byte{1}, 32)).(store.Checker); c.Check() != nil {
		t.Errorf("a good key: %v", c.Check())
	}
}
