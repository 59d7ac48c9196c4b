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
	"go.uber.org/goleak"

	"github.com/wa2genesys/connectorcache/adapters/breaker"
	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// clusterOptions returns Options for a client of cl on tr.
func clusterOptions(cl *redistest.Cluster, tr transport) redigo.Options {
	o := options("redis://", tr)
	o.Cluster.Addrs = cl.Addrs()
	return o
}

// clusterDedupe returns a client of cl on tr, a dedupe store on it, and a
// tenant id of the test's own.
func clusterDedupe(t *testing.T, cl *redistest.Cluster, tr transport) (*redigo.Client, *redigo.DedupeStore, string) {
	t.Helper()
	c := newClient(t, clusterOptions(cl, tr))
	return c, redigo.NewDedupeStore(c), contract.TenantID(t)
}

// claimTTL is the claim TTL of the cluster tests: none of them outlives it.
const claimTTL = time.Hour

func TestSlot(t *testing.T) {
	tests := []struct{ give, same string }{
		{give: "{user1000}.following", same: "{user1000}.followers"},
		{give: "foo{}{bar}", same: "foo{}{bar}"},     // an empty tag: the whole key
		{give: "foo{{bar}}zap", same: "{bar"},        // the tag is "{bar"
		{give: "foo{bar}{zap}", same: "bar"},         // the first tag only
		{give: "{genesys}:token:t", same: "genesys"}, // a tag at the start
	}
	for _, tt := range tests {
		if got, want := redigo.Slot(tt.give), redigo.Slot(tt.same); got != want {
			t.Errorf("Slot(%q) = %d, want Slot(%q) = %d", tt.give, got, tt.same, want)
		}
	}
	if got := redigo.Slot("123456789"); got != 12739 {
		t.Errorf("Slot(123456789) = %d, want 12739 (CRC16/XMODEM 0x31C3)", got)
	}
}

func TestSlot_AgreesWithTheServer(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Primaries: 1})
	keys := []string{
		"", "a", "{", "}", "{}", "a{b", "a}b{c}", "{a}{b}", "\xff\xfe{\x00}",
		redigo.TokenKey("tenant-a"), redigo.DedupeKey("tenant-a", "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVCNTM2"),
	}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("genesys:dedupe:t%d:wamid.%x", i, i*7919))
	}
	for _, k := range keys {
		if got, want := redigo.Slot(k), cl.SlotOf(t, k); got != want {
			t.Errorf("Slot(%q) = %d, CLUSTER KEYSLOT says %d", k, got, want)
		}
	}
}

// TestClusterContract runs the store contracts on a cluster of three
// primaries: every key lands on the primary serving its slot.
func TestClusterContract(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := clusterOptions(cl, tr)
		o.MaxIdle = 32 // the dedupe suite races hundreds of claims (on the pool)
		t.Run("TokenStore", func(t *testing.T) {
			contract.TokenStore(t, func(t *testing.T) ports.TokenStore { return redigo.NewTokenStore(newClient(t, o)) })
		})
		t.Run("TokenLock", func(t *testing.T) {
			contract.TokenLock(t, func(t *testing.T) ports.TokenLock { return redigo.NewTokenStore(newClient(t, o)) })
		})
		t.Run("DedupeStore", func(t *testing.T) {
			contract.DedupeStore(t, func(t *testing.T) ports.DedupeStore { return redigo.NewDedupeStore(newClient(t, o)) })
		})
	})
	// The suites' keys are spread over every primary.
	for _, p := range cl.Primaries {
		if n, err := redis.Int(p.Do(t, nil, "DBSIZE"), nil); err != nil || n == 0 {
			t.Errorf("primary %s holds %d keys (%v), want some", p.Addr(), n, err)
		}
	}
}

