package redigo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// testKey returns a key no other test uses.
func testKey(t *testing.T) string { return "test:" + contract.TenantID(t) }

func TestClientGetMissIsNotAnError(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := sharedClient(t, tr)
		val, found, err := c.Get(t.Context(), testKey(t))
		if err != nil || found || val != "" {
			t.Errorf("Get of a missing key = %q, found %v, err %v; want a miss", val, found, err)
		}
	})
}

func TestClientGetReadsWhatIsStored(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
		if _, err := raw.Do("SET", key, "value\x00with a NUL"); err != nil {
			t.Fatal(err)
		}
		val, found, err := c.Get(t.Context(), key)
		if err != nil || !found || val != "value\x00with a NUL" {
			t.Errorf("Get = %q, found %v, err %v; want the stored value", val, found, err)
		}
	})
}

func TestClientSetAppliesTheTTL(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
	}{
		{name: "whole seconds", give: 10 * time.Second},
		{name: "milliseconds", give: 2500 * time.Millisecond},
		{name: "dedupe TTL", give: 86400 * time.Second},
		{name: "sub-millisecond part is dropped", give: 3*time.Second + 500*time.Microsecond},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
				if err := c.Set(t.Context(), key, "v", tt.give); err != nil {
					t.Fatalf("Set: %v", err)
				}
				if got, err := redis.String(raw.Do("GET", key)); err != nil || got != "v" {
					t.Fatalf("GET after Set = %q, %v; want v", got, err)
				}
				checkTTL(t, raw, key, tt.give.Truncate(time.Millisecond))
			})
		}
	})
}

func TestClientSetOverwritesValueAndTTL(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
		if err := c.Set(t.Context(), key, "first", time.Hour); err != nil {
			t.Fatal(err)
		}
		if err := c.Set(t.Context(), key, "second", time.Minute); err != nil {
			t.Fatal(err)
		}
		if got, _, err := c.Get(t.Context(), key); err != nil || got != "second" {
			t.Errorf("Get = %q, %v; want second", got, err)
		}
		checkTTL(t, raw, key, time.Minute)
	})
}

// TestClientRejectsTTLUnderAMillisecond checks that a TTL Redis would refuse
// or round to nothing (EX 0, PX 0, a negative one) is an error before any
// connection is made.
func TestClientRejectsTTLUnderAMillisecond(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
	}{
		{name: "zero", give: 0},
		{name: "negative", give: -time.Second},
		{name: "a nanosecond", give: time.Nanosecond},
		{name: "just under a millisecond", give: time.Millisecond - time.Nanosecond},
	}
	ops := []struct {
		name string
		call func(ctx context.Context, c *redigo.Client, key string, ttl time.Duration) error
	}{
		{name: "Set", call: func(ctx context.Context, c *redigo.Client, key string, ttl time.Duration) error {
			return c.Set(ctx, key, "v", ttl)
		}},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, op := range ops {
			for _, tt := range tests {
				t.Run(op.name+"/"+tt.name, func(t *testing.T) {
					c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
					err := op.call(t.Context(), c, key, tt.give)
					if err == nil {
						t.Fatalf("%s with ttl %v: no error", op.name, tt.give)
					}
					if !strings.Contains(err.Error(), "ttl") {
						t.Errorf("%s with ttl %v: error %q does not name the ttl", op.name, tt.give, err)
					}
					if got := c.Stats(); got.Active != 0 {
						t.Errorf("%s with ttl %v opened a connection: %+v", op.name, tt.give, got)
					}
					if exists(t, raw, key) {
						t.Errorf("%s with ttl %v stored the key", op.name, tt.give)
					}
					// The same call with a valid TTL does connect: the check
					// above can fail.
					if err := op.call(t.Context(), c, key, time.Millisecond); err != nil {
						t.Fatalf("%s with ttl 1ms: %v", op.name, err)
					}
					if got := c.Stats(); got.Active != 1 {
						t.Errorf("after a valid %s, Stats = %+v, want one connection", op.name, got)
					}
				})
			}
		}
	})
}

