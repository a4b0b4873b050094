// Package redistest starts a real redis-server for tests, on a unix socket
// in a temporary directory.
package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a running redis-server.
type Server struct {
	Socket string // the unix socket path
	cmd    *exec.Cmd
}

// Start starts a redis-server that stops when t ends. Without
// redis-server on PATH the test is skipped, naming the Debian package,
// except under CI=true, where that is a failure.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found on PATH: install Debian's redis-server package (apt-get install redis-server)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "redis")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "redis.sock")
	cmd := exec.Command(bin, "--port", "0", "--unixsocket", sock, "--unixsocketperm", "700",
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Socket: sock, cmd: cmd}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = os.RemoveAll(dir)
	})
	c := s.Client(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// Addr is the address for REDIS_ADDR-style configuration: "unix:" + socket.
func (s *Server) Addr() string { return "unix:" + s.Socket }

// Client returns a client of the server, closed when t ends.
func (s *Server) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(Options(s.Addr()))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Options returns client options for addr: "unix:/path/to/sock",
// "host:port" or a redis:// URL.
func Options(addr string) *redis.Options {
	if len(addr) > 5 && addr[:5] == "unix:" {
		return &redis.Options{Network: "unix", Addr: addr[5:]}
	}
	if o, err := redis.ParseURL(addr); err == nil {
		return o
	}
	return &redis.Options{Addr: addr}
}

// String names the server for messages.
func (s *Server) String() string { return fmt.Sprintf("redis-server on %s", s.Socket) }
