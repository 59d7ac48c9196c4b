package faults_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// clusterConfig is the module configuration of a scenario on the Redis
// Cluster whose seed nodes are seeds.
func clusterConfig(t *testing.T, config configFunc, seeds []string) app.Config {
	t.Helper()
	// The URL gives the scheme and credentials only: the seeds name the
	// nodes.
	cfg := config(t, "redis://")
	cfg.Redis.Cluster.Addrs = seeds
	return cfg
}

// firstRange returns a function reporting whether a key's slot is among
// those cl.Primaries[0] served when the cluster started: the first third.
func firstRange(t *testing.T, cl *redistest.Cluster) func(key string) bool {
	t.Helper()
	last := 16384/len(cl.Primaries) - 1
	for _, slot := range []int{0, last} {
		if cl.Owner(t, slot) != cl.Primaries[0] {
			t.Fatalf("slot %d is not served by the first primary", slot)
		}
	}
	return func(key string) bool { return redigo.Slot(key) <= last }
}

// claimed has e claim n messages of tenant whose keys pick accepts, and
// commit them unless hold; it returns their ids and, when held, the claims.
func claimed(t *testing.T, e *env, tenant string, n int, pick func(key string) bool, hold bool) ([]string, []*domain.Claim) {
	t.Helper()
	var (
		ids    []string
		claims []*domain.Claim
	)
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("wamid.%s.%d", tenant, i)
		if !pick(redigo.DedupeKey(tenant, id)) {
			continue
		}
		c, err := e.mod.Dedupe.Claim(context.Background(), tenant, id)
		if err != nil || c.Status() != domain.ClaimNew {
			t.Fatalf("claim %s: %v, %v", id, c.Status(), err)
		}
		if hold {
			claims = append(claims, c)
		} else if err := c.Commit(context.Background()); err != nil {
			t.Fatalf("commit %s: %v", id, err)
		}
		ids = append(ids, id)
	}
	return ids, claims
}

// checkUntouched fails t unless the run went as on a healthy Redis: no
// message lost, no error reaching a caller, no duplicate processed, no
// call failed open.
func checkUntouched(t *testing.T, e *env, o outcome) {
	t.Helper()
	checkNoLoss(t, o)
	if o.duplicates != 0 {
		t.Errorf("%s: %d duplicates processed", o.scenario, o.duplicates)
	}
	if n := failedOpen(e); n != 0 {
		t.Errorf("%s: %d calls failed open", o.scenario, n)
	}
}

// TestClusterResharding moves slots holding committed messages, claims in
// flight and a claim held throughout from one primary to another, while 10
// workers claim and commit: every redirect is followed, nothing fails open,
// and afterwards every message is still done and the held claim still
// exclusive.
func TestClusterResharding(t *testing.T) {
	const name = "Redis Cluster: slots holding live claims resharded under load"
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		cl := redistest.StartCluster(t, redistest.ClusterOptions{})
		cfg := clusterConfig(t, config, cl.Addrs())
		e := newEnv(t, cfg)
		from, to := cl.Primaries[0], cl.Primaries[1]
		inFrom := firstRange(t, cl)

		committed, _ := claimed(t, e, "committed", size(30, 300), inFrom, false)
		heldIDs, held := claimed(t, e, "held", 1, inFrom, true)
		const workers = 10
		ts := tenants("reshard", 2)
		messages := size(500, 4000) / len(ts)

		// The slots to move: the first primary's that hold a message of
		// the run, a committed one or the held claim.
		var keys []string
		for _, tenant := range ts {
			for i := range messages {
				keys = append(keys, redigo.DedupeKey(tenant, messageID(name, i)))
			}
		}
		for _, id := range committed {
			keys = append(keys, redigo.DedupeKey("committed", id))
		}
		keys = append(keys, redigo.DedupeKey("held", heldIDs[0]))
		var slots []int
		for _, k := range keys {
			if inFrom(k) && !slices.Contains(slots, redigo.Slot(k)) {
				slots = append(slots, redigo.Slot(k))
			}
		}

		var (
			moveErr  error
			moveTook time.Duration
		)
		o := e.run(t, name, run{
			tenants:  ts,
			messages: messages,
			workers:  workers,
			deliver:  pace(6*time.Second, messages*len(ts), workers),
			during: func(context.Context) {
				time.Sleep(500 * time.Millisecond)
				start := time.Now()
				moveErr = cl.MoveSlots(slots, from, to)
				moveTook = time.Since(start)
			},
		})
		if moveErr != nil {
			t.Fatalf("moving the slots: %v", moveErr)
		}
		cs := e.mod.Stats().Cluster
		o.note = fmt.Sprintf("%d slots moved in %s; MOVED %d, ASK %d, map read %d times; calls failed open: %d",
			len(slots), fmtDur(moveTook), cs.Moved, cs.Asked, cs.Refreshes, failedOpen(e))
		report(o.row)
		checkUntouched(t, e, o)
		if cs.Moved+cs.Asked == 0 {
			t.Error("no redirect followed: the move did not happen under the load")
		}

		// A fresh module finds every message done, and the held claim
		// still held; its holder then commits it.
		if n := letThrough(t, cfg, "committed", committed); n != 0 {
			t.Errorf("%d messages committed before the move let through again", n)
		}
		for _, tenant := range ts {
			ids := make([]string, messages)
			for i := range ids {
				ids[i] = messageID(name, i)
			}
			if n := letThrough(t, cfg, tenant, ids); n != 0 {
				t.Errorf("%d messages of %s committed during the move let through again", n, tenant)
			}
		}
		fresh := newEnv(t, cfg)
		c, err := fresh.mod.Dedupe.Claim(context.Background(), "held", heldIDs[0])
		if err != nil || c.Status() != domain.ClaimInFlight {
			t.Errorf("claim of the message held across the move: %v, %v; want in flight", c.Status(), err)
		}
		if err := held[0].Commit(context.Background()); err != nil {
			t.Errorf("commit by the holder after the move: %v", err)
		}
	})
}