func TestCluster_RoutesEachKeyToItsPrimary(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, s, tenant := clusterDedupe(t, cl, tr)
		for i := range 30 {
			id := fmt.Sprintf("wamid.%d", i)
			if st, err := s.Claim(t.Context(), tenant, id, "o", claimTTL); err != nil || st != ports.ClaimAcquired {
				t.Fatalf("Claim %s = %v, %v", id, st, err)
			}
			key := redigo.DedupeKey(tenant, id)
			owner := cl.Owner(t, redigo.Slot(key))
			if got, _ := redis.String(owner.Do(t, nil, "GET", key), nil); got != "claim:o" {
				t.Errorf("key %s on its slot's primary %s = %q, want the claim", key, owner.Addr(), got)
			}
		}
		st := c.Cluster()
		if len(st.Nodes) != 3 || st.Moved != 0 || st.Asked != 0 || st.Refreshes != 1 {
			t.Errorf("Cluster() = %+v, want 3 nodes read once, no redirect", st)
		}
		for _, n := range st.Nodes {
			if n.Slots < 5000 || n.Failing {
				t.Errorf("node %+v, want a third of the slots, not failing", n)
			}
		}
	})
}

// otherPrimary returns a primary of cl other than p.
func otherPrimary(cl *redistest.Cluster, p *redistest.Server) *redistest.Server {
	for _, o := range cl.Primaries {
		if o != p {
			return o
		}
	}
	return nil
}

func TestCluster_FollowsMovedAfterASlotMoved(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, s, tenant := clusterDedupe(t, cl, tr)
		const held, done = "wamid.held", "wamid.done"
		for _, id := range []string{held, done} {
			if _, err := s.Claim(t.Context(), tenant, id, "o", claimTTL); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.Commit(t.Context(), tenant, done, "o", claimTTL); !ok || err != nil {
			t.Fatalf("Commit = %v, %v", ok, err)
		}
		slots := []int{redigo.Slot(redigo.DedupeKey(tenant, held)), redigo.Slot(redigo.DedupeKey(tenant, done))}
		for _, slot := range slots {
			from := cl.Owner(t, slot)
			if err := cl.MoveSlots([]int{slot}, from, otherPrimary(cl, from)); err != nil {
				t.Fatal(err)
			}
		}

		// The client's map still names the former primaries: each answers
		// MOVED, followed to the new one.
		if st, err := s.Claim(t.Context(), tenant, held, "p", claimTTL); err != nil || st != ports.ClaimHeld {
			t.Errorf("Claim of a held message after its slot moved = %v, %v; want held", st, err)
		}
		if st, err := s.Claim(t.Context(), tenant, done, "p", claimTTL); err != nil || st != ports.ClaimCommitted {
			t.Errorf("Claim of a done message after its slot moved = %v, %v; want committed", st, err)
		}
		if ok, err := s.Release(t.Context(), tenant, held, "o"); !ok || err != nil {
			t.Errorf("Release by the holder after the move = %v, %v", ok, err)
		}
		if got := c.Cluster().Moved; got == 0 {
			t.Error("no MOVED redirect counted")
		}
	})
}

func TestCluster_FollowsAskDuringAMigration(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, s, tenant := clusterDedupe(t, cl, tr)
		const old, fresh = "wamid.old", "wamid.fresh"
		// Two messages in one slot: their ids share the hash tag {m}.
		oldID, freshID := "{m}"+old, "{m}"+fresh
		if st, err := s.Claim(t.Context(), tenant, oldID, "o", claimTTL); err != nil || st != ports.ClaimAcquired {
			t.Fatalf("Claim = %v, %v", st, err)
		}
		key := redigo.DedupeKey(tenant, freshID)
		slot := redigo.Slot(key)
		if slot != redigo.Slot(redigo.DedupeKey(tenant, oldID)) {
			t.Fatal("test keys in different slots")
		}
		from := cl.Owner(t, slot)
		to := otherPrimary(cl, from)
		if err := cl.BeginMigration(slot, from, to); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cl.MoveSlots([]int{slot}, from, to); err != nil {
				t.Error(err)
			}
		})

		// A key still on the former owner is served there; a new one is
		// asked of the importing node, scripts included.
		if st, err := s.Claim(t.Context(), tenant, oldID, "p", claimTTL); err != nil || st != ports.ClaimHeld {
			t.Errorf("Claim of a key not migrated yet = %v, %v; want held", st, err)
		}
		if st, err := s.Claim(t.Context(), tenant, freshID, "o", claimTTL); err != nil || st != ports.ClaimAcquired {
			t.Errorf("Claim of a new key during the migration = %v, %v; want acquired", st, err)
		}
		if ok, err := s.Commit(t.Context(), tenant, freshID, "o", claimTTL); !ok || err != nil {
			t.Errorf("Commit during the migration = %v, %v", ok, err)
		}
		if n, _ := redis.Int(to.Do(t, nil, "CLUSTER", "COUNTKEYSINSLOT", slot), nil); n != 1 {
			t.Errorf("the importing node holds %d keys of the slot, want the new one", n)
		}
		st := c.Cluster()
		if st.Asked < 2 || st.Moved != 0 {
			t.Errorf("Cluster() = %+v, want ASK redirects (claim, commit), no MOVED", st)
		}
	})
}

