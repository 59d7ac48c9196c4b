package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/wa2genesys/connectorcache/app"
)

// hitTenants is how many tenants the token-hit benchmarks spread over.
const hitTenants = 16

// Contenders of the token-hit benchmark, in table order.
const (
	tModule = iota
	tOAuth2
	nTokens
)

type tokenResult struct {
	procs []int
	// ns and allocs hold each round's figures, by contender and procs index.
	ns     [nTokens][][]float64
	allocs [nTokens][][]float64
	// misses counts module Token calls during the benchmarks that found
	// no fresh token, fetches the auth-service calls, redisGets the GETs
	// Redis served meanwhile (the near cache re-reading it).
	misses, fetches, redisGets uint64
}

// benchProcs is the GOMAXPROCS values the token hit is measured at: 1, 2
// and the machine's CPU count.
func benchProcs() []int {
	p := []int{1, 2, runtime.NumCPU()}
	slices.Sort(p)
	return slices.Compact(p)
}

// runTokens benchmarks a warm token hit, the module against x/oauth2's
// ReuseTokenSource, at each GOMAXPROCS, in interleaved rounds.
func runTokens(ctx context.Context, e *env) (*tokenResult, error) {
	cfg, err := moduleConfig(app.StoreRedis, e.srv.url(), false)
	if err != nil {
		return nil, err
	}
	fetcher := &countingFetcher{}
	mod, err := newModule(ctx, cfg, fetcher)
	if err != nil {
		return nil, err
	}
	defer mod.Close()
	tenants := make([]string, hitTenants)
	sources := make([]oauth2.TokenSource, hitTenants)
	for i := range tenants {
		tenants[i] = "hit" + strconv.Itoa(i)
		if _, err := mod.Tokens.Token(ctx, tenants[i]); err != nil {
			return nil, errorf(err, "warm token of %s", tenants[i])
		}
		valid := &oauth2.Token{AccessToken: "tok", TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}
		sources[i] = oauth2.ReuseTokenSource(valid, refusingSource{})
	}
	before := mod.Stats().Tokens
	if _, err := e.admin.Do("CONFIG", "RESETSTAT"); err != nil {
		return nil, fmt.Errorf("CONFIG RESETSTAT: %w", err)
	}

	benches := [nTokens]func(*testing.B, *atomic.Pointer[error]){
		tModule: func(b *testing.B, failed *atomic.Pointer[error]) {
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				tenant := tenants[next.Add(1)%hitTenants]
				for pb.Next() {
					if tok, err := mod.Tokens.Token(ctx, tenant); err != nil || tok == "" {
						fail(failed, fmt.Errorf("Token(%s): a token of %d bytes, %v", tenant, len(tok), err))
						return
					}
				}
			})
		},
		tOAuth2: func(b *testing.B, failed *atomic.Pointer[error]) {
			var next atomic.Uint32
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				src := sources[next.Add(1)%hitTenants]
				for pb.Next() {
					if tok, err := src.Token(); err != nil || tok.AccessToken == "" {
						fail(failed, fmt.Errorf("ReuseTokenSource.Token: %v", err))
						return
					}
				}
			})
		},
	}
	res := &tokenResult{procs: benchProcs()}
	for i := range nTokens {
		res.ns[i] = make([][]float64, len(res.procs))
		res.allocs[i] = make([][]float64, len(res.procs))
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for r := range e.o.rounds {
		for pi, procs := range res.procs {
			runtime.GOMAXPROCS(procs)
			for _, i := range rotation(nTokens, r) {
				var failed atomic.Pointer[error]
				br := testing.Benchmark(func(b *testing.B) { benches[i](b, &failed) })
				if p := failed.Load(); p != nil {
					return nil, errorf(*p, "token hit, GOMAXPROCS %d", procs)
				}
				if br.N == 0 {
					return nil, errors.New("token hit benchmark did not run")
				}
				res.ns[i][pi] = append(res.ns[i][pi], float64(br.T.Nanoseconds())/float64(br.N))
				res.allocs[i][pi] = append(res.allocs[i][pi], float64(br.MemAllocs)/float64(br.N))
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			e.progress("token hit, round %d/%d, GOMAXPROCS %d: module %s, x/oauth2 %s", r+1, e.o.rounds, procs,
				fmtNs(res.ns[tModule][pi][r]), fmtNs(res.ns[tOAuth2][pi][r]))
		}
	}
	after := mod.Stats().Tokens
	res.misses, res.fetches = after.Misses-before.Misses, after.Fetches-before.Fetches
	if res.redisGets, err = e.commandCalls("get"); err != nil {
		return nil, err
	}
	return res, nil
}

// fail records err as a benchmark's failure unless one was recorded. It
// takes err by value: taking the address of an error variable in the
// benchmark loop itself would move it to the heap on every call and count
// an allocation per op against the code measured.
func fail(failed *atomic.Pointer[error], err error) { failed.CompareAndSwap(nil, &err) }

// refusingSource is the token source behind ReuseTokenSource: the valid
// token it starts with is always reused, so it is never called.
type refusingSource struct{}

func (refusingSource) Token() (*oauth2.Token, error) {
	return nil, errors.New("bench: no token fetch expected here")
}

// speedup is each round's ns/op at GOMAXPROCS 1 over that at procs index pi.
func (res *tokenResult) speedup(i, pi int) []float64 {
	return ratios(res.ns[i][0], res.ns[i][pi])
}

func (res *tokenResult) table(o options) *table {
	t := &table{
		title: fmt.Sprintf("Token hit, warm cache, parallel: median of %d interleaved rounds", o.rounds),
		header: []string{"GOMAXPROCS", "module ns/op", "module allocs/op", "x/oauth2 ns/op", "x/oauth2 allocs/op",
			"module ÷ x/oauth2", "module speedup from 1", "x/oauth2 speedup from 1"},
		right: []bool{true, true, true, true, true, true, true, true},
	}
	for pi, procs := range res.procs {
		t.add(strconv.Itoa(procs),
			fmtNs(median(res.ns[tModule][pi])), fmt.Sprintf("%.2f", median(res.allocs[tModule][pi])),
			fmtNs(median(res.ns[tOAuth2][pi])), fmt.Sprintf("%.2f", median(res.allocs[tOAuth2][pi])),
			fmtRatioSpread(ratios(res.ns[tModule][pi], res.ns[tOAuth2][pi])),
			fmtRatioSpread(res.speedup(tModule, pi)), fmtRatioSpread(res.speedup(tOAuth2, pi)))
	}
	t.note("`testing.Benchmark` with `b.RunParallel` (one goroutine per P) and `b.ReportAllocs`, -benchtime %v; ns/op is wall time over all goroutines, so a path that scales halves it from 1 to 2 procs. module: `mod.Tokens.Token(ctx, tenant)` over %d warm tenants, `store: redis`, default configuration (the near cache answers; Redis is read again every `token.local_max_age`). x/oauth2 %s: `oauth2.ReuseTokenSource(validToken, src).Token()`, one source per tenant. During the module benchmarks: %d token misses, %d auth fetches, %d Redis GETs (INFO commandstats).",
		o.benchtime, hitTenants, depVersion("golang.org/x/oauth2"), res.misses, res.fetches, res.redisGets)
	return t
}
