package store

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"
)

// File is a [Store] that keeps each key's token in its own file in a
// directory, and a [Locker] across the processes that share the directory.
//
// The directory is created with mode 0700 on first use, the files with
// 0600. A key is encoded into the file name so that no key can name a file
// outside the directory. Saves replace the file atomically (a temporary
// file in the same directory, fsync, rename, fsync of the directory), so a
// reader sees the old token or the new one, never a mix. A damaged file is
// an error matching [ErrCorrupt] from Load.
//
// On Unix the lock is flock(2) on a lock file beside the token, released by
// the kernel if the holder dies; elsewhere it is a lock file created
// exclusively, taken over once older than the lock's ttl.
//
// A token or lock file that is a symbolic link is refused, never followed
// (a planted link could hand the Transport another token, or make it
// create a file elsewhere). On Unix a directory that group or others may
// write to is tightened to 0700 when this process's user owns it, and
// refused otherwise: someone else could plant a token in it.
type File struct {
	dir string
}

// NewFile returns a store keeping its tokens in dir. It does no I/O.
func NewFile(dir string) *File { return &File{dir: dir} }

// maxPlainKey is the longest key encoded as is in a file name; longer keys
// are hashed.
const maxPlainKey = 96

func (f *File) path(key, kind string) (string, error) {
	if key == "" {
		return "", errors.New("store: empty key")
	}
	name := base64.RawURLEncoding.EncodeToString([]byte(key))
	if len(key) > maxPlainKey {
		sum := sha256.Sum256([]byte(key))
		name = "h-" + hex.EncodeToString(sum[:])
	}
	return filepath.Join(f.dir, kind+"-"+name), nil
}

// Load reads the token saved under key.
func (f *File) Load(_ context.Context, key string) (*oauth2.Token, error) {
	p, err := f.path(key, "token")
	if err != nil {
		return nil, err
	}
	data, err := f.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: loading key %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: loading key %q: %w", key, err)
	}
	tok, err := UnmarshalToken(data)
	if err != nil {
		return nil, fmt.Errorf("store: loading key %q from %s: %w", key, p, err)
	}
	return tok, nil
}

// Save replaces the token saved under key, atomically.
func (f *File) Save(_ context.Context, key string, tok *oauth2.Token) error {
	p, err := f.path(key, "token")
	if err != nil {
		return err
	}
	data, err := MarshalToken(tok)
	if err != nil {
		return fmt.Errorf("store: saving key %q: %w", key, err)
	}
	if err := f.writeAtomic(p, data); err != nil {
		return fmt.Errorf("store: saving key %q: %w", key, err)
	}
	return nil
}

// read reads a token file, refusing a symbolic link and a directory
// others may write to.
func (f *File) read(path string) ([]byte, error) {
	if err := f.checkDir(false); err != nil {
		return nil, err
	}
	file, err := openNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	return io.ReadAll(io.LimitReader(file, 1<<20))
}

// checkDir creates the directory (with create) and refuses it, or
// tightens it to 0700 if it is ours, when group or others may write to it.
func (f *File) checkDir(create bool) error {
	if create {
		if err := os.MkdirAll(f.dir, 0o700); err != nil {
			return err
		}
	}
	fi, err := os.Stat(f.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		return nil // Load finds nothing
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("store: %s is not a directory", f.dir)
	case !dirModesMatter || fi.Mode().Perm()&0o022 == 0:
		return nil
	case !ownedByMe(fi):
		return fmt.Errorf("store: directory %s (mode %v) is writable by others and owned by another user; refusing to keep tokens in it", f.dir, fi.Mode().Perm())
	}
	return os.Chmod(f.dir, 0o700)
}

// symlinkError is the error for a token or lock file that is a link.
func symlinkError(path string) error {
	return fmt.Errorf("store: %s is a symbolic link; refusing to follow it", path)
}

func (f *File) writeAtomic(path string, data []byte) error {
	if err := f.checkDir(true); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(f.dir, ".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(f.dir)
}

// syncDir makes a rename in dir durable. Where directories cannot be
// synced (Windows), it does nothing.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) && !isSyncUnsupported(err) {
		return err
	}
	return nil
}

// Delete removes the token saved under key.
func (f *File) Delete(_ context.Context, key string) error {
	p, err := f.path(key, "token")
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("store: deleting key %q: %w", key, err)
	}
	return nil
}

// Lock takes the lock on key, waiting until it is free or ctx is done.
func (f *File) Lock(ctx context.Context, key string, ttl time.Duration) (func(), error) {
	p, err := f.path(key, "lock")
	if err != nil {
		return nil, err
	}
	if err := f.checkDir(true); err != nil {
		return nil, fmt.Errorf("store: locking key %q: %w", key, err)
	}
	wait := 5 * time.Millisecond
	for {
		unlock, err := tryLock(p, ttl)
		if err == nil {
			return unlock, nil
		}
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("store: locking key %q: %w", key, err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("store: locking key %q: %w", key, context.Cause(ctx))
		case <-timer.C:
		}
		wait = min(wait*2, 100*time.Millisecond)
	}
}

var errLocked = errors.New("locked")
