// Package redigo implements the store ports on Redis through
// github.com/gomodule/redigo: a connection pool, or a few auto-pipelined
// connections shared by all callers, to one server, to the primary that
// Redis Sentinel names, or to each primary of a Redis Cluster.
//
// [Client] owns the connections and offers the typed, context-first
// helpers the stores are built on: Get, Set, Del and Ping. [TokenStore]
// (also the fetch lock) and [DedupeStore] lay out their keys as
//
//	genesys:token:<tenantId>
//	genesys:token-lock:<tenantId>
//	genesys:dedupe:<tenantId>:<messageId>
package redigo

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Options configures a [Client]. Zero values are documented per field.
type Options struct {
	// URL is the server address: redis://[user[:password]@]host[:port][/db],
	// or rediss:// for TLS. Empty means redis://localhost:6379. A lone
	// name in the user info (redis://secret@host) is a password, as
	// redis-cli and redigo's DialURL take it, unless Password is set: it is
	// then the user that Password is for.
	URL string
	// Password, when not empty, replaces the URL's password.
	Password string
	// TLSConfig is used for rediss:// URLs. Nil means the system's roots.
	TLSConfig *tls.Config

	// DialTimeout bounds connecting, TLS handshake and authentication
	// included. Zero means no bound.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command's reply and request.
	// Zero means no bound. A caller's context deadline ends its wait sooner.
	ReadTimeout, WriteTimeout time.Duration

	// MaxIdle is how many idle connections the pool keeps. Zero means none.
	MaxIdle int
	// MaxActive caps the connections open at once. Zero means no cap.
	MaxActive int
	// Wait makes a caller wait for a free connection when MaxActive is
	// reached, as long as its context allows, instead of failing at once.
	Wait bool
	// IdleTimeout closes connections idle for longer. Zero means never.
	IdleTimeout time.Duration
	// MaxConnLifetime closes connections older than this. Zero means never.
	MaxConnLifetime time.Duration
	// Pipeline makes the client share PipelineConns connections between
	// all concurrent commands: each connection has one writer that sends
	// whatever is queued in one batch, and one reader that matches the
	// replies in order. The pool fields below are then unused.
	Pipeline bool
	// PipelineConns is how many connections a pipelining client uses, to
	// each node on a cluster. Zero means 2, and 1 per node on a cluster.
	PipelineConns int

	// Sentinel, when its Master is set, finds the primary through Redis
	// Sentinel: the URL's host and port are then unused; its scheme,
	// user, password and database still apply. With rediss://, sentinel
	// connections use TLS and TLSConfig too.
	Sentinel Sentinel
	// Cluster, when its Addrs are set, runs the client on a Redis Cluster:
	// each command goes to the primary serving its key's slot. It cannot
	// be combined with Sentinel.
	Cluster Cluster
	// OnFailover, when not nil, is called after each failover the client
	// followed: from one primary address to another with Sentinel, from
	// an address to itself when its server was demoted. It must not block.
	// It is not called on a cluster, whose failovers the slot map shows.
	OnFailover func(from, to string)

	// TestIdleAfter makes the pool PING a connection that sat idle at least
	// this long before handing it out, so that one broken while idle (a
	// Redis restart) is replaced instead of failing a command. Zero means
	// every borrowed connection is PINGed.
	TestIdleAfter time.Duration
}

// Client is a Redis client with typed helpers, over a connection pool or,
// with [Options.Pipeline], a few pipelined connections. It is safe for
// concurrent use.
//
// It follows failovers: a connection whose server answers that it is not,
// or not yet, a usable primary (READONLY, LOADING, MASTERDOWN) is closed
// along with every other one to that address, and the next command dials
// afresh, reaching the new primary behind a managed endpoint. With
// [Options.Sentinel], each dial asks the sentinels where the primary is
// and checks its ROLE, and a +switch-master announcement closes every
// connection to the former primary at once.
//
// With [Options.Cluster], it routes each command to the primary serving
// its key's slot, over a pool or pipeline of that node's own, and follows
// the cluster's redirects, failovers and resharding; see [Cluster].
type Client struct {
	t transport
	// primary follows the primary; nil on a cluster.
	primary *primary
	// cluster routes by slot; nil unless on a cluster.
	cluster *cluster
	// stopWatch ends the watch of the sentinels' announcements and waits
	// for it; nil without Sentinel.
	stopWatch func()
}

// transport runs commands: a pool lends each one a connection, a pipeline
// batches them over shared connections.
type transport interface {
	do(ctx context.Context, cmd string, args ...any) (any, error)
	stats() PoolStats
	close() error
}

// nodeTransport is the transport to one server, which a cluster also
// sends redirected commands through.
type nodeTransport interface {
	transport
	// doAsking runs cmd right after ASKING, on the same connection: the
	// one-time redirect to a cluster node importing the key's slot.
	doAsking(ctx context.Context, cmd string, args ...any) (any, error)
}

