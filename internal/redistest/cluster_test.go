package redistest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// servedBy returns the port of the node that serves slot according to s's
// CLUSTER SLOTS, or 0.
func servedBy(t *testing.T, s *Server, slot int) int {
	t.Helper()
	ranges, err := s.slots()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if r.first <= slot && slot <= r.last {
			return r.port
		}
	}
	return 0
}

// addrOf is s's host:port, or "none" for nil.
func addrOf(s *Server) string {
	if s == nil {
		return "none"
	}
	return s.Addr()
}

// dial connects to s with opts, closed when t ends.
func dial(t *testing.T, s *Server, opts []redis.DialOption) redis.Conn {
	t.Helper()
	conn, err := redis.Dial("tcp", s.Addr(), append([]redis.DialOption{redis.DialReadTimeout(10 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c := StartCluster(t, ClusterOptions{})
	t.Logf("StartCluster, 3 primaries: %v", time.Since(began))

	if len(c.Primaries) != 3 || c.Replicas != nil {
		t.Fatalf("%d primaries and %d replicas, want 3 and none", len(c.Primaries), len(c.Replicas))
	}
	if got := c.Addrs(); len(got) != 3 || got[0] != c.Primaries[0].Addr() || got[2] != c.Primaries[2].Addr() {
		t.Errorf("Addrs() = %v, want the primaries'", got)
	}
	ids := make(map[string]bool)
	for _, s := range c.Nodes() {
		ids[s.NodeID(t)] = true
		if got := s.Role(t); got != "master" {
			t.Errorf("%s ROLE = %q, want master", s.Addr(), got)
		}
		// Every slot once, in order.
		ranges, err := s.slots()
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		for _, r := range ranges {
			if r.first != next || r.last < r.first {
				t.Errorf("CLUSTER SLOTS on %s: %v, want contiguous ranges from 0", s.Addr(), ranges)
			}
			next = r.last + 1
		}
		if next != clusterSlots {
			t.Errorf("CLUSTER SLOTS on %s: %v, want up to %d", s.Addr(), ranges, clusterSlots-1)
		}
	}
	if len(ids) != 3 {
		t.Errorf("node IDs %v, want 3 distinct", ids)
	}

	tests := []struct {
		give int
		want *Server
	}{
		{give: 0, want: c.Primaries[0]},
		{give: 5460, want: c.Primaries[0]},
		{give: 5461, want: c.Primaries[1]},
		{give: 8000, want: c.Primaries[1]},
		{give: 16383, want: c.Primaries[2]},
	}
	for _, tt := range tests {
		if got := c.Owner(t, tt.give); got != tt.want {
			t.Errorf("Owner(%d) = %s, want %s", tt.give, addrOf(got), tt.want.Addr())
		}
	}

	if a, b := c.SlotOf(t, "{user1000}.following"), c.SlotOf(t, "{user1000}.followers"); a != b {
		t.Errorf("hash tag {user1000}: slots %d and %d, want equal", a, b)
	}
	if got := c.SlotOf(t, "123456789"); got != 12739 {
		t.Errorf("SlotOf(123456789) = %d, want 12739", got)
	}
	c.WaitOK(t)
}

func TestCluster_MoveSlots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give ClusterOptions
	}{
		{name: "no password"},
		{
			name: "requirepass",
			give: ClusterOptions{
				Args: []string{"--requirepass", "cluster-pw", "--masterauth", "cluster-pw"},
				Dial: []redis.DialOption{redis.DialPassword("cluster-pw")},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := StartCluster(t, tt.give)
			slot := c.SlotOf(t, "{x}")
			from := c.Owner(t, slot)
			to := c.Primaries[0]
			if from == to {
				to = c.Primaries[1]
			}

			// 50 keys of one slot, every other one with a TTL.
			want := make(map[string]string)
			conn := dial(t, from, tt.give.Dial)
			for i := range 50 {
				k, v := fmt.Sprintf("{x}k%d", i), fmt.Sprintf("v%d", i)
				args := []any{k, v}
				if i%2 == 0 {
					args = append(args, "PX", 600_000)
				}
				if _, err := conn.Do("SET", args...); err != nil {
					t.Fatalf("SET %s on %s: %v", k, from.Addr(), err)
				}
				want[k] = v
			}

			if err := c.MoveSlots([]int{slot}, from, to); err != nil {
				t.Fatal(err)
			}
			checkMoved(t, c, slot, from, to, want, tt.give.Dial)

			// Back again, a step at a time, 20 keys at a time.
			if err := c.BeginMigration(slot, to, from); err != nil {
				t.Fatal(err)
			}
			var batches []int
			for {
				moved, err := c.MigrateKeys(slot, to, from, 20)
				if err != nil {
					t.Fatal(err)
				}
				batches = append(batches, moved)
				if moved == 0 {
					break
				}
			}
			if fmt.Sprint(batches) != "[20 20 10 0]" {
				t.Errorf("MigrateKeys moved %v, want [20 20 10 0]", batches)
			}
			if err := c.FinishMigration(slot, from); err != nil {
				t.Fatal(err)
			}
			checkMoved(t, c, slot, to, from, want, tt.give.Dial)
		})
	}
}

// checkMoved checks that slot and its keys, want, have moved from one
// primary of c to another, every primary saying so.
func checkMoved(t *testing.T, c *Cluster, slot int, from, to *Server, want map[string]string, opts []redis.DialOption) {
	t.Helper()
	// FinishMigration told every primary.
	for _, s := range c.Nodes() {
		if got := servedBy(t, s, slot); got != to.Port {
			t.Errorf("CLUSTER SLOTS on %s: slot %d served by %d, want %d", s.Addr(), slot, got, to.Port)
		}
	}
	c.WaitOK(t)
	if got := c.Owner(t, slot); got != to {
		t.Errorf("Owner(%d) = %s, want %s", slot, addrOf(got), to.Addr())
	}
	if n, err := redis.Int(from.Do(t, nil, "CLUSTER", "COUNTKEYSINSLOT", slot), nil); err != nil || n != 0 {
		t.Errorf("CLUSTER COUNTKEYSINSLOT %d on %s = %d, %v; want 0", slot, from.Addr(), n, err)
	}
	if _, err := dial(t, from, opts).Do("GET", "{x}k0"); err == nil || !strings.Contains(err.Error(), "MOVED") {
		t.Errorf("GET on %s: %v, want MOVED", from.Addr(), err)
	}
	conn := dial(t, to, opts)
	for i := range len(want) {
		k := fmt.Sprintf("{x}k%d", i)
		if got, err := redis.String(conn.Do("GET", k)); err != nil || got != want[k] {
			t.Errorf("GET %s on %s = %q, %v; want %q", k, to.Addr(), got, err, want[k])
		}
		pttl, err := redis.Int64(conn.Do("PTTL", k))
		wantTTL := i%2 == 0
		if err != nil || (pttl > 0) != wantTTL || (!wantTTL && pttl != -1) {
			t.Errorf("PTTL %s on %s = %d, %v; want a TTL %v", k, to.Addr(), pttl, err, wantTTL)
		}
	}
}

func TestCluster_Failover(t *testing.T) {
	t.Parallel()
	began := time.Now()
	c := StartCluster(t, ClusterOptions{Replicas: true, NodeTimeout: time.Second})
	t.Logf("StartCluster, 3 primaries and 3 replicas: %v", time.Since(began))

	if len(c.Replicas) != 3 || len(c.Nodes()) != 6 {
		t.Fatalf("%d replicas, %d nodes; want 3 and 6", len(c.Replicas), len(c.Nodes()))
	}
	for _, s := range c.Replicas {
		if got := s.Role(t); got != "slave" {
			t.Errorf("replica %s ROLE = %q, want slave", s.Addr(), got)
		}
	}
	if got := c.Owner(t, 0); got != c.Primaries[0] {
		t.Fatalf("Owner(0) = %s, want %s", addrOf(got), c.Primaries[0].Addr())
	}

	c.Primaries[0].Kill()
	killed := time.Now()
	deadline := killed.Add(time.Minute)
	for c.Replicas[0].Role(t) != "master" {
		if time.Now().After(deadline) {
			t.Fatal("the replica of the killed primary did not take over within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.WaitOK(t)
	t.Logf("failover: %v until the cluster was ok", time.Since(killed))
	if got := c.Owner(t, 0); got != c.Replicas[0] {
		t.Errorf("Owner(0) = %s, want the promoted replica %s", addrOf(got), c.Replicas[0].Addr())
	}
	for _, s := range c.live() {
		if got := servedBy(t, s, 0); got != c.Replicas[0].Port {
			t.Errorf("CLUSTER SLOTS on %s: slot 0 served by %d, want %d", s.Addr(), got, c.Replicas[0].Port)
		}
	}
}
