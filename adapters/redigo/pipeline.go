package redigo

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/gomodule/redigo/redis"
)

// Pipelining limits: how many commands a writer sends in one flush, and how
// many may wait in a connection's queues before callers block.
const (
	maxBatch   = 256
	queueDepth = 1024
)

var errClosed = errors.New("redigo: client closed")

// pipeline is the transport that shares a few connections between all
// concurrent commands (auto-pipelining). Each connection has one writer,
// which sends whatever callers have queued and flushes once, and one
// reader, which matches replies to commands in the order they were sent;
// redigo allows one concurrent sender and one concurrent receiver per
// connection. A lone caller's command is flushed at once: nothing waits
// for a batch to fill.
//
// A connection that fails (a network error, a read or write timeout) fails
// the commands in flight on it and is replaced on next use. A caller waits
// at most until its context ends; the connection's read and write timeouts
// bound how long a command can hold it, whatever the callers' contexts.
type pipeline struct {
	dial func(context.Context) (*serverConn, error)
	// ctx bounds dials in progress; close cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	slots  []slot
	next   atomic.Uint32
	closed atomic.Bool
	wg     sync.WaitGroup // every writer and reader
}

// slot holds one shared connection, dialed on first use and again after it
// failed. One dial at a time per slot: callers arriving while it runs wait
// for its result, or for their own context, whichever comes first.
type slot struct {
	pc atomic.Pointer[pipeConn]

	mu      sync.Mutex
	dialing *dial // the dial in progress, nil when none
}

// dial is one dial in progress; done is closed when pc or err is set.
type dial struct {
	done chan struct{}
	pc   *pipeConn
	err  error
}

// call is one command and, once done is closed, its reply.
type call struct {
	cmd  string
	args []any
	// asking sends ASKING right before the command: the one-time
	// redirect to a cluster node importing the key's slot.
	asking bool
	reply  any
	err    error
	done   chan struct{}
}

// pipeConn is one live connection with its writer and reader.
type pipeConn struct {
	conn    *serverConn
	queue   chan *call    // callers → writer
	pending chan *call    // writer → reader, in the order sent
	broken  chan struct{} // closed when the connection failed
	err     error         // why it failed; set before broken is closed
	once    sync.Once
}

