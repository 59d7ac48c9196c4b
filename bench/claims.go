package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/redis/rueidis"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
)

// claimTTLSeconds is the claim TTL every contender sends: the module's
// default dedupe.claim_ttl, 5 minutes.
const claimTTLSeconds = 300

// benchOwner stands in for the claim owner the module draws per claim
// (crypto/rand.Text: 26 characters).
const benchOwner = "BENCHOWNER0123456789ABCDEF"

// benchTenant is the tenant every claim is made for.
const benchTenant = "bench"

// contender is one way of sending claims to Redis.
type contender struct {
	name string
	// rate measures claims per second with callers concurrent callers for
	// about d.
	rate func(ctx context.Context, callers int, d time.Duration) (float64, error)
	// call is one claim, for the one-caller latency; nil when the
	// contender cannot be timed per call.
	call op
	// failOpen counts the calls answered without Redis; nil when the
	// contender does not fail open.
	failOpen func() uint64
	// redirects counts the MOVED and ASK replies a module on a Redis
	// Cluster followed; nil for the other contenders.
	redirects func() uint64
	close     func()
}

// ids hands out message id prefixes unique over the run, so that no claim
// meets an earlier one, in Redis or in the module's local claim record.
type ids struct{ n atomic.Uint64 }

// prefixes returns one fresh prefix per caller.
func (g *ids) prefixes(tag string, callers int) []string {
	m := g.n.Add(1)
	p := make([]string, callers)
	for w := range p {
		p[w] = "wamid." + tag + "." + strconv.FormatUint(m, 10) + "." + strconv.Itoa(w) + "."
	}
	return p
}

// moduleContender claims through the full module: app.New with the Redis
// store at url, in cluster mode on the seeds when there are any,
// Deduplicator.Claim with a fresh message id each call.
func moduleContender(ctx context.Context, url string, seeds []string, pipeline bool, g *ids) (*contender, app.Config, error) {
	cfg, err := moduleConfig(app.StoreRedis, url, pipeline)
	if err != nil {
		return nil, cfg, err
	}
	cfg.Redis.Cluster.Addrs = seeds
	cfg.Redis.Pool.MaxActive = 0
	cfg.Redis.Pool.MaxIdle = benchPoolIdle
	mod, err := newModule(ctx, cfg, refusingFetcher{})
	if err != nil {
		return nil, cfg, err
	}
	claim := func(ctx context.Context, id string) error {
		c, err := mod.Dedupe.Claim(ctx, benchTenant, id)
		if err != nil {
			return err
		}
		if c.Status() != domain.ClaimNew {
			return fmt.Errorf("claim of fresh message %s: status %v, want new", id, c.Status())
		}
		return nil
	}
	tag := "pool"
	if pipeline {
		tag = "pipe"
	}
	return &contender{
		name: modeName(pipeline),
		rate: func(ctx context.Context, callers int, d time.Duration) (float64, error) {
			p := g.prefixes(tag, callers)
			return throughput(ctx, callers, d, maxOpsPerMeasurement, func(ctx context.Context, w int, seq uint64) error {
				return claim(ctx, p[w]+strconv.FormatUint(seq, 10))
			})
		},
		call: func(ctx context.Context, _ int, seq uint64) error {
			return claim(ctx, "wamid."+tag+".lat."+strconv.FormatUint(g.n.Add(1), 10))
		},
		failOpen: func() uint64 { return failOpenEvents(mod) },
		redirects: func() uint64 {
			s := mod.Stats().Cluster
			return s.Moved + s.Asked
		},
		close: func() { mod.Close() },
	}, cfg, nil
}

// rueidisContender sends the module's claim command, SET key claim:<owner>
// NX GET EX 300, through rueidis with its default auto-pipelining, to the
// server at addrs, or to the Redis Cluster of those nodes: rueidis tells
// which itself.
func rueidisContender(addrs []string, g *ids) (*contender, error) {
	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: addrs, DisableCache: true})
	if err != nil {
		return nil, fmt.Errorf("rueidis: %w", err)
	}
	claim := func(ctx context.Context, key string) error {
		cmd := client.B().Set().Key(key).Value("claim:" + benchOwner).Nx().Get().ExSeconds(claimTTLSeconds).Build()
		err := client.Do(ctx, cmd).Error()
		switch {
		case rueidis.IsRedisNil(err):
			return nil
		case err == nil:
			return fmt.Errorf("rueidis SET NX GET %s: the key existed", key)
		}
		return fmt.Errorf("rueidis SET NX GET %s: %w", key, err)
	}
	return &contender{
		name: "rueidis " + depVersion("github.com/redis/rueidis") + ", auto-pipelining",
		rate: func(ctx context.Context, callers int, d time.Duration) (float64, error) {
			p := g.prefixes("rueidis", callers)
			return throughput(ctx, callers, d, maxOpsPerMeasurement, func(ctx context.Context, w int, seq uint64) error {
				return claim(ctx, "genesys:dedupe:bench-rueidis:"+p[w]+strconv.FormatUint(seq, 10))
			})
		},
		close: client.Close,
	}, nil
}

