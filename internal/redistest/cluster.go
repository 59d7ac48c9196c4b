package redistest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
)

// clusterSlots is how many hash slots a Redis Cluster shares among its
// primaries.
const clusterSlots = 16384

// clusterTimeout bounds how long [StartCluster] and [Cluster.WaitOK] wait
// for the nodes to agree, on a busy machine.
const clusterTimeout = 30 * time.Second

// migrateTimeout is MIGRATE's timeout, for its connection to the target.
const migrateTimeout = 5 * time.Second

// migrateBatch is how many keys [Cluster.MigrateKeys] moves at once when
// asked for fewer than one, and [Cluster.MoveSlots] always.
const migrateBatch = 100

// ClusterOptions configure a cluster started by [StartCluster].
type ClusterOptions struct {
	// Primaries is how many primaries share the slots. Zero means 3.
	Primaries int
	// Replicas gives each primary one replica.
	Replicas bool
	// NodeTimeout is cluster-node-timeout: how long a node may go without
	// answering before the others think it down and its replica takes
	// over. Zero means 5s, so that a busy machine sees no failover the
	// test did not ask for; a test that kills a primary passes 1s.
	NodeTimeout time.Duration
	// Args are extra configuration args for every node, as for [Start],
	// such as "--requirepass", "pw", "--masterauth", "pw". MIGRATE, in
	// [Cluster.MigrateKeys], authenticates to the target with the last
	// "--masterauth" (and "--masteruser") of Args, or, without
	// "--masterauth", with the last "--requirepass"; without either, it
	// sends no AUTH.
	Args []string
	// Dial are the dial options that reach a node when Args require them,
	// such as redis.DialPassword. [StartCluster], the [Cluster] methods,
	// [Server.Do] and [Server.Role] use them. Nil means none.
	Dial []redis.DialOption
}

// Cluster is a Redis Cluster of redis-server processes started for a test
// by [StartCluster], on loopback. Its nodes are ordinary servers: a test may
// Kill or Stop one, and [Server.Restart] brings it back with its
// nodes.conf (its node ID, the cluster as it last saw it) but no keys. The
// methods that take a testing.TB fail it on error and belong on the test's
// goroutine; the others return their errors and may run on any.
type Cluster struct {
	// Primaries are the primaries as started: Primaries[i] serves the i-th
	// of len(Primaries) equal ranges of slots, the last range taking the
	// remainder.
	Primaries []*Server
	// Replicas[i] replicates Primaries[i]. Nil without
	// [ClusterOptions.Replicas].
	Replicas []*Server

	migrateAuth []any // MIGRATE's AUTH or AUTH2 args; nil when the nodes need none
}

// StartCluster starts a Redis Cluster as o describes and stops its nodes,
// removing their folders, when tb ends. Every node listens on a free
// loopback port and has its cluster bus on another. It returns once every
// node reports cluster_state:ok and lists, in CLUSTER SLOTS, all 16384
// slots served by the expected primaries and replicated by the expected
// replicas, and every replica reports its link to its primary up. It fails
// tb if that takes more than 30s.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	n := cmp.Or(o.Primaries, 3)
	if n < 1 || n > clusterSlots {
		tb.Fatalf("redistest: ClusterOptions.Primaries is %d, want 1 to %d", n, clusterSlots)
	}
	nodeTimeout := cmp.Or(o.NodeTimeout, 5*time.Second)
	args := slices.Concat([]string{
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", strconv.FormatInt(max(1, nodeTimeout.Milliseconds()), 10),
		// A replica may always take over, however long ago it last
		// heard from its primary.
		"--cluster-replica-validity-factor", "0",
		// Replicas stay with their primaries, and a primary whose slots
		// all move away stays a primary.
		"--cluster-allow-replica-migration", "no",
		// CLUSTER SLOTS lists a replica once its replication offset is
		// not 0: with no writes, after its primary's first PING to it.
		"--repl-ping-replica-period", "1",
	}, o.Args)
	c := &Cluster{migrateAuth: migrateAuth(o.Args)}
	node := func() *Server {
		s, err := start(tb.TempDir(), spec{bus: true, args: args})
		if err != nil {
			tb.Fatal(err)
		}
		s.dial = o.Dial
		tb.Cleanup(s.Stop)
		return s
	}
	for range n {
		c.Primaries = append(c.Primaries, node())
	}
	if o.Replicas {
		for range n {
			c.Replicas = append(c.Replicas, node())
		}
	}
	if err := c.build(); err != nil {
		tb.Fatal(err)
	}
	return c
}

