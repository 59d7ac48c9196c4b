package faults_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/ports"
)

// row is one line of the results table.
type row struct {
	scenario, transport string
	messages, processed int
	lost, duplicates    int
	p50, p99, max       time.Duration
	warnings, authCalls int
	note                string
}

var results struct {
	mu   sync.Mutex
	rows []row
}

func report(r row) {
	results.mu.Lock()
	defer results.mu.Unlock()
	results.rows = append(results.rows, r)
}

func printTable() {
	results.mu.Lock()
	defer results.mu.Unlock()
	if len(results.rows) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n| scenario | transport | messages | processed | lost | duplicates processed | p50 | p99 | max | warnings | auth calls | note |\n")
	fmt.Fprintf(&b, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range results.rows {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %s | %s | %d | %d | %s |\n",
			r.scenario, r.transport, r.messages, r.processed, r.lost, r.duplicates,
			fmtDur(r.p50), fmtDur(r.p99), fmtDur(r.max), r.warnings, r.authCalls, r.note)
	}
	fmt.Print(b.String())
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%dµs", d.Microseconds())
}

// fetcher stands in for the auth service and counts its calls.
type fetcher struct {
	calls atomic.Int64
}

func (f *fetcher) FetchToken(_ context.Context, tenantID string) (ports.Token, error) {
	n := f.calls.Add(1)
	return ports.Token{AccessToken: fmt.Sprintf("tok-%s-%d", tenantID, n), ExpiresIn: time.Hour}, nil
}

// env is one module under test, with its logs and auth service.
type env struct {
	mod       *app.Module
	auth      *fetcher
	logs      *observer.ObservedLogs
	redis     string
	transport string
}

// configFunc returns the module configuration a scenario runs with for the
// Redis at url.
type configFunc func(t *testing.T, url string) app.Config

// forEachTransport runs scenario once on each Redis transport, as the
// subtests pipeline and pool; config gives the module configuration of that
// transport: the defaults, with shorter timeouts.
func forEachTransport(t *testing.T, scenario func(t *testing.T, config configFunc)) {
	for _, pipeline := range []bool{true, false} {
		t.Run(transportName(pipeline), func(t *testing.T) {
			scenario(t, func(t *testing.T, url string) app.Config {
				t.Helper()
				cfg, err := app.LoadConfig("")
				if err != nil {
					t.Fatal(err)
				}
				cfg.Store = app.StoreRedis
				cfg.Redis.URL = url
				cfg.Redis.Pipeline = pipeline
				cfg.Redis.DialTimeout = 200 * time.Millisecond
				cfg.Redis.ReadTimeout = 200 * time.Millisecond
				cfg.Redis.WriteTimeout = 200 * time.Millisecond
				return cfg
			})
		})
	}
}

func transportName(pipeline bool) string {
	if pipeline {
		return "pipeline"
	}
	return "pool"
}

func newEnv(t *testing.T, cfg app.Config) *env {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	auth := &fetcher{}
	mod, err := app.New(context.Background(), cfg, zap.New(core), auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mod.Close() })
	return &env{mod: mod, auth: auth, logs: logs, redis: cfg.Redis.URL, transport: transportName(cfg.Redis.Pipeline)}
}

// warnings counts the warnings logged so far.
func (e *env) warnings() int {
	return e.logs.FilterLevelExact(zapcore.WarnLevel).Len()
}

// loggedError reports whether a logged line's error holds text.
func (e *env) loggedError(text string) bool {
	for _, entry := range e.logs.All() {
		if err, ok := entry.ContextMap()["error"].(string); ok && strings.Contains(err, text) {
			return true
		}
	}
	return false
}

// run is one load run: each message delivered twice, by workers in random
// order, as Meta's at-least-once delivery does.
type run struct {
	tenants  []string
	messages int // per tenant
	workers  int
	// deliver is how long processing one message takes.
	deliver time.Duration
	// during, when set, runs alongside the load; the load waits for it.
	during func(ctx context.Context)
}

