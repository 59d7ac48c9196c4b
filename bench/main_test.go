package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseRedisBenchmarkCSV(t *testing.T) {
	const header = `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"` + "\n"
	tests := []struct {
		name    string
		give    string
		want    float64
		wantErr bool
	}{
		{
			name: "redis-benchmark 7.0",
			give: header + `"SET key:__rand_int__ val NX EX 300","54054.05","0.618","0.096","0.575","1.047","1.543","7.255"` + "\n",
			want: 54054.05,
		},
		{
			name: "rps in another column",
			give: `"rps","test"` + "\n" + `"1234.5","SET"` + "\n",
			want: 1234.5,
		},
		{name: "empty", give: "", wantErr: true},
		{name: "header only", give: header, wantErr: true},
		{name: "two tests", give: header + `"a","1","0","0","0","0","0","0"` + "\n" + `"b","2","0","0","0","0","0","0"` + "\n", wantErr: true},
		{name: "no rps column", give: `"test","qps"` + "\n" + `"SET","10"` + "\n", wantErr: true},
		{name: "rps not a number", give: `"test","rps"` + "\n" + `"SET","fast"` + "\n", wantErr: true},
		{name: "rps zero", give: `"test","rps"` + "\n" + `"SET","0"` + "\n", wantErr: true},
		{name: "short row", give: `"test","rps"` + "\n" + `"SET"` + "\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRedisBenchmarkCSV(strings.NewReader(tt.give))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseRedisBenchmarkCSV() = %v, nil; want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseRedisBenchmarkCSV() = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // descending: percentile sorts
	}
	tests := []struct {
		name  string
		give  []time.Duration
		giveQ float64
		want  time.Duration
	}{
		{name: "none", give: nil, giveQ: 0.5, want: 0},
		{name: "one", give: ms(7), giveQ: 0.99, want: 7 * time.Millisecond},
		{name: "p50 of odd count", give: ms(3, 1, 2), giveQ: 0.5, want: 2 * time.Millisecond},
		{name: "p50 of 100", give: hundred, giveQ: 0.50, want: 50 * time.Millisecond},
		{name: "p99 of 100", give: slices.Clone(hundred), giveQ: 0.99, want: 99 * time.Millisecond},
		{name: "p100", give: ms(5, 9, 1), giveQ: 1, want: 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.give, tt.giveQ); got != tt.want {
				t.Fatalf("percentile(%v) = %v, want %v", tt.giveQ, got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		name string
		give []float64
		want float64
	}{
		{name: "odd", give: []float64{5, 1, 3}, want: 3},
		{name: "even", give: []float64{4, 1, 3, 2}, want: 2.5},
		{name: "one", give: []float64{7}, want: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			give := slices.Clone(tt.give)
			if got := median(give); got != tt.want {
				t.Fatalf("median(%v) = %v, want %v", tt.give, got, tt.want)
			}
			if !slices.Equal(give, tt.give) {
				t.Fatalf("median reordered its argument: %v", give)
			}
		})
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Fatalf("median(nil) = %v, want NaN", got)
	}
}

func TestRotation(t *testing.T) {
	const n = 4
	first := map[int]int{}
	for r := range n {
		order := rotation(n, r)
		sorted := slices.Sorted(slices.Values(order))
		if !slices.Equal(sorted, []int{0, 1, 2, 3}) {
			t.Fatalf("rotation(%d, %d) = %v, not every contender once", n, r, order)
		}
		first[order[0]]++
	}
	for c := range n {
		if first[c] != 1 {
			t.Fatalf("over %d rounds contender %d ran first %d times, want once", n, c, first[c])
		}
	}
}

func TestRatios(t *testing.T) {
	got := ratios([]float64{2, 9, 5}, []float64{1, 3})
	if want := []float64{2, 3}; !slices.Equal(got, want) {
		t.Fatalf("ratios() = %v, want %v", got, want)
	}
}

func TestThroughput(t *testing.T) {
	var calls atomic.Int64
	seen := make([]atomic.Bool, 4)
	rate, err := throughput(context.Background(), 4, 50*time.Millisecond, 1_000_000, func(_ context.Context, w int, _ uint64) error {
		seen[w].Store(true)
		calls.Add(1)
		time.Sleep(time.Millisecond)
		return nil
	})
	if err != nil || rate <= 0 {
		t.Fatalf("throughput() = %v, %v; want a positive rate", rate, err)
	}
	for w := range seen {
		if !seen[w].Load() {
			t.Errorf("caller %d never called", w)
		}
	}

	t.Run("bounded by count", func(t *testing.T) {
		var n atomic.Int64
		_, err := throughput(context.Background(), 2, time.Minute, 10, func(context.Context, int, uint64) error {
			n.Add(1)
			return nil
		})
		if err != nil || n.Load() != 10 {
			t.Fatalf("throughput() made %d calls, %v; want 10, nil", n.Load(), err)
		}
	})

	t.Run("first error ends it", func(t *testing.T) {
		boom := errors.New("boom")
		start := time.Now()
		_, err := throughput(context.Background(), 3, time.Minute, 1_000_000, func(_ context.Context, _ int, seq uint64) error {
			if seq == 5 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("throughput() error = %v, want boom", err)
		}
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("throughput() went on %v after an error", d)
		}
	})

	t.Run("context ends it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(20*time.Millisecond, cancel)
		_, err := throughput(ctx, 2, time.Minute, 1_000_000_000, func(context.Context, int, uint64) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("throughput() error = %v, want context.Canceled", err)
		}
	})
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, &bytes.Buffer{})
	if err != nil {
		t.Fatalf("parseFlags(defaults): %v", err)
	}
	if o.rounds != 5 || !slices.Equal(o.callers, []int{1, 10, 50, 200}) || o.tenants != 10 || o.replicas != 3 || o.lookups != 1000 || o.fetchLatency != 20*time.Millisecond {
		t.Fatalf("defaults = %+v", o)
	}

	tests := []struct {
		name string
		give []string
	}{
		{name: "callers not a number", give: []string{"-callers", "1,x"}},
		{name: "callers zero", give: []string{"-callers", "0"}},
		{name: "no rounds", give: []string{"-rounds", "0"}},
		{name: "zero duration", give: []string{"-duration", "0s"}},
		{name: "no tenants", give: []string{"-tenants", "0"}},
		{name: "stray argument", give: []string{"extra"}},
		{name: "unknown flag", give: []string{"-fast"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseFlags(tt.give, &bytes.Buffer{}); err == nil {
				t.Fatalf("parseFlags(%q) = nil error, want one", tt.give)
			}
		})
	}
}

