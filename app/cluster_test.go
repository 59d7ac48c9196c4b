package app_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// clusterConfig returns the defaults on the Redis Cluster cl.
func clusterConfig(t testing.TB, cl *redistest.Cluster, pipeline bool) app.Config {
	t.Helper()
	cfg := redisConfig(t, "redis://")
	cfg.Redis.Cluster.Addrs = cl.Addrs()
	cfg.Redis.Pipeline = pipeline
	return cfg
}

func TestNew_RedisCluster(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	for _, pipeline := range []bool{false, true} {
		t.Run(fmt.Sprint("pipeline=", pipeline), func(t *testing.T) {
			fetcher := newFetcher("cluster-token")
			mod := newModule(t, clusterConfig(t, cl, pipeline), nil, fetcher)
			exercise(t, mod, fetcher)
			st := mod.Stats()
			if len(st.Cluster.Nodes) != 3 || st.Cluster.Refreshes < 1 {
				t.Errorf("Stats().Cluster = %+v, want 3 primaries from a map read", st.Cluster)
			}
			for _, n := range st.Cluster.Nodes {
				if n.Failing || n.Breaker != app.BreakerClosed {
					t.Errorf("node %+v, want it answering, its breaker closed", n)
				}
			}
			if st.Primary != (app.PrimaryStats{}) {
				t.Errorf("Stats().Primary = %+v on a cluster, want zero", st.Primary)
			}
		})
	}
}

// TestNew_RedisClusterNodeDown kills one primary of three: claims on its
// slots fail open through its own breaker, claims on the others' slots
// reach Redis all along, and health says which node fails.
func TestNew_RedisClusterNodeDown(t *testing.T) {
	// The live nodes serve their slots even once the cluster marks the
	// dead one failed.
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Args: []string{"--cluster-require-full-coverage", "no"}})
	cfg := clusterConfig(t, cl, true)
	cfg.Redis.DialTimeout, cfg.Redis.ReadTimeout = time.Second, time.Second
	cfg.Redis.Breaker.Failures, cfg.Redis.Breaker.Cooldown = 3, time.Hour
	mod := newModule(t, cfg, nil, newFetcher("t"))
	ctx := context.Background()
	if err := mod.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	dead := cl.Primaries[2]
	dead.Kill()

	tenant := contract.TenantID(t)
	onDead := func(id string) bool { return cl.Owner(t, redigo.Slot(redigo.DedupeKey(tenant, id))) == dead }
	var deadIDs, liveIDs []string
	for i := 0; len(deadIDs) < 10 || len(liveIDs) < 20; i++ {
		id := fmt.Sprintf("wamid.%d", i)
		if onDead(id) {
			deadIDs = append(deadIDs, id)
		} else {
			liveIDs = append(liveIDs, id)
		}
	}
	for _, id := range deadIDs {
		if c, err := mod.Dedupe.Claim(ctx, tenant, id); err != nil || c.Status() != domain.ClaimNew {
			t.Fatalf("Claim on the dead node's slots = %v, %v; want granted (fail open)", c.Status(), err)
		}
	}
	failedOpen := mod.Stats().FailOpen["claim"]
	if failedOpen != uint64(len(deadIDs)) {
		t.Errorf("claims failed open = %d, want %d: those on the dead node's slots", failedOpen, len(deadIDs))
	}
	for _, id := range liveIDs {
		c, err := mod.Dedupe.Claim(ctx, tenant, id)
		if err != nil || c.Status() != domain.ClaimNew {
			t.Fatalf("Claim on a live node's slots = %v, %v", c.Status(), err)
		}
		if err := c.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := mod.Stats().FailOpen["claim"]; got != failedOpen {
		t.Errorf("claims on the live nodes failed open %d times: the dead node's breaker stopped them", got-failedOpen)
	}

	if err := mod.Ping(ctx); err == nil {
		t.Error("Ping with a primary down = nil")
	}
	st := mod.Stats()
	if st.Breaker != app.BreakerOpen {
		t.Errorf("Stats().Breaker = %s, want open: the least healthy node's", st.Breaker)
	}
	for _, n := range st.Cluster.Nodes {
		isDead := n.Addr == dead.Addr()
		if n.Failing != isDead || (n.Breaker == app.BreakerOpen) != isDead {
			t.Errorf("node %+v: want failing and open only for the dead node %s", n, dead.Addr())
		}
	}
}
