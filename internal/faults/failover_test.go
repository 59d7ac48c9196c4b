package faults_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// masterName is the name the sentinels of these scenarios monitor.
const masterName = "connectorcache"

// noFailover is a down-after long enough that the sentinels never start a
// failover the scenario did not ask for.
const noFailover = time.Minute

// topology is a primary with one replica, and the sentinels watching them
// when the scenario has any; or a primary of a Redis Cluster with its
// replica.
type topology struct {
	primary, replica *redistest.Server
	sentinels        []*redistest.Server
	// serves, when not nil, reports whether primary serves a key: on a
	// cluster, it serves only its slots. Nil means every key.
	serves func(key string) bool
}

// newTopology starts a primary, a replica in sync with it and, unless
// sentinels is 0, that many sentinels (quorum 2) that know each other and
// the replica, and think a server down after downAfter without an answer.
func newTopology(t *testing.T, sentinels int, downAfter time.Duration) *topology {
	t.Helper()
	top := &topology{primary: redistest.Start(t)}
	top.replica = redistest.StartReplica(t, top.primary)
	for range sentinels {
		top.sentinels = append(top.sentinels, redistest.StartSentinel(t, redistest.SentinelOptions{
			Master:     masterName,
			MasterAddr: top.primary.Addr(),
			Quorum:     2,
			DownAfter:  downAfter,
		}))
	}
	if sentinels > 0 {
		redistest.WaitSentinels(t, masterName, top.sentinels...)
	}
	return top
}

// sentinelConfig is the module configuration of a scenario on top's
// sentinels.
func (top *topology) sentinelConfig(t *testing.T, config configFunc) app.Config {
	t.Helper()
	// The URL's host is not used with Sentinel: the sentinels name it.
	cfg := config(t, "redis://primary.invalid:6379")
	cfg.Redis.Sentinel.Master = masterName
	for _, s := range top.sentinels {
		cfg.Redis.Sentinel.Addrs = append(cfg.Redis.Sentinel.Addrs, s.Addr())
	}
	return cfg
}

// commitReplicated has e claim and commit n messages of tenant, then waits
// until the replica acknowledged every write (WAIT): what a failover must
// not forget.
func commitReplicated(t *testing.T, e *env, primary *redistest.Server, tenant string, n int) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("wamid.committed.%d", i)
		c, err := e.mod.Dedupe.Claim(ctx, tenant, ids[i])
		if err != nil || c.Status() != domain.ClaimNew {
			t.Fatalf("claim %s before the failover: %v, %v", ids[i], c.Status(), err)
		}
		if err := c.Commit(ctx); err != nil {
			t.Fatalf("commit %s before the failover: %v", ids[i], err)
		}
	}
	acked, err := redis.Int(primary.Do(t, nil, "WAIT", 1, 5000), nil)
	if err != nil || acked != 1 {
		t.Fatalf("WAIT 1 = %d, %v: the replica did not acknowledge the commits", acked, err)
	}
	return ids
}

// letThrough counts the messages of ids that a fresh module, with no
// memory of its own, would let through again: their commits were lost.
func letThrough(t *testing.T, cfg app.Config, tenant string, ids []string) int {
	t.Helper()
	fresh := newEnv(t, cfg)
	n := 0
	for _, id := range ids {
		c, err := fresh.mod.Dedupe.Claim(context.Background(), tenant, id)
		if err != nil {
			t.Fatalf("claim %s after the failover: %v", id, err)
		}
		if c.Status() == domain.ClaimNew {
			n++
		}
	}
	if s := fresh.mod.Stats(); s.FailOpen["claim"] != 0 {
		t.Fatalf("the fresh module failed open %d times: it did not check Redis", s.FailOpen["claim"])
	}
	return n
}