// NewClient returns a Client for o. It connects to Redis lazily: no
// connection is made until the first command. With Sentinel, it subscribes
// to the sentinels' announcements at once.
func NewClient(o Options) (*Client, error) {
	u, dialOpts, err := dialOptions(o)
	if err != nil {
		return nil, err
	}
	d := &dialer{url: u, opts: dialOpts, timeout: o.DialTimeout}
	c := &Client{}
	if len(o.Cluster.Addrs) > 0 {
		if o.Sentinel.Master != "" {
			return nil, errors.New("redigo: cluster addresses and a sentinel master both set")
		}
		if err := clusterURL(u); err != nil {
			return nil, err
		}
		c.cluster = newClusterTransport(o, d)
		c.t = c.cluster
		return c, nil
	}
	if o.Sentinel.Master != "" {
		if len(o.Sentinel.Addrs) == 0 {
			return nil, errors.New("redigo: sentinel master set without sentinel addresses")
		}
		d.sentinels = newSentinels(o.Sentinel, o, u.Scheme == "rediss")
		d.primary = newPrimary("", true, o.OnFailover)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.sentinels.watch(ctx, d.primary) }()
		c.stopWatch = func() { cancel(); <-done }
	} else {
		d.primary = newPrimary(u.Host, false, o.OnFailover)
	}
	c.primary = d.primary
	if o.Pipeline {
		c.t = newPipeline(d.dial, o.PipelineConns)
	} else {
		c.t = newPool(d.dial, o)
	}
	return c, nil
}

// dialer makes the connections to the primary.
type dialer struct {
	url     *url.URL // no user info: it is in opts
	opts    []redis.DialOption
	timeout time.Duration
	// sentinels, when not nil, name the primary's address in place of
	// the URL's host.
	sentinels *sentinels
	primary   *primary
}

// dial connects to the primary. With Sentinel, it first asks the
// sentinels where the primary is (each sentinel bounded on its own, see
// sentinelTimeout); connecting, AUTH, SELECT and, with Sentinel, the ROLE
// check are bounded by the dial timeout. A dial that reached a primary the
// sentinels replaced meanwhile is made again, once.
func (d *dialer) dial(ctx context.Context) (*serverConn, error) {
	c, err := d.dialOnce(ctx)
	if errors.Is(err, errMovedDuringDial) {
		c, err = d.dialOnce(ctx)
	}
	return c, err
}

func (d *dialer) dialOnce(ctx context.Context) (*serverConn, error) {
	ticket := d.primary.begin()
	addr := d.url.Host
	if d.sentinels != nil {
		var err error
		if addr, err = d.sentinels.primaryAddr(ctx, d.primary.stale); err != nil {
			return nil, err
		}
	}
	if d.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.timeout)
		defer cancel()
	}
	conn, err := d.connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	if d.sentinels != nil {
		if err := d.sentinels.checkRole(ctx, conn, addr); err != nil {
			_ = conn.Close()
			return nil, err
		}
	}
	c, err := d.primary.dialed(conn, addr, ticket)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return c, nil
}

// connect dials the server at addr with d's URL and options, and
// authenticates.
func (d *dialer) connect(ctx context.Context, addr string) (redis.Conn, error) {
	u := *d.url
	u.Host = addr
	// Clipped: DialURLContext appends to the options it is given, which
	// must not write into a backing array shared by dials.
	return redis.DialURLContext(ctx, u.String(), slices.Clip(d.opts)...)
}