type outcome struct {
	row
	errs []error
	// lostClaims counts commits answered ErrClaimLost: the message was
	// claimed by another worker while this one processed it.
	lostClaims int
}

func (e *env) run(t *testing.T, name string, r run) outcome {
	t.Helper()
	type delivery struct{ tenant, id int }
	var deliveries []delivery
	for tn := range r.tenants {
		for i := 0; i < r.messages; i++ {
			deliveries = append(deliveries, delivery{tn, i}, delivery{tn, i})
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	processed := make([]atomic.Int32, len(r.tenants)*r.messages)
	var lostClaims atomic.Int64
	latencies := make([]time.Duration, len(deliveries))
	var (
		errMu sync.Mutex
		errs  []error
	)
	fail := func(err error) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var side sync.WaitGroup
	if r.during != nil {
		side.Add(1)
		go func() { defer side.Done(); r.during(ctx) }()
	}

	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < r.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(deliveries) {
					return
				}
				d := deliveries[i]
				tenant := r.tenants[d.tenant]
				took, err := e.handle(ctx, tenant, messageID(name, d.id), r.deliver, &processed[d.tenant*r.messages+d.id])
				switch {
				case errors.Is(err, domain.ErrClaimLost):
					// Processed twice: counted as a duplicate below.
					lostClaims.Add(1)
				case err != nil:
					fail(err)
				}
				latencies[i] = took
			}
		}()
	}
	wg.Wait()
	side.Wait()

	o := outcome{errs: errs, lostClaims: int(lostClaims.Load())}
	o.scenario, o.transport = name, e.transport
	o.messages = len(processed)
	for i := range processed {
		n := int(processed[i].Load())
		if n == 0 {
			o.lost++
		} else {
			o.processed++
			o.duplicates += n - 1
		}
	}
	slices.Sort(latencies)
	o.p50, o.p99, o.max = percentile(latencies, 50), percentile(latencies, 99), latencies[len(latencies)-1]
	o.warnings = e.warnings()
	o.authCalls = int(e.auth.calls.Load())
	return o
}

// messageID is the id of the i-th message of each tenant in the run named
// name.
func messageID(name string, i int) string {
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, name)
	return fmt.Sprintf("wamid.%s.%d", slug, i)
}

// handle is what a connector does with one delivered message: take the
// tenant's token, claim the message, process it, commit. It returns the
// time spent in the module, processing excluded.
func (e *env) handle(ctx context.Context, tenant, id string, deliver time.Duration, processed *atomic.Int32) (time.Duration, error) {
	start := time.Now()
	if _, err := e.mod.Tokens.Token(ctx, tenant); err != nil {
		return time.Since(start), fmt.Errorf("token: %w", err)
	}
	claim, err := e.mod.Dedupe.Claim(ctx, tenant, id)
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("claim: %w", err)
	}
	if claim.Status() != domain.ClaimNew {
		return took, nil
	}
	processed.Add(1)
	time.Sleep(deliver)
	start = time.Now()
	err = claim.Commit(ctx)
	took += time.Since(start)
	if err != nil {
		return took, fmt.Errorf("commit: %w", err)
	}
	return took, nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

// checkNoLoss fails t when a message was lost or an error reached a caller.
func checkNoLoss(t *testing.T, o outcome) {
	t.Helper()
	if o.lost != 0 {
		t.Errorf("%s: %d messages lost", o.scenario, o.lost)
	}
	for _, err := range o.errs {
		t.Errorf("%s: error reached a caller: %v", o.scenario, err)
	}
}

// checkNoSecret fails t when a logged message or field holds secret.
func checkNoSecret(t *testing.T, logs *observer.ObservedLogs, secret string) {
	t.Helper()
	for _, entry := range logs.All() {
		if strings.Contains(fmt.Sprint(entry.Message, entry.ContextMap()), secret) {
			t.Errorf("a log line holds a secret: %q", entry.Message)
		}
	}
}

func tenants(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}
