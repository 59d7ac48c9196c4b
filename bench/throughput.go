package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/wa2genesys/connectorcache/app"
)

// Contenders of the claim throughput measurement, in table order.
const (
	cPool = iota
	cPipeline
	cRueidis
	cRedisBenchmark
	nContenders
)

// warmup is how long each contender runs, unrecorded, before the rounds at
// a concurrency: connections dialed, redis-benchmark's request count sized.
const warmup = 200 * time.Millisecond

// connCountRun is how long each client runs before its connections are
// counted.
const connCountRun = 300 * time.Millisecond

type throughputResult struct {
	names []string
	// rates holds claims per second, by contender, concurrency index and
	// round.
	rates [nContenders][][]float64
	// failOpen counts, per module mode, the claims answered without Redis.
	failOpen [2]uint64
	// conns is how many connections each Go contender had open after
	// running with the largest concurrency.
	conns      [cRueidis + 1]int
	connsAt    int
	poolConfig app.PoolConfig
}

// runThroughput measures claim throughput at each concurrency: a warm-up,
// then rounds in which every contender runs once, in rotating order, with
// Redis flushed after every measurement.
func runThroughput(ctx context.Context, e *env, benchBin string) (*throughputResult, error) {
	cs, res, err := claimContenders(ctx, e, benchBin)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for _, c := range cs {
		res.names = append(res.names, c.name)
	}
	before := [2]uint64{cs[cPool].failOpen(), cs[cPipeline].failOpen()}
	err = interleave(ctx, e, cs, "claims", res.rates[:], func(int, int) error { return e.flush() })
	if err != nil {
		return nil, err
	}
	res.failOpen = [2]uint64{cs[cPool].failOpen() - before[0], cs[cPipeline].failOpen() - before[1]}
	for _, c := range cs {
		c.close()
	}
	cs = nil
	if err := countConnections(ctx, e, res); err != nil {
		return nil, err
	}
	return res, nil
}

// interleave measures the claim rate of each contender of cs at each of
// e.o.callers: a warm-up of each, then e.o.rounds rounds in which each runs
// once, in rotating order. It makes rates[contender][callers index] hold
// the rates in round order, and calls after, which flushes Redis, after every measurement.
// what names the measurement in errors and progress lines.
func interleave(ctx context.Context, e *env, cs []*contender, what string, rates [][][]float64, after func(i, ci int) error) error {
	for i := range cs {
		rates[i] = make([][]float64, len(e.o.callers))
	}
	for ci, callers := range e.o.callers {
		for _, c := range cs {
			if _, err := c.rate(ctx, callers, warmup); err != nil {
				return errorf(err, "%s: warm-up of %s at %d callers", what, c.name, callers)
			}
			if err := after(-1, ci); err != nil {
				return err
			}
		}
		for r := range e.o.rounds {
			var line []string
			for _, i := range rotation(len(cs), r) {
				rate, err := cs[i].rate(ctx, callers, e.o.duration)
				if err != nil {
					return errorf(err, "%s: %s at %d callers, round %d", what, cs[i].name, callers, r+1)
				}
				rates[i][ci] = append(rates[i][ci], rate)
				line = append(line, fmt.Sprintf("%s %s", shortName(i), fmtRate(rate)))
				if err := after(i, ci); err != nil {
					return err
				}
			}
			e.progress("%s, %d callers, round %d/%d: %s", what, callers, r+1, e.o.rounds, strings.Join(line, ", "))
		}
	}
	return nil
}

// claimContenders builds the four contenders, in table order.
func claimContenders(ctx context.Context, e *env, benchBin string) ([]*contender, *throughputResult, error) {
	res := &throughputResult{}
	var cs []*contender
	fail := func(err error) ([]*contender, *throughputResult, error) {
		for _, c := range cs {
			c.close()
		}
		return nil, nil, err
	}
	for _, pipeline := range []bool{false, true} {
		c, cfg, err := moduleContender(ctx, e.srv.url(), nil, pipeline, e.ids)
		if err != nil {
			return fail(errorf(err, "%s", modeName(pipeline)))
		}
		res.poolConfig = cfg.Redis.Pool
		cs = append(cs, c)
	}
	rc, err := rueidisContender([]string{e.srv.addr}, e.ids)
	if err != nil {
		return fail(err)
	}
	cs = append(cs, rc, redisBenchmarkContender(benchBin, e.srv))
	return cs, res, nil
}

