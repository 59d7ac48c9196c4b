package redigo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// errDropped fails the commands in flight on a connection dropped because
// its server stopped being the primary. It wraps net.ErrClosed: like any
// closed connection, the command is tried again on a fresh one.
var errDropped = fmt.Errorf("redigo: connection to a former primary dropped: %w", net.ErrClosed)

// notPrimary reports whether err is a reply that only a server which is
// not, or not yet, a usable primary gives: a replica refusing a write
// (READONLY), a server still loading its data set (LOADING), a replica
// whose link to its primary is down (MASTERDOWN).
func notPrimary(err error) bool {
	var e redis.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, prefix := range []string{"READONLY ", "LOADING ", "MASTERDOWN "} {
		if strings.HasPrefix(string(e), prefix) {
			return true
		}
	}
	return false
}

// primary follows where the primary is: the address connections are made
// to, every connection open to it, and the failovers followed. A
// connection that meets a reply only a non-primary gives is closed, and so
// is every other one to the same address: behind a managed endpoint, they
// all reached the server that was demoted.
// When Sentinel names a new address, every connection to another is
// closed at once. Either way the next command dials afresh.
type primary struct {
	// sentinel is true when Sentinel names the address: failovers are
	// counted as address changes then, not as replies.
	sentinel bool
	// onFailover, when not nil, is called after each failover followed.
	onFailover func(from, to string)

	mu    sync.Mutex
	addr  string
	gen   uint64 // changes of addr so far
	conns map[*serverConn]struct{}
	seq   uint64 // dials so far
	// floor is the last dial before the latest demotion: a non-primary
	// reply on a connection no newer is part of that demotion.
	floor     uint64
	failovers uint64
}

func newPrimary(addr string, sentinel bool, onFailover func(from, to string)) *primary {
	return &primary{addr: addr, sentinel: sentinel, onFailover: onFailover, conns: make(map[*serverConn]struct{})}
}

// PrimaryStats is where a [Client] sends its commands.
type PrimaryStats struct {
	// Addr is the host:port of the primary in use: the one Sentinel last
	// named, or the URL's.
	Addr string
	// Failovers counts failovers followed. With Sentinel, the times the
	// primary's address changed; without, the times the server stopped
	// answering as a primary (READONLY, LOADING, MASTERDOWN) and every
	// connection to it was dropped.
	Failovers uint64
}

func (p *primary) stats() PrimaryStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PrimaryStats{Addr: p.addr, Failovers: p.failovers}
}

// generation returns the number of address changes so far, for a dial
// to pass to [primary.dialed].
func (p *primary) generation() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// dialed tracks conn, just dialed to addr. With Sentinel, addr becomes the
// primary's address, unless the primary moved elsewhere since the dial
// started (gen): a sentinel's answer may be older than its announcement.
func (p *primary) dialed(conn redis.Conn, addr string, gen uint64) (*serverConn, error) {
	p.mu.Lock()
	var from string
	if p.sentinel {
		if p.gen != gen && addr != p.addr {
			err := fmt.Errorf("redigo: the primary moved from %s to %s during the dial", addr, p.addr)
			p.mu.Unlock()
			return nil, err
		}
		from = p.movedLocked(addr)
	}
	p.seq++
	c := &serverConn{Conn: conn, p: p, addr: addr, seq: p.seq}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	p.notify(from, addr)
	return c, nil
}

// moved records that Sentinel names addr as the primary, and closes every
// connection to another address.
func (p *primary) moved(addr string) {
	p.mu.Lock()
	from := p.movedLocked(addr)
	p.mu.Unlock()
	p.notify(from, addr)
}

// movedLocked makes addr the primary's address. It returns the address
// the primary moved from, or "" when that is not a failover: the address
// did not change, or none was known.
func (p *primary) movedLocked(addr string) (from string) {
	if addr == p.addr {
		return ""
	}
	from, p.addr = p.addr, addr
	p.gen++
	p.dropLocked(func(c *serverConn) bool { return c.addr != addr })
	if from != "" {
		p.failovers++
	}
	return from
}

// demoted closes c, which met a non-primary reply, and every other
// connection to its address: they reach the same server. Connections
// dialed since reach whatever the address leads to now.
func (p *primary) demoted(c *serverConn) {
	p.mu.Lock()
	c.drop()
	if c.seq <= p.floor {
		p.mu.Unlock()
		return // dialed before a demotion already acted on
	}
	p.floor = p.seq
	p.dropLocked(func(o *serverConn) bool { return o.addr == c.addr })
	if p.sentinel {
		// Counted when the sentinels name the new primary.
		p.mu.Unlock()
		return
	}
	p.failovers++
	p.mu.Unlock()
	p.notify(c.addr, c.addr)
}

// notify tells onFailover about a failover followed from one address to
// another (the same one behind an endpoint); from "" means none was.
func (p *primary) notify(from, to string) {
	if from != "" && p.onFailover != nil {
		p.onFailover(from, to)
	}
}

func (p *primary) dropLocked(match func(*serverConn) bool) {
	for c := range p.conns {
		if match(c) {
			c.drop()
		}
	}
}

func (p *primary) forget(c *serverConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// serverConn is a connection to one server, tracked by primary. A
// non-primary reply drops it: its network connection is closed, so that a
// pool discards it and a pipeline replaces it, and the command that met
// the reply fails with it.
type serverConn struct {
	redis.Conn
	p       *primary
	addr    string
	seq     uint64
	dropped atomic.Bool
}

var _ redis.ConnWithContext = (*serverConn)(nil)

func (c *serverConn) drop() {
	if c.dropped.CompareAndSwap(false, true) {
		_ = c.Conn.Close()
	}
}

func (c *serverConn) check(err error) {
	if err != nil && notPrimary(err) {
		c.p.demoted(c)
	}
}

// DoContext implements [redis.ConnWithContext]; the pool runs commands
// through it.
func (c *serverConn) DoContext(ctx context.Context, cmd string, args ...any) (any, error) {
	reply, err := redis.DoContext(c.Conn, ctx, cmd, args...)
	c.check(err)
	return reply, err
}

// ReceiveContext implements [redis.ConnWithContext].
func (c *serverConn) ReceiveContext(ctx context.Context) (any, error) {
	reply, err := redis.ReceiveContext(c.Conn, ctx)
	c.check(err)
	return reply, err
}

// Receive reads one reply; the pipeline reads through it.
func (c *serverConn) Receive() (any, error) {
	reply, err := c.Conn.Receive()
	c.check(err)
	return reply, err
}

// Close closes the connection and stops tracking it.
func (c *serverConn) Close() error {
	c.p.forget(c)
	c.dropped.Store(true)
	return c.Conn.Close()
}
