//go:build unix

package store

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
)

// tryLock takes an exclusive flock on path without waiting. The kernel
// releases it when the holder exits, so ttl is not needed.
func tryLock(path string, _ time.Duration) (func(), error) {
	f, err := openNoFollow(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, err
	}
	return sync.OnceFunc(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}), nil
}

func isSyncUnsupported(error) bool { return false }

// openNoFollow opens path, refusing a symbolic link (O_NOFOLLOW).
func openNoFollow(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|syscall.O_NOFOLLOW, perm)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EMLINK) {
		return nil, symlinkError(path)
	}
	return f, err
}

// ownedByMe reports whether this process's user owns fi.
func ownedByMe(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid()
}

// dirModesMatter: Unix permission bits say who may write the directory.
const dirModesMatter = true