// countConnections runs each Go contender alone at the largest concurrency
// and counts the connections it holds open to Redis afterwards: a pool
// holds about one per caller, a pipelining client a few.
func countConnections(ctx context.Context, e *env, res *throughputResult) error {
	res.connsAt = 0
	for _, n := range e.o.callers {
		res.connsAt = max(res.connsAt, n)
	}
	build := []func() (*contender, error){
		func() (*contender, error) {
			c, _, err := moduleContender(ctx, e.srv.url(), nil, false, e.ids)
			return c, err
		},
		func() (*contender, error) {
			c, _, err := moduleContender(ctx, e.srv.url(), nil, true, e.ids)
			return c, err
		},
		func() (*contender, error) { return rueidisContender([]string{e.srv.addr}, e.ids) },
	}
	for i, b := range build {
		if err := e.awaitClients(0); err != nil {
			return err
		}
		c, err := b()
		if err != nil {
			return err
		}
		_, err = c.rate(ctx, res.connsAt, connCountRun)
		if err == nil {
			res.conns[i], err = e.clients()
		}
		c.close()
		if err != nil {
			return errorf(err, "connections of %s", c.name)
		}
		if err := e.flush(); err != nil {
			return err
		}
	}
	return e.awaitClients(0)
}

func shortName(i int) string {
	return [...]string{"pool", "pipeline", "rueidis", "redis-benchmark"}[i]
}

// tables is the summary: per concurrency, the median rate of each
// contender and the medians of the per-round ratios.
func (res *throughputResult) tables(o options) *table {
	t := &table{
		title: fmt.Sprintf("Claim throughput: claims/s, median of %d interleaved rounds (range)", o.rounds),
		header: []string{"callers", "module, pool", "module, pipeline", "rueidis", "redis-benchmark",
			"pool ÷ rueidis", "pipeline ÷ rueidis", "pool ÷ redis-benchmark", "pipeline ÷ redis-benchmark"},
		right: []bool{true, true, true, true, true, true, true, true, true},
	}
	for ci, callers := range o.callers {
		row := []string{strconv.Itoa(callers)}
		for i := range nContenders {
			row = append(row, fmtRateSpread(res.rates[i][ci]))
		}
		for _, anchor := range []int{cRueidis, cRedisBenchmark} {
			for _, mode := range []int{cPool, cPipeline} {
				row = append(row, fmtRatioSpread(ratios(res.rates[mode][ci], res.rates[anchor][ci])))
			}
		}
		t.add(row...)
	}
	t.note("Each cell: the median over rounds, the range in brackets; a ratio is the median of the per-round ratios (both contenders measured in the same round). Each measurement lasts %v; in round r every contender runs once, the first one rotating; Redis is flushed (FLUSHALL SYNC) after every measurement.", o.duration)
	t.note("")
	t.note("- **module**: `mod.Dedupe.Claim(ctx, tenant, freshMessageID)` on `app.New` with `store: redis`, defaults from `app.LoadConfig(\"\")` except `redis.pool.max_active: %d` (0: no cap), `redis.pool.max_idle: %d`; always `ClaimNew`, on the wire `SET genesys:dedupe:<tenant>:<id> claim:<owner> NX GET EX 300`. pool: `redis.pipeline: false`; pipeline: `redis.pipeline: true`.",
		res.poolConfig.MaxActive, res.poolConfig.MaxIdle)
	t.note("- **rueidis** %s: default options (auto-pipelining) with `DisableCache`, sending the same `SET key claim:<owner> NX GET EX 300`.", depVersion("github.com/redis/rueidis"))
	t.note("- **redis-benchmark**: `redis-benchmark -c <callers> -P 1 -n <≈ its previous rate × %v> -r %d --csv %s` (one client thread).",
		o.duration, redisBenchmarkKeyspace, strings.Join(redisBenchmarkArgs, " "))
	t.note("- Redis connections held after %d callers: module pool %d, module pipeline %d, rueidis %d.",
		res.connsAt, res.conns[cPool], res.conns[cPipeline], res.conns[cRueidis])
	if res.conns[cPipeline] >= res.conns[cPool] && res.connsAt > 1 {
		t.note("- **redis.pipeline: true held as many connections as the pool: the measured adapter did not pipeline.**")
	}
	t.note("- Module claims that failed open (answered without Redis): pool %d, pipeline %d.", res.failOpen[0], res.failOpen[1])
	return t
}

// detail lists every round's rates.
func (res *throughputResult) detail(o options) *table {
	t := &table{
		title:  "Claim throughput, every round (claims/s)",
		header: []string{"callers", "round", "module, pool", "module, pipeline", "rueidis", "redis-benchmark", "first to run"},
		right:  []bool{true, true, true, true, true, true, false},
	}
	for ci, callers := range o.callers {
		for r := range o.rounds {
			row := []string{strconv.Itoa(callers), strconv.Itoa(r + 1)}
			for i := range nContenders {
				row = append(row, fmtRate(res.rates[i][ci][r]))
			}
			row = append(row, shortName(rotation(nContenders, r)[0]))
			t.add(row...)
		}
	}
	return t
}
