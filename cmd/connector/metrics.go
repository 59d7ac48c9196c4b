package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/storeop"
)

// breakerStates are the states the Redis circuit breaker can be in.
var breakerStates = []app.BreakerState{app.BreakerClosed, app.BreakerHalfOpen, app.BreakerOpen}

// moduleCollector exports the module's counters ([app.Stats]) to
// Prometheus. It reads one snapshot per scrape, so the module itself knows
// nothing of Prometheus.
type moduleCollector struct {
	stats func() app.Stats

	tokenHits, tokenMisses, tokenFetches, tokenFetchErrors *prometheus.Desc
	tokenRefreshes, tokenRefreshErrors, tokenStaleServed   *prometheus.Desc
	dedupeClaims, dedupeCommitted, dedupeReleased          *prometheus.Desc
	failOpen                                               *prometheus.Desc
	poolActive, poolIdle                                   *prometheus.Desc
	breakerState                                           *prometheus.Desc
	failovers                                              *prometheus.Desc
	clusterNodes, clusterFailing                           *prometheus.Desc
	clusterRedirects, clusterRefreshes                     *prometheus.Desc
}

func newModuleCollector(stats func() app.Stats) *moduleCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &moduleCollector{
		stats:              stats,
		tokenHits:          d("connector_token_cache_hits_total", "Token requests answered from the cache."),
		tokenMisses:        d("connector_token_cache_misses_total", "Token requests the cache could not answer."),
		tokenFetches:       d("connector_token_fetches_total", "Calls to the Genesys auth service."),
		tokenFetchErrors:   d("connector_token_fetch_errors_total", "Calls to the Genesys auth service that failed."),
		tokenRefreshes:     d("connector_token_refreshes_total", "Token refreshes ahead of the refresh point, in the background, that asked the auth service."),
		tokenRefreshErrors: d("connector_token_refresh_errors_total", "Token refreshes ahead that failed; the cached token was still served."),
		tokenStaleServed:   d("connector_token_stale_served_total", "Tokens served after a failed fetch while still valid."),
		dedupeClaims:       d("connector_dedupe_claims_total", "Message claims, by what they found: new, in_flight or done.", "status"),
		dedupeCommitted:    d("connector_dedupe_committed_total", "Claims committed after a delivery."),
		dedupeReleased:     d("connector_dedupe_released_total", "Claims released after a failed delivery, for redelivery."),
		failOpen:           d("connector_failopen_events_total", "Store errors answered with a safe default, by operation.", "op"),
		poolActive:         d("connector_redis_pool_active_connections", "Open Redis connections, idle ones included."),
		poolIdle:           d("connector_redis_pool_idle_connections", "Idle Redis connections in the pool."),
		breakerState:       d("connector_redis_breaker_state", "1 for the Redis circuit breaker's current state, 0 for the others.", "state"),
		failovers:          d("connector_redis_failovers_total", "Redis failovers followed: primary address changes named by Sentinel, or demotions of the server behind redis.url."),
		clusterNodes:       d("connector_redis_cluster_nodes", "Primaries in the Redis Cluster's slot map; 0 unless on a cluster."),
		clusterFailing:     d("connector_redis_cluster_failing_nodes", "Redis Cluster primaries that did not answer the last ping."),
		clusterRedirects:   d("connector_redis_cluster_redirects_total", "Redis Cluster redirects followed, by kind: moved or ask.", "kind"),
		clusterRefreshes:   d("connector_redis_cluster_map_refreshes_total", "Times the Redis Cluster's slot map was read."),
	}
}

// Describe sends the descriptions of every metric.
func (c *moduleCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.tokenHits, c.tokenMisses, c.tokenFetches, c.tokenFetchErrors,
		c.tokenRefreshes, c.tokenRefreshErrors, c.tokenStaleServed,
		c.dedupeClaims, c.dedupeCommitted, c.dedupeReleased,
		c.failOpen, c.poolActive, c.poolIdle, c.breakerState, c.failovers,
		c.clusterNodes, c.clusterFailing, c.clusterRedirects, c.clusterRefreshes,
	} {
		ch <- d
	}
}

// Collect sends the metrics of one stats snapshot.
func (c *moduleCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter(c.tokenHits, s.Tokens.Hits)
	counter(c.tokenMisses, s.Tokens.Misses)
	counter(c.tokenFetches, s.Tokens.Fetches)
	counter(c.tokenFetchErrors, s.Tokens.FetchErrors)
	counter(c.tokenRefreshes, s.Tokens.Refreshes)
	counter(c.tokenRefreshErrors, s.Tokens.RefreshErrors)
	counter(c.tokenStaleServed, s.Tokens.StaleServed)
	counter(c.dedupeClaims, s.Dedupe.New, "new")
	counter(c.dedupeClaims, s.Dedupe.InFlight, "in_flight")
	counter(c.dedupeClaims, s.Dedupe.Done, "done")
	counter(c.dedupeCommitted, s.Dedupe.Committed)
	counter(c.dedupeReleased, s.Dedupe.Released)

	for _, op := range storeop.All { // every op from the first scrape, at zero
		counter(c.failOpen, s.FailOpen[op], op)
	}

	counter(c.failovers, s.Primary.Failovers)
	failing := 0
	for _, n := range s.Cluster.Nodes {
		if n.Failing {
			failing++
		}
	}
	gauge(c.clusterNodes, float64(len(s.Cluster.Nodes)))
	gauge(c.clusterFailing, float64(failing))
	counter(c.clusterRedirects, s.Cluster.Moved, "moved")
	counter(c.clusterRedirects, s.Cluster.Asked, "ask")
	counter(c.clusterRefreshes, s.Cluster.Refreshes)
	gauge(c.poolActive, float64(s.Pool.Active))
	gauge(c.poolIdle, float64(s.Pool.Idle))
	for _, st := range breakerStates {
		v := 0.0
		if s.Breaker == st {
			v = 1
		}
		gauge(c.breakerState, v, string(st))
	}
}
