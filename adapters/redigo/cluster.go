package redigo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
)

// Cluster runs a [Client] on a Redis Cluster. The zero value (no Addrs)
// means one server, named by the URL or found through Sentinel.
//
// Each command goes to the primary serving its key's slot ([Slot]); the
// first key of a script. The client reads the slot map (CLUSTER SLOTS) on
// first use, from the seeds in turn; again after a MOVED reply, after a
// node failed, for a slot no primary serves, and once it is 5s old, from
// the nodes of the last map and then the seeds. Reads share the one in
// progress, and those a failure triggers are at least 250ms apart. A
// MOVED reply updates the slot and sends the command to the node it
// names, once; an ASK reply sends ASKING and the command there, once.
// Replicas are not read from.
type Cluster struct {
	// Addrs are seed nodes' host:port addresses, asked in turn for the
	// slot map until one answers; a managed service's configuration
	// endpoint is one seed. The URL's host and port are then unused; its
	// scheme, user and password apply to every node, and its database
	// must be 0.
	Addrs []string
	// Guard, when not nil, is called once for each node the client sends
	// commands to, under the client's lock (it must not block), and
	// returns what runs each of that node's commands: typically a circuit
	// breaker, so that an unhealthy node stops being tried while the
	// others go on. Nil runs every command.
	Guard func(addr string) Guard
}

// Guard runs call on the calling goroutine, or refuses to and returns an
// error saying why, naming the node, without calling it. The error call
// returns is the node's health, not the command's answer: nil for any
// reply, including error replies such as a redirect, and an error when
// the node failed (a broken connection, a timeout, a READONLY, LOADING,
// MASTERDOWN, CLUSTERDOWN or TRYAGAIN reply) or the call could not reach
// it (the caller's deadline, no free connection). A Guard must be safe for
// concurrent use.
type Guard func(call func() error) error

// Cluster timings and limits.
const (
	// maxRedirects is how many redirects in a row a command follows: a
	// stale map's MOVED, then the ASK of a slot being migrated, then one
	// more.
	maxRedirects = 3
	// refreshMinInterval spaces out the slot map refreshes that redirects
	// and failures trigger: however many commands fail at once, the map
	// is read at most this often.
	refreshMinInterval = 250 * time.Millisecond
	// refreshEvery is how old the map may grow before a command triggers
	// a refresh, failures or not.
	refreshEvery = 5 * time.Second
	// mapTimeout bounds reading the map from one node when the dial and
	// read timeouts do not.
	mapTimeout = 2 * time.Second
	// retireAfter is how long a node missing from the map keeps its
	// connections, for the commands still running on them.
	retireAfter = 30 * time.Second
)

// Errors of cluster routing.
var (
	// ErrNoClusterMap is a command sent before any node answered with the
	// slot map.
	ErrNoClusterMap = errors.New("redigo: no cluster node answered with the slot map")
	// ErrSlotUnserved is a command for a slot no primary serves in the
	// map.
	ErrSlotUnserved = errors.New("redigo: no primary serves the key's slot")
)

// cluster is the transport that routes each command to the primary
// serving its key's slot, one transport per node, and follows the
// cluster's redirects.
type cluster struct {
	seeds   []string
	newNode func(addr string) *node
	// readMap reads the slot map from the node at addr.
	readMap func(ctx context.Context, addr string) ([]slotRange, error)

	// owners maps each slot to its primary; nil for a slot not served.
	owners [numSlots]atomic.Pointer[node]
	loaded atomic.Bool
	// readAt is when the map was last read, as a time since born.
	readAt atomic.Int64
	born   time.Time

	moved, asked, refreshes atomic.Uint64

	ctx    context.Context // ended by close: stops refreshes
	cancel context.CancelFunc
	wg     sync.WaitGroup // refreshes in progress

	mu       sync.Mutex
	nodes    map[string]*node
	known    []string // every node of the last map, primaries first
	next     int      // which of known a refresh asks first
	inflight *refresh
	lastTry  time.Time // when the last refresh ended
	lastErr  error     // how it failed; nil when it did not
	closed   bool
}

// slotRange is one line of the slot map: slots first to last are served
// by primary, replicated by replicas.
type slotRange struct {
	first, last int
	primary     string
	replicas    []string
}

