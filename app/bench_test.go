package app_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// benchModules are the module's stores side by side: memory, and Redis
// through the pool and through the pipeline.
func benchModules(b *testing.B) map[string]*app.Module {
	b.Helper()
	url := redistest.SharedURL(b)
	mods := make(map[string]*app.Module)
	for _, kind := range []string{"memory", "redis-pool", "redis-pipeline"} {
		cfg := redisConfig(b, url)
		switch kind {
		case "memory":
			cfg.Store = app.StoreMemory
		case "redis-pipeline":
			cfg.Redis.Pipeline = true
		}
		cfg.Redis.Pool.MaxActive = 0 // no cap: the benchmark has many callers
		cfg.Redis.Pool.MaxIdle = 256
		mods[kind] = newModule(b, cfg, nil, newFetcher("bench-token"))
	}
	return mods
}

// BenchmarkClaim claims a new message per call from 50 concurrent callers
// (25 per core on 2 cores): the path a backlog of redeliveries drains by.
func BenchmarkClaim(b *testing.B) {
	for _, kind := range []string{"memory", "redis-pool", "redis-pipeline"} {
		b.Run(kind, func(b *testing.B) {
			mod := benchModules(b)[kind]
			tenant := contract.TenantID(b)
			var seq atomic.Int64
			b.SetParallelism(25)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := fmt.Sprintf("wamid.bench.%d", seq.Add(1))
					if _, err := mod.Dedupe.Claim(context.Background(), tenant, id); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
		})
	}
}

// BenchmarkTokenHit asks for a cached token from every core: the path of
// every message.
func BenchmarkTokenHit(b *testing.B) {
	for _, kind := range []string{"memory", "redis-pool", "redis-pipeline"} {
		b.Run(kind, func(b *testing.B) {
			mod := benchModules(b)[kind]
			tenant := contract.TenantID(b)
			ctx := context.Background()
			if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkClaimOneCaller is one caller claiming one message at a time:
// the latency of a lone webhook.
func BenchmarkClaimOneCaller(b *testing.B) {
	for _, kind := range []string{"redis-pool", "redis-pipeline"} {
		b.Run(kind, func(b *testing.B) {
			mod := benchModules(b)[kind]
			tenant := contract.TenantID(b)
			b.ReportAllocs()
			var i int
			for b.Loop() {
				i++
				if _, err := mod.Dedupe.Claim(context.Background(), tenant, fmt.Sprintf("wamid.one.%d", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMessage is what the module does for one delivered message, from
// 50 concurrent callers: take the tenant's token, claim the message,
// commit it. messages/s is what one Redis primary sustains for it (on the
// same cores as the clients here); redis-cmds/msg is what each costs Redis,
// read from INFO commandstats, which counts the commands a script runs as
// well as the script: two round trips, SET … NX GET and EVALSHA (GET, SET).
func BenchmarkMessage(b *testing.B) {
	for _, kind := range []string{"redis-pool", "redis-pipeline"} {
		b.Run(kind, func(b *testing.B) {
			mod := benchModules(b)[kind]
			tenant := contract.TenantID(b)
			ctx := context.Background()
			if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
				b.Fatal(err)
			}
			before := redisCommands(b)
			var seq atomic.Int64
			b.SetParallelism(25)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
						b.Fatal(err)
					}
					c, err := mod.Dedupe.Claim(ctx, tenant, fmt.Sprintf("wamid.msg.%d", seq.Add(1)))
					if err != nil {
						b.Fatal(err)
					}
					if err := c.Commit(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "messages/s")
			b.ReportMetric(float64(redisCommands(b)-before)/float64(b.N), "redis-cmds/msg")
			if s := mod.Stats(); s.FailOpen["claim"]+s.FailOpen["commit"] != 0 {
				b.Fatalf("failed open %v: not a measure of Redis", s.FailOpen)
			}
		})
	}
}

// redisCommands is how many commands the shared Redis has run, INFO
// itself excluded.
func redisCommands(b *testing.B) int64 {
	b.Helper()
	c, err := redis.DialURL(redistest.SharedURL(b))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	info, err := redis.String(c.Do("INFO", "commandstats"))
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(line, ":calls=")
		if !ok || name == "cmdstat_info" {
			continue
		}
		calls, _, _ := strings.Cut(rest, ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			b.Fatalf("INFO commandstats line %q: %v", line, err)
		}
		n += v
	}
	return n
}
