// Package redigo implements the store ports on Redis through a
// github.com/gomodule/redigo connection pool.
//
// [Client] owns the pool and offers the typed, context-first helpers the
// stores are built on: Get, Set, SetNX, Del and Ping. [TokenStore] and
// [DedupeStore] lay out their keys as
//
//	genesys:token:<tenantId>
//	genesys:dedupe:<tenantId>:<messageId>
package redigo

import (
	"context"
	"crypto/tls"
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
	// or rediss:// for TLS. Empty means redis://localhost:6379.
	URL string
	// Password, when not empty, replaces the URL's password.
	Password string
	// TLSConfig is used for rediss:// URLs. Nil means the system's roots.
	TLSConfig *tls.Config

	// DialTimeout bounds connecting, TLS handshake and authentication
	// included. Zero means no bound.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command's reply and request.
	// Zero means no bound. A context deadline shortens them.
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
	// TestIdleAfter makes the pool PING a connection that sat idle at least
	// this long before handing it out, so that one broken while idle (a
	// Redis restart) is replaced instead of failing a command. Zero means
	// every borrowed connection is PINGed.
	TestIdleAfter time.Duration
}

// Client is a Redis connection pool with typed helpers. It is safe for
// concurrent use.
type Client struct {
	pool *redis.Pool
	// opTimeout bounds a command, a retry on a broken connection included:
	// waiting for a connection, dialing, writing and reading. A context
	// deadline shortens it.
	opTimeout time.Duration
}

// NewClient returns a Client for o. It connects lazily: no connection is
// made until the first command.
func NewClient(o Options) (*Client, error) {
	addr, dialOpts, err := dialOptions(o)
	if err != nil {
		return nil, err
	}
	pool := &redis.Pool{
		DialContext: func(ctx context.Context) (redis.Conn, error) {
			if o.DialTimeout > 0 {
				// Bounds AUTH and SELECT too, which would otherwise wait
				// for the read timeout.
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, o.DialTimeout)
				defer cancel()
			}
			// Clipped: DialURLContext appends to the options it is given,
			// which must not write into a backing array shared by dials.
			return redis.DialURLContext(ctx, addr, slices.Clip(dialOpts)...)
		},
		TestOnBorrowContext: func(ctx context.Context, c redis.Conn, lastUsed time.Time) error {
			if time.Since(lastUsed) < o.TestIdleAfter {
				return nil
			}
			_, err := redis.DoContext(c, ctx, "PING")
			return err
		},
		MaxIdle:         o.MaxIdle,
		MaxActive:       o.MaxActive,
		Wait:            o.Wait,
		IdleTimeout:     o.IdleTimeout,
		MaxConnLifetime: o.MaxConnLifetime,
	}
	return &Client{pool: pool, opTimeout: o.DialTimeout + o.WriteTimeout + o.ReadTimeout}, nil
}

// dialOptions splits the credentials off the URL, so that no error redigo
// builds from the URL can carry the password, and turns o into dial options.
func dialOptions(o Options) (addr string, opts []redis.DialOption, err error) {
	raw := o.URL
	if raw == "" {
		raw = "redis://localhost:6379"
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", nil, errors.New("redis url: not a valid URL")
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return "", nil, fmt.Errorf("redis url: scheme %q, want redis or rediss", u.Scheme)
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			opts = append(opts, redis.DialUsername(name))
		}
		if pass, ok := u.User.Password(); ok {
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
	return u.String(), opts, nil
}

// Close closes the pool's connections. Commands after Close fail.
func (c *Client) Close() error { return c.pool.Close() }

// PoolStats are the pool's connection counts.
type PoolStats struct {
	// Active counts open connections, idle ones included.
	Active int
	// Idle counts connections waiting in the pool.
	Idle int
}

// Stats reports the pool's connection counts.
func (c *Client) Stats() PoolStats {
	s := c.pool.Stats()
	return PoolStats{Active: s.ActiveCount, Idle: s.IdleCount}
}

// do runs one command on a pooled connection.
func (c *Client) do(ctx context.Context, cmd string, args ...any) (any, error) {
	return c.withConn(ctx, func(conn redis.Conn) (any, error) {
		return redis.DoContext(conn, ctx, cmd, args...)
	})
}

// eval runs a Lua script on a pooled connection, through EVALSHA with an
// EVAL fallback when the server does not have the script yet.
func (c *Client) eval(ctx context.Context, s *redis.Script, keysAndArgs ...any) (any, error) {
	return c.withConn(ctx, func(conn redis.Conn) (any, error) {
		return s.DoContext(ctx, conn, keysAndArgs...)
	})
}

// withConn runs f on a pooled connection, bounded in time. A connection
// found broken (the server restarted or the network dropped it since it was
// pooled) is dropped and f is tried again on another.
func (c *Client) withConn(ctx context.Context, f func(redis.Conn) (any, error)) (any, error) {
	if c.opTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opTimeout)
		defer cancel()
	}
	reply, err := c.once(ctx, f)
	// Every idle connection may be broken alike: try until one is not, or
	// a freshly dialed one answers or fails for another reason.
	for range c.pool.MaxIdle {
		if err == nil || !brokenConn(err) || ctx.Err() != nil {
			break
		}
		reply, err = c.once(ctx, f)
	}
	return reply, err
}

func (c *Client) once(ctx context.Context, f func(redis.Conn) (any, error)) (any, error) {
	conn, err := c.pool.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return f(conn)
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
		return "", false, fmt.Errorf("redis GET %s: %w", key, err)
	}
	return val, true, nil
}

// Set stores val at key for ttl, which must be at least a millisecond.
func (c *Client) Set(ctx context.Context, key, val string, ttl time.Duration) error {
	exp, err := expiry(ttl)
	if err != nil {
		return fmt.Errorf("redis SET %s: %w", key, err)
	}
	if _, err := c.do(ctx, "SET", append([]any{key, val}, exp...)...); err != nil {
		return fmt.Errorf("redis SET %s: %w", key, err)
	}
	return nil
}

// SetNX stores val at key for ttl only if key holds nothing, in one atomic
// SET … NX. It reports whether it stored the value.
func (c *Client) SetNX(ctx context.Context, key, val string, ttl time.Duration) (bool, error) {
	exp, err := expiry(ttl)
	if err != nil {
		return false, fmt.Errorf("redis SET NX %s: %w", key, err)
	}
	_, err = redis.String(c.do(ctx, "SET", append([]any{key, val, "NX"}, exp...)...))
	if errors.Is(err, redis.ErrNil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis SET NX %s: %w", key, err)
	}
	return true, nil
}

// setNXGet is SetNX that also returns the value it found when it did not
// store (SET … NX GET, Redis 7.0 or newer): one round trip, one atomic step.
func (c *Client) setNXGet(ctx context.Context, key, val string, ttl time.Duration) (old string, stored bool, err error) {
	exp, err := expiry(ttl)
	if err != nil {
		return "", false, fmt.Errorf("redis SET NX GET %s: %w", key, err)
	}
	old, err = redis.String(c.do(ctx, "SET", append([]any{key, val, "NX", "GET"}, exp...)...))
	if errors.Is(err, redis.ErrNil) {
		return "", true, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("redis SET NX GET %s: %w", key, err)
	}
	return old, false, nil
}

// Del removes key. Removing a missing key is not an error.
func (c *Client) Del(ctx context.Context, key string) error {
	if _, err := c.do(ctx, "DEL", key); err != nil {
		return fmt.Errorf("redis DEL %s: %w", key, err)
	}
	return nil
}

// Ping checks that the server answers.
func (c *Client) Ping(ctx context.Context) error {
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