// refresh is one reading of the map in progress; done is closed when err
// is set.
type refresh struct {
	done chan struct{}
	err  error
}

// node is one primary the client talks to.
type node struct {
	addr    string
	t       nodeTransport
	guard   Guard
	seen    time.Time // when a map last listed it (under cluster.mu)
	failing atomic.Bool
}

func newCluster(seeds []string, newNode func(string) *node, readMap func(context.Context, string) ([]slotRange, error)) *cluster {
	ctx, cancel := context.WithCancel(context.Background())
	return &cluster{
		seeds: seeds, newNode: newNode, readMap: readMap,
		ctx: ctx, cancel: cancel, nodes: make(map[string]*node), born: time.Now(),
	}
}

// do runs one command at the primary serving its key's slot. A MOVED
// reply updates that slot and sends the command to the node it names; an
// ASK reply sends it there after ASKING, the map unchanged; up to
// maxRedirects in a row, after which the last redirect is the answer.
func (c *cluster) do(ctx context.Context, cmd string, args ...any) (any, error) {
	key, err := commandKey(cmd, args)
	if err != nil {
		return nil, err
	}
	slot := Slot(key)
	n, err := c.owner(ctx, slot)
	if err != nil {
		return nil, err
	}
	reply, err := c.run(ctx, n, false, cmd, args)
	if err == nil {
		return reply, nil
	}
	for range maxRedirects {
		r, ok := redirectOf(err, n.addr)
		if !ok {
			break
		}
		n = c.node(r.addr)
		if r.ask {
			c.asked.Add(1)
		} else {
			c.moved.Add(1)
			c.owners[r.slot].Store(n)
			c.trigger()
		}
		reply, err = c.run(ctx, n, r.ask, cmd, args)
	}
	if _, redirected := redirectOf(err, n.addr); redirected || (err != nil && !isReply(err) && ctx.Err() == nil) {
		// Redirected once too often, or the node failed or was refused:
		// the map is out of date, or the node was replaced.
		c.trigger()
	}
	return reply, err
}

// run sends one command to n through n's guard.
func (c *cluster) run(ctx context.Context, n *node, asking bool, cmd string, args []any) (any, error) {
	a := &attempt{ctx: ctx, t: n.t, asking: asking, cmd: cmd, args: args}
	if n.guard == nil {
		_ = a.run()
		return a.reply, a.err
	}
	if err := n.guard(a.run); !a.ran {
		return nil, err // names the node, as Guard says
	}
	return a.reply, a.err
}

// attempt is one command sent to one node, and its answer.
type attempt struct {
	ctx    context.Context
	t      nodeTransport
	asking bool
	cmd    string
	args   []any

	ran   bool
	reply any
	err   error
}

// run sends the command and returns the node's health: see [Guard].
func (a *attempt) run() error {
	a.ran = true
	if a.asking {
		a.reply, a.err = a.t.doAsking(a.ctx, a.cmd, a.args...)
	} else {
		a.reply, a.err = a.t.do(a.ctx, a.cmd, a.args...)
	}
	return nodeFailure(a.err)
}

// nodeFailure is err when it says the node failed, nil when the node
// answered: with a value, or with an error reply other than one only an
// unusable node gives.
func nodeFailure(err error) error {
	if err == nil || (isReply(err) && !notPrimary(err) && !replyWith(err, "CLUSTERDOWN ", "TRYAGAIN ")) {
		return nil
	}
	return err
}

// commandKey returns the key a command touches: the first argument, or
// the first key of a script.
func commandKey(cmd string, args []any) (string, error) {
	i := 0
	if cmd == "EVAL" || cmd == "EVALSHA" {
		i = 2 // script, numkeys, key
	}
	if len(args) <= i {
		return "", fmt.Errorf("redigo: cluster: %s has no key to route by", cmd)
	}
	switch k := args[i].(type) {
	case string:
		return k, nil
	case []byte:
		return string(k), nil
	}
	return "", fmt.Errorf("redigo: cluster: %s key of type %T", cmd, args[i])
}

// redirect is a MOVED or ASK reply.
type redirect struct {
	ask  bool
	slot int
	addr string
}