func newPipeline(dial func(context.Context) (*serverConn, error), conns int) *pipeline {
	if conns <= 0 {
		conns = 2
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &pipeline{dial: dial, ctx: ctx, cancel: cancel, slots: make([]slot, conns)}
}

// do runs one command. A command that met a connection broken before it
// could be answered (the server restarted, the network dropped it) is
// tried again; every connection may be broken alike, so until one is not
// or a fresh one is dialed.
func (p *pipeline) do(ctx context.Context, cmd string, args ...any) (any, error) {
	return p.run(ctx, false, cmd, args)
}

// doAsking is do with ASKING sent first on the same connection.
func (p *pipeline) doAsking(ctx context.Context, cmd string, args ...any) (any, error) {
	return p.run(ctx, true, cmd, args)
}

func (p *pipeline) run(ctx context.Context, asking bool, cmd string, args []any) (any, error) {
	reply, err := p.once(ctx, asking, cmd, args)
	for range p.slots {
		if err == nil || !brokenConn(err) || ctx.Err() != nil {
			break
		}
		reply, err = p.once(ctx, asking, cmd, args)
	}
	return reply, err
}

func (p *pipeline) once(ctx context.Context, asking bool, cmd string, args []any) (any, error) {
	pc, err := p.conn(ctx)
	if err != nil {
		return nil, err
	}
	c := &call{cmd: cmd, args: args, asking: asking, done: make(chan struct{})}
	select {
	case pc.queue <- c:
	case <-pc.broken:
		return nil, pc.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-c.done:
		return c.reply, c.err
	case <-pc.broken:
		select {
		case <-c.done: // answered just before the connection failed
			return c.reply, c.err
		default:
			return nil, pc.err
		}
	case <-ctx.Done():
		// The reply, when it comes, is read and dropped by the reader.
		return nil, ctx.Err()
	}
}

// conn returns a live connection, taking the slots in turn and dialing
// one that is not connected.
func (p *pipeline) conn(ctx context.Context) (*pipeConn, error) {
	s := &p.slots[p.next.Add(1)%uint32(len(p.slots))]
	if pc := s.pc.Load(); pc != nil && pc.usable() {
		return pc, nil
	}
	s.mu.Lock()
	if p.closed.Load() {
		s.mu.Unlock()
		return nil, errClosed
	}
	if pc := s.pc.Load(); pc != nil && pc.usable() {
		s.mu.Unlock()
		return pc, nil
	}
	d := s.dialing
	if d == nil {
		d = &dial{done: make(chan struct{})}
		s.dialing = d
		p.wg.Add(1)
		go p.dialSlot(s, d)
	}
	s.mu.Unlock()

	select {
	case <-d.done:
		return d.pc, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// dialSlot dials a connection for s, bounded by the dial timeout and by
// Close rather than by any one caller's context, and starts its writer and
// reader.
func (p *pipeline) dialSlot(s *slot, d *dial) {
	defer p.wg.Done()
	conn, err := p.dial(p.ctx)
	if err != nil && p.closed.Load() {
		err = errClosed // the dial was cut short by Close, whatever it says
	}
	var pc *pipeConn
	if err == nil {
		pc = &pipeConn{
			conn:    conn,
			queue:   make(chan *call, queueDepth),
			pending: make(chan *call, queueDepth),
			broken:  make(chan struct{}),
		}
	}
	s.mu.Lock()
	if pc != nil && p.closed.Load() {
		pc, err = nil, errClosed
		_ = conn.Close()
	}
	if pc != nil {
		p.wg.Add(2)
		go func() { defer p.wg.Done(); pc.write() }()
		go func() { defer p.wg.Done(); pc.read() }()
		s.pc.Store(pc)
	}
	d.pc, d.err = pc, err
	s.dialing = nil
	close(d.done)
	s.mu.Unlock()
}

// usable reports whether the connection can take commands: it has not
// failed, and was not dropped for reaching a former primary (which its
// reader notices only when a reply is due).
func (pc *pipeConn) usable() bool {
	if pc.conn.dropped.Load() {
		pc.fail(errDropped)
		return false
	}
	return !pc.failed()
}

func (pc *pipeConn) failed() bool {
	select {
	case <-pc.broken:
		return true
	default:
		return false
	}
}

// fail marks the connection broken for err and closes it. Callers waiting
// on it return err; the writer and reader stop.
func (pc *pipeConn) fail(err error) {
	pc.once.Do(func() {
		pc.err = err
		close(pc.broken)
		_ = pc.conn.Close()
	})
}

// write sends queued commands in batches: one blocking take, then whatever
// else is queued, up to maxBatch, then one flush.
func (pc *pipeConn) write() {
	batch := make([]*call, 0, maxBatch)
	for {
		busy := len(batch) > 1 // the last flush carried several commands
		select {
		case c := <-pc.queue:
			batch = append(batch[:0], c)
		case <-pc.broken:
			return
		}
		if busy {
			// Under load, let callers that are ready to run queue their
			// commands first: one write for many. A lone caller's command
			// (the last batch held one) is flushed at once.
			runtime.Gosched()
		}
	fill:
		for len(batch) < maxBatch {
			select {
			case c := <-pc.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		for _, c := range batch {
			if c.asking {
				if err := pc.conn.Send("ASKING"); err != nil {
					pc.fail(err)
					return
				}
			}
			if err := pc.conn.Send(c.cmd, c.args...); err != nil {
				pc.fail(err)
				return
			}
			select {
			case pc.pending <- c:
			case <-pc.broken:
				return
			}
		}
		if err := pc.conn.Flush(); err != nil {
			pc.fail(err)
			return
		}
	}
}

// read matches replies to the commands sent, in order. A Redis error reply
// is that command's answer; any other error breaks the connection.
func (pc *pipeConn) read() {
	for {
		var c *call
		select {
		case c = <-pc.pending:
		case <-pc.broken:
			return
		}
		if c.asking {
			// The command was sent right behind it: its answer is the
			// call's, an ASKING refused included (a redirect back).
			if _, err := pc.receive(); err != nil && !isReply(err) {
				return
			}
		}
		reply, err := pc.receive()
		if err != nil && !isReply(err) {
			return
		}
		c.reply, c.err = reply, err
		close(c.done)
	}
}

// receive reads one reply; an error other than a Redis error reply fails
// the connection.
func (pc *pipeConn) receive() (any, error) {
	reply, err := pc.conn.Receive()
	if err != nil && !isReply(err) {
		pc.fail(err)
	}
	return reply, err
}

// isReply reports whether err is an error reply from Redis, as opposed to
// a failure to get one.
func isReply(err error) bool {
	_, ok := err.(redis.Error)
	return ok
}

func (p *pipeline) stats() PoolStats {
	var n int
	for i := range p.slots {
		if pc := p.slots[i].pc.Load(); pc != nil && !pc.failed() && !pc.conn.dropped.Load() {
			n++
		}
	}
	return PoolStats{Active: n}
}

// close fails every connection and waits for their writers and readers and
// for dials in progress, whose connections it closes.
func (p *pipeline) close() error {
	p.closed.Store(true)
	p.cancel()
	for i := range p.slots {
		s := &p.slots[i]
		s.mu.Lock()
		if pc := s.pc.Load(); pc != nil {
			pc.fail(errClosed)
		}
		s.mu.Unlock()
	}
	p.wg.Wait()
	return nil
}