func TestCluster_ReadsTheMapFromTheNextSeed(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := clusterOptions(cl, tr)
		o.Cluster.Addrs = append([]string{redistest.ClosedAddr(t)}, o.Cluster.Addrs...)
		c := newClient(t, o)
		if err := c.Set(t.Context(), contract.TenantID(t), "v", time.Minute); err != nil {
			t.Fatalf("Set with the first seed down: %v", err)
		}
		if got := c.Cluster(); len(got.Nodes) != 3 || got.Refreshes != 1 {
			t.Errorf("Cluster() = %+v, want the map read once, three primaries", got)
		}
	})
}

func TestCluster_NoSeedAnswers(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := options("redis://", tr)
		o.Cluster.Addrs = []string{redistest.ClosedAddr(t), redistest.ClosedAddr(t)}
		c := newClient(t, o)
		for range 3 { // the second call within the spacing gets the first one's error
			_, _, err := c.Get(t.Context(), "k")
			if !errors.Is(err, redigo.ErrNoClusterMap) {
				t.Fatalf("Get with no seed up = %v, want ErrNoClusterMap", err)
			}
		}
		if err := c.Ping(t.Context()); !errors.Is(err, redigo.ErrNoClusterMap) {
			t.Errorf("Ping with no seed up = %v, want ErrNoClusterMap", err)
		}
	})
}

// TestCluster_ANodeDownLeavesTheOthersInUse kills one of three primaries
// (no replicas): its slots fail, through its own breaker once that opens;
// the others' slots are served all along.
func TestCluster_ANodeDownLeavesTheOthersInUse(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		// The live nodes go on serving their slots however long the test
		// takes, even once the cluster marks the dead one failed.
		cl := redistest.StartCluster(t, redistest.ClusterOptions{Args: []string{"--cluster-require-full-coverage", "no"}})
		o := clusterOptions(cl, tr)
		o.ReadTimeout, o.DialTimeout = time.Second, time.Second
		var (
			mu       sync.Mutex
			breakers = map[string]*breaker.Breaker{}
		)
		o.Cluster.Guard = func(addr string) redigo.Guard {
			b := breaker.New("redis node "+addr, breaker.Settings{Failures: 3, Cooldown: time.Hour}, nil)
			mu.Lock()
			defer mu.Unlock()
			breakers[addr] = b
			return b.Run
		}
		breakerOf := func(addr string) *breaker.Breaker {
			mu.Lock()
			defer mu.Unlock()
			return breakers[addr]
		}
		c := newClient(t, o)
		tenant := contract.TenantID(t)
		if err := c.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		dead := cl.Primaries[1]
		dead.Kill()

		var deadKey, liveKeys []string
		for i := 0; len(deadKey) < 1 || len(liveKeys) < 20; i++ {
			k := fmt.Sprintf("%s:%d", tenant, i)
			if cl.Owner(t, redigo.Slot(k)) == dead {
				deadKey = append(deadKey, k)
			} else {
				liveKeys = append(liveKeys, k)
			}
		}
		for range 5 { // enough failures to open the dead node's breaker
			if err := c.Set(t.Context(), deadKey[0], "v", time.Minute); err == nil {
				t.Fatal("Set on a dead node's slot succeeded")
			}
		}
		if st := breakerOf(dead.Addr()).State(); st != breaker.Open {
			t.Errorf("dead node's breaker %s, want open", st)
		}
		err := c.Set(t.Context(), deadKey[0], "v", time.Minute)
		if !errors.Is(err, ports.ErrUnavailable) {
			t.Errorf("Set on the dead node's slot with its breaker open = %v, want ErrUnavailable", err)
		}
		for _, k := range liveKeys {
			if err := c.Set(t.Context(), k, "v", time.Minute); err != nil {
				t.Errorf("Set %s on a live node: %v", k, err)
			}
		}
		err = c.Ping(t.Context())
		if err == nil || !strings.Contains(err.Error(), dead.Addr()) {
			t.Errorf("Ping = %v, want an error naming %s", err, dead.Addr())
		}
		for _, n := range c.Cluster().Nodes {
			if n.Failing != (n.Addr == dead.Addr()) {
				t.Errorf("node %+v: failing should be %v", n, n.Addr == dead.Addr())
			}
		}
	})
}

