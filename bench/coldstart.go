package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/app"
)

// coldTimeout bounds one cold-start run.
const coldTimeout = time.Minute

// lookup asks one replica for a tenant's token.
type lookup func(ctx context.Context, tenantID string) (string, error)

// coldVariant is one way replicas get their tokens.
type coldVariant struct {
	name string
	// shared says whether the replicas share their tokens through Redis:
	// the goal of one auth call per tenant applies.
	shared bool
	// build returns one lookup per replica, all fetching with fetcher.
	build func(ctx context.Context, fetcher *countingFetcher) ([]lookup, func(), error)
}

type coldResult struct {
	names  []string
	shared []bool
	// calls and wall hold each run's auth calls and the time until every
	// lookup was answered, by variant.
	calls [][]int64
	wall  [][]time.Duration
}

// runColdStart starts replicas cold, sends every replica many concurrent
// lookups per tenant at once, and counts the calls the stand-in auth
// service received, in interleaved rounds.
func runColdStart(ctx context.Context, e *env) (*coldResult, error) {
	vs := coldVariants(e)
	res := &coldResult{calls: make([][]int64, len(vs)), wall: make([][]time.Duration, len(vs))}
	for _, v := range vs {
		res.names = append(res.names, v.name)
		res.shared = append(res.shared, v.shared)
	}
	for r := range e.o.rounds {
		var line []string
		for _, i := range rotation(len(vs), r) {
			calls, wall, err := coldRun(ctx, e, vs[i], fmt.Sprintf("c%d-%d", r, i))
			if err != nil {
				return nil, errorf(err, "cold start, %s, round %d", vs[i].name, r+1)
			}
			res.calls[i] = append(res.calls[i], calls)
			res.wall[i] = append(res.wall[i], wall)
			line = append(line, fmt.Sprintf("%d", calls))
		}
		e.progress("cold start, round %d/%d: auth calls %s", r+1, e.o.rounds, strings.Join(line, ", "))
	}
	return res, nil
}

func coldVariants(e *env) []coldVariant {
	modules := func(store string, pipeline bool) func(context.Context, *countingFetcher) ([]lookup, func(), error) {
		return func(ctx context.Context, fetcher *countingFetcher) ([]lookup, func(), error) {
			cfg, err := moduleConfig(store, e.srv.url(), pipeline)
			if err != nil {
				return nil, nil, err
			}
			var (
				lookups []lookup
				mods    []*app.Module
			)
			closeAll := func() {
				for _, m := range mods {
					m.Close()
				}
			}
			for range e.o.replicas {
				m, err := newModule(ctx, cfg, fetcher)
				if err != nil {
					closeAll()
					return nil, nil, err
				}
				mods = append(mods, m)
				lookups = append(lookups, m.Tokens.Token)
			}
			return lookups, closeAll, nil
		}
	}
	return []coldVariant{
		{name: modeName(false), shared: true, build: modules(app.StoreRedis, false)},
		{name: modeName(true), shared: true, build: modules(app.StoreRedis, true)},
		{name: "module, store: memory, one per replica (in-process singleflight, nothing shared)", build: modules(app.StoreMemory, false)},
		{name: "naive cache-aside on the shared Redis: GET; on a miss fetch, then SET (no singleflight, no lock)", build: naiveCacheAside(e)},
	}
}

