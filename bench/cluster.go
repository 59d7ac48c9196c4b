package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/app"
)

// clusterRanges are the hash slots each primary of the benchmark's Redis
// Cluster serves, first and last, as redis-cli --cluster create splits
// 16384 slots among three primaries.
var clusterRanges = [][2]int{{0, 5460}, {5461, 10922}, {10923, 16383}}

// clusterNodeTimeoutMs is the nodes' cluster-node-timeout, in
// milliseconds: long enough that a busy machine sees no node as down.
const clusterNodeTimeoutMs = 5000

// clusterStartTimeout bounds how long the nodes may take to agree that the
// cluster is up, on a busy machine.
const clusterStartTimeout = time.Minute

// redisCluster is a Redis Cluster of redis-server processes the harness
// started: primaries only, each on a free loopback port with its cluster
// bus on another, in a temporary folder, with persistence off.
type redisCluster struct {
	nodes []*server
	// buses are the nodes' cluster bus ports, by node.
	buses []int
	// admin are connections to the nodes, by node, for the harness's own
	// commands.
	admin []redis.Conn
}

// startCluster starts one redis-server per range of clusterRanges, assigns
// each its slots, introduces node 0 to the others and waits until every
// node reports cluster_state:ok and lists every slot in CLUSTER SLOTS,
// served by the node it was assigned to. On error, or when ctx ends, it
// stops the nodes it started.
func startCluster(ctx context.Context, bin string) (*redisCluster, error) {
	c := &redisCluster{}
	fail := func(err error) (*redisCluster, error) {
		c.stop()
		return nil, err
	}
	for i := range clusterRanges {
		var bus int
		s, err := startRedis(bin, func(dir string, port int) ([]string, error) {
			var err error
			if bus, err = freePortBesides(port); err != nil {
				return nil, err
			}
			return []string{
				"--cluster-enabled", "yes", "--cluster-port", strconv.Itoa(bus),
				"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
				"--cluster-node-timeout", strconv.Itoa(clusterNodeTimeoutMs),
			}, nil
		})
		if err != nil {
			return fail(fmt.Errorf("cluster node %d: %w", i, err))
		}
		c.nodes, c.buses = append(c.nodes, s), append(c.buses, bus)
		// FLUSHALL of a few million keys takes a while: a long read timeout.
		admin, err := redis.Dial("tcp", s.addr, redis.DialReadTimeout(time.Minute), redis.DialWriteTimeout(5*time.Second))
		if err != nil {
			return fail(fmt.Errorf("cluster node %s: admin connection: %w", s.addr, err))
		}
		c.admin = append(c.admin, admin)
	}
	if err := c.build(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// freePortBesides returns a free loopback port other than port.
func freePortBesides(port int) (int, error) {
	for range 10 {
		p, err := freePort()
		if err != nil || p != port {
			return p, err
		}
	}
	return 0, fmt.Errorf("find a free port besides %d: none offered", port)
}

// build assigns the slots, makes the nodes meet and waits until they agree.
func (c *redisCluster) build(ctx context.Context) error {
	for i, a := range c.admin {
		first, last := clusterRanges[i][0], clusterRanges[i][1]
		if _, err := a.Do("CLUSTER", "ADDSLOTSRANGE", first, last); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.nodes[i].addr, first, last, err)
		}
		// Distinct config epochs from the start leave the nodes no
		// collision to resolve; a node takes one only before it meets
		// another.
		if _, err := a.Do("CLUSTER", "SET-CONFIG-EPOCH", i+1); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER SET-CONFIG-EPOCH %d: %w", c.nodes[i].addr, i+1, err)
		}
	}
	for i, s := range c.nodes[1:] {
		if _, err := c.admin[0].Do("CLUSTER", "MEET", "127.0.0.1", s.port(), c.buses[i+1]); err != nil {
			return fmt.Errorf("cluster node %s: CLUSTER MEET %s %d: %w", c.nodes[0].addr, s.addr, c.buses[i+1], err)
		}
	}
	deadline := time.Now().Add(clusterStartTimeout)
	for {
		msg := c.notReady()
		if msg == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis cluster not up within %v: %s", clusterStartTimeout, msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// notReady says what a node does not see yet, cluster_state:ok or every
// slot served by the node assigned to it, or "" when every node sees both.
func (c *redisCluster) notReady() string {
	for i, a := range c.admin {
		addr := c.nodes[i].addr
		info, err := redis.String(a.Do("CLUSTER", "INFO"))
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER INFO: %v", addr, err)
		}
		if !strings.Contains(info, "cluster_state:ok") {
			state, _, _ := strings.Cut(info, "\n")
			return fmt.Sprintf("%s: %s", addr, strings.TrimSpace(state))
		}
		got, err := clusterSlots(a)
		if err != nil {
			return fmt.Sprintf("%s: CLUSTER SLOTS: %v", addr, err)
		}
		if want := c.slotMap(); !slices.Equal(got, want) {
			return fmt.Sprintf("%s: CLUSTER SLOTS lists %v, want %v", addr, got, want)
		}
	}
	return ""
}