func TestQuoteArgs(t *testing.T) {
	tests := []struct {
		give []string
		want string
	}{
		{give: nil, want: ""},
		{give: []string{"-rounds", "7"}, want: " -rounds 7"},
		{give: []string{"-callers", "1, 2"}, want: ` -callers "1, 2"`},
		{give: []string{""}, want: ` ""`},
	}
	for _, tt := range tests {
		if got := quoteArgs(tt.give); got != tt.want {
			t.Errorf("quoteArgs(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestTableWrite(t *testing.T) {
	tb := &table{title: "T", header: []string{"a", "b"}, right: []bool{false, true}}
	tb.add("x", "1")
	tb.note("n %d", 2)
	var out bytes.Buffer
	tb.write(&out)
	want := "\n### T\n\n| a | b |\n|---|---:|\n| x | 1 |\n\nn 2\n"
	if out.String() != want {
		t.Fatalf("write() =\n%q\nwant\n%q", out.String(), want)
	}
}

// TestRun runs the whole harness, briefly, against its own redis-server
// and Redis Cluster: every table is printed with figures, and the server
// and the cluster's nodes are gone afterwards.
func TestRun(t *testing.T) {
	prev := flag.Lookup("test.benchtime").Value.String()
	if err := flag.Set("test.benchtime", "20ms"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = flag.Set("test.benchtime", prev) })
	o, err := parseFlags([]string{"-rounds", "2", "-duration", "50ms", "-latency", "30ms", "-callers", "1,8",
		"-lookups", "20", "-tenants", "3", "-replicas", "2", "-fetch-latency", "5ms"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out, progress bytes.Buffer
	if err := run(t.Context(), o, []string{"-rounds", "2"}, &out, &progress); err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	for _, want := range []string{
		"### Machine and run", "`cd bench && go run . -rounds 2`",
		"### Claim throughput: claims/s", "### Claim throughput, every round",
		"### Claim throughput on a 3-primary Redis Cluster: claims/s",
		"### Claim latency, one caller", "### Token hit, warm cache, parallel",
		"### Auth calls, cold start: 2 replicas × 3 tenants × 20 concurrent lookups", "### Goals, from this run",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out.String(), "NaN") {
		t.Errorf("output holds NaN:\n%s", out.String())
	}
	// The memory reference fetches once per tenant per replica, always.
	if !regexp.MustCompile(`\| module, store: memory[^|]*\| 6, 6 \| 6 \|`).MatchString(out.String()) {
		t.Errorf("memory row of the cold-start table is not 6 calls per run:\n%s", out.String())
	}

	addr := regexp.MustCompile(`redis-server at (\S+)`).FindStringSubmatch(progress.String())
	if addr == nil {
		t.Fatalf("progress does not name the server:\n%s", progress.String())
	}
	nodes := regexp.MustCompile(`redis cluster at (.+)`).FindStringSubmatch(progress.String())
	if nodes == nil {
		t.Fatalf("progress does not name the cluster's nodes:\n%s", progress.String())
	}
	for _, a := range append([]string{addr[1]}, strings.Split(nodes[1], ", ")...) {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("redis-server at %s still accepts connections after run", a)
		}
	}
}