// migrateAuth is what MIGRATE needs to authenticate to a node started
// with args: AUTH or AUTH2 and the credentials, or nil.
func migrateAuth(args []string) []any {
	var user, pass, requirepass string
	for i := 0; i+1 < len(args); i++ {
		switch strings.ToLower(args[i]) {
		case "--masteruser":
			user = args[i+1]
		case "--masterauth":
			pass = args[i+1]
		case "--requirepass":
			requirepass = args[i+1]
		}
	}
	switch {
	case pass != "" && user != "":
		return []any{"AUTH2", user, pass}
	case pass != "":
		return []any{"AUTH", pass}
	case requirepass != "":
		return []any{"AUTH", requirepass}
	}
	return nil
}

// build makes the started nodes one cluster: slots and distinct config
// epochs on the primaries, every node introduced to every other, each
// replica attached to its primary. It then waits until every node sees
// the cluster as built.
func (c *Cluster) build() error {
	nodes := c.Nodes()
	ids := make([]string, len(nodes))
	for i, s := range nodes {
		id, err := s.nodeID()
		if err != nil {
			return err
		}
		ids[i] = id
	}
	for i, s := range c.Primaries {
		first, last := c.slotRange(i)
		if _, err := s.cluster("ADDSLOTSRANGE", first, last); err != nil {
			return err
		}
		// Distinct from the start: no collision for the cluster to
		// resolve. A node accepts one only before it meets another.
		if _, err := s.cluster("SET-CONFIG-EPOCH", i+1); err != nil {
			return err
		}
	}
	// Every pair meets: none waits for gossip to introduce it.
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if _, err := a.cluster("MEET", "127.0.0.1", b.Port, b.bus); err != nil {
				return err
			}
		}
	}
	if err := poll("every node to know every other", func() string { return unknown(nodes, ids) }); err != nil {
		return err
	}
	for i, s := range c.Replicas {
		err := poll(fmt.Sprintf("%s to replicate %s", s.Addr(), c.Primaries[i].Addr()), func() string {
			// A replica that does not know the primary yet answers
			// "Unknown node".
			if _, err := s.cluster("REPLICATE", ids[i]); err != nil {
				return err.Error()
			}
			return ""
		})
		if err != nil {
			return err
		}
	}
	return poll("every node to see the cluster as built", c.unbuilt)
}

// slotRange is the first and the last slot of the range that
// Primaries[i] serves once built.
func (c *Cluster) slotRange(i int) (first, last int) {
	size := clusterSlots / len(c.Primaries)
	first = i * size
	if i == len(c.Primaries)-1 {
		return first, clusterSlots - 1
	}
	return first, first + size - 1
}

// unknown says which node of nodes, whose IDs are ids, does not know
// another yet, past its handshake, or "" when every one knows all.
func unknown(nodes []*Server, ids []string) string {
	for _, s := range nodes {
		reply, err := redis.String(s.cluster("NODES"))
		if err != nil {
			return err.Error()
		}
		known := make(map[string]bool)
		for line := range strings.SplitSeq(strings.TrimSpace(reply), "\n") {
			// <id> <ip:port@cport> <flags> ...
			f := strings.Fields(line)
			if len(f) > 2 && !strings.Contains(f[2], "handshake") && !strings.Contains(f[2], "noaddr") {
				known[f[0]] = true
			}
		}
		for i, id := range ids {
			if !known[id] {
				return fmt.Sprintf("%s does not know %s (%s) yet", s.Addr(), nodes[i].Addr(), id)
			}
		}
	}
	return ""
}