// redirectOf parses a MOVED or ASK reply from the node at from. An
// address without a host (a node that does not know its own) is at from's
// host.
func redirectOf(err error, from string) (redirect, bool) {
	var e redis.Error
	if !errors.As(err, &e) {
		return redirect{}, false
	}
	f := strings.Fields(string(e))
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return redirect{}, false
	}
	slot, err := strconv.Atoi(f[1])
	if err != nil || slot < 0 || slot >= numSlots {
		return redirect{}, false
	}
	// host:port, unbracketed even for an IPv6 host (::1:7001).
	i := strings.LastIndexByte(f[2], ':')
	if i < 0 {
		return redirect{}, false
	}
	host, port := strings.Trim(f[2][:i], "[]"), f[2][i+1:]
	if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
		return redirect{}, false
	}
	if host == "" {
		host, _, _ = net.SplitHostPort(from)
	}
	return redirect{ask: f[0] == "ASK", slot: slot, addr: net.JoinHostPort(host, port)}, true
}

// owner returns the primary serving slot, reading the map first if it
// was never read.
func (c *cluster) owner(ctx context.Context, slot int) (*node, error) {
	if !c.loaded.Load() {
		if err := c.load(ctx); err != nil {
			return nil, err
		}
	} else if time.Since(c.born) > time.Duration(c.readAt.Load())+refreshEvery {
		c.trigger()
	}
	n := c.owners[slot].Load()
	if n == nil {
		c.trigger()
		return nil, fmt.Errorf("%w: slot %d", ErrSlotUnserved, slot)
	}
	return n, nil
}

// load reads the map for a caller that has none: it joins the first
// reading in progress, or starts it. Once a reading failed, it returns
// that failure at once, and a new reading runs in the background: while
// no seed answers, calls fail fast instead of each waiting for the seeds'
// timeouts.
func (c *cluster) load(ctx context.Context) error {
	r, err := c.start()
	switch {
	case err != nil:
		return err
	case r == nil && c.loaded.Load(): // read since the caller looked
		return nil
	case r == nil:
		return ErrNoClusterMap
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// trigger starts a refresh of the map in the background, unless one runs
// or ended moments ago.
func (c *cluster) trigger() { _, _ = c.start() }

// start returns the refresh in progress, or starts one unless the last
// ended less than refreshMinInterval ago; the error is the last
// refresh's, or errClosed once the cluster is closed (and no refresh).
func (c *cluster) start() (*refresh, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errClosed
	}
	if c.inflight != nil || time.Since(c.lastTry) < refreshMinInterval {
		return c.inflight, c.lastErr
	}
	last := c.lastErr
	r := &refresh{done: make(chan struct{})}
	c.inflight = r
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.refresh()
		c.mu.Lock()
		c.inflight, c.lastTry, c.lastErr = nil, time.Now(), err
		var retire []*node
		if err == nil {
			retire = c.retireLocked()
		}
		c.mu.Unlock()
		r.err = err
		close(r.done)
		for _, n := range retire {
			_ = n.t.close()
		}
	}()
	return r, last
}

// refresh reads the map from the nodes of the last map, then the seeds,
// until one answers, and applies it.
func (c *cluster) refresh() error {
	var errs []string
	for _, addr := range c.candidates() {
		ranges, err := c.readMap(c.ctx, addr)
		if err == nil && len(ranges) == 0 {
			err = errors.New("no slot is served")
		}
		if err != nil {
			errs = append(errs, addr+": "+err.Error())
			if c.ctx.Err() != nil {
				break
			}
			continue
		}
		c.apply(ranges)
		c.refreshes.Add(1)
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNoClusterMap, strings.Join(errs, "; "))
}

// candidates are the addresses to ask for the map: those of the last map,
// starting with a different one each time, then the seeds.
func (c *cluster) candidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var addrs []string
	if len(c.known) > 0 {
		c.next = (c.next + 1) % len(c.known)
		addrs = append(addrs, c.known[c.next:]...)
		addrs = append(addrs, c.known[:c.next]...)
	}
	for _, s := range c.seeds {
		if !slices.Contains(addrs, s) {
			addrs = append(addrs, s)
		}
	}
	return addrs
}