func TestClientDel(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
		if err := c.Set(t.Context(), key, "v", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := c.Del(t.Context(), key); err != nil {
			t.Fatalf("Del: %v", err)
		}
		if exists(t, raw, key) {
			t.Error("key exists after Del")
		}
		if err := c.Del(t.Context(), key); err != nil {
			t.Errorf("Del of a missing key: %v", err)
		}
	})
}

func TestClientPing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		if err := sharedClient(t, tr).Ping(t.Context()); err != nil {
			t.Errorf("Ping: %v", err)
		}
	})
}

func TestClientCommandsFailAfterClose(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, err := redigo.NewClient(options(redistest.SharedURL(t), tr))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := c.Ping(t.Context()); err == nil {
			t.Error("Ping after Close: no error")
		}
		if got := c.Stats(); got != (redigo.PoolStats{}) {
			t.Errorf("Stats after Close = %+v, want none", got)
		}
	})
}

func TestNewClientRejectsBadURLsWithoutLeakingThePassword(t *testing.T) {
	const secret = "s3cret-Passw0rd"
	tests := []struct {
		name string
		give string
	}{
		{name: "not a URL", give: "redis://:" + secret + "@127.0.0.1:6379/%zz"},
		{name: "http scheme", give: "http://:" + secret + "@127.0.0.1:6379"},
		{name: "no scheme", give: "user:" + secret + "@127.0.0.1:6379"},
		{name: "unix scheme", give: "unix://:" + secret + "@/tmp/redis.sock"},
	}
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := redigo.NewClient(redigo.Options{URL: tt.give, Pipeline: tr == pipeline})
				if err == nil {
					t.Fatalf("NewClient(%q): no error", tt.give)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("NewClient error %q holds the password", err)
				}
			})
		}
	})
}

// TestClientStatsCountActiveAndIdleConnections runs on the pool only: it
// counts a connection per concurrent command and the idle ones kept, which
// the pipeline, sharing a fixed few, has neither of.
func TestClientStatsCountActiveAndIdleConnections(t *testing.T) {
	const n = 3
	srv := newGatedServer(t)
	o := options(srv.URL, pool)
	o.TestIdleAfter = time.Hour // no PING on borrow: the server answers PONG to anything
	c := newClient(t, o)
	if got := c.Stats(); got != (redigo.PoolStats{}) {
		t.Fatalf("Stats of a new client = %+v, want none", got)
	}

	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { errs[i] = c.Ping(t.Context()) })
	}
	deadline := time.Now().Add(testTimeout)
	for srv.Accepted() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the server accepted %d of %d connections", srv.Accepted(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, want := c.Stats(), (redigo.PoolStats{Active: n, Idle: 0}); got != want {
		t.Errorf("Stats during %d pings = %+v, want %+v", n, got, want)
	}
	srv.Open()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if got, want := c.Stats(), (redigo.PoolStats{Active: n, Idle: n}); got != want {
		t.Errorf("Stats after %d pings = %+v, want %+v", n, got, want)
	}
	for range 10 {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.Stats(), (redigo.PoolStats{Active: n, Idle: n}); got != want {
		t.Errorf("Stats after reusing idle connections = %+v, want %+v", got, want)
	}
}

