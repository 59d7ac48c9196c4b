package redigo

import (
	"context"
	"time"

	"github.com/gomodule/redigo/redis"
)

// pool is the transport that lends each command a connection of a
// redigo Pool.
type pool struct {
	p *redis.Pool
	// opTimeout bounds a command, a retry on a broken connection included:
	// waiting for a connection, dialing, writing and reading. A context
	// deadline shortens it.
	opTimeout time.Duration
}

func newPool(dial func(context.Context) (*serverConn, error), o Options) *pool {
	return &pool{
		p: &redis.Pool{
			DialContext: func(ctx context.Context) (redis.Conn, error) {
				c, err := dial(ctx)
				if err != nil {
					return nil, err // not a nil *serverConn in an interface
				}
				return c, nil
			},
			TestOnBorrowContext: func(ctx context.Context, c redis.Conn, lastUsed time.Time) error {
				if err := c.Err(); err != nil {
					return err // dropped while idle: its server is no longer the primary
				}
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
		},
		opTimeout: o.DialTimeout + o.WriteTimeout + o.ReadTimeout,
	}
}

// do runs one command on a pooled connection, bounded in time. A
// connection found broken (the server restarted or the network dropped it
// since it was pooled) is dropped and the command tried again on another.
func (p *pool) do(ctx context.Context, cmd string, args ...any) (any, error) {
	return p.run(ctx, false, cmd, args)
}

// doAsking is do with ASKING sent first on the same connection.
func (p *pool) doAsking(ctx context.Context, cmd string, args ...any) (any, error) {
	return p.run(ctx, true, cmd, args)
}

func (p *pool) run(ctx context.Context, asking bool, cmd string, args []any) (any, error) {
	if p.opTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opTimeout)
		defer cancel()
	}
	reply, err := p.once(ctx, asking, cmd, args)
	// Every idle connection may be broken alike: try until one is not, or
	// a freshly dialed one answers or fails for another reason.
	for range p.p.MaxIdle {
		if err == nil || !brokenConn(err) || ctx.Err() != nil {
			break
		}
		reply, err = p.once(ctx, asking, cmd, args)
	}
	return reply, err
}

func (p *pool) once(ctx context.Context, asking bool, cmd string, args []any) (any, error) {
	conn, err := p.p.GetContext(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if asking {
		if _, err := redis.DoContext(conn, ctx, "ASKING"); err != nil {
			return nil, err
		}
	}
	return redis.DoContext(conn, ctx, cmd, args...)
}

func (p *pool) stats() PoolStats {
	s := p.p.Stats()
	return PoolStats{Active: s.ActiveCount, Idle: s.IdleCount}
}

func (p *pool) close() error { return p.p.Close() }