// unbuilt says what a node of c does not see as built yet: cluster_state,
// the slots' primaries and replicas, a replica's link to its primary; or
// "" when every node sees all.
func (c *Cluster) unbuilt() string {
	want := make([]slotRange, len(c.Primaries))
	for i, p := range c.Primaries {
		want[i].first, want[i].last = c.slotRange(i)
		want[i].port = p.Port
		if c.Replicas != nil {
			want[i].replicas = []int{c.Replicas[i].Port}
		}
	}
	for _, s := range c.Nodes() {
		if msg := s.notOK(); msg != "" {
			return msg
		}
		got, err := s.slots()
		if err != nil {
			return err.Error()
		}
		if !slices.EqualFunc(got, want, func(a, b slotRange) bool {
			return a.first == b.first && a.last == b.last && a.port == b.port && slices.Equal(a.replicas, b.replicas)
		}) {
			return fmt.Sprintf("CLUSTER SLOTS on %s: %v, want %v", s.Addr(), got, want)
		}
	}
	for _, s := range c.Replicas {
		info, err := s.info("replication")
		if err != nil {
			return err.Error()
		}
		if info["master_link_status"] != "up" {
			return fmt.Sprintf("replica %s: master_link_status:%s", s.Addr(), info["master_link_status"])
		}
	}
	return ""
}

