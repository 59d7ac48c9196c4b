// Command bench measures connectorcache side by side with reference
// clients, against a redis-server it starts itself, and prints one Markdown
// table per measurement:
//
//   - claim throughput at several concurrencies: the module (redis.pipeline
//     false and true) against rueidis with auto-pipelining and against
//     redis-benchmark, in interleaved rounds, with per-round ratios;
//   - the same claim throughput on a 3-primary Redis Cluster it starts
//     too: the module in cluster mode against rueidis' cluster client;
//   - claim latency with one caller against a bare connection's round trip;
//   - a token cache hit against golang.org/x/oauth2's ReuseTokenSource, at
//     several GOMAXPROCS;
//   - auth-service calls when replicas sharing Redis start cold.
//
// Progress goes to standard error, the tables to standard output. Run it
// from the bench folder: go run . [flags].
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// options are the harness's settings, from its flags.
type options struct {
	rounds       int
	duration     time.Duration
	callers      []int
	latency      time.Duration
	benchtime    time.Duration
	tenants      int
	replicas     int
	lookups      int
	fetchLatency time.Duration
	redisServer  string
	redisBench   string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var (
		o       options
		callers string
		fs      = flag.NewFlagSet("bench", flag.ContinueOnError)
	)
	fs.SetOutput(stderr)
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved `rounds` per measurement; medians are taken over them")
	fs.DurationVar(&o.duration, "duration", time.Second, "length of one claim throughput measurement")
	fs.StringVar(&callers, "callers", "1,10,50,200", "concurrent callers of the claim throughput measurements, comma-separated")
	fs.DurationVar(&o.latency, "latency", 500*time.Millisecond, "length of one one-caller latency measurement")
	fs.DurationVar(&o.benchtime, "benchtime", 500*time.Millisecond, "target length of one token-hit benchmark (testing's -benchtime)")
	fs.IntVar(&o.tenants, "tenants", 10, "tenants of the cold-start scenario")
	fs.IntVar(&o.replicas, "replicas", 3, "replicas (modules) sharing Redis in the cold-start scenario")
	fs.IntVar(&o.lookups, "lookups", 1000, "concurrent cold token lookups per tenant per replica")
	fs.DurationVar(&o.fetchLatency, "fetch-latency", 20*time.Millisecond, "latency of the stand-in auth service")
	fs.StringVar(&o.redisServer, "redis-server", "", "redis-server binary; empty: from PATH or /usr/bin")
	fs.StringVar(&o.redisBench, "redis-benchmark", "", "redis-benchmark binary; empty: from PATH or /usr/bin")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, f := range strings.Split(callers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("-callers: %q is not a positive whole number", f)
		}
		o.callers = append(o.callers, n)
	}
	switch {
	case o.rounds < 1:
		return o, errors.New("-rounds must be at least 1")
	case o.duration <= 0 || o.latency <= 0 || o.benchtime <= 0:
		return o, errors.New("-duration, -latency and -benchtime must be positive")
	case o.tenants < 1 || o.replicas < 1 || o.lookups < 1:
		return o, errors.New("-tenants, -replicas and -lookups must be at least 1")
	case o.fetchLatency < 0:
		return o, errors.New("-fetch-latency must not be negative")
	}
	return o, nil
}

func main() {
	// testing.Benchmark reads -test.benchtime; Init registers it.
	testing.Init()
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := flag.Set("test.benchtime", opts.benchtime.String()); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opts, os.Args[1:], os.Stdout, os.Stderr)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "bench: interrupted; redis-server stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run starts redis-server, runs every measurement, prints the tables to
// out and progress to progress, and stops the server, also when ctx ends
// or a measurement fails; likewise the Redis Cluster of the cluster
// measurement, for its duration.
func run(ctx context.Context, o options, args []string, out, progress io.Writer) error {
	started := time.Now()
	serverBin, err := findBinary(o.redisServer, "redis-server", "redis-server")
	if err != nil {
		return err
	}
	benchBin, err := findBinary(o.redisBench, "redis-benchmark", "redis-tools")
	if err != nil {
		return err
	}
	facts := machineFacts(ctx, o, args, serverBin, benchBin)

	srv, err := startServer(serverBin)
	if err != nil {
		return err
	}
	defer srv.stop()
	e, err := newEnv(o, srv, progress)
	if err != nil {
		return err
	}
	defer e.admin.Close()
	e.progress("redis-server at %s", srv.addr)

	fmt.Fprintln(out, "## connectorcache benchmark")
	facts.write(out)

	var g goals
	tp, err := runThroughput(ctx, e, benchBin)
	if err != nil {
		return err
	}
	tp.tables(o).write(out)
	tp.detail(o).write(out)
	g.throughput(tp, o)

	cl, err := runClusterThroughput(ctx, e, serverBin)
	if err != nil {
		return err
	}
	cl.table(o).write(out)
	g.cluster(cl, o)

	lat, err := runLatency(ctx, e)
	if err != nil {
		return err
	}
	lat.table(o).write(out)
	g.latency(lat)

	tok, err := runTokens(ctx, e)
	if err != nil {
		return err
	}
	tok.table(o).write(out)
	g.tokens(tok)

	cold, err := runColdStart(ctx, e)
	if err != nil {
		return err
	}
	cold.table(o).write(out)
	g.coldStart(cold, o)

	summary := g.table()
	summary.note("Total run time: %s; load average at the end: %s (at the start: see the first table). The clients, redis-server and anything else running share the machine's cores: a busy machine lowers every figure, the ratios of one round less so.",
		time.Since(started).Round(time.Second), loadAverage())
	summary.write(out)
	return nil
}
