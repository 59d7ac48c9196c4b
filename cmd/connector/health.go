package main

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/wa2genesys/connectorcache/app"
)

// readyPingTimeout bounds the store ping behind /readyz.
const readyPingTimeout = time.Second

// readiness is the JSON body of /readyz.
type readiness struct {
	// Status is "ok", or "degraded" while Redis is unreachable and the
	// connector fails open. Both are answered 200: messages still flow.
	Status string `json:"status"`
	// Store is the store kind: redis or memory.
	Store string `json:"store"`
	// RedisReachable is the result of pinging Redis; absent for memory.
	RedisReachable *bool `json:"redis_reachable,omitempty"`
	// FailOpen is true while Redis is unreachable: claims are granted
	// (duplicates caught only by this process's local record) and tokens
	// come from the local copy or the auth service.
	FailOpen bool `json:"fail_open"`
	// Breaker is the Redis circuit breaker's state.
	Breaker string `json:"breaker"`
	// FailOpenEvents counts store errors answered with a safe default
	// since start.
	FailOpenEvents uint64 `json:"fail_open_events"`
	// RedisPrimary is the host:port of the Redis primary in use: the one
	// the sentinels named last, or redis.url's. Absent for memory, and
	// with Sentinel until a sentinel named one.
	RedisPrimary string `json:"redis_primary,omitempty"`
	// RedisFailovers counts the Redis failovers followed since start.
	RedisFailovers uint64 `json:"redis_failovers"`
	// RedisNodes counts the primaries of a Redis Cluster's slot map;
	// absent unless on a cluster.
	RedisNodes int `json:"redis_nodes,omitempty"`
	// RedisFailingNodes are the cluster primaries that did not answer the
	// ping, by address; absent when none failed.
	RedisFailingNodes []string `json:"redis_failing_nodes,omitempty"`
}

// pinger is the module's health check and counters.
type pinger interface {
	Ping(ctx context.Context) error
	Stats() app.Stats
}

// readyHandler answers /readyz from the store's real state.
func readyHandler(mod pinger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyPingTimeout)
		defer cancel()
		err := mod.Ping(ctx)
		s := mod.Stats()
		body := readiness{
			Status: "ok", Store: s.Store, Breaker: string(s.Breaker),
			RedisPrimary: s.Primary.Addr, RedisFailovers: s.Primary.Failovers,
		}
		for _, n := range s.FailOpen {
			body.FailOpenEvents += n
		}
		body.RedisNodes = len(s.Cluster.Nodes)
		for _, n := range s.Cluster.Nodes {
			if n.Failing {
				body.RedisFailingNodes = append(body.RedisFailingNodes, n.Addr)
			}
		}
		if s.Store == app.StoreRedis {
			reachable := err == nil
			body.RedisReachable = &reachable
			body.FailOpen = !reachable
		}
		if err != nil {
			body.Status = "degraded"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(body)
	}
}

// healthHandler answers /healthz: 200 while the process serves.
func healthHandler(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}