// slotRange is a range of slots, first and last, and the port of the
// primary serving it.
type slotRange struct{ first, last, port int }

func (r slotRange) String() string { return fmt.Sprintf("%d-%d on :%d", r.first, r.last, r.port) }

// slotMap is the slot map once the cluster is up.
func (c *redisCluster) slotMap() []slotRange {
	m := make([]slotRange, len(c.nodes))
	for i, s := range c.nodes {
		port, _ := strconv.Atoi(s.port())
		m[i] = slotRange{first: clusterRanges[i][0], last: clusterRanges[i][1], port: port}
	}
	return m
}

// clusterSlots is the slot map that CLUSTER SLOTS reports on conn, in slot
// order.
func clusterSlots(conn redis.Conn) ([]slotRange, error) {
	ranges, err := redis.Values(conn.Do("CLUSTER", "SLOTS"))
	if err != nil {
		return nil, err
	}
	var m []slotRange
	for _, r := range ranges {
		// first, last, [ip, port, id, ...], then the replicas
		f, err := redis.Values(r, nil)
		if err != nil || len(f) < 3 {
			return nil, fmt.Errorf("unexpected entry %v", r)
		}
		primary, err := redis.Values(f[2], nil)
		if err != nil || len(primary) < 2 {
			return nil, fmt.Errorf("unexpected primary %v", f[2])
		}
		var sr slotRange
		if _, err := redis.Scan([]any{f[0], f[1], primary[1]}, &sr.first, &sr.last, &sr.port); err != nil {
			return nil, fmt.Errorf("entry %v: %w", f, err)
		}
		m = append(m, sr)
	}
	slices.SortFunc(m, func(a, b slotRange) int { return a.first - b.first })
	return m, nil
}

// addrs are the nodes' host:port addresses.
func (c *redisCluster) addrs() []string {
	a := make([]string, len(c.nodes))
	for i, s := range c.nodes {
		a[i] = s.addr
	}
	return a
}

// flush empties every node synchronously and resets its statistics. It
// returns, by node, how many keys each held just before and how many reads
// from its clients' connections it processed since the last flush (INFO
// stats total_reads_processed): a client that pipelines has the server
// read several commands at a time.
func (c *redisCluster) flush() (keys, reads []int64, err error) {
	keys, reads = make([]int64, len(c.admin)), make([]int64, len(c.admin))
	for i, a := range c.admin {
		addr := c.nodes[i].addr
		if keys[i], err = redis.Int64(a.Do("DBSIZE")); err != nil {
			return nil, nil, fmt.Errorf("cluster node %s: DBSIZE: %w", addr, err)
		}
		if reads[i], err = readsProcessed(a); err != nil {
			return nil, nil, fmt.Errorf("cluster node %s: %w", addr, err)
		}
		if _, err := a.Do("FLUSHALL", "SYNC"); err != nil {
			return nil, nil, fmt.Errorf("cluster node %s: FLUSHALL: %w", addr, err)
		}
		if _, err := a.Do("CONFIG", "RESETSTAT"); err != nil {
			return nil, nil, fmt.Errorf("cluster node %s: CONFIG RESETSTAT: %w", addr, err)
		}
	}
	return keys, reads, nil
}

// readsProcessed is INFO stats' total_reads_processed on the server of
// admin.
func readsProcessed(admin redis.Conn) (int64, error) {
	info, err := redis.String(admin.Do("INFO", "stats"))
	if err != nil {
		return 0, fmt.Errorf("INFO stats: %w", err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_reads_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("INFO stats: total_reads_processed %q", v)
			}
			return n, nil
		}
	}
	return 0, errors.New("INFO stats: no total_reads_processed")
}

// clients is the number of connections open to the nodes, all together,
// the admin ones excluded.
func (c *redisCluster) clients() (int, error) {
	total := 0
	for i, a := range c.admin {
		n, err := otherClients(a)
		if err != nil {
			return 0, fmt.Errorf("cluster node %s: %w", c.nodes[i].addr, err)
		}
		total += n
	}
	return total, nil
}

// stop closes the admin connections and stops every node.
func (c *redisCluster) stop() {
	for _, a := range c.admin {
		a.Close()
	}
	for _, s := range c.nodes {
		s.stop()
	}
}

