// Package app is the composition root: it reads the configuration, builds
// the stores it names, wraps them to fail open, and returns the domain
// services ready to use.
package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/breaker"
	"github.com/wa2genesys/connectorcache/adapters/failopen"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/adapters/nearcache"
	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/adapters/seal"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/storeop"
	"github.com/wa2genesys/connectorcache/ports"
)

// Module is the wired module: its services and the health of their store.
type Module struct {
	// Tokens hands out each tenant's Genesys access token.
	Tokens *domain.TokenCache
	// Dedupe lets each WhatsApp message through once per tenant.
	Dedupe *domain.Deduplicator

	store    string
	ping     func(context.Context) error
	close    func() error
	failOpen *failopen.Events
	pool     func() PoolStats
	primary  func() PrimaryStats
	cluster  func() ClusterStats
	// breaker is the breakers' state, on a cluster from its nodes'.
	breaker func(ClusterStats) BreakerState
}

// Stats is a snapshot of the module's counters, for metrics and health.
type Stats struct {
	// Store is the store kind: StoreRedis or StoreMemory.
	Store  string
	Tokens domain.TokenStats
	Dedupe domain.DedupeStats
	// FailOpen counts store errors answered with a safe default, by
	// operation (get_token, put_token, delete_token, lock_token,
	// unlock_token, claim, commit, release).
	FailOpen map[string]uint64
	// Pool counts Redis connections; zero for the memory store.
	Pool PoolStats
	// Primary is where Redis commands go; zero for the memory store and
	// on a Redis Cluster.
	Primary PrimaryStats
	// Cluster is the Redis Cluster's slot map; zero unless on a cluster.
	Cluster ClusterStats
	// Breaker is the state of the circuit breaker in front of Redis; on a
	// cluster, the least healthy of the nodes' breakers. Always closed
	// for the memory store.
	Breaker BreakerState
}

// PoolStats counts Redis connections: open ones, and idle ones among them.
type PoolStats struct{ Active, Idle int }

// PrimaryStats is the Redis primary in use and the failovers followed.
type PrimaryStats struct {
	// Addr is the primary's host:port: the one the sentinels named last
	// (empty until they named one), or redis.url's.
	Addr string
	// Failovers counts failovers followed since start. With Sentinel, the
	// times the primary's address changed; without, the times the server
	// behind redis.url stopped answering as a primary (READONLY, LOADING,
	// MASTERDOWN) and every connection to it was closed.
	Failovers uint64
}

// BreakerState is a circuit breaker's state: closed while Redis answers,
// open while calls skip it, half-open while a probe goes through.
type BreakerState string

// The circuit breaker's states.
const (
	BreakerClosed   BreakerState = "closed"
	BreakerHalfOpen BreakerState = "half-open"
	BreakerOpen     BreakerState = "open"
)

// Stats returns a snapshot of the module's counters.
func (m *Module) Stats() Stats {
	s := Stats{
		Store:    m.store,
		Tokens:   m.Tokens.Stats(),
		Dedupe:   m.Dedupe.Stats(),
		FailOpen: m.failOpen.Snapshot(),
		Pool:     m.pool(),
		Primary:  m.primary(),
		Cluster:  m.cluster(),
	}
	s.Breaker = m.breaker(s.Cluster)
	return s
}