// waitRole waits until srv says it is a primary, and returns when.
func waitRole(ctx context.Context, srv *redistest.Server) (time.Time, bool) {
	for ctx.Err() == nil {
		if role(srv) == "master" {
			return time.Now(), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

func role(srv *redistest.Server) string {
	r, err := redis.Values(adminDo(srv, nil, "ROLE"))
	if err != nil || len(r) == 0 {
		return ""
	}
	name, _ := redis.String(r[0], nil)
	return name
}

// landed claims fresh messages of its own tenant through e until one is
// written on srv, and returns when. Only messages whose key serves
// accepts are claimed; nil serves accepts all.
func landed(ctx context.Context, e *env, srv *redistest.Server, serves func(key string) bool) (time.Time, bool) {
	var seq atomic.Int64
	for ctx.Err() == nil {
		id := "wamid.probe." + strconv.FormatInt(seq.Add(1), 10)
		key := redigo.DedupeKey("probe", id)
		if serves != nil && !serves(key) {
			continue
		}
		if _, err := e.mod.Dedupe.Claim(ctx, "probe", id); err == nil && exists(srv, key) {
			return time.Now(), true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Time{}, false
}

func exists(srv *redistest.Server, key string) bool {
	n, _ := redis.Int(adminDo(srv, nil, "EXISTS", key))
	return n == 1
}

// failedOpen counts the calls e answered without Redis.
func failedOpen(e *env) uint64 {
	var n uint64
	for _, v := range e.mod.Stats().FailOpen {
		n += v
	}
	return n
}

// failover is what one failover scenario measured.
type failover struct {
	// promotion is how long the replica took to become the primary after
	// the fault; resumed, how long after that the module's writes landed
	// on it.
	promotion, resumed time.Duration
	done               bool
}

func (f failover) note() string {
	if !f.done {
		return "writes never landed on the new primary"
	}
	return fmt.Sprintf("promoted %s after the fault, writes on it %s after that", fmtDur(f.promotion), fmtDur(f.resumed))
}

// followFailover runs fault, then measures how long top's replica took to
// be promoted and the module's writes to land on it.
func followFailover(ctx context.Context, e *env, top *topology, fault func() error) (failover, error) {
	if err := fault(); err != nil {
		return failover{}, err
	}
	faultAt := time.Now()
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	promotedAt, ok := waitRole(wait, top.replica)
	if !ok {
		return failover{}, nil
	}
	landedAt, ok := landed(wait, e, top.replica, top.serves)
	return failover{promotion: promotedAt.Sub(faultAt), resumed: landedAt.Sub(promotedAt), done: ok}, nil
}

// runFailover is one failover scenario under load: e commits messages and
// waits for the replica to have them, then 10 workers claim and commit
// for about span while fault runs 1s in; a fresh module then checks the
// commits made before it. It reports the row and fails t as checkFailover
// does with bound.
func runFailover(t *testing.T, e *env, cfg app.Config, top *topology, name string, span, bound time.Duration, fault func() error) {
	t.Helper()
	committed := commitReplicated(t, e, top.primary, "committed", size(20, 200))
	const workers = 10
	ts := tenants("failover", 2)
	messages := size(500, 4000) / len(ts)
	var (
		f        failover
		faultErr error
	)
	o := e.run(t, name, run{
		tenants:  ts,
		messages: messages,
		workers:  workers,
		deliver:  pace(span, messages*len(ts), workers),
		during: func(ctx context.Context) {
			time.Sleep(time.Second)
			f, faultErr = followFailover(ctx, e, top, fault)
		},
	})
	if faultErr != nil {
		t.Fatalf("the fault: %v", faultErr)
	}
	again := letThrough(t, cfg, "committed", committed)
	o.note = fmt.Sprintf("%s; calls failed open: %d; committed let through again: %d", f.note(), failedOpen(e), again)
	report(o.row)
	checkFailover(t, o, f, again, bound)
}

// checkFailover fails t when a failover scenario lost a message, let a
// committed one through again, or did not resume writes within bound.
func checkFailover(t *testing.T, o outcome, f failover, again int, bound time.Duration) {
	t.Helper()
	checkNoLoss(t, o)
	if again != 0 {
		t.Errorf("%d messages committed (and replicated) before the failover were let through again", again)
	}
	if !f.done {
		t.Fatal("the module's writes never landed on the new primary")
	}
	if *full && f.resumed > bound {
		t.Errorf("writes landed on the new primary %v after the promotion, want ≤ %v", f.resumed, bound)
	}
}

func TestSentinelFailover(t *testing.T) {
	tests := []struct {
		name string
		// downAfter is the sentinels' down-after: 1s where they must
		// notice the fault, long where a loaded machine's stall must not
		// start a failover of its own.
		downAfter time.Duration
		fault     func(top *topology) error
	}{
		{
			name:      "Sentinel, master SIGKILL under load",
			downAfter: time.Second,
			fault:     func(top *topology) error { top.primary.Kill(); return nil },
		},
		{
			name:      "Sentinel, SENTINEL FAILOVER (graceful) under load",
			downAfter: noFailover,
			fault: func(top *topology) error {
				_, err := adminDo(top.sentinels[0], nil, "SENTINEL", "FAILOVER", masterName)
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachTransport(t, func(t *testing.T, config configFunc) {
				leakCheck(t)
				top := newTopology(t, 3, tt.downAfter)
				cfg := top.sentinelConfig(t, config)
				e := newEnv(t, cfg)
				runFailover(t, e, cfg, top, tt.name, 8*time.Second, 3*time.Second, func() error { return tt.fault(top) })
				if s := e.mod.Stats().Primary; s.Addr != top.replica.Addr() || s.Failovers != 1 {
					t.Errorf("Stats().Primary = %+v, want the replica %s after 1 failover", s, top.replica.Addr())
				}
				if e.logs.FilterMessageSnippet("redis failover followed").Len() != 1 {
					t.Error("the failover followed was not logged once")
				}
			})
		})
	}
}

func TestEndpointFailover(t *testing.T) {
	const name = "managed endpoint failover: replica promoted, endpoint moved, old primary demoted"
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		top := newTopology(t, 0, 0)
		endpoint := redistest.NewProxy(t, top.primary.Addr())
		cfg := config(t, endpoint.URL())
		e := newEnv(t, cfg)
		runFailover(t, e, cfg, top, name, 6*time.Second, 5*time.Second, func() error {
			// As a managed service fails over: promote the replica, point
			// the endpoint at it, demote the old primary. Open
			// connections keep their server.
			if _, err := adminDo(top.replica, nil, "REPLICAOF", "NO", "ONE"); err != nil {
				return err
			}
			endpoint.Route(top.replica.Addr())
			_, err := adminDo(top.primary, nil, "REPLICAOF", "127.0.0.1", strconv.Itoa(top.replica.Port))
			return err
		})
		if s := e.mod.Stats().Primary; s.Failovers < 1 {
			t.Errorf("Stats().Primary = %+v, want at least 1 failover followed", s)
		}
	})
}

func TestSentinelsDownThenBack(t *testing.T) {
	const name = "all sentinels down, connections dropped, sentinels back 1.5s later"
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		top := newTopology(t, 3, noFailover)
		e := newEnv(t, top.sentinelConfig(t, config))

		var (
			recovery time.Duration
			back     bool
			err      error
		)
		o := e.run(t, name, run{
			tenants:  tenants("sentinels", 2),
			messages: size(500, 2000),
			workers:  10,
			deliver:  pace(5*time.Second, 2*size(500, 2000), 10),
			during: func(ctx context.Context) {
				time.Sleep(time.Second)
				for _, s := range top.sentinels {
					s.Kill()
				}
				// Every connection must be dialed again, and no sentinel
				// can say where to.
				if _, err = adminDo(top.primary, nil, "CLIENT", "KILL", "TYPE", "normal"); err != nil {
					return
				}
				time.Sleep(1500 * time.Millisecond)
				for _, s := range top.sentinels {
					if err = s.Relaunch(); err != nil {
						return
					}
				}
				relaunched := time.Now()
				wait, cancel := context.WithTimeout(ctx, 15*time.Second)
				defer cancel()
				var at time.Time
				if at, back = landed(wait, e, top.primary, nil); back {
					recovery = at.Sub(relaunched)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		o.note = fmt.Sprintf("Redis used again %s after the sentinels came back", fmtDur(recovery))
		report(o.row)
		checkNoLoss(t, o)
		if !back {
			t.Fatal("Redis not used again within 15s of the sentinels' return")
		}
		if !e.loggedError(redigo.ErrNoSentinel.Error()) {
			t.Error("no warning said that no sentinel was reachable")
		}
	})
}