// TestClientStatsOnARealServer runs on the pool only: the pipeline keeps no
// idle connections to count.
func TestClientStatsOnARealServer(t *testing.T) {
	c := newClient(t, options(redistest.SharedURL(t), pool))
	for range 5 {
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := c.Stats(), (redigo.PoolStats{Active: 1, Idle: 1}); got != want {
		t.Errorf("Stats after sequential pings = %+v, want %+v", got, want)
	}
}

// The timeouts below are short, the margin generous: the tests check that
// a call is bounded, not how fast it is.
const shortTimeout = 300 * time.Millisecond

func shortTimeouts(url string, tr transport) redigo.Options {
	return redigo.Options{URL: url, DialTimeout: shortTimeout, ReadTimeout: shortTimeout, WriteTimeout: shortTimeout, MaxIdle: 4, Pipeline: tr == pipeline}
}

// commands are the client's and the stores' calls, each as one function, for
// tests that check every call fails the same way.
var commands = []struct {
	name string
	call func(ctx context.Context, c *redigo.Client) error
}{
	{name: "Ping", call: func(ctx context.Context, c *redigo.Client) error { return c.Ping(ctx) }},
	{name: "Get", call: func(ctx context.Context, c *redigo.Client) error {
		_, _, err := c.Get(ctx, "k")
		return err
	}},
	{name: "Set", call: func(ctx context.Context, c *redigo.Client) error { return c.Set(ctx, "k", "v", time.Minute) }},
	{name: "LockToken", call: func(ctx context.Context, c *redigo.Client) error {
		_, err := redigo.NewTokenStore(c).LockToken(ctx, "tenant", "owner", time.Second)
		return err
	}},
	{name: "UnlockToken", call: func(ctx context.Context, c *redigo.Client) error {
		return redigo.NewTokenStore(c).UnlockToken(ctx, "tenant", "owner")
	}},
	{name: "Del", call: func(ctx context.Context, c *redigo.Client) error { return c.Del(ctx, "k") }},
	{name: "GetToken", call: func(ctx context.Context, c *redigo.Client) error {
		_, _, err := redigo.NewTokenStore(c).GetToken(ctx, "tenant")
		return err
	}},
	{name: "PutToken", call: func(ctx context.Context, c *redigo.Client) error {
		return redigo.NewTokenStore(c).PutToken(ctx, "tenant", secretToken, time.Minute)
	}},
	{name: "DeleteToken", call: func(ctx context.Context, c *redigo.Client) error {
		return redigo.NewTokenStore(c).DeleteToken(ctx, "tenant")
	}},
	{name: "Claim", call: func(ctx context.Context, c *redigo.Client) error {
		_, err := redigo.NewDedupeStore(c).Claim(ctx, "tenant", "msg", "owner", time.Minute)
		return err
	}},
	{name: "Commit", call: func(ctx context.Context, c *redigo.Client) error {
		_, err := redigo.NewDedupeStore(c).Commit(ctx, "tenant", "msg", "owner", time.Hour)
		return err
	}},
	{name: "Release", call: func(ctx context.Context, c *redigo.Client) error {
		_, err := redigo.NewDedupeStore(c).Release(ctx, "tenant", "msg", "owner")
		return err
	}},
}

// checkBoundedFailure runs call and fails t unless it returns an error
// within limit, and one that holds no secret.
func checkBoundedFailure(t *testing.T, limit time.Duration, call func() error) {
	t.Helper()
	start := time.Now()
	err := call()
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("no error")
	}
	t.Logf("failed after %v: %v", elapsed.Round(time.Millisecond), err)
	if elapsed > limit {
		t.Errorf("failed after %v, want within %v: %v", elapsed, limit, err)
	}
	if strings.Contains(err.Error(), secretToken.AccessToken) {
		t.Errorf("error %q holds the token", err)
	}
}

func TestCommandsOnAClosedPortFailWithinDialTimeout(t *testing.T) {
	checkCommandsFailWithinTimeout(t, redistest.ClosedAddr(t))
}

func TestCommandsOnAHungServerFailWithinReadTimeout(t *testing.T) {
	checkCommandsFailWithinTimeout(t, redistest.HungAddr(t))
}

// checkCommandsFailWithinTimeout runs every command against addr on both
// transports with short timeouts: each must fail within them.
func checkCommandsFailWithinTimeout(t *testing.T, addr string) {
	t.Helper()
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, cmd := range commands {
			t.Run(cmd.name, func(t *testing.T) {
				t.Parallel()
				c := newClient(t, shortTimeouts("redis://"+addr, tr))
				checkBoundedFailure(t, shortTimeout+margin, func() error { return cmd.call(t.Context(), c) })
			})
		}
	})
}

