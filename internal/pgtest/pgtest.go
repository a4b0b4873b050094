//go:build unix

// Package pgtest starts a throwaway PostgreSQL cluster on loopback for
// tests, examples and benchmarks, the way redistest starts redis-server. It
// needs Debian's postgresql package (initdb and pg_ctl) and no Go driver:
// callers open Server.DSN with the driver of their choice.
//
// PostgreSQL refuses to run as root: as root, the cluster runs as the
// "postgres" user the Debian package creates.
package pgtest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
)

// ErrNotInstalled is returned by [Run] when initdb and pg_ctl cannot be found.
var ErrNotInstalled = errors.New("PostgreSQL's initdb and pg_ctl not found: install Debian's postgresql package (apt-get install postgresql)")

// Server is a running PostgreSQL cluster listening on 127.0.0.1 only, with
// trust authentication for the "postgres" role.
type Server struct {
	Port int
	bin  string // directory of initdb and pg_ctl
	dir  string // holds data/ and the log
	cred *syscall.Credential
}

// Run creates a cluster in a temporary directory and starts it.
func Run() (*Server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if s.cred, err = credential(); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "pgtest"); err != nil {
		return nil, err
	}
	if err := s.create(); err != nil {
		s.Stop()
		return nil, err
	}
	for range 3 { // the free port may be taken before postgres binds it
		if s.Port, err = freePort(); err == nil {
			if err = s.Start(); err == nil {
				return s, nil
			}
		}
	}
	s.Stop()
	return nil, err
}

// DSN is the connection URL of the server's "postgres" database.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
}

// Start starts a stopped server on the same port and data, and waits until
// it accepts connections.
func (s *Server) Start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=off -c max_connections=200", s.Port, s.dir)
	return s.run("pg_ctl", "start", "-w", "-t", "30", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-o", opts)
}

// Kill stops the server at once, as a crash would (pg_ctl's immediate
// mode); its data stays, and Start brings it back.
func (s *Server) Kill() error {
	return s.run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", s.data())
}

// Stop stops the server and removes its directory.
func (s *Server) Stop() {
	_ = s.Kill()
	_ = os.RemoveAll(s.dir)
}

// Start runs a cluster that stops when t ends. Without PostgreSQL
// installed the test is skipped, naming the Debian package, except under
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

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// create runs initdb in a directory the cluster's user owns.
func (s *Server) create() error {
	if err := os.Chmod(s.dir, 0o755); err != nil {
		return err
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return err
		}
	}
	return s.run("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
}

// run runs one of PostgreSQL's programs as the cluster's user.
func (s *Server) run(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("%s %v: %w\n%s\n%s", name, args[0], err, out, log)
	}
	return nil
}

// binDir finds initdb and pg_ctl: on PATH, else in Debian's versioned
// directory (the package does not put them on PATH).
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	return "", ErrNotInstalled
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// credential is who runs the cluster: ourselves, or as root the
// "postgres" user.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, and there is no postgres user to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
