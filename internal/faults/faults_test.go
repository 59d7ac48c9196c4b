// Package faults_test injects Redis failures under load and checks that the
// module keeps its promises: no message lost, no error reaching a caller,
// bounded latency, automatic recovery, bounded load on the auth service.
//
// Every scenario runs against real redis-server processes started, killed
// and restarted by the tests, some behind a TCP proxy that hangs or cuts
// connections. `make test` runs the suite at a small size and checks what
// does not depend on the machine's speed: nothing lost, no error reaching
// a caller, recovery, bounded warnings and auth calls, no leak. `make
// test-faults` runs it at full size (-full), prints the table, and also
// asserts the latency and recovery-time figures.
package faults_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/goleak"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

var full = flag.Bool("full", false, "run the fault scenarios at full size")

// size picks the short or the full figure.
func size(short, fullSize int) int {
	if *full {
		return fullSize
	}
	return short
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	printTable()
	os.Exit(code)
}

// leakCheck fails t when goroutines started during it outlive it.
func leakCheck(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// recovered waits until the breaker is closed and Redis holds keys again,
// and returns how long that took from since.
func recovered(ctx context.Context, e *env, srv *redistest.Server, opts []redis.DialOption, since time.Time) (time.Duration, bool) {
	for ctx.Err() == nil {
		if e.mod.Stats().Breaker == app.BreakerClosed && dbsize(srv, opts) > 0 {
			return time.Since(since), true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, false
}

func dbsize(srv *redistest.Server, opts []redis.DialOption) int {
	n, _ := redis.Int(adminDo(srv, opts, "DBSIZE"))
	return n
}

// adminDo runs one command on srv over a fresh connection, for a test's
// own checks: unlike srv.Do it may run outside the test's goroutine, and
// returns its error.
func adminDo(srv *redistest.Server, opts []redis.DialOption, cmd string, args ...any) (any, error) {
	c, err := redis.Dial("tcp", srv.Addr(), append(opts, redis.DialConnectTimeout(200*time.Millisecond),
		redis.DialReadTimeout(time.Second))...)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Do(cmd, args...)
}

// pace returns how long processing one message must take for a run of n
// messages by workers to last about d. Duplicates are skipped, not
// processed: only the first delivery of each message takes that long.
func pace(d time.Duration, messages, workers int) time.Duration {
	return d * time.Duration(workers) / time.Duration(messages)
}

func TestKillAndRestart(t *testing.T) {
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		srv := redistest.Start(t)
		e := newEnv(t, config(t, srv.URL()))

		const workers = 50
		ts := tenants("kill", 5)
		messages := size(2000, 10000) / len(ts)
		var (
			restartedAt time.Time
			recovery    time.Duration
			back        bool
			restartErr  error
		)
		o := e.run(t, "SIGKILL mid-run, restart 2s later", run{
			tenants:  ts,
			messages: messages,
			workers:  workers,
			deliver:  pace(6*time.Second, messages*len(ts), workers),
			during: func(ctx context.Context) {
				time.Sleep(time.Second)
				srv.Kill()
				time.Sleep(2 * time.Second)
				if restartErr = srv.Relaunch(); restartErr != nil {
					return
				}
				restartedAt = time.Now()
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				recovery, back = recovered(wait, e, srv, nil, restartedAt)
			},
		})
		if restartErr != nil {
			t.Fatal(restartErr)
		}
		o.note = fmt.Sprintf("Redis used again %s after restart", fmtDur(recovery))
		report(o.row)
		checkNoLoss(t, o)
		if !back {
			t.Fatalf("Redis not used again within 10s of its restart (breaker %s)", e.mod.Stats().Breaker)
		}
		if *full && recovery > 2*time.Second {
			t.Errorf("Redis used again %v after restart, want ≤ 2s", recovery)
		}
	})
}

func TestHungRedis(t *testing.T) {
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		srv := redistest.Start(t)
		px := redistest.NewProxy(t, srv.Addr())
		cfg := config(t, px.URL())
		e := newEnv(t, cfg)
		ctx := context.Background()
		if _, err := e.mod.Dedupe.Claim(ctx, "hung", "wamid.warm"); err != nil {
			t.Fatal(err)
		}
		px.Hang()

		var seq atomic.Int64
		claim := func() (time.Duration, bool) {
			id := fmt.Sprintf("wamid.hung.%d", seq.Add(1))
			start := time.Now()
			c, err := e.mod.Dedupe.Claim(ctx, "hung", id)
			took := time.Since(start)
			return took, err == nil && c.Status() == domain.ClaimNew
		}
		// Until the breaker opens, every call waits for its read timeout.
		closed := measure(10, func() bool { return e.mod.Stats().Breaker == app.BreakerOpen }, 0, claim)
		closed.scenario, closed.transport = "hung Redis, before the breaker opens (per claim)", e.transport
		report(closed.row)
		// Once open, calls skip Redis; a probe every cooldown still waits.
		open := measure(2, nil, 1500*time.Millisecond, claim)
		open.scenario, open.transport = "hung Redis, breaker open (per claim)", e.transport
		report(open.row)

		for _, o := range []outcome{closed, open} {
			checkNoLoss(t, o)
		}
		if !*full {
			return // the latency figures are asserted by make test-faults
		}
		if bound := cfg.Redis.ReadTimeout + 50*time.Millisecond; closed.p99 > bound {
			t.Errorf("p99 before the breaker opened = %v, want ≤ read timeout %v (+50ms scheduling)", closed.p99, cfg.Redis.ReadTimeout)
		}
		if open.p99 > time.Millisecond {
			t.Errorf("p99 with the breaker open = %v, want ≤ 1ms", open.p99)
		}
	})
}

