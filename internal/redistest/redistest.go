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

// Server is a running redis-server. It keeps its data in memory only;
// SAVE (or client.Save) writes a snapshot to DumpPath, which a restart
// loads.
type Server struct {
	Socket string // the unix socket path
	bin    string
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
	s := &Server{Socket: filepath.Join(dir, "redis.sock"), bin: bin, dir: dir}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return s, nil
}

// start runs redis-server on s's socket and directory, and waits until it
// answers.
func (s *Server) start() error {
	s.cmd = exec.Command(s.bin, "--port", "0", "--unixsocket", s.Socket, "--unixsocketperm", "700",
		"--dir", s.dir, "--dbfilename", "dump.rdb", "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning")
	if err := s.cmd.Start(); err != nil {
		return err
	}
	c := redis.NewClient(s.Options())
	defer c.Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server did not start: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// DumpPath is where SAVE writes the snapshot that a restart loads.
func (s *Server) DumpPath() string { return filepath.Join(s.dir, "dump.rdb") }

// Kill kills the server as a crash would, keeping its directory.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// Restart kills the server and starts it again on the same socket; it
// comes back with what DumpPath holds.
func (s *Server) Restart() error {
	s.Kill()
	return s.start()
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	s.Kill()
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
