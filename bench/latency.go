package main

import (
	"context"
	"fmt"
	"time"
)

// maxLatencySamples bounds one latency measurement by count.
const maxLatencySamples = 500_000

// Contenders of the latency measurement, in table order.
const (
	lPool = iota
	lPipeline
	lRawSet
	lRawPing
	nLatency
)

type latencyResult struct {
	names []string
	// p50 and p99 hold each round's percentiles, by contender.
	p50, p99 [nLatency][]time.Duration
	samples  [nLatency]int
	failOpen [2]uint64
}

// runLatency times claims made one at a time, by the module in both modes
// and by a bare connection, in interleaved rounds.
func runLatency(ctx context.Context, e *env) (*latencyResult, error) {
	var cs []*contender
	defer func() {
		for _, c := range cs {
			c.close()
		}
	}()
	for _, pipeline := range []bool{false, true} {
		c, _, err := moduleContender(ctx, e.srv.url(), nil, pipeline, e.ids)
		if err != nil {
			return nil, errorf(err, "%s", modeName(pipeline))
		}
		cs = append(cs, c)
	}
	for _, raw := range []struct {
		name string
		cmd  func(c rawConn, seq uint64) error
	}{
		{"bare redigo connection, same SET NX GET EX", rawSet},
		{"bare redigo connection, PING", rawPing},
	} {
		c, err := rawContender(e.srv.addr, raw.name, e.ids, raw.cmd)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	res := &latencyResult{}
	for _, c := range cs {
		res.names = append(res.names, c.name)
	}
	before := [2]uint64{cs[lPool].failOpen(), cs[lPipeline].failOpen()}
	for _, c := range cs { // warm-up: connections dialed, scripts and caches warm
		if _, err := latencies(ctx, warmup, maxLatencySamples, c.call); err != nil {
			return nil, errorf(err, "warm-up of %s", c.name)
		}
	}
	calls := make([]op, len(cs))
	for i, c := range cs {
		calls[i] = c.call
	}
	for r := range e.o.rounds {
		samples, err := interleavedLatencies(ctx, calls, rotation(len(cs), r), e.o.latency)
		if err != nil {
			return nil, errorf(err, "latency, round %d", r+1)
		}
		for i, s := range samples {
			res.samples[i] += len(s)
			res.p50[i] = append(res.p50[i], percentile(s, 0.50))
			res.p99[i] = append(res.p99[i], percentile(s, 0.99))
		}
		if err := e.flush(); err != nil {
			return nil, err
		}
		e.progress("latency, round %d/%d: p50 pool %s, pipeline %s, raw SET %s, PING %s", r+1, e.o.rounds,
			fmtMicros(res.p50[lPool][r]), fmtMicros(res.p50[lPipeline][r]), fmtMicros(res.p50[lRawSet][r]), fmtMicros(res.p50[lRawPing][r]))
	}
	res.failOpen = [2]uint64{cs[lPool].failOpen() - before[0], cs[lPipeline].failOpen() - before[1]}
	return res, nil
}

// latencyChunk is how many calls one contender makes before the next one
// takes its turn in a latency round.
const latencyChunk = 100

// interleavedLatencies times calls, one at a time, each contender in turn
// making latencyChunk calls, in order, until each has had about d. Taking
// turns this often, every contender sees the same state of the machine.
func interleavedLatencies(ctx context.Context, calls []op, order []int, d time.Duration) ([][]time.Duration, error) {
	samples := make([][]time.Duration, len(calls))
	end := time.Now().Add(d * time.Duration(len(calls)))
	for time.Now().Before(end) {
		for _, i := range order {
			s, err := latencies(ctx, time.Hour, latencyChunk, calls[i])
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], s...)
			if len(samples[i]) >= maxLatencySamples {
				return samples, nil
			}
		}
	}
	return samples, nil
}

// p50Ratio is each round's p50 of contender i over the bare SET's.
func (res *latencyResult) p50Ratio(i int) []float64 {
	return ratios(durations(res.p50[i]), durations(res.p50[lRawSet]))
}

func (res *latencyResult) table(o options) *table {
	t := &table{
		title:  fmt.Sprintf("Claim latency, one caller: median of %d interleaved rounds", o.rounds),
		header: []string{"", "p50", "p99", "p50 ÷ bare SET p50", "p99 ÷ bare SET p99", "calls timed"},
		right:  []bool{false, true, true, true, true, true},
	}
	for i, name := range res.names {
		t.add(name,
			fmtMicros(time.Duration(median(durations(res.p50[i])))),
			fmtMicros(time.Duration(median(durations(res.p99[i])))),
			fmtRatioSpread(res.p50Ratio(i)),
			fmtRatioSpread(ratios(durations(res.p99[i]), durations(res.p99[lRawSet]))),
			fmt.Sprint(res.samples[i]))
	}
	t.note("One goroutine calls one at a time; in a round the contenders take turns of %d calls each until each has had about %v; p50 and p99 are taken per round, then their median over rounds; a ratio is the median of per-round ratios (range). The module is configured as in the throughput table; each claim is a fresh message id. Module claims that failed open: pool %d, pipeline %d.",
		latencyChunk, o.latency, res.failOpen[0], res.failOpen[1])
	return t
}