// dialOptions splits the credentials off the URL, so that no error redigo
// builds from the URL can carry the password, and turns o into dial options.
func dialOptions(o Options) (u *url.URL, opts []redis.DialOption, err error) {
	raw := o.URL
	if raw == "" {
		raw = "redis://localhost:6379"
	}
	u, err = url.Parse(raw)
	if err != nil {
		return nil, nil, errors.New("redis url: not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, nil, fmt.Errorf("redis url: scheme %q, want redis or rediss", u.Scheme)
	}
	if u.User != nil {
		name := u.User.Username()
		pass, hasPass := u.User.Password()
		if !hasPass && o.Password == "" {
			name, pass = "", name // a lone name is a password
		}
		if name != "" {
			opts = append(opts, redis.DialUsername(name))
		}
		if pass != "" {
			opts = append(opts, redis.DialPassword(pass))
		}
		u.User = nil
	}
	if o.Password != "" {
		opts = append(opts, redis.DialPassword(o.Password))
	}
	if o.TLSConfig != nil {
		opts = append(opts, redis.DialTLSConfig(o.TLSConfig))
	}
	opts = append(opts,
		redis.DialConnectTimeout(o.DialTimeout),
		redis.DialTLSHandshakeTimeout(o.DialTimeout),
		redis.DialReadTimeout(o.ReadTimeout),
		redis.DialWriteTimeout(o.WriteTimeout),
	)
	return u, opts, nil
}

// Close stops following the sentinels and closes the client's
// connections. Commands after Close fail.
func (c *Client) Close() error {
	if c.stopWatch != nil {
		c.stopWatch()
	}
	return c.t.close()
}

// PoolStats are the client's connection counts.
type PoolStats struct {
	// Active counts open connections, idle ones included.
	Active int
	// Idle counts connections waiting in the pool.
	Idle int
}

// Stats reports the client's connection counts.
func (c *Client) Stats() PoolStats { return c.t.stats() }

// Primary reports the primary in use and the failovers followed.
// It is zero on a cluster.
func (c *Client) Primary() PrimaryStats {
	if c.primary == nil {
		return PrimaryStats{}
	}
	return c.primary.stats()
}

// Cluster reports the slot map the client routes by and the redirects it
// followed. It is zero unless on a cluster.
func (c *Client) Cluster() ClusterStats {
	if c.cluster == nil {
		return ClusterStats{}
	}
	return c.cluster.clusterStats()
}

// do runs one command. A caller whose context has ended already sends
// nothing.
func (c *Client) do(ctx context.Context, cmd string, args ...any) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return c.t.do(ctx, cmd, args...)
}

// script is a Lua script run through EVALSHA, falling back to EVAL (which
// loads it) when the server does not know it yet.
type script struct {
	src, hash string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, hash: hex.EncodeToString(sum[:])}
}

// eval runs s on one key with args.
func (c *Client) eval(ctx context.Context, s *script, key string, args ...any) (any, error) {
	reply, err := c.do(ctx, "EVALSHA", append([]any{s.hash, 1, key}, args...)...)
	if replyWith(err, "NOSCRIPT ") {
		reply, err = c.do(ctx, "EVAL", append([]any{s.src, 1, key}, args...)...)
	}
	return reply, err
}

// brokenConn reports whether err says the connection was closed under the
// command, as every pooled connection is after a server restart.
func brokenConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// Get returns the value at key; found is false when there is none.
func (c *Client) Get(ctx context.Context, key string) (val string, found bool, err error) {
	val, err = redis.String(c.do(ctx, "GET", key))
	if errors.Is(err, redis.ErrNil) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis GET %q: %w", key, err)
	}
	return val, true, nil
}

// Set stores val at key for ttl, which must be at least a millisecond.
func (c *Client) Set(ctx context.Context, key, val string, ttl time.Duration) error {
	exp, err := expiry(ttl)
	if err != nil {
		return fmt.Errorf("redis SET %q: %w", key, err)
	}
	if _, err := c.do(ctx, "SET", append([]any{key, val}, exp...)...); err != nil {
		return fmt.Errorf("redis SET %q: %w", key, err)
	}
	return nil
}

// setNXGet stores val at key for ttl only if key holds nothing, and
// returns the value it found when it did not store (SET … NX GET, Redis 7.0
// or newer): one round trip, one atomic step.
func (c *Client) setNXGet(ctx context.Context, key, val string, ttl time.Duration) (old string, stored bool, err error) {
	exp, err := expiry(ttl)
	if err != nil {
		return "", false, fmt.Errorf("redis SET NX GET %q: %w", key, err)
	}
	old, err = redis.String(c.do(ctx, "SET", append([]any{key, val, "NX", "GET"}, exp...)...))
	if errors.Is(err, redis.ErrNil) {
		return "", true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis SET NX GET %q: %w", key, err)
	}
	return old, false, nil
}

// Del removes key. Removing a missing key is not an error.
func (c *Client) Del(ctx context.Context, key string) error {
	if _, err := c.do(ctx, "DEL", key); err != nil {
		return fmt.Errorf("redis DEL %q: %w", key, err)
	}
	return nil
}

// Ping checks that the server answers; on a cluster, that every primary
// of the slot map does.
func (c *Client) Ping(ctx context.Context) error {
	if c.cluster != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		return c.cluster.ping(ctx)
	}
	if _, err := c.do(ctx, "PING"); err != nil {
		return fmt.Errorf("redis PING: %w", err)
	}
	return nil
}

// expiry turns ttl into SET's expiry arguments: EX for whole seconds, PX
// otherwise. It refuses a TTL under a millisecond rather than send EX 0.
func expiry(ttl time.Duration) ([]any, error) {
	switch {
	case ttl < time.Millisecond:
		return nil, fmt.Errorf("ttl %v: must be at least 1ms", ttl)
	case ttl%time.Second == 0:
		return []any{"EX", strconv.FormatInt(int64(ttl/time.Second), 10)}, nil
	}
	return []any{"PX", strconv.FormatInt(ttl.Milliseconds(), 10)}, nil
}
