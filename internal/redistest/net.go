package redistest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// ClosedAddr returns the host:port of a loopback port nothing listens on.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// HungAddr returns the host:port of a server that accepts connections and
// reads what they send, but never answers: a Redis stuck in a long command
// or behind a broken network path. It stops when tb ends.
func HungAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	Serve(tb, l, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return l.Addr().String()
}

// Serve runs handle on each connection l accepts, until tb ends: then it
// closes the listener and the connections, and waits for the handlers.
func Serve(tb testing.TB, l net.Listener, handle func(net.Conn)) {
	var (
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				_ = c.Close()
				return
			}
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	tb.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}