// naiveCacheAside is what a connector without the module would do: each
// replica has a redigo pool sized as the module's default (16 idle, 64
// active, wait).
func naiveCacheAside(e *env) func(context.Context, *countingFetcher) ([]lookup, func(), error) {
	return func(ctx context.Context, fetcher *countingFetcher) ([]lookup, func(), error) {
		var (
			lookups []lookup
			pools   []*redis.Pool
		)
		for range e.o.replicas {
			pool := &redis.Pool{
				DialContext: func(ctx context.Context) (redis.Conn, error) {
					return redis.DialContext(ctx, "tcp", e.srv.addr, redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
				},
				MaxIdle: 16, MaxActive: 64, Wait: true,
			}
			pools = append(pools, pool)
			lookups = append(lookups, func(ctx context.Context, tenantID string) (string, error) {
				conn, err := pool.GetContext(ctx)
				if err != nil {
					return "", err
				}
				defer conn.Close()
				key := "naive:token:" + tenantID
				tok, err := redis.String(redis.DoContext(conn, ctx, "GET", key))
				if err == nil {
					return tok, nil
				}
				if !errors.Is(err, redis.ErrNil) {
					return "", err
				}
				t, err := fetcher.FetchToken(ctx, tenantID)
				if err != nil {
					return "", err
				}
				if _, err := redis.DoContext(conn, ctx, "SET", key, t.AccessToken, "EX", "3600"); err != nil {
					return "", err
				}
				return t.AccessToken, nil
			})
		}
		return lookups, func() {
			for _, p := range pools {
				p.Close()
			}
		}, nil
	}
}

// coldRun is one cold start: Redis empty, replicas new, every lookup
// started at once. It returns the auth calls and the time until every
// lookup had its token.
func coldRun(ctx context.Context, e *env, v coldVariant, runID string) (int64, time.Duration, error) {
	if err := e.flush(); err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, coldTimeout)
	defer cancel()
	fetcher := &countingFetcher{latency: e.o.fetchLatency}
	replicas, closeAll, err := v.build(ctx, fetcher)
	if err != nil {
		return 0, 0, err
	}
	defer closeAll()
	tenants := make([]string, e.o.tenants)
	for i := range tenants {
		tenants[i] = runID + "-t" + strconv.Itoa(i)
	}

	var (
		ready, done sync.WaitGroup
		start       = make(chan struct{})
		failed      atomic.Pointer[error]
	)
	for _, lookup := range replicas {
		for _, tenant := range tenants {
			for range e.o.lookups {
				ready.Add(1)
				done.Add(1)
				go func() {
					defer done.Done()
					ready.Done()
					<-start
					tok, err := lookup(ctx, tenant)
					if err == nil && !strings.HasPrefix(tok, tokenPrefix(tenant)) {
						err = fmt.Errorf("lookup of %s returned another tenant's token", tenant)
					}
					if err != nil {
						failed.CompareAndSwap(nil, &err)
					}
				}()
			}
		}
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	wall := time.Since(t0)
	if p := failed.Load(); p != nil {
		return 0, 0, *p
	}
	return fetcher.calls.Load(), wall, nil
}

func (res *coldResult) table(o options) *table {
	t := &table{
		title: fmt.Sprintf("Auth calls, cold start: %d replicas × %d tenants × %d concurrent lookups, auth service %v per call, %d runs",
			o.replicas, o.tenants, o.lookups, o.fetchLatency, o.rounds),
		header: []string{"", "auth calls, each run", "median", "goal", "all lookups answered after (median)"},
		right:  []bool{false, false, true, true, true},
	}
	for i, name := range res.names {
		calls := make([]string, len(res.calls[i]))
		fs := make([]float64, len(res.calls[i]))
		for j, c := range res.calls[i] {
			calls[j], fs[j] = strconv.FormatInt(c, 10), float64(c)
		}
		goal := "–"
		if res.shared[i] {
			goal = strconv.Itoa(o.tenants)
		}
		t.add(name, strings.Join(calls, ", "), fmt.Sprintf("%.0f", median(fs)), goal,
			fmtMs(time.Duration(median(durations(res.wall[i])))))
	}
	t.note("Each run: FLUSHALL, %d new replicas (separate `app.New`, or separate pools for the naive row) on one redis-server, then %d goroutines started at once, each asking its replica for one tenant's token; every answer is checked to be that tenant's token. The stand-in auth service counts its calls. The module rows use the default configuration (`token.lock_ttl: 5s`). The memory and naive rows are references, not the module's answer for shared Redis: without sharing, each replica fetches each tenant once (at most %d); without singleflight or a lock, every lookup that misses fetches (at most %d).",
		o.replicas, o.replicas*o.tenants*o.lookups, o.replicas*o.tenants, o.replicas*o.tenants*o.lookups)
	return t
}
