// Package redistest starts real redis-server processes for tests: on a free
// loopback port, in a temporary folder, stopped when the test ends. A test
// that needs Redis never skips: when redis-server is missing it fails and
// says how to install it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// startTimeout bounds how long a server may take to accept connections.
const startTimeout = 10 * time.Second

// Server is a redis-server process started for a test.
type Server struct {
	// Port is the port it listens on (its TLS port when started with TLS).
	Port int
	// Dir is its working folder.
	Dir string

	args []string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of redis-server, or an error that says how to
// install it.
func Binary() (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server"} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("redis-server not found: run `make test`, which installs Debian's redis-server package, or `apt-get install redis-server`")
}

// Start starts a redis-server on a free port with the extra configuration
// args (as on its command line, such as "--requirepass", "secret") and stops
// it when tb ends. Use "--port 0 --tls-port {port}" style args through
// [StartTLS]; here the plain port is set for you.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	s, err := start(tb.TempDir(), false, args...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// StartTLS is Start for a server that speaks only TLS on its port, with
// the given certificate, key and CA files.
func StartTLS(tb testing.TB, certFile, keyFile, caFile string, args ...string) *Server {
	tb.Helper()
	tlsArgs := append([]string{
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
	}, args...)
	s, err := start(tb.TempDir(), true, tlsArgs...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

func start(dir string, useTLS bool, args ...string) (*Server, error) {
	var err error
	for range 3 { // a port found free may be taken before redis-server binds it
		var s *Server
		if s, err = startOnce(dir, useTLS, args...); err == nil || !errors.Is(err, errExited) || !strings.Contains(err.Error(), "in use") {
			return s, err
		}
	}
	return nil, err
}

func startOnce(dir string, useTLS bool, args ...string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	portArgs := []string{"--port", strconv.Itoa(port)}
	if useTLS {
		portArgs = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
	}
	base := []string{
		"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"),
	}
	s := &Server{Port: port, Dir: dir, args: append(append(base, portArgs...), args...)}
	if err := s.launch(); err != nil {
		return nil, err
	}
	return s, nil
}

// errExited is a server that exited while starting, such as when another
// process took its port between freePort and the bind.
var errExited = errors.New("redis-server exited at start")

func (s *Server) launch() error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	// Ready when its own log says so: a connection that succeeds could
	// reach another process that took the port.
	logFile := filepath.Join(s.Dir, "redis.log")
	offset := int64(0)
	if fi, err := os.Stat(logFile); err == nil {
		offset = fi.Size() // a restart appends to the log
	}
	deadline := time.Now().Add(startTimeout)
	for {
		if log, err := os.ReadFile(logFile); err == nil && int64(len(log)) > offset &&
			strings.Contains(string(log[offset:]), "Ready to accept connections") {
			break
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logFile)
			return fmt.Errorf("%w:\n%s", errExited, log)
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return fmt.Errorf("redis-server did not listen on %s within %v", s.Addr(), startTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// URL is the server's redis:// URL.
func (s *Server) URL() string { return "redis://" + s.Addr() }

// Stop terminates the server and waits for it to exit. Stopping a stopped
// server does nothing.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart stops the server if it runs and starts it again on the same
// port, empty.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.Relaunch(); err != nil {
		tb.Fatal(err)
	}
}

// Relaunch is Restart for use outside the test's goroutine: it returns the
// error instead of failing the test.
func (s *Server) Relaunch() error {
	s.Stop()
	return s.launch()
}

// Do runs one admin command on a fresh connection, with the given dial
// options (a password, TLS), and fails tb on error.
func (s *Server) Do(tb testing.TB, opts []redis.DialOption, cmd string, args ...any) any {
	tb.Helper()
	opts = append([]redis.DialOption{redis.DialConnectTimeout(2 * time.Second),
		redis.DialReadTimeout(5 * time.Second), redis.DialWriteTimeout(5 * time.Second)}, opts...)
	c, err := redis.DialContext(context.Background(), "tcp", s.Addr(), opts...)
	if err != nil {
		tb.Fatalf("redistest: dial %s: %v", s.Addr(), err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		tb.Fatalf("redistest: %s: %v", cmd, err)
	}
	return reply
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var shared struct {
	once sync.Once
	srv  *Server
	url  string
	err  error
}

// SharedURL returns the URL of a Redis for tests that only need a working
// server: $REDIS_URL when set, otherwise one redis-server started for the
// whole test binary and stopped by [Main]. Tests sharing it must use keys of
// their own (a unique tenant id), never FLUSHDB.
func SharedURL(tb testing.TB) string {
	tb.Helper()
	shared.once.Do(func() {
		if u := os.Getenv("REDIS_URL"); u != "" {
			shared.url = u
			return
		}
		dir, err := os.MkdirTemp("", "redistest-")
		if err != nil {
			shared.err = err
			return
		}
		shared.srv, shared.err = start(dir, false)
		if shared.err == nil {
			shared.url = shared.srv.URL()
		}
	})
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.url
}

// Main runs the tests and stops the shared server afterwards. Call it from
// TestMain: os.Exit(redistest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.Stop()
		_ = os.RemoveAll(shared.srv.Dir)
	}
	return code
}
