//go:build !unix

package store

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"
)

// tryLock creates path exclusively. A lock file older than ttl belongs to
// a holder that died and is taken over.
func tryLock(path string, ttl time.Duration) (func(), error) {
	f, err := openNoFollow(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if st, serr := os.Stat(path); serr == nil && time.Since(st.ModTime()) > ttl {
			_ = os.Remove(path)
		}
		return nil, errLocked
	}
	if err != nil {
		return nil, err
	}
	stamp := strconv.FormatInt(time.Now().UnixNano(), 10)
	_, _ = f.WriteString(stamp)
	f.Close()
	return sync.OnceFunc(func() {
		// Remove the file only if it is still ours.
		if b, err := os.ReadFile(path); err == nil && string(b) == stamp {
			_ = os.Remove(path)
		}
	}), nil
}

func isSyncUnsupported(err error) bool { return err != nil }

// openNoFollow opens path, refusing a symbolic link.
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil, symlinkError(path)
	}
	return os.OpenFile(path, flag, perm)
}

func ownedByMe(os.FileInfo) bool { return true }

// dirModesMatter: elsewhere permission bits do not say who may write.
const dirModesMatter = false
