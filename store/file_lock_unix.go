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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
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
