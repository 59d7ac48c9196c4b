package main

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
	"syscall"
	"time"
)

// serverStartTimeout bounds how long redis-server may take to listen.
const serverStartTimeout = 10 * time.Second

// server is a redis-server process the harness started: on a free loopback
// port, in a temporary folder, with persistence off.
type server struct {
	addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// findBinary returns path if it names an executable, else the first of the
// candidates found, or an error saying which Debian package provides name.
func findBinary(path, name, pkg string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return path, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/bin/" + name, "/usr/local/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found: install Debian's %s package (`make redis`, or `apt-get install redis-server`, which brings redis-tools)", name, pkg)
}

// binaryVersion returns the first line that bin prints for --version.
func binaryVersion(ctx context.Context, bin string) string {
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// startServer starts redis-server from bin with --save "" --appendonly no
// on a free loopback port and waits until it accepts connections.
func startServer(bin string) (*server, error) { return startRedis(bin, nil) }

// startRedis is startServer with more args for the server: extra, when not
// nil, returns them given the server's folder and port.
func startRedis(bin string, extra func(dir string, port int) ([]string, error)) (*server, error) {
	dir, err := os.MkdirTemp("", "connectorcache-bench-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{
		"--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if extra != nil {
		more, err := extra(dir, port)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, more...)
	}
	s := &server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	// The server dies with the harness, even when the harness is killed.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(serverStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			os.RemoveAll(dir)
			return nil, fmt.Errorf("redis-server exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("redis-server did not listen on %s within %v", s.addr, serverStartTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// url is the server's redis:// URL.
func (s *server) url() string { return "redis://" + s.addr }

// port is the server's port, as text.
func (s *server) port() string {
	_, p, _ := net.SplitHostPort(s.addr)
	return p
}

// stop terminates the server, waits for it and removes its folder.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(serverStartTimeout):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("find a free port: not a TCP address")
	}
	return addr.Port, nil
}