// redisBenchmarkArgs is the command redis-benchmark sends.
var redisBenchmarkArgs = []string{"SET", "key:__rand_int__", "val", "NX", "EX", strconv.Itoa(claimTTLSeconds)}

// redisBenchmarkKeyspace is its -r: random keys, almost all of them new.
const redisBenchmarkKeyspace = 100_000_000

// redisBenchmarkContender runs redis-benchmark (one thread, -P 1) for each
// measurement, with a request count sized from its previous rate at the
// same concurrency so that each run lasts about the requested duration.
func redisBenchmarkContender(bin string, srv *server) *contender {
	last := map[int]float64{}
	return &contender{
		name: "redis-benchmark -P 1",
		rate: func(ctx context.Context, callers int, d time.Duration) (float64, error) {
			n := max(2000, 50*callers) // a first, short run sizes the next
			if r, ok := last[callers]; ok {
				n = max(1000, 20*callers, int(r*d.Seconds()))
			}
			n = min(n, maxOpsPerMeasurement)
			args := append([]string{"-h", "127.0.0.1", "-p", srv.port(),
				"-c", strconv.Itoa(callers), "-P", "1", "-n", strconv.Itoa(n),
				"-r", strconv.Itoa(redisBenchmarkKeyspace), "--csv"}, redisBenchmarkArgs...)
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				if ctx.Err() != nil {
					return 0, ctx.Err()
				}
				return 0, fmt.Errorf("redis-benchmark: %w: %s", err, strings.TrimSpace(stderr.String()))
			}
			rps, err := parseRedisBenchmarkCSV(&stdout)
			if err != nil {
				return 0, fmt.Errorf("redis-benchmark: %w; stderr: %s", err, strings.TrimSpace(stderr.String()))
			}
			last[callers] = rps
			return rps, nil
		},
		close: func() {},
	}
}

// parseRedisBenchmarkCSV returns the requests per second of the single
// test in redis-benchmark's --csv output: a header row naming an "rps"
// column, then one row per test.
func parseRedisBenchmarkCSV(r io.Reader) (float64, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("parse --csv output: %w", err)
	}
	if len(rows) != 2 {
		return 0, fmt.Errorf("--csv output has %d rows, want a header and one test", len(rows))
	}
	col := -1
	for i, h := range rows[0] {
		if h == "rps" {
			col = i
		}
	}
	if col < 0 || col >= len(rows[1]) {
		return 0, errors.New("--csv output has no rps column")
	}
	rps, err := strconv.ParseFloat(rows[1][col], 64)
	if err != nil || rps <= 0 {
		return 0, fmt.Errorf("--csv output: rps %q is not a positive number", rows[1][col])
	}
	return rps, nil
}

// rawContender is a bare redigo connection: one command, one round trip,
// nothing else. It serves as the latency floor.
func rawContender(addr, name string, g *ids, command func(c rawConn, seq uint64) error) (*contender, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &contender{
		name:  name,
		call:  func(context.Context, int, uint64) error { return command(conn, g.n.Add(1)) },
		close: func() { conn.Close() },
	}, nil
}

// rawSet sends the module's claim command on a bare connection.
func rawSet(c rawConn, seq uint64) error {
	key := "genesys:dedupe:bench-raw:wamid.raw." + strconv.FormatUint(seq, 10)
	reply, err := c.Do("SET", key, "claim:"+benchOwner, "NX", "GET", "EX", strconv.Itoa(claimTTLSeconds))
	if err != nil {
		return fmt.Errorf("SET NX GET %s: %w", key, err)
	}
	if reply != nil {
		return fmt.Errorf("SET NX GET %s: the key existed", key)
	}
	return nil
}

// rawPing sends PING on a bare connection.
func rawPing(c rawConn, _ uint64) error {
	reply, err := redis.String(c.Do("PING"))
	if err != nil {
		return fmt.Errorf("PING: %w", err)
	}
	if reply != "PONG" {
		return fmt.Errorf("PING: %q", reply)
	}
	return nil
}

// rawConn is a bare redigo connection.
type rawConn = redis.Conn
