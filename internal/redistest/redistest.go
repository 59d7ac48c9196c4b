// Package redistest starts real redis-server processes for tests: on a free
// loopback port, in a temporary folder, stopped when the test ends. A test
// that needs Redis never skips: when redis-server is missing it fails and
// says how to install it.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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

// The log lines that say a process accepts connections. A sentinel never
// logs serverReady; it logs its ID at every start, once it listens.
const (
	serverReady   = "Ready to accept connections"
	sentinelReady = "Sentinel ID is"
)

// Server is a redis-server process started for a test.
type Server struct {
	// Port is the port it listens on (its TLS port when started with TLS).
	Port int
	// Dir is its working folder.
	Dir string

	args  []string
	bus   int                // the cluster bus port of a cluster node, else 0
	ready string             // the log line that says it accepts connections
	dial  []redis.DialOption // how to reach it, when known: a sentinel's or a cluster node's credentials and TLS
	mu    sync.Mutex
	cmd   *exec.Cmd
	done  chan struct{}
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
	s, err := start(tb.TempDir(), spec{args: args})
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
	s, err := start(tb.TempDir(), spec{tls: true, args: append(tlsArgs(certFile, keyFile, caFile), args...)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// tlsArgs makes a server, or a sentinel, accept TLS clients without a
// client certificate.
func tlsArgs(certFile, keyFile, caFile string) []string {
	return []string{
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--tls-ca-cert-file", caFile, "--tls-auth-clients", "no",
	}
}

// spec is how to run a redis-server: the args around the common ones
// (bind, port, dir, log) and the log line that says it is ready.
type spec struct {
	lead  []string // before the common args: a config file, "--sentinel"
	args  []string // after them
	tls   bool     // listen on a TLS port only
	bus   bool     // a cluster node: its bus on a second free port
	ready string   // "" means serverReady
}

func start(dir string, sp spec) (*Server, error) {
	var err error
	for range 3 { // a port found free may be taken before redis-server binds it (either, for a cluster node)
		var s *Server
		if s, err = startOnce(dir, sp); err == nil || !errors.Is(err, errExited) || !strings.Contains(err.Error(), "in use") {
			return s, err
		}
	}
	return nil, err
}

func startOnce(dir string, sp spec) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	portArgs := []string{"--port", strconv.Itoa(port)}
	if sp.tls {
		portArgs = []string{"--port", "0", "--tls-port", strconv.Itoa(port)}
	}
	var bus int
	if sp.bus {
		// The default, port+10000, may be above 65535 or taken.
		for bus == 0 || bus == port {
			if bus, err = freePort(); err != nil {
				return nil, err
			}
		}
		portArgs = append(portArgs, "--cluster-port", strconv.Itoa(bus))
	}
	base := []string{
		"--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--logfile", filepath.Join(dir, "redis.log"),
		// A replica's full sync starts at once, not 5s later in case
		// other replicas want one too.
		"--repl-diskless-sync-delay", "0",
		// Stop (SIGTERM) does not wait for lagging replicas to catch up.
		"--shutdown-timeout", "0",
	}
	ready := sp.ready
	if ready == "" {
		ready = serverReady
	}
	s := &Server{Port: port, Dir: dir, bus: bus, ready: ready, args: slices.Concat(sp.lead, base, portArgs, sp.args)}
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
	// A restart appends to the log, and to stderr.log, where a
	// configuration error goes, the log not being open yet.
	offset, errOffset := size(s.file("redis.log")), size(s.file("stderr.log"))
	stderr, err := os.OpenFile(s.file("stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	cmd := exec.Command(bin, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = stderr // a file, not a pipe that forked children would hold open
	err = cmd.Start()
	stderr.Close()
	if err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	// Ready when its own log says so: a connection that succeeds could
	// reach another process that took the port.
	if err := s.awaitLog(offset, s.ready, done); err != nil {
		if errors.Is(err, errExited) {
			return fmt.Errorf("%w%s", err, tail(s.file("stderr.log"), errOffset))
		}
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("redis-server did not listen on %s: %w", s.Addr(), err)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// file is the path of a file in the server's folder.
func (s *Server) file(name string) string { return filepath.Join(s.Dir, name) }

// size is the length of the file at path, zero when there is none.
func size(path string) int64 {
	if fi, err := os.Stat(path); err == nil {
		return fi.Size()
	}
	return 0
}

// tail is the file at path past offset, empty when there is none.
func tail(path string, offset int64) []byte {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return nil
	}
	return b[offset:]
}

// awaitLog waits up to startTimeout for line to appear in the log past
// offset. It returns errExited, with the log, if done closes first: the
// process exited.
func (s *Server) awaitLog(offset int64, line string, done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	for {
		if strings.Contains(string(tail(s.file("redis.log"), offset)), line) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w:\n%s", errExited, tail(s.file("redis.log"), 0))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q in its log within %v", line, startTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
// port, empty. A sentinel comes back with its configuration file as it
// last rewrote it: monitoring the primary it knew last.
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
// options (a password, TLS), and fails tb on error. A sentinel or a
// cluster node is dialed with the credentials and TLS it was started
// with, before opts.
func (s *Server) Do(tb testing.TB, opts []redis.DialOption, cmd string, args ...any) any {
	tb.Helper()
	reply, err := s.do(opts, cmd, args...)
	if err != nil {
		tb.Fatalf("redistest: %s on %s: %v", cmd, s.Addr(), err)
	}
	return reply
}

// Read is [Server.Do] for a command that only reads, such as ROLE or
// CLIENT LIST: one that s closes the connection under is sent again on a
// new one, up to 5 times. A sentinel promoting or reconfiguring s closes
// its client connections (CLIENT KILL TYPE normal in the transaction that
// sends SLAVEOF), so a test watching s through a failover needs this.
func (s *Server) Read(tb testing.TB, opts []redis.DialOption, cmd string, args ...any) any {
	tb.Helper()
	var (
		reply any
		err   error
	)
	for range 5 {
		if reply, err = s.do(opts, cmd, args...); !closedUnder(err) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("redistest: %s on %s: %v", cmd, s.Addr(), err)
	}
	return reply
}

// closedUnder reports whether err is the server closing the connection
// under a command (an EOF, a reset, a broken pipe), as opposed to a
// refused dial or an error reply.
func closedUnder(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// do is Do for use outside the test's goroutine: it returns the error,
// which does not name the command.
func (s *Server) do(opts []redis.DialOption, cmd string, args ...any) (any, error) {
	opts = slices.Concat([]redis.DialOption{redis.DialConnectTimeout(2 * time.Second),
		redis.DialReadTimeout(5 * time.Second), redis.DialWriteTimeout(5 * time.Second)}, s.dial, opts)
	c, err := redis.DialContext(context.Background(), "tcp", s.Addr(), opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", s.Addr(), err)
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// running reports whether the server has been started and not stopped
// or killed since.
func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
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
		shared.srv, shared.err = start(dir, spec{})
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