// TestCluster_FollowsAFailover kills a primary with a replica: once the
// cluster promoted the replica, the client's writes to those slots reach it.
func TestCluster_FollowsAFailover(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		cl := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: true, NodeTimeout: time.Second})
		o := clusterOptions(cl, tr)
		o.ReadTimeout, o.DialTimeout = time.Second, time.Second
		c := newClient(t, o)
		key := keyServedBy(t, cl, cl.Primaries[0])
		if err := c.Set(t.Context(), key, "before", time.Minute); err != nil {
			t.Fatal(err)
		}
		cl.Primaries[0].Kill()
		promoted := cl.Replicas[0]
		waitFor(t, "the replica promoted", func() bool { return promoted.Role(t) == "master" })
		waitFor(t, "a write to the failed primary's slots", func() bool {
			return c.Set(t.Context(), key, "after", time.Minute) == nil
		})
		if got, _ := redis.String(promoted.Do(t, nil, "GET", key), nil); got != "after" {
			t.Errorf("the promoted replica holds %q, want the write made after the failover", got)
		}
		var names []string
		for _, n := range c.Cluster().Nodes {
			names = append(names, n.Addr)
		}
		if !strings.Contains(strings.Join(names, " "), promoted.Addr()) {
			t.Errorf("map primaries %v, want the promoted replica %s among them", names, promoted.Addr())
		}
	})
}

// keyServedBy returns a key whose slot p serves.
func keyServedBy(t *testing.T, cl *redistest.Cluster, p *redistest.Server) string {
	t.Helper()
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s:%d", contract.TenantID(t), i)
		if cl.Owner(t, redigo.Slot(k)) == p {
			return k
		}
	}
}

// waitFor polls cond until it holds, for at most a generous deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCluster_BadOptions(t *testing.T) {
	tests := []struct {
		name string
		give redigo.Options
		want string
	}{
		{
			name: "with a sentinel master",
			give: redigo.Options{URL: "redis://", Cluster: redigo.Cluster{Addrs: []string{"h:1"}}, Sentinel: redigo.Sentinel{Master: "m", Addrs: []string{"h:2"}}},
			want: "sentinel",
		},
		{
			name: "database 2",
			give: redigo.Options{URL: "redis://:secret-pw@h:1/2", Cluster: redigo.Cluster{Addrs: []string{"h:1"}}},
			want: "database",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := redigo.NewClient(tt.give)
			if err == nil {
				_ = c.Close()
				t.Fatal("NewClient succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("NewClient error %q, want one about %s, without the password", err, tt.want)
			}
		})
	}
	if c, err := redigo.NewClient(redigo.Options{URL: "redis://h:1/0", Cluster: redigo.Cluster{Addrs: []string{"h:1"}}}); err != nil {
		t.Errorf("NewClient with database 0: %v", err)
	} else {
		_ = c.Close()
	}
}

func TestCluster_CloseEndsEveryGoroutine(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		ignore := goleak.IgnoreCurrent()
		c, err := redigo.NewClient(clusterOptions(cl, tr))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
		if err := c.Set(ctx, "k", "v", time.Minute); err == nil {
			t.Error("Set after Close succeeded")
		}
		goleak.VerifyNone(t, ignore)
	})
}