// apply makes ranges the map.
func (c *cluster) apply(ranges []slotRange) {
	var owners [numSlots]*node
	known := make([]string, 0, len(ranges))
	c.mu.Lock()
	now := time.Now()
	for _, r := range ranges {
		n := c.nodeLocked(r.primary)
		n.seen = now
		for s := r.first; s <= r.last; s++ {
			owners[s] = n
		}
		if !slices.Contains(known, r.primary) {
			known = append(known, r.primary)
		}
	}
	for _, r := range ranges {
		for _, a := range r.replicas {
			if !slices.Contains(known, a) {
				known = append(known, a)
			}
		}
	}
	c.known = known
	c.mu.Unlock()
	for s := range owners {
		c.owners[s].Store(owners[s])
	}
	c.readAt.Store(int64(now.Sub(c.born)))
	c.loaded.Store(true)
}

// retireLocked forgets the nodes no map listed for retireAfter (the map
// was just read), and returns them for the caller to close once it let go of c.mu.
func (c *cluster) retireLocked() []*node {
	var retire []*node
	for addr, n := range c.nodes {
		if time.Since(n.seen) > retireAfter {
			delete(c.nodes, addr)
			retire = append(retire, n)
		}
	}
	return retire
}

// node returns the node at addr, made on first use, for a redirect to it:
// it counts as listed in the map now.
func (c *cluster) node(addr string) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodeLocked(addr)
	n.seen = time.Now()
	return n
}

func (c *cluster) nodeLocked(addr string) *node {
	n, ok := c.nodes[addr]
	if !ok {
		n = c.newNode(addr)
		n.seen = time.Now()
		if c.closed {
			_ = n.t.close() // its commands fail as closed
			return n
		}
		c.nodes[addr] = n
	}
	return n
}

// primaries returns the distinct primaries of the map, by address, with
// how many slots each serves.
func (c *cluster) primaries() ([]*node, map[*node]int) {
	count := make(map[*node]int)
	for s := range c.owners {
		if n := c.owners[s].Load(); n != nil {
			count[n]++
		}
	}
	nodes := make([]*node, 0, len(count))
	for n := range count {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].addr < nodes[j].addr })
	return nodes, count
}

// ping PINGs every primary of the map at once, and notes which fail.
func (c *cluster) ping(ctx context.Context) error {
	if !c.loaded.Load() {
		if err := c.load(ctx); err != nil {
			return err
		}
	}
	nodes, _ := c.primaries()
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			_, err := n.t.do(ctx, "PING")
			n.failing.Store(err != nil)
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", n.addr, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.trigger()
		return fmt.Errorf("redis cluster PING: %w", err)
	}
	return nil
}

// ClusterStats is the slot map a [Client] routes by, and how it followed
// the cluster.
type ClusterStats struct {
	// Nodes are the primaries of the map, by address.
	Nodes []NodeStats
	// Moved and Asked count the MOVED and ASK redirects followed.
	Moved, Asked uint64
	// Refreshes counts the times the slot map was read, the first
	// included.
	Refreshes uint64
}

// NodeStats is one primary of the slot map.
type NodeStats struct {
	// Addr is the node's host:port.
	Addr string
	// Slots counts the slots it serves.
	Slots int
	// Failing is true when it did not answer the last PING.
	Failing bool
}

func (c *cluster) clusterStats() ClusterStats {
	nodes, count := c.primaries()
	s := ClusterStats{Moved: c.moved.Load(), Asked: c.asked.Load(), Refreshes: c.refreshes.Load()}
	for _, n := range nodes {
		s.Nodes = append(s.Nodes, NodeStats{Addr: n.addr, Slots: count[n], Failing: n.failing.Load()})
	}
	return s
}

func (c *cluster) stats() PoolStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s PoolStats
	for _, n := range c.nodes {
		ns := n.t.stats()
		s.Active += ns.Active
		s.Idle += ns.Idle
	}
	return s
}

// close stops refreshing and closes every node's connections.
func (c *cluster) close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = map[string]*node{}
	c.mu.Unlock()
	for _, n := range nodes {
		_ = n.t.close()
	}
	return nil
}