// measure runs op from workers goroutines until stop says so (checked
// between calls) or for d, and summarizes the calls.
func measure(workers int, stop func() bool, d time.Duration, op func() (time.Duration, bool)) outcome {
	var (
		mu   sync.Mutex
		lats []time.Duration
		ok   int
		wg   sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for (stop == nil || !stop()) && (d == 0 || time.Now().Before(deadline)) {
				took, granted := op()
				mu.Lock()
				lats = append(lats, took)
				if granted {
					ok++
				}
				n := len(lats)
				mu.Unlock()
				if d == 0 && n > 10000 {
					return
				}
			}
		}()
	}
	wg.Wait()
	var o outcome
	o.messages, o.processed, o.lost = len(lats), ok, len(lats)-ok
	slices.Sort(lats)
	o.p50, o.p99 = percentile(lats, 50), percentile(lats, 99)
	if len(lats) > 0 {
		o.max = lats[len(lats)-1]
	}
	return o
}

func TestErrorReplies(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T) (url string, srv *redistest.Server)
	}{
		{
			name: "OOM: maxmemory tiny, noeviction",
			setup: func(t *testing.T) (string, *redistest.Server) {
				srv := redistest.Start(t, "--maxmemory-policy", "noeviction")
				srv.Do(t, nil, "CONFIG", "SET", "maxmemory", "1")
				return srv.URL(), srv
			},
		},
		{
			name: "NOPERM: ACL user without permission",
			setup: func(t *testing.T) (string, *redistest.Server) {
				srv := redistest.Start(t)
				srv.Do(t, nil, "ACL", "SETUSER", "limited", "on", ">limited-pw", "resetkeys", "-@all", "+ping", "+auth", "+hello")
				return "redis://limited:limited-pw@" + srv.Addr(), srv
			},
		},
		{
			name: "READONLY: replica with replica-read-only yes",
			setup: func(t *testing.T) (string, *redistest.Server) {
				primary := redistest.Start(t)
				replica := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(primary.Port), "--replica-read-only", "yes")
				return replica.URL(), replica
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, config configFunc) {
				leakCheck(t)
				url, _ := tt.setup(t)
				e := newEnv(t, config(t, url))
				o := e.run(t, tt.name, run{tenants: tenants("err", 2), messages: size(500, 2000), workers: 20})
				o.note = "breaker " + string(e.mod.Stats().Breaker)
				report(o.row)
				checkNoLoss(t, o)
				if o.duplicates != 0 {
					t.Errorf("%d duplicates processed: the local record should catch them", o.duplicates)
				}
				if limit := 10; o.warnings > limit {
					t.Errorf("%d warnings for %d messages, want ≤ %d (rate-limited)", o.warnings, o.messages, limit)
				}
				if o.warnings == 0 {
					t.Error("no warning logged")
				}
				checkNoSecret(t, e.logs, "limited-pw")
			})
		})
	}
}