func TestCluster_Password(t *testing.T) {
	const password = "cluster-secret-pw"
	cl := redistest.StartCluster(t, redistest.ClusterOptions{
		Args: []string{"--requirepass", password, "--masterauth", password},
		Dial: []redis.DialOption{redis.DialPassword(password)},
	})
	forEachTransport(t, func(t *testing.T, tr transport) {
		o := clusterOptions(cl, tr)
		o.URL = "redis://:" + password + "@cluster"
		c := newClient(t, o)
		key := contract.TenantID(t)
		if err := c.Set(t.Context(), key, "v", time.Minute); err != nil {
			t.Fatalf("Set with the cluster's password: %v", err)
		}
		if got, found, err := c.Get(t.Context(), key); err != nil || !found || got != "v" {
			t.Errorf("Get = %q, %v, %v", got, found, err)
		}

		o.URL = "redis://:wrong-" + password + "@cluster"
		wrong := newClient(t, o)
		err := wrong.Ping(t.Context())
		if err == nil || strings.Contains(err.Error(), password) {
			t.Errorf("Ping with a wrong password = %v, want an error without the password", err)
		}
	})
}

// TestCluster_FailsFastOnceNoSeedAnswered: once a reading of the map
// failed, calls fail at once while the next reading waits on a hung seed,
// instead of each waiting for the seed's timeouts.
func TestCluster_FailsFastOnceNoSeedAnswered(t *testing.T) {
	forEachTransport(t, func(t *testing.T, tr transport) {
		seed := redistest.NewProxy(t, redistest.ClosedAddr(t))
		o := options("redis://", tr)
		o.DialTimeout, o.ReadTimeout = time.Minute, time.Minute
		o.Cluster.Addrs = []string{seed.Addr()}
		c := newClient(t, o)
		if err := c.Set(t.Context(), "k", "v", time.Minute); !errors.Is(err, redigo.ErrNoClusterMap) {
			t.Fatalf("Set with the seed refusing = %v, want ErrNoClusterMap", err)
		}
		// From now on the seed accepts and never answers: a reading
		// takes the timeouts, minutes.
		seed.Hang()
		time.Sleep(300 * time.Millisecond) // past the spacing of readings: the next call starts one
		for range 3 {
			start := time.Now()
			err := c.Set(t.Context(), "k", "v", time.Minute)
			if !errors.Is(err, redigo.ErrNoClusterMap) {
				t.Errorf("Set during a reading from a hung seed = %v, want the last reading's ErrNoClusterMap", err)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Fatalf("Set took %v: it waited for the reading", took)
			}
		}
	})
}

// TestCluster_FollowsMovedThenAsk: a stale map sends a command to the
// slot's former owner, which answers MOVED to the new one, which is
// migrating the slot on and answers ASK.
func TestCluster_FollowsMovedThenAsk(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{})
	forEachTransport(t, func(t *testing.T, tr transport) {
		c, s, tenant := clusterDedupe(t, cl, tr)
		if err := c.Ping(t.Context()); err != nil { // the map, as it is now
			t.Fatal(err)
		}
		id := "wamid.moved-then-asked"
		slot := redigo.Slot(redigo.DedupeKey(tenant, id))
		first := cl.Owner(t, slot)
		second := otherPrimary(cl, first)
		var third *redistest.Server
		for _, p := range cl.Primaries {
			if p != first && p != second {
				third = p
			}
		}
		if err := cl.MoveSlots([]int{slot}, first, second); err != nil {
			t.Fatal(err)
		}
		if err := cl.BeginMigration(slot, second, third); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := cl.MoveSlots([]int{slot}, second, third); err != nil {
				t.Error(err)
			}
		})

		if st, err := s.Claim(t.Context(), tenant, id, "o", claimTTL); err != nil || st != ports.ClaimAcquired {
			t.Fatalf("Claim = %v, %v; want acquired after MOVED then ASK", st, err)
		}
		if n, _ := redis.Int(third.Do(t, nil, "CLUSTER", "COUNTKEYSINSLOT", slot), nil); n != 1 {
			t.Errorf("the importing node holds %d keys of the slot, want the claim", n)
		}
		if st := c.Cluster(); st.Moved != 1 || st.Asked != 1 {
			t.Errorf("Cluster() = %+v, want one MOVED, one ASK", st)
		}
	})
}