func TestContextDeadlineShortensTheReadTimeout(t *testing.T) {
	url := "redis://" + redistest.HungAddr(t)
	forEachTransport(t, func(t *testing.T, tr transport) {
		for _, cmd := range commands {
			t.Run(cmd.name, func(t *testing.T) {
				t.Parallel()
				c := newClient(t, redigo.Options{URL: url, DialTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: time.Minute, Pipeline: tr == pipeline})
				ctx, cancel := context.WithTimeout(t.Context(), shortTimeout)
				defer cancel()
				checkBoundedFailure(t, shortTimeout+margin, func() error { return cmd.call(ctx, c) })
			})
		}
	})
}

// TestCancelledContextSendsNothing makes calls whose context has ended
// already: none reaches Redis. Pings on a live context afterwards, more
// than there are connections, pass every command queued before them.
func TestCancelledContextSendsNothing(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, raw, key := sharedClient(t, tr), rawConn(t), testKey(t)
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		const calls = 50
		for i := range calls {
			if err := c.Set(ctx, fmt.Sprintf("%s-%d", key, i), "v", time.Minute); !errors.Is(err, context.Canceled) {
				t.Fatalf("Set with a cancelled context = %v, want context.Canceled", err)
			}
		}
		for range 8 {
			if err := c.Ping(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for i := range calls {
			if k := fmt.Sprintf("%s-%d", key, i); exists(t, raw, k) {
				t.Fatalf("%s was stored by a call whose context had ended", k)
			}
		}
	})
}

func TestCancelledContextReturnsPromptly(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		t.Run("cancelled before the call, working server", func(t *testing.T) {
			c := sharedClient(t, tr)
			if err := c.Ping(t.Context()); err != nil { // an idle connection to reuse
				t.Fatal(err)
			}
			for _, cmd := range commands {
				t.Run(cmd.name, func(t *testing.T) {
					ctx, cancel := context.WithCancel(t.Context())
					cancel()
					checkBoundedFailure(t, margin, func() error {
						err := cmd.call(ctx, c)
						if err != nil && !errors.Is(err, context.Canceled) {
							t.Errorf("error %q is not context.Canceled", err)
						}
						return err
					})
				})
			}
		})

		t.Run("cancelled during the call, hung server, no timeouts", func(t *testing.T) {
			url := "redis://" + redistest.HungAddr(t)
			for _, cmd := range commands {
				t.Run(cmd.name, func(t *testing.T) {
					t.Parallel()
					c := newClient(t, redigo.Options{URL: url, Pipeline: tr == pipeline}) // no timeout at all: only ctx ends the call
					ctx, cancel := context.WithCancel(t.Context())
					timer := time.AfterFunc(shortTimeout, cancel)
					defer timer.Stop()
					checkBoundedFailure(t, shortTimeout+margin, func() error {
						err := cmd.call(ctx, c)
						if err != nil && !errors.Is(err, context.Canceled) {
							t.Errorf("error %q is not context.Canceled", err)
						}
						return err
					})
				})
			}
		})
	})
}

// TestDialTimeoutBoundsTheTLSHandshake checks that a server that accepts
// but never completes the TLS handshake fails the dial within DialTimeout,
// however long the read timeout.
func TestDialTimeoutBoundsTheTLSHandshake(t *testing.T) {
	url := "rediss://" + redistest.HungAddr(t)
	forEachTransport(t, func(t *testing.T, tr transport) {
		c := newClient(t, redigo.Options{URL: url, DialTimeout: shortTimeout, ReadTimeout: time.Minute, WriteTimeout: time.Minute, Pipeline: tr == pipeline})
		checkBoundedFailure(t, shortTimeout+margin, func() error { return c.Ping(t.Context()) })
	})
}
