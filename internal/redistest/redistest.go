// Package redistest starts a real redis-server on a unix socket in a
// temporary directory, for tests, examples and benchmarks.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotInstalled is returned by [Run] when redis-server is not on PATH.
var ErrNotInstalled = errors.New("redis-server not found on PATH: install Debian's redis-server package (apt-get install redis-server)")

// Server is a running redis-server.
type Server struct {
	Socket string // the unix socket path
	cmd    *exec.Cmd
	dir    string
}

// Run starts a redis-server and waits until it answers. Stop it when done.
func Run() (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{Socket: sock, cmd: cmd, dir: dir}
	c := redis.NewClient(s.Options())
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	_ = os.RemoveAll(s.dir)
}

// Start runs a redis-server that stops when t ends. Without redis-server
// on PATH the test is skipped, naming the Debian package, except under
// CI=true, where that is a failure.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := Run()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") != "true" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Addr is the address for REDIS_ADDR-style configuration: "unix:" + socket.
func (s *Server) Addr() string { return "unix:" + s.Socket }

// Options returns client options for the server.
func (s *Server) Options() *redis.Options { return Options(s.Addr()) }

// Client returns a client of the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Options returns client options for addr: "unix:/path/to/sock",
// "host:port" or a redis:// URL.
func Options(addr string) *redis.Options {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return &redis.Options{Network: "unix", Addr: path}
	}
	if o, err := redis.ParseURL(addr); err == nil {
		return o
	}
	return &redis.Options{Addr: addr}
}