type clusterResult struct {
	names []string
	// rates holds claims per second, by contender (cPool, cPipeline,
	// cRueidis), concurrency index and round.
	rates [cRueidis + 1][][]float64
	// keys counts, by contender and node, the keys the timed measurements
	// left on each node.
	keys [cRueidis + 1][]int64
	// claims and reads count, by contender and concurrency index, the keys
	// the timed measurements left on all nodes (one per claim) and the
	// reads the nodes processed meanwhile.
	claims, reads [cRueidis + 1][]int64
	// failOpen and redirects count, per module mode, the claims answered
	// without Redis and the MOVED and ASK replies followed.
	failOpen, redirects [2]uint64
	// conns is how many connections each contender had open to the nodes,
	// all together, after running with the largest concurrency.
	conns      [cRueidis + 1]int
	connsAt    int
	poolConfig app.PoolConfig
}

// runClusterThroughput starts a Redis Cluster and measures claim
// throughput on it as runThroughput does on one server: at each
// concurrency a warm-up, then rounds in which the module (pool, pipeline)
// and rueidis run once each, in rotating order, with every node flushed
// after every measurement. It stops the cluster before it returns.
func runClusterThroughput(ctx context.Context, e *env, serverBin string) (*clusterResult, error) {
	cl, err := startCluster(ctx, serverBin)
	if err != nil {
		return nil, err
	}
	defer cl.stop()
	e.progress("redis cluster at %s", strings.Join(cl.addrs(), ", "))

	res := &clusterResult{}
	cs, err := clusterContenders(ctx, cl, e.ids, res)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for i, c := range cs {
		res.names = append(res.names, c.name)
		res.keys[i] = make([]int64, len(cl.nodes))
		res.claims[i] = make([]int64, len(e.o.callers))
		res.reads[i] = make([]int64, len(e.o.callers))
	}
	moduleCount := func(count func(*contender) uint64) [2]uint64 {
		return [2]uint64{count(cs[cPool]), count(cs[cPipeline])}
	}
	failOpen := func(c *contender) uint64 { return c.failOpen() }
	redirects := func(c *contender) uint64 { return c.redirects() }
	failOpenBefore, redirectsBefore := moduleCount(failOpen), moduleCount(redirects)
	// After each measurement, every node is flushed; its keys and reads
	// are counted to the contender that ran, not to a warm-up (i < 0).
	err = interleave(ctx, e, cs, "cluster claims", res.rates[:], func(i, ci int) error {
		keys, reads, err := cl.flush()
		if err != nil || i < 0 {
			return err
		}
		for n := range keys {
			res.keys[i][n] += keys[n]
			res.claims[i][ci] += keys[n]
			res.reads[i][ci] += reads[n]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	failOpenAfter, redirectsAfter := moduleCount(failOpen), moduleCount(redirects)
	for m := range res.failOpen {
		res.failOpen[m] = failOpenAfter[m] - failOpenBefore[m]
		res.redirects[m] = redirectsAfter[m] - redirectsBefore[m]
	}
	for _, c := range cs {
		c.close()
	}
	cs = nil
	if err := countClusterConnections(ctx, cl, e.ids, e.o.callers, res); err != nil {
		return nil, err
	}
	return res, nil
}

// clusterContenders builds the module (pool, pipeline) and rueidis on the
// cluster, in table order.
func clusterContenders(ctx context.Context, cl *redisCluster, g *ids, res *clusterResult) ([]*contender, error) {
	var cs []*contender
	for _, b := range clusterBuilders(ctx, cl, g, res) {
		c, err := b()
		if err != nil {
			for _, c := range cs {
				c.close()
			}
			return nil, errorf(err, "cluster")
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// clusterBuilders build the contenders on the cluster, in table order; the
// module's record its pool configuration in res.
func clusterBuilders(ctx context.Context, cl *redisCluster, g *ids, res *clusterResult) []func() (*contender, error) {
	module := func(pipeline bool) func() (*contender, error) {
		return func() (*contender, error) {
			// In cluster mode the URL's host and port are unused.
			c, cfg, err := moduleContender(ctx, "redis://", cl.addrs(), pipeline, g)
			if err != nil {
				return nil, errorf(err, "%s", modeName(pipeline))
			}
			res.poolConfig = cfg.Redis.Pool
			return c, nil
		}
	}
	return []func() (*contender, error){
		module(false),
		module(true),
		func() (*contender, error) { return rueidisContender(cl.addrs(), g) },
	}
}

// countClusterConnections runs each contender alone at the largest
// concurrency and counts the connections it holds open to the nodes
// afterwards.
func countClusterConnections(ctx context.Context, cl *redisCluster, g *ids, callers []int, res *clusterResult) error {
	res.connsAt = slices.Max(callers)
	for i, b := range clusterBuilders(ctx, cl, g, res) {
		if err := awaitConnections(cl.clients, 0); err != nil {
			return err
		}
		c, err := b()
		if err != nil {
			return errorf(err, "cluster")
		}
		_, err = c.rate(ctx, res.connsAt, connCountRun)
		if err == nil {
			res.conns[i], err = cl.clients()
		}
		c.close()
		if err != nil {
			return errorf(err, "cluster: connections of %s", c.name)
		}
		if _, _, err := cl.flush(); err != nil {
			return err
		}
	}
	return awaitConnections(cl.clients, 0)
}

// table is the summary: per concurrency, the median rate of each
// contender and the medians of the per-round ratios to rueidis.
func (res *clusterResult) table(o options) *table {
	t := &table{
		title: fmt.Sprintf("Claim throughput on a %d-primary Redis Cluster: claims/s, median of %d interleaved rounds (range)",
			len(clusterRanges), o.rounds),
		header: []string{"callers", "module, pool", "module, pipeline", "rueidis", "pool ÷ rueidis", "pipeline ÷ rueidis"},
		right:  []bool{true, true, true, true, true, true},
	}
	for ci, callers := range o.callers {
		row := []string{strconv.Itoa(callers)}
		for i := range res.rates {
			row = append(row, fmtRateSpread(res.rates[i][ci]))
		}
		for _, mode := range []int{cPool, cPipeline} {
			row = append(row, fmtRatioSpread(ratios(res.rates[mode][ci], res.rates[cRueidis][ci])))
		}
		t.add(row...)
	}
	var slots []string
	for _, r := range clusterRanges {
		slots = append(slots, fmt.Sprintf("%d–%d", r[0], r[1]))
	}
	t.note("Measured as the claim throughput table: each cell the median over rounds, the range in brackets; a ratio the median of the per-round ratios. Each measurement lasts %v; in round r every contender runs once, the first one rotating; every primary is flushed (FLUSHALL SYNC) after every measurement.", o.duration)
	t.note("")
	t.note("- **cluster**: %d redis-server primaries, no replicas, on loopback and on the same cores as the clients, `--cluster-enabled yes --cluster-node-timeout %d --save \"\" --appendonly no`; slots %s (`CLUSTER ADDSLOTSRANGE`), joined by `CLUSTER MEET`.",
		len(clusterRanges), clusterNodeTimeoutMs, strings.Join(slots, ", "))
	t.note("- **module**: configured as in the claim throughput table (the pool settings apply per primary), with `redis.url: redis://` and `redis.cluster.addrs` the %d primaries; the adapter sends each claim to the primary serving its key's slot. The keys, `genesys:dedupe:<tenant>:<id>`, have no hash tag: claims spread over all slots.",
		len(clusterRanges))
	t.note("- **rueidis** %s: `rueidis.NewClient` with `InitAddress` the %d primaries (it detects the cluster itself), default options (auto-pipelining) with `DisableCache`, sending the same `SET genesys:dedupe:<tenant>:<id> claim:<owner> NX GET EX 300`.",
		depVersion("github.com/redis/rueidis"), len(clusterRanges))
	var shares []string
	for i := range res.keys {
		shares = append(shares, shortName(i)+" "+fmtShares(res.keys[i]))
	}
	t.note("- Keys written, share per primary (slots %s): %s.", strings.Join(slots, " / "), strings.Join(shares, "; "))
	var batches []string
	for i := range res.claims {
		var b []string
		for ci := range o.callers {
			b = append(b, fmt.Sprintf("%.1f", float64(res.claims[i][ci])/float64(max(1, res.reads[i][ci]))))
		}
		batches = append(batches, shortName(i)+" "+strings.Join(b, " / "))
	}
	t.note("- Claims per read by the primaries (keys written ÷ INFO stats `total_reads_processed`, over the rounds) at %s callers: %s. A client that pipelines has each read bring several commands.",
		joinInts(o.callers, " / "), strings.Join(batches, "; "))
	t.note("- Redis connections held after %d callers, all primaries together: module pool %d, module pipeline %d, rueidis %d.",
		res.connsAt, res.conns[cPool], res.conns[cPipeline], res.conns[cRueidis])
	if res.conns[cPipeline] >= res.conns[cPool] && res.connsAt > 1 {
		t.note("- **redis.pipeline: true held as many connections as the pool: the measured adapter did not pipeline.**")
	}
	t.note("- Module claims that failed open (answered without Redis): pool %d, pipeline %d. MOVED and ASK redirects the module followed: pool %d, pipeline %d.",
		res.failOpen[0], res.failOpen[1], res.redirects[0], res.redirects[1])
	return t
}

// joinInts joins ns, in decimal, with sep.
func joinInts(ns []int, sep string) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}

// fmtShares formats each count's share of their total, as "33.3 % / 33.4 %".
func fmtShares(counts []int64) string {
	var total int64
	for _, n := range counts {
		total += n
	}
	if total == 0 {
		return "no keys"
	}
	parts := make([]string, len(counts))
	for i, n := range counts {
		parts[i] = fmt.Sprintf("%.1f %%", 100*float64(n)/float64(total))
	}
	return strings.Join(parts, " / ")
}
