package oauthtransport

// An assertion kept in a file by the platform: a Kubernetes projected
// service-account token, which the kubelet rewrites before it expires.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// fileRecheck is how long a file's assertion is used before the file is
// read again, even if it looks unchanged.
const fileRecheck = 5 * time.Minute

// maxAssertionBytes bounds an assertion read from a file or a command.
const maxAssertionBytes = 64 << 10

// AssertionFromFile returns an [AssertionFunc] that reads the assertion
// from the file at path (surrounding white space trimmed): a Kubernetes
// projected service-account token, a token a sidecar keeps fresh. The
// file is read again when it changes (its size, modification time or
// identity, as when it is replaced by a rename, as the kubelet does),
// every 5 minutes, and once its assertion enters the last quarter of its
// life (from its iat claim, or when it was read, to its exp claim; at
// least 30 s before exp); an assertion without exp is read again for
// every call. Otherwise the assertion read last is returned without
// reading the file.
//
// When the file cannot be read (it vanished, it is empty or larger than
// 64 KiB) or holds an assertion already expired, the last good assertion
// is returned until 30 s before its exp; after that, the error is an
// [*AssertionError] naming the path, never the assertion. It is safe for
// concurrent use.
func AssertionFromFile(path string) AssertionFunc {
	f := &fileAssertion{path: path}
	return f.assertion
}

type fileAssertion struct {
	path string
	last lastAssertion
	mu   sync.Mutex
	seen os.FileInfo // the file as it was when last read
}

func (f *fileAssertion) assertion(ctx context.Context) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	info, statErr := os.Stat(f.path)
	if a, ok := f.last.fresh(); ok && statErr == nil && f.unchanged(info) && time.Since(f.last.readAt()) < fileRecheck {
		return a, nil
	}
	a, err := readAssertionFile(f.path)
	if err == nil && statErr == nil {
		f.mu.Lock()
		f.seen = info // as it was before the read: a change during it is seen next time
		f.mu.Unlock()
	}
	return f.last.keep(fmt.Sprintf("file %q", f.path), a, err)
}

// unchanged reports whether the file is the one read last, as it was.
func (f *fileAssertion) unchanged(info os.FileInfo) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.seen != nil && os.SameFile(f.seen, info) && f.seen.Size() == info.Size() && f.seen.ModTime().Equal(info.ModTime())
}

// readAssertionFile reads an assertion of at most maxAssertionBytes.
func readAssertionFile(path string) (string, error) {
	file, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer file.Close()
	b, err := io.ReadAll(io.LimitReader(file, maxAssertionBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxAssertionBytes {
		return "", fmt.Errorf("the file exceeds %d bytes", maxAssertionBytes)
	}
	a := strings.TrimSpace(string(b))
	if a == "" {
		return "", errors.New("the file is empty")
	}
	return a, nil
}