func TestWrongPasswordAtStartup(t *testing.T) {
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		const right, wrong = "right-pw-1f3a", "wrong-pw-9c2e"
		srv := redistest.Start(t, "--requirepass", right)
		cfg := config(t, srv.URL())
		cfg.Redis.Password = wrong
		e := newEnv(t, cfg)

		startup := e.logs.FilterMessageSnippet("unreachable at startup")
		if startup.Len() != 1 {
			t.Fatalf("startup warnings = %d, want 1", startup.Len())
		}
		if msg := fmt.Sprint(startup.All()[0].ContextMap()); !strings.Contains(msg, "WRONGPASS") {
			t.Errorf("startup warning does not say the password was refused: %s", msg)
		}

		var (
			recovery time.Duration
			back     bool
		)
		admin := []redis.DialOption{redis.DialPassword(right)}
		o := e.run(t, "wrong password at startup, fixed by ACL 1s later", run{
			tenants:  tenants("pw", 2),
			messages: size(500, 2000),
			workers:  10,
			deliver:  pace(4*time.Second, 2*size(500, 2000), 10),
			during: func(ctx context.Context) {
				time.Sleep(time.Second)
				// The operator adds the password the service was given.
				c, err := redis.Dial("tcp", srv.Addr(), admin...)
				if err != nil {
					return
				}
				_, err = c.Do("ACL", "SETUSER", "default", "on", ">"+wrong)
				c.Close()
				if err != nil {
					return
				}
				fixed := time.Now()
				wait, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				recovery, back = recovered(wait, e, srv, admin, fixed)
			},
		})
		o.note = fmt.Sprintf("Redis used again %s after the fix", fmtDur(recovery))
		report(o.row)
		checkNoLoss(t, o)
		if !back {
			t.Fatal("Redis not used again within 10s of the password fix")
		}
		if e.logs.FilterMessageSnippet("unreachable at startup").Len() != 1 {
			t.Error("the startup warning was logged again")
		}
		checkNoSecret(t, e.logs, right)
		checkNoSecret(t, e.logs, wrong)
	})
}

func TestOutageAuthCalls(t *testing.T) {
	const tenantCount = 10
	tests := []struct {
		name string
		warm bool
	}{
		{name: "Redis killed after warm-up", warm: true},
		{name: "Redis down from the start", warm: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, config configFunc) {
				leakCheck(t)
				srv := redistest.Start(t)
				e := newEnv(t, config(t, srv.URL()))
				ts := tenants("outage", tenantCount)
				if tt.warm {
					for _, tn := range ts {
						if _, err := e.mod.Tokens.Token(context.Background(), tn); err != nil {
							t.Fatal(err)
						}
					}
				}
				srv.Kill()
				before := e.auth.calls.Load()
				o := e.run(t, fmt.Sprintf("outage, %d tenants × 1,000 messages: %s", tenantCount, tt.name),
					run{tenants: ts, messages: 1000, workers: 50})
				during := int(e.auth.calls.Load() - before)
				o.authCalls = during
				o.note = "auth calls during the outage"
				report(o.row)
				checkNoLoss(t, o)
				if during > tenantCount {
					t.Errorf("auth calls during the outage = %d, want ≤ %d", during, tenantCount)
				}
			})
		})
	}
}

func TestCutConnections(t *testing.T) {
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		srv := redistest.Start(t)
		px := redistest.NewProxy(t, srv.Addr())
		e := newEnv(t, config(t, px.URL()))
		cuts := 0
		o := e.run(t, "connections cut every 300ms", run{
			tenants:  tenants("cut", 2),
			messages: size(1000, 5000),
			workers:  20,
			deliver:  pace(3*time.Second, 2*size(1000, 5000), 20),
			during: func(ctx context.Context) {
				for i := 0; i < 8 && ctx.Err() == nil; i++ {
					time.Sleep(300 * time.Millisecond)
					px.Cut()
					cuts++
				}
			},
		})
		o.note = fmt.Sprintf("%d cuts", cuts)
		report(o.row)
		checkNoLoss(t, o)
	})
}