// poll calls check until it answers "", and returns an error with its
// last answer if that takes more than clusterTimeout.
func poll(what string, check func() string) error {
	deadline := time.Now().Add(clusterTimeout)
	for {
		msg := check()
		if msg == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: waited %v for %s: %s", clusterTimeout, what, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs returns the host:port of every node: the primaries, then the
// replicas, as started.
func (c *Cluster) Addrs() []string {
	nodes := c.Nodes()
	addrs := make([]string, len(nodes))
	for i, s := range nodes {
		addrs[i] = s.Addr()
	}
	return addrs
}

// Nodes returns every node: the primaries, then the replicas, as started.
func (c *Cluster) Nodes() []*Server { return slices.Concat(c.Primaries, c.Replicas) }

// live returns the nodes that run, in the order of [Cluster.Nodes].
func (c *Cluster) live() []*Server {
	return slices.DeleteFunc(c.Nodes(), func(s *Server) bool { return !s.running() })
}

// anyLive returns the first node that runs, or fails tb when none does.
func (c *Cluster) anyLive(tb testing.TB) *Server {
	tb.Helper()
	live := c.live()
	if len(live) == 0 {
		tb.Fatal("redistest: no node of the cluster runs")
	}
	return live[0]
}

// NodeID returns s's cluster node ID (CLUSTER MYID).
func (s *Server) NodeID(tb testing.TB) string {
	tb.Helper()
	id, err := s.nodeID()
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

func (s *Server) nodeID() (string, error) { return redis.String(s.cluster("MYID")) }

// Owner returns the node that serves slot according to CLUSTER SLOTS on
// the first node that runs, or nil when none of the cluster's nodes does.
func (c *Cluster) Owner(tb testing.TB, slot int) *Server {
	tb.Helper()
	ranges, err := c.anyLive(tb).slots()
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range ranges {
		if r.first <= slot && slot <= r.last {
			return c.byPort(r.port)
		}
	}
	return nil
}

// byPort returns the node listening on port, or nil.
func (c *Cluster) byPort(port int) *Server {
	for _, s := range c.Nodes() {
		if s.Port == port {
			return s
		}
	}
	return nil
}

// SlotOf returns the hash slot of key (CLUSTER KEYSLOT on a node that
// runs).
func (c *Cluster) SlotOf(tb testing.TB, key string) int {
	tb.Helper()
	slot, err := redis.Int(c.anyLive(tb).cluster("KEYSLOT", key))
	if err != nil {
		tb.Fatal(err)
	}
	return slot
}

// WaitOK waits until every node that runs reports cluster_state:ok and
// they all agree on which node serves each range of slots: after a
// failover, a migration or a restart. Nodes killed or stopped are left
// out, but until a replica takes over its slots, the others may agree
// that a killed primary serves them: after killing one, wait for its
// replica to report the role master first. It fails tb after 30s.
func (c *Cluster) WaitOK(tb testing.TB) {
	tb.Helper()
	c.anyLive(tb)
	if err := poll("the cluster to be ok", c.notAgreed); err != nil {
		tb.Fatal(err)
	}
}

// notAgreed says why the running nodes are not all ok and agreed, or ""
// when they are.
func (c *Cluster) notAgreed() string {
	live := c.live()
	if len(live) == 0 {
		return "no node runs"
	}
	var first []slotRange
	for i, s := range live {
		if msg := s.notOK(); msg != "" {
			return msg
		}
		got, err := s.slots()
		if err != nil {
			return err.Error()
		}
		if i == 0 {
			first = got
			continue
		}
		if !slices.EqualFunc(got, first, func(a, b slotRange) bool {
			return a.first == b.first && a.last == b.last && a.id == b.id
		}) {
			return fmt.Sprintf("CLUSTER SLOTS on %s: %v; on %s: %v", s.Addr(), got, live[0].Addr(), first)
		}
	}
	return ""
}

// BeginMigration starts moving slot from one primary to another: CLUSTER
// SETSLOT IMPORTING on to, then MIGRATING on from. Move its keys with
// [Cluster.MigrateKeys], then end with [Cluster.FinishMigration].
func (c *Cluster) BeginMigration(slot int, from, to *Server) error {
	fromID, err := from.nodeID()
	if err != nil {
		return err
	}
	toID, err := to.nodeID()
	if err != nil {
		return err
	}
	if _, err := to.cluster("SETSLOT", slot, "IMPORTING", fromID); err != nil {
		return err
	}
	_, err = from.cluster("SETSLOT", slot, "MIGRATING", toID)
	return err
}

// MigrateKeys moves up to batch keys of slot from one primary to another,
// with their TTLs: the keys that CLUSTER GETKEYSINSLOT lists on from, in
// one MIGRATE, authenticated as [ClusterOptions.Args] say. A batch below 1
// means 100. It returns how many keys it found, 0 when from holds none of
// slot: call it until then.
func (c *Cluster) MigrateKeys(slot int, from, to *Server, batch int) (moved int, err error) {
	if batch < 1 {
		batch = migrateBatch
	}
	keys, err := redis.Strings(from.cluster("GETKEYSINSLOT", slot, batch))
	if err != nil || len(keys) == 0 {
		return 0, err
	}
	args := slices.Concat([]any{"127.0.0.1", to.Port, "", 0, migrateTimeout.Milliseconds()}, c.migrateAuth, []any{"KEYS"})
	for _, k := range keys {
		args = append(args, k)
	}
	// The reply waits for the keys to reach to.
	opts := []redis.DialOption{redis.DialReadTimeout(2 * migrateTimeout)}
	if _, err := from.do(opts, "MIGRATE", args...); err != nil {
		return 0, fmt.Errorf("redistest: MIGRATE %d keys of slot %d on %s to %s: %w", len(keys), slot, from.Addr(), to.Addr(), err)
	}
	return len(keys), nil
}

// FinishMigration ends moving slot to a primary: CLUSTER SETSLOT NODE on
// to, then on every other primary that runs, the former owner among them.
// Replicas, which refuse SETSLOT, learn it from their primaries. Call
// [Cluster.WaitOK] to wait until they have.
func (c *Cluster) FinishMigration(slot int, to *Server) error {
	toID, err := to.nodeID()
	if err != nil {
		return err
	}
	if _, err := to.cluster("SETSLOT", slot, "NODE", toID); err != nil {
		return err
	}
	for _, s := range c.live() {
		if s == to {
			continue
		}
		info, err := s.info("replication")
		if err != nil {
			return err
		}
		if info["role"] != "master" {
			continue
		}
		if _, err := s.cluster("SETSLOT", slot, "NODE", toID); err != nil {
			return err
		}
	}
	return nil
}

// MoveSlots moves each of slots, with its keys, from one primary to
// another: [Cluster.BeginMigration], [Cluster.MigrateKeys] until none is
// left, [Cluster.FinishMigration].
func (c *Cluster) MoveSlots(slots []int, from, to *Server) error {
	for _, slot := range slots {
		if err := c.BeginMigration(slot, from, to); err != nil {
			return err
		}
		for {
			moved, err := c.MigrateKeys(slot, from, to, migrateBatch)
			if err != nil {
				return err
			}
			if moved == 0 {
				break
			}
		}
		if err := c.FinishMigration(slot, to); err != nil {
			return err
		}
	}
	return nil
}

// cluster runs CLUSTER args on s, with an error that names both.
func (s *Server) cluster(args ...any) (any, error) {
	reply, err := s.do(nil, "CLUSTER", args...)
	if err != nil {
		return nil, fmt.Errorf("redistest: CLUSTER %s on %s: %w", strings.TrimSpace(fmt.Sprintln(args...)), s.Addr(), err)
	}
	return reply, nil
}

// info returns the fields of section of s's INFO.
func (s *Server) info(section string) (map[string]string, error) {
	text, err := redis.String(s.do(nil, "INFO", section))
	if err != nil {
		return nil, fmt.Errorf("redistest: INFO %s on %s: %w", section, s.Addr(), err)
	}
	return infoFields(text), nil
}

// infoFields are the name:value lines of INFO or CLUSTER INFO.
func infoFields(text string) map[string]string {
	fields := make(map[string]string)
	for line := range strings.SplitSeq(text, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = v
		}
	}
	return fields
}

// notOK says which cluster_state s reports when it is not ok, or "".
func (s *Server) notOK() string {
	text, err := redis.String(s.cluster("INFO"))
	if err != nil {
		return err.Error()
	}
	if state := infoFields(text)["cluster_state"]; state != "ok" {
		return fmt.Sprintf("%s: cluster_state:%s", s.Addr(), state)
	}
	return ""
}

// slotRange is one entry of CLUSTER SLOTS: the slots first to last,
// served by the node with ID id on port, replicated by the nodes on
// replicas.
type slotRange struct {
	first, last int
	id          string
	port        int
	replicas    []int
}

func (r slotRange) String() string {
	return fmt.Sprintf("%d-%d:%d%v", r.first, r.last, r.port, r.replicas)
}

// slots returns s's CLUSTER SLOTS, by first slot, each range's replicas
// by port.
func (s *Server) slots() ([]slotRange, error) {
	entries, err := redis.Values(s.cluster("SLOTS"))
	if err != nil {
		return nil, err
	}
	ranges := make([]slotRange, 0, len(entries))
	for _, e := range entries {
		r, err := parseSlotRange(e)
		if err != nil {
			return nil, fmt.Errorf("redistest: CLUSTER SLOTS on %s: %w", s.Addr(), err)
		}
		ranges = append(ranges, r)
	}
	slices.SortFunc(ranges, func(a, b slotRange) int { return a.first - b.first })
	return ranges, nil
}

// parseSlotRange parses one entry of CLUSTER SLOTS: first, last, then the
// primary and each replica.
func parseSlotRange(entry any) (slotRange, error) {
	var r slotRange
	fields, err := redis.Values(entry, nil)
	if err == nil {
		fields, err = redis.Scan(fields, &r.first, &r.last)
	}
	if err == nil && len(fields) == 0 {
		err = errors.New("no primary")
	}
	if err != nil {
		return slotRange{}, fmt.Errorf("entry %v: %w", entry, err)
	}
	for i, f := range fields {
		port, id, err := parseSlotNode(f)
		if err != nil {
			return slotRange{}, fmt.Errorf("entry %v: %w", entry, err)
		}
		if i == 0 {
			r.port, r.id = port, id
			continue
		}
		r.replicas = append(r.replicas, port)
	}
	slices.Sort(r.replicas)
	return r, nil
}

// parseSlotNode parses one node of a CLUSTER SLOTS entry: ip, port, id
// and, from Redis 7, metadata.
func parseSlotNode(node any) (port int, id string, err error) {
	var ip string
	fields, err := redis.Values(node, nil)
	if err == nil {
		_, err = redis.Scan(fields, &ip, &port, &id)
	}
	return port, id, err
}
