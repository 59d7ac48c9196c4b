package app

import (
	"sync"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/adapters/breaker"
	"github.com/wa2genesys/connectorcache/adapters/redigo"
)

// ClusterStats is the Redis Cluster's slot map as the module routes by it,
// and how it followed the cluster; zero unless redis.cluster.addrs is set.
type ClusterStats struct {
	// Nodes are the primaries of the slot map, by address.
	Nodes []ClusterNode
	// Moved and Asked count the MOVED and ASK redirects followed.
	Moved, Asked uint64
	// Refreshes counts the times the slot map was read.
	Refreshes uint64
}

// ClusterNode is one primary of a Redis Cluster.
type ClusterNode struct {
	// Addr is the node's host:port.
	Addr string
	// Slots counts the hash slots it serves.
	Slots int
	// Failing is true when it did not answer the last ping.
	Failing bool
	// Breaker is the state of the node's own circuit breaker.
	Breaker BreakerState
}

// nodeBreakers are the circuit breakers of a Redis Cluster's nodes, one per
// node: a node that fails is skipped while the others are still used.
type nodeBreakers struct {
	settings breaker.Settings
	log      *zap.Logger

	mu sync.Mutex
	m  map[string]*breaker.Breaker
}

func newNodeBreakers(s breaker.Settings, log *zap.Logger) *nodeBreakers {
	return &nodeBreakers{settings: s, log: log, m: make(map[string]*breaker.Breaker)}
}

// guard returns the guard of the node at addr: a new breaker, as the client
// asks once per node it connects to.
func (nb *nodeBreakers) guard(addr string) redigo.Guard {
	b := breaker.New("redis node "+addr, nb.settings, nb.log)
	nb.mu.Lock()
	nb.m[addr] = b
	nb.mu.Unlock()
	return b.Run
}

// state is the state of the breaker of the node at addr; closed for a node
// the client has not connected to.
func (nb *nodeBreakers) state(addr string) BreakerState {
	nb.mu.Lock()
	b := nb.m[addr]
	nb.mu.Unlock()
	if b == nil {
		return BreakerClosed
	}
	return BreakerState(b.State())
}

// clusterStats is s with each node's breaker state.
func (nb *nodeBreakers) clusterStats(s redigo.ClusterStats) ClusterStats {
	cs := ClusterStats{Moved: s.Moved, Asked: s.Asked, Refreshes: s.Refreshes}
	for _, n := range s.Nodes {
		cs.Nodes = append(cs.Nodes, ClusterNode{Addr: n.Addr, Slots: n.Slots, Failing: n.Failing, Breaker: nb.state(n.Addr)})
	}
	return cs
}

// worst is the least healthy state among the breakers of nodes: open when
// one is, half-open when one is and none is open.
func worst(nodes []ClusterNode) BreakerState {
	st := BreakerClosed
	for _, n := range nodes {
		switch n.Breaker {
		case BreakerOpen:
			return BreakerOpen
		case BreakerHalfOpen:
			st = BreakerHalfOpen
		}
	}
	return st
}