// TestClusterPrimaryKilled kills a primary of a cluster with a replica per
// primary under load: the cluster promotes its replica, and the module's
// writes to those slots land on it.
func TestClusterPrimaryKilled(t *testing.T) {
	const name = "Redis Cluster: primary SIGKILL under load, its replica promoted"
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		cl := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: true, NodeTimeout: time.Second})
		cfg := clusterConfig(t, config, cl.Addrs())
		e := newEnv(t, cfg)
		top := &topology{primary: cl.Primaries[0], replica: cl.Replicas[0], serves: firstRange(t, cl)}
		runFailover(t, e, cfg, top, name, 8*time.Second, 3*time.Second, func() error { top.primary.Kill(); return nil })
		var addrs []string
		for _, n := range e.mod.Stats().Cluster.Nodes {
			addrs = append(addrs, n.Addr)
		}
		if !slices.Contains(addrs, top.replica.Addr()) || slices.Contains(addrs, top.primary.Addr()) {
			t.Errorf("primaries in the map %v, want the promoted replica %s in place of %s", addrs, top.replica.Addr(), top.primary.Addr())
		}
	})
}

// TestClusterSeedsDownAtStartup starts the module with seed nodes that
// refuse connections or never answer listed first: the map is read from
// the next one, and nothing fails open.
func TestClusterSeedsDownAtStartup(t *testing.T) {
	const name = "Redis Cluster: first seeds down at startup (one refusing, one hung)"
	forEachTransport(t, func(t *testing.T, config configFunc) {
		leakCheck(t)
		cl := redistest.StartCluster(t, redistest.ClusterOptions{})
		seeds := append([]string{redistest.ClosedAddr(t), redistest.HungAddr(t)}, cl.Addrs()...)
		e := newEnv(t, clusterConfig(t, config, seeds))
		const workers = 10
		ts := tenants("seeds", 2)
		messages := size(200, 2000) / len(ts)
		o := e.run(t, name, run{
			tenants:  ts,
			messages: messages,
			workers:  workers,
			deliver:  pace(2*time.Second, messages*len(ts), workers),
		})
		cs := e.mod.Stats().Cluster
		o.note = fmt.Sprintf("map read from the third seed; %d primaries; calls failed open: %d", len(cs.Nodes), failedOpen(e))
		report(o.row)
		checkUntouched(t, e, o)
		if len(cs.Nodes) != len(cl.Primaries) {
			t.Errorf("%d primaries in the map, want %d", len(cs.Nodes), len(cl.Primaries))
		}
	})
}
