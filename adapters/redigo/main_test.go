package redigo_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// testTimeout is the dial, read and write timeout of clients on a working
// server: generous, since the machine running the tests may be loaded.
const testTimeout = 5 * time.Second

// margin is how much longer than its timeout a call may take to fail: the
// timeouts are bounds, not promises to the millisecond.
const margin = 2 * time.Second

// transport is the transport a test's clients use, named as its subtest.
type transport string

const (
	pool     transport = "pool"     // a redigo Pool: Options.Pipeline false
	pipeline transport = "pipeline" // auto-pipelining: Options.Pipeline true
)

// transports are both transports, in the order their subtests run.
var transports = []transport{pool, pipeline}

// forEachTransport runs test as one subtest per transport, for behaviour
// that must hold on both.
func forEachTransport(t *testing.T, test func(t *testing.T, tr transport)) {
	t.Helper()
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) { test(t, tr) })
	}
}

// options returns Options for url on tr, with generous timeouts and a few
// idle connections.
func options(url string, tr transport) redigo.Options {
	return redigo.Options{
		URL:          url,
		DialTimeout:  testTimeout,
		ReadTimeout:  testTimeout,
		WriteTimeout: testTimeout,
		MaxIdle:      8,
		Pipeline:     tr == pipeline,
	}
}

// newClient returns a client for o, on the transport o names, closed when
// tb ends.
func newClient(tb testing.TB, o redigo.Options) *redigo.Client {
	tb.Helper()
	c, err := redigo.NewClient(o)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// sharedClient returns a client on tr to the Redis shared by the package's
// tests.
func sharedClient(tb testing.TB, tr transport) *redigo.Client {
	tb.Helper()
	return newClient(tb, options(redistest.SharedURL(tb), tr))
}

// rawConn returns a plain redigo connection to the shared Redis, to read
// back what the client wrote.
func rawConn(tb testing.TB) redis.Conn {
	tb.Helper()
	c, err := redis.DialURL(redistest.SharedURL(tb),
		redis.DialConnectTimeout(testTimeout), redis.DialReadTimeout(testTimeout), redis.DialWriteTimeout(testTimeout))
	if err != nil {
		tb.Fatalf("dial the shared Redis: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// pttl returns the remaining TTL of key as Redis reports it.
func pttl(tb testing.TB, c redis.Conn, key string) time.Duration {
	tb.Helper()
	ms, err := redis.Int64(c.Do("PTTL", key))
	if err != nil {
		tb.Fatalf("PTTL %s: %v", key, err)
	}
	if ms < 0 {
		tb.Fatalf("PTTL %s = %d: the key is missing (-2) or has no TTL (-1)", key, ms)
	}
	return time.Duration(ms) * time.Millisecond
}

// checkTTL fails tb unless key's remaining TTL is at most want and has not
// run down by more than a generous margin.
func checkTTL(tb testing.TB, c redis.Conn, key string, want time.Duration) {
	tb.Helper()
	if got := pttl(tb, c, key); got > want || got <= want-margin {
		tb.Errorf("PTTL %s = %v, want in (%v, %v]", key, got, want-margin, want)
	}
}

func exists(tb testing.TB, c redis.Conn, key string) bool {
	tb.Helper()
	n, err := redis.Int(c.Do("EXISTS", key))
	if err != nil {
		tb.Fatalf("EXISTS %s: %v", key, err)
	}
	return n == 1
}

// gatedServer is a listener that speaks just enough Redis to answer every
// command with +PONG, but only once open is closed: until then, commands
// wait. It tells how many connections it accepted.
type gatedServer struct {
	URL      string
	open     chan struct{}
	mu       sync.Mutex
	accepted int
}

func newGatedServer(tb testing.TB) *gatedServer {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &gatedServer{URL: "redis://" + l.Addr().String(), open: make(chan struct{})}
	redistest.Serve(tb, l, func(c net.Conn) {
		s.mu.Lock()
		s.accepted++
		s.mu.Unlock()
		s.serve(c)
	})
	// Registered after serve's cleanup, so run before it: no handler may
	// still wait for the gate when serve waits for the handlers.
	tb.Cleanup(func() {
		select {
		case <-s.open:
		default:
			s.Open()
		}
	})
	return s
}

// Accepted reports how many connections the server accepted.
func (s *gatedServer) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Open lets the server answer.
func (s *gatedServer) Open() { close(s.open) }

func (s *gatedServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	for {
		if err := readCommand(r); err != nil {
			return
		}
		<-s.open
		if _, err := io.WriteString(c, "+PONG\r\n"); err != nil {
			return
		}
	}
}

// readCommand reads one RESP command: an array of bulk strings.
func readCommand(r *bufio.Reader) error {
	n, err := readHeader(r, '*')
	if err != nil {
		return err
	}
	for range n {
		size, err := readHeader(r, '$')
		if err != nil {
			return err
		}
		if _, err := r.Discard(size + 2); err != nil {
			return err
		}
	}
	return nil
}

func readHeader(r *bufio.Reader, kind byte) (int, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 4 || line[0] != kind {
		return 0, fmt.Errorf("unexpected RESP line %q", line)
	}
	return strconv.Atoi(line[1 : len(line)-2])
}
