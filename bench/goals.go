package main

import (
	"fmt"
	"slices"
	"strconv"
)

// The module's performance goals, as ratios and counts from one run.
const (
	goalVsRueidis        = 1.0
	goalClusterVsRueidis = 1.0
	goalVsRedisBenchmark = 1.5
	goalLatencyRatio     = 1.1
	goalTokenNs          = 30.0
	// goalScaling is the share of perfect scaling from 1 procs to the
	// machine's count that counts as "scaling with cores".
	goalScaling = 0.75
)

// goals collects each goal's measured figure and verdict.
type goals struct{ t table }

func (g *goals) add(what, mode, measured, goal string, ok bool) {
	g.t.add(what, mode, measured, goal, verdict(ok))
}

func (g *goals) table() *table {
	g.t.title = "Goals, from this run"
	g.t.header = []string{"figure", "", "measured", "goal", "met"}
	g.t.right = []bool{false, false, true, true, false}
	return &g.t
}

// throughputGoals checks claim throughput at 50 callers, or the largest
// concurrency measured below it when 50 was not.
func (g *goals) throughput(res *throughputResult, o options) {
	ci := -1
	for i, c := range o.callers {
		if c <= 50 && (ci < 0 || c > o.callers[ci]) {
			ci = i
		}
	}
	if ci < 0 {
		return
	}
	what := fmt.Sprintf("claim throughput, %d callers", o.callers[ci])
	for _, mode := range []int{cPool, cPipeline} {
		r := median(ratios(res.rates[mode][ci], res.rates[cRueidis][ci]))
		g.add(what+" ÷ rueidis", shortName(mode), fmtRatio(r), fmt.Sprintf("≥ %.1f×", goalVsRueidis), r >= goalVsRueidis)
	}
	for _, mode := range []int{cPool, cPipeline} {
		r := median(ratios(res.rates[mode][ci], res.rates[cRedisBenchmark][ci]))
		g.add(what+" ÷ redis-benchmark", shortName(mode), fmtRatio(r), fmt.Sprintf("≥ %.1f×", goalVsRedisBenchmark), r >= goalVsRedisBenchmark)
	}
}

// cluster checks the pipeline's claim throughput on the Redis Cluster
// against rueidis at the largest concurrency measured.
func (g *goals) cluster(res *clusterResult, o options) {
	ci := 0
	for i, c := range o.callers {
		if c > o.callers[ci] {
			ci = i
		}
	}
	r := median(ratios(res.rates[cPipeline][ci], res.rates[cRueidis][ci]))
	g.add(fmt.Sprintf("claim throughput on a %d-primary Redis Cluster, %d callers ÷ rueidis", len(clusterRanges), o.callers[ci]),
		shortName(cPipeline), fmtRatio(r), fmt.Sprintf("≥ %.1f×", goalClusterVsRueidis), r >= goalClusterVsRueidis)
}

func (g *goals) latency(res *latencyResult) {
	for _, mode := range []int{lPool, lPipeline} {
		r := median(res.p50Ratio(mode))
		g.add("claim p50, one caller ÷ bare round trip (same SET)", shortName(mode), fmtRatio(r),
			fmt.Sprintf("≤ %.1f×", goalLatencyRatio), r <= goalLatencyRatio)
	}
}

func (g *goals) tokens(res *tokenResult) {
	last := len(res.procs) - 1
	procs := res.procs[last]
	ns := median(res.ns[tModule][last])
	g.add(fmt.Sprintf("token hit, GOMAXPROCS %d", procs), "", fmtNs(ns), fmt.Sprintf("≤ %.0f ns", goalTokenNs), ns <= goalTokenNs)
	allocs := slices.Max(slices.Concat(res.allocs[tModule]...))
	g.add("token hit allocations, most of any run", "", fmt.Sprintf("%.2f allocs/op", allocs), "0 (whole allocations per op)", allocs < 1)
	if procs > 1 {
		s := median(res.speedup(tModule, last))
		want := goalScaling * float64(procs)
		g.add(fmt.Sprintf("token hit speedup, GOMAXPROCS 1 → %d", procs), "", fmtRatio(s), fmt.Sprintf("≥ %.2f×", want), s >= want)
	}
}

func (g *goals) coldStart(res *coldResult, o options) {
	for i, name := range res.names {
		if !res.shared[i] {
			continue
		}
		most := slices.Max(res.calls[i])
		least := slices.Min(res.calls[i])
		measured := strconv.FormatInt(least, 10)
		if most != least {
			measured += "–" + strconv.FormatInt(most, 10)
		}
		g.add(fmt.Sprintf("auth calls, cold start, %d replicas × %d tenants, every run", o.replicas, o.tenants), name, measured,
			"exactly "+strconv.Itoa(o.tenants), most == int64(o.tenants) && least == most)
	}
}
