package redigo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	return replyWith(err, "READONLY ", "LOADING ", "MASTERDOWN ")
}

// replyWith reports whether err is an error reply from Redis that starts
// with one of prefixes.
func replyWith(err error, prefixes ...string) bool {
	var e redis.Error
	if !errors.As(err, &e) {
		return false
	}
	for _, prefix := range prefixes {
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
	seq   uint64 // dials begun so far
	// floor is the last dial begun before the latest demotion: a
	// non-primary reply on a connection no newer is part of that
	// demotion.
	floor     uint64
	failovers uint64
	// former is the address the primary last moved away from, at
	// movedAt: for a while after a switch, a sentinel naming it is taken
	// for one that has not heard of the switch yet.
	former  string
	movedAt time.Time
}

// staleAfterSwitch is how long after a switch a sentinel's answer naming
// the former primary is taken for a stale one. Sentinels hear of a switch
// within seconds; a former primary may answer as one for longer (until
// the sentinels demote it), so the check of its role cannot tell.
const staleAfterSwitch = 30 * time.Second

func newPrimary(addr string, sentinel bool, onFailover func(from, to string)) *primary {
	return &primary{addr: addr, sentinel: sentinel, onFailover: onFailover, conns: make(map[*serverConn]struct{})}
}

// PrimaryStats is where a [Client] sends its commands.
type PrimaryStats struct {
	// Addr is the host:port of the primary in use: the one Sentinel last
	// named (empty until it named one), or the URL's.
	Addr string
	// Failovers counts failovers followed. With Sentinel, the times the
	// primary's address changed; without, the times the server stopped
	// answering as a primary (READONLY, LOADING, MASTERDOWN) and every
	// connection to it was dropped: a restarted server still loading its
	// data counts too, and so may each dial that still reaches a demoted
	// server while a managed endpoint's name moves.
	Failovers uint64
}

func (p *primary) stats() PrimaryStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PrimaryStats{Addr: p.addr, Failovers: p.failovers}
}

// dialTicket is what a dial notes when it begins: the address changes and
// the dials so far.
type dialTicket struct{ gen, seq uint64 }

// begin notes a dial beginning, for [primary.dialed].
func (p *primary) begin() dialTicket {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	return dialTicket{gen: p.gen, seq: p.seq}
}

// stale reports whether a sentinel naming addr has not heard of the
// latest switch yet.
func (p *primary) stale(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return addr == p.former && time.Since(p.movedAt) < staleAfterSwitch
}

// dialed tracks conn, dialed to addr by the dial that began with t. With
// Sentinel, addr becomes the primary's address, unless the primary moved
// elsewhere since the dial began: a sentinel's answer may be older than
// its announcement.
func (p *primary) dialed(conn redis.Conn, addr string, t dialTicket) (*serverConn, error) {
	p.mu.Lock()
	var (
		from string
		drop []*serverConn
	)
	if p.sentinel {
		if p.gen != t.gen && addr != p.addr {
			err := fmt.Errorf("%w: from %s to %s", errMovedDuringDial, addr, p.addr)
			p.mu.Unlock()
			return nil, err
		}
		from, drop = p.movedLocked(addr)
	}
	c := &serverConn{Conn: conn, p: p, addr: addr, seq: t.seq}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	closeAll(drop)
	p.notify(from, addr)
	return c, nil
}

// errMovedDuringDial is a dial that reached a primary the sentinels have
// since replaced.
var errMovedDuringDial = errors.New("redigo: the primary moved during the dial")

// moved records that Sentinel names addr as the primary, and closes every
// connection to another address.
func (p *primary) moved(addr string) {
	p.mu.Lock()
	from, drop := p.movedLocked(addr)
	p.mu.Unlock()
	closeAll(drop)
	p.notify(from, addr)
}

// movedLocked makes addr the primary's address, and returns the address
// the primary moved from ("" when that is not a failover: the address did
// not change, or none was known) and the connections to close.
func (p *primary) movedLocked(addr string) (from string, drop []*serverConn) {
	if addr == p.addr {
		return "", nil
	}
	from, p.addr = p.addr, addr
	p.gen++
	drop = p.dropLocked(func(c *serverConn) bool { return c.addr != addr })
	if from != "" {
		p.failovers++
		p.former, p.movedAt = from, time.Now()
	}
	return from, drop
}

// demoted closes c, which met a non-primary reply, and every other
// connection to its address: they reach the same server. Connections
// dialed since reach whatever the address leads to now.
func (p *primary) demoted(c *serverConn) {
	p.mu.Lock()
	var drop []*serverConn
	if c.dropped.CompareAndSwap(false, true) {
		drop = append(drop, c)
	}
	if c.seq <= p.floor {
		p.mu.Unlock()
		closeAll(drop)
		return // begun before a demotion already acted on
	}
	p.floor = p.seq
	drop = append(drop, p.dropLocked(func(o *serverConn) bool { return o.addr == c.addr })...)
	counted := !p.sentinel // with Sentinel, counted when it names the new primary
	if counted {
		p.failovers++
	}
	p.mu.Unlock()
	closeAll(drop)
	if counted {
		p.notify(c.addr, c.addr)
	}
}

// notify tells onFailover about a failover followed from one address to
// another (the same one behind an endpoint); from "" means none was.
func (p *primary) notify(from, to string) {
	if from != "" && p.onFailover != nil {
		p.onFailover(from, to)
	}
}

// dropLocked marks the connections that match as dropped and returns
// them, for the caller to close once it let go of p.mu: closing a TLS
// connection writes to it, and may wait.
func (p *primary) dropLocked(match func(*serverConn) bool) []*serverConn {
	var drop []*serverConn
	for c := range p.conns {
		if match(c) && c.dropped.CompareAndSwap(false, true) {
			drop = append(drop, c)
		}
	}
	return drop
}

func closeAll(conns []*serverConn) {
	for _, c := range conns {
		_ = c.Conn.Close()
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