// New builds the module that cfg describes. Tokens missing from the store
// are fetched with fetcher. A nil logger means no logging.
//
// With the memory store, each of its stores holds at most
// cfg.Memory.MaxEntries entries.
//
// With the Redis store and cfg.Token.EncryptionKeys set, tokens are sealed
// in Redis; New logs which key id seals. The memory store ignores the keys
// and New logs that it does.
//
// With the Redis store, New pings Redis once: an unreachable Redis is logged
// as a warning and New still succeeds, failing open until Redis answers.
func New(ctx context.Context, cfg Config, logger *zap.Logger, fetcher ports.TokenFetcher) (*Module, error) {
	if fetcher == nil {
		return nil, errors.New("app: token fetcher is nil")
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	var (
		tokens  ports.TokenStore
		lock    ports.TokenLock
		dedupe  ports.DedupeStore
		m       = &Module{store: cfg.Store, failOpen: &failopen.Events{}}
		warnLog = sampled(logger)
	)
	switch cfg.Store {
	case StoreMemory:
		bound := memory.WithMaxEntries(cfg.Memory.MaxEntries)
		tokens, lock, dedupe = memory.NewTokenStore(bound), memory.NewTokenLock(bound), memory.NewDedupeStore(bound)
		if cfg.Token.EncryptionKeys != nil {
			logger.Info("token encryption keys ignored: the memory store keeps tokens in this process only")
		}
		m.ping = func(context.Context) error { return nil }
		m.close = func() error { return nil }
		m.pool = func() PoolStats { return PoolStats{} }
		m.primary = func() PrimaryStats { return PrimaryStats{} }
		m.cluster = func() ClusterStats { return ClusterStats{} }
		m.breaker = func(ClusterStats) BreakerState { return BreakerClosed }
	case StoreRedis:
		var err error
		if tokens, lock, dedupe, err = m.wireRedis(ctx, cfg, logger, warnLog); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("app: store %q is not one of %s, %s", cfg.Store, StoreRedis, StoreMemory)
	}
	m.Tokens = domain.NewTokenCache(tokens, fetcher, domain.TokenCacheConfig{
		RefreshMargin:    cfg.Token.RefreshMargin,
		FetchTimeout:     cfg.Token.FetchTimeout,
		Lock:             lock,
		LockTTL:          cfg.Token.LockTTL,
		RefreshAhead:     cfg.Token.RefreshAhead,
		StaleMinValidity: cfg.Token.StaleMinValidity,
		PoolSize:         cfg.Token.PoolSize,
		PoolSizes:        cfg.Token.PoolSizes,
		StaleServed: func(tenantID string, err error) {
			warnLog.Warn("auth service failed; serving the last token while it is valid",
				zap.String("tenant", tenantID), zap.Error(err))
		},
		RefreshFailed: func(tenantID string, err error) {
			warnLog.Warn("token refresh ahead failed; the cached token is still served",
				zap.String("tenant", tenantID), zap.Error(err))
		},
	})
	m.Dedupe = domain.NewDeduplicator(dedupe, domain.DeduplicatorConfig{
		TTL:      cfg.Dedupe.TTL,
		ClaimTTL: cfg.Dedupe.ClaimTTL,
	})
	return m, nil
}

// wireRedis makes m's Redis client and returns the stores on it. One
// circuit breaker guards one server, in front of the stores; on a cluster
// each node has its own, inside the client, so that a failing node does
// not stop the others from being used. Warnings that may repeat go to
// warnLog, logger sampled.
func (m *Module) wireRedis(ctx context.Context, cfg Config, logger, warnLog *zap.Logger) (ports.TokenStore, ports.TokenLock, ports.DedupeStore, error) {
	settings := breaker.Settings{
		Failures: uint32(cfg.Redis.Breaker.Failures),
		Cooldown: cfg.Redis.Breaker.Cooldown,
		Probes:   uint32(cfg.Redis.Breaker.Probes),
	}
	opts, err := redisOptions(cfg.Redis)
	if err != nil {
		return nil, nil, nil, err
	}
	var (
		brk    *breaker.Breaker
		client *redigo.Client // set below, before any Stats
	)
	if len(cfg.Redis.Cluster.Addrs) > 0 {
		nodes := newNodeBreakers(settings, logger)
		opts.Cluster.Guard = nodes.guard
		m.cluster = func() ClusterStats { return nodes.clusterStats(client.Cluster()) }
		m.breaker = func(c ClusterStats) BreakerState { return worst(c.Nodes) }
	} else {
		brk = breaker.New("redis", settings, logger)
		opts.OnFailover = onFailover(logger, warnLog, brk)
		m.cluster = func() ClusterStats { return ClusterStats{} }
		m.breaker = func(ClusterStats) BreakerState { return BreakerState(brk.State()) }
	}
	if client, err = redigo.NewClient(opts); err != nil {
		return nil, nil, nil, fmt.Errorf("app: %w", err)
	}
	m.ping, m.close = client.Ping, client.Close
	m.pool = func() PoolStats { s := client.Stats(); return PoolStats{Active: s.Active, Idle: s.Idle} }
	m.primary = func() PrimaryStats { s := client.Primary(); return PrimaryStats{Addr: s.Addr, Failovers: s.Failovers} }
	tokens, lock, dedupe := redisStores(client, brk, cfg, logger, warnLog, m)
	pingAtStartup(ctx, client, cfg.Redis, logger)
	return tokens, lock, dedupe, nil
}

// warnEvery is how often a fail-open warning is logged at most: zap's
// sampler lets the first through and drops the same message until the next
// period, whatever the operation. Every event is counted all the same.
const warnEvery = 10 * time.Second

// sampled returns logger with each message logged at most once per
// warnEvery.
func sampled(logger *zap.Logger) *zap.Logger {
	return logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, warnEvery, 1, 0)
	}))
}