// newClusterTransport returns the transport of a cluster client: a pool or
// a pipeline per node, dialed as d would but to the node's address.
func newClusterTransport(o Options, d *dialer) *cluster {
	var c *cluster
	// One pipelined connection per node batches best: the nodes already
	// share the load.
	conns := o.PipelineConns
	if conns <= 0 {
		conns = 1
	}
	newNode := func(addr string) *node {
		nd := *d
		u := *d.url
		u.Host = addr
		nd.url = &u
		// A node that stops answering as a primary was replaced: its
		// connections are closed, and the map read again.
		nd.primary = newPrimary(addr, false, func(string, string) { c.trigger() })
		n := &node{addr: addr}
		if o.Pipeline {
			n.t = newPipeline(nd.dial, conns)
		} else {
			n.t = newPool(nd.dial, o)
		}
		if o.Cluster.Guard != nil {
			n.guard = o.Cluster.Guard(addr)
		}
		return n
	}
	timeout := o.DialTimeout + o.ReadTimeout
	if timeout <= 0 {
		timeout = mapTimeout
	}
	c = newCluster(slices.Clone(o.Cluster.Addrs), newNode, func(ctx context.Context, addr string) ([]slotRange, error) {
		return readSlots(ctx, d, addr, timeout)
	})
	return c
}

// readSlots reads the slot map from the node at addr with CLUSTER SLOTS,
// on a connection of its own.
func readSlots(ctx context.Context, d *dialer, addr string, timeout time.Duration) ([]slotRange, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.connect(ctx, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	reply, err := redis.Values(redis.DoContext(conn, ctx, "CLUSTER", "SLOTS"))
	if err != nil {
		return nil, fmt.Errorf("redis CLUSTER SLOTS: %w", err)
	}
	host, _, _ := net.SplitHostPort(addr)
	return parseSlots(reply, host)
}

// parseSlots parses a CLUSTER SLOTS reply: for each range, its first and
// last slot, then its primary and replicas as [host, port, id, …]. A node
// listed without a host ("" or NULL) is at asked's; one whose address is
// unknown ("?") is left out, and so is a range without a known primary.
func parseSlots(reply []any, asked string) ([]slotRange, error) {
	var ranges []slotRange
	for _, item := range reply {
		r, err := redis.Values(item, nil)
		if err != nil || len(r) < 3 {
			return nil, fmt.Errorf("redis CLUSTER SLOTS: malformed range %q", item)
		}
		first, err1 := redis.Int(r[0], nil)
		last, err2 := redis.Int(r[1], nil)
		if err1 != nil || err2 != nil || first < 0 || last < first || last >= numSlots {
			return nil, fmt.Errorf("redis CLUSTER SLOTS: malformed slots %v-%v", r[0], r[1])
		}
		sr := slotRange{first: first, last: last}
		primary, err := nodeAddr(r[2], asked)
		if err != nil {
			return nil, err
		}
		sr.primary = primary
		for _, item := range r[3:] {
			// A replica is only ever asked for the map: one the reply
			// does not describe well is left out.
			if addr, err := nodeAddr(item, asked); err == nil && addr != "" {
				sr.replicas = append(sr.replicas, addr)
			}
		}
		if sr.primary != "" {
			ranges = append(ranges, sr)
		}
	}
	return ranges, nil
}

// nodeAddr is the host:port of one node of a CLUSTER SLOTS range; empty
// when the node does not know its address.
func nodeAddr(item any, asked string) (string, error) {
	n, err := redis.Values(item, nil)
	if err != nil || len(n) < 2 {
		return "", fmt.Errorf("redis CLUSTER SLOTS: malformed node %q", item)
	}
	host, err1 := redis.String(n[0], nil)
	if errors.Is(err1, redis.ErrNil) {
		host, err1 = "", nil // cluster-preferred-endpoint-type unknown-endpoint
	}
	port, err2 := redis.Int(n[1], nil)
	if err1 != nil || err2 != nil || port <= 0 || port > 65535 {
		return "", fmt.Errorf("redis CLUSTER SLOTS: malformed node %q", item)
	}
	switch host {
	case "?":
		return "", nil
	case "":
		host = asked
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// clusterURL checks that u suits a cluster: no database but 0.
func clusterURL(u *url.URL) error {
	if db := strings.TrimPrefix(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n != 0 {
			return fmt.Errorf("redis url: database %q: a cluster has only database 0", db)
		}
	}
	return nil
}