// redisStores stacks the Redis stores: the circuit breaker brk right on
// Redis (nil on a cluster), the token sealer above it when keys are set,
// the near caches above that (a token copy, in clear and in this process's
// memory only; a bounded record of this process's claims), fail-open on
// top.
func redisStores(client *redigo.Client, brk *breaker.Breaker, cfg Config, logger, warnLog *zap.Logger, m *Module) (ports.TokenStore, ports.TokenLock, ports.DedupeStore) {
	failOpen := failopen.NewReporter(warnLog, m.failOpen)
	redisTokens := redigo.NewTokenStore(client)
	var (
		tokens ports.TokenStore  = redisTokens
		lock   ports.TokenLock   = redisTokens
		dedupe ports.DedupeStore = redigo.NewDedupeStore(client)
	)
	if brk != nil {
		tokens, lock, dedupe = breaker.NewTokenStore(tokens, brk), breaker.NewTokenLock(lock, brk), breaker.NewDedupeStore(dedupe, brk)
	}
	if keys := cfg.Token.EncryptionKeys; keys != nil {
		tokens = seal.NewTokenStore(tokens, keys, seal.Config{KeyName: redigo.TokenKey, Log: warnLog})
		ids := keys.IDs()
		logger.Info("tokens sealed in redis", zap.String("sealing_key", ids[0]), zap.Strings("key_ids", ids))
	}
	tokens = failopen.NewTokenStore(
		nearcache.NewTokenStore(tokens, nearcache.TokenConfig{
			MaxAge:        cfg.Token.LocalMaxAge,
			RefreshMargin: cfg.Token.RefreshMargin,
			RefreshAhead:  cfg.Token.RefreshAhead,
			ServedStale: func(tenantID string, err error) {
				failOpen.Report(storeop.GetToken, tenantID, err)
			},
		}),
		warnLog, m.failOpen)
	lock = failopen.NewTokenLock(lock, warnLog, m.failOpen)
	dedupe = failopen.NewDedupeStore(
		nearcache.NewDedupeStore(dedupe, nearcache.DedupeConfig{
			MaxEntries: cfg.Dedupe.LocalMaxEntries,
			MaxAge:     cfg.Dedupe.LocalMaxAge,
			DoneTTL:    cfg.Dedupe.TTL,
		}),
		warnLog, m.failOpen)
	return tokens, lock, dedupe
}

// Ping reports the store's real state; it does not fail open. The memory
// store is always up.
func (m *Module) Ping(ctx context.Context) error { return m.ping(ctx) }

// Close stops the token refreshes running in the background, then
// releases the store's connections.
func (m *Module) Close() error {
	m.Tokens.Close()
	return m.close()
}

// redisOptions are the client options c describes.
func redisOptions(c RedisConfig) (redigo.Options, error) {
	opts := redigo.Options{
		URL:             c.URL,
		Password:        c.Password,
		DialTimeout:     c.DialTimeout,
		ReadTimeout:     c.ReadTimeout,
		WriteTimeout:    c.WriteTimeout,
		MaxIdle:         c.Pool.MaxIdle,
		MaxActive:       c.Pool.MaxActive,
		Wait:            c.Pool.Wait,
		IdleTimeout:     c.Pool.IdleTimeout,
		MaxConnLifetime: c.Pool.MaxConnLifetime,
		TestIdleAfter:   c.Pool.TestIdleAfter,
		Pipeline:        c.Pipeline,
		Sentinel: redigo.Sentinel{
			Master:   c.Sentinel.Master,
			Addrs:    c.Sentinel.Addrs,
			Username: c.Sentinel.Username,
			Password: c.Sentinel.Password,
		},
		Cluster: redigo.Cluster{Addrs: c.Cluster.Addrs},
	}
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return opts, fmt.Errorf("app: redis.tls_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return opts, fmt.Errorf("app: redis.tls_ca_file %s: no PEM certificate in it", c.TLSCAFile)
		}
		opts.TLSConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	}
	return opts, nil
}

// onFailover logs each failover the client follows: a move to another
// address to log, a demotion behind the URL to warnLog (sampled). A move
// also resets brk: the failures it counted were the former primary's, and
// the new one is tried at once instead of after the cool-down.
func onFailover(log, warnLog *zap.Logger, brk *breaker.Breaker) func(from, to string) {
	return func(from, to string) {
		if from == to {
			// A demotion behind redis.url: also what a replica named
			// there by mistake says at every probe, hence sampled.
			warnLog.Warn("redis failover followed: the server stopped answering as a primary; its connections closed",
				zap.String("addr", to))
			return
		}
		log.Warn("redis failover followed: connections to the former primary closed",
			zap.String("from", from), zap.String("to", to))
		brk.Reset("redis primary moved to " + to)
	}
}

func pingAtStartup(ctx context.Context, client *redigo.Client, c RedisConfig, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, c.DialTimeout+c.ReadTimeout)
	defer cancel()
	if err := client.Ping(ctx); err != nil {
		log.Warn("redis unreachable at startup; failing open until it answers",
			zap.String("redis_url", c.RedactedURL()), zap.Error(err))
		return
	}
	if s := client.Cluster(); len(s.Nodes) > 0 {
		log.Info("redis cluster connected", zap.String("redis_url", c.RedactedURL()), zap.Int("primaries", len(s.Nodes)))
		return
	}
	log.Info("redis connected", zap.String("redis_url", c.RedactedURL()), zap.String("primary", client.Primary().Addr))
}
