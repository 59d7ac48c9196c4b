package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/ports"
)

// benchPoolIdle is the pool size the claim measurements give the module,
// with no cap on active connections: every caller of the largest
// concurrency keeps a connection instead of dialing.
const benchPoolIdle = 256

// moduleConfig returns the module's default configuration (app.LoadConfig
// with no file) for store at url, with redis.pipeline set to pipeline.
func moduleConfig(store, url string, pipeline bool) (app.Config, error) {
	cfg, err := app.LoadConfig("")
	if err != nil {
		return app.Config{}, err
	}
	cfg.Store = store
	cfg.Redis.URL = url
	cfg.Redis.Pipeline = pipeline
	return cfg, nil
}

// newModule builds the module for cfg and checks that it reaches Redis, so
// that no measurement runs against a module failing open.
func newModule(ctx context.Context, cfg app.Config, fetcher ports.TokenFetcher) (*app.Module, error) {
	mod, err := app.New(ctx, cfg, nil, fetcher)
	if err != nil {
		return nil, err
	}
	if err := mod.Ping(ctx); err != nil {
		mod.Close()
		return nil, fmt.Errorf("module cannot reach redis: %w", err)
	}
	return mod, nil
}

// modeName labels a module configuration in the tables.
func modeName(pipeline bool) string {
	if pipeline {
		return "module, redis.pipeline: true"
	}
	return "module, redis.pipeline: false (pool)"
}

// failOpenEvents is how many store errors the module answered with a safe
// default since it was built.
func failOpenEvents(mod *app.Module) uint64 {
	var n uint64
	for _, v := range mod.Stats().FailOpen {
		n += v
	}
	return n
}

// refusingFetcher is the fetcher of modules that must never fetch a token.
type refusingFetcher struct{}

func (refusingFetcher) FetchToken(context.Context, string) (ports.Token, error) {
	return ports.Token{}, errors.New("bench: no token fetch expected here")
}

// countingFetcher stands in for the auth service: each call takes latency
// and is counted; the token names its tenant and the call.
type countingFetcher struct {
	latency time.Duration
	calls   atomic.Int64
}

func (f *countingFetcher) FetchToken(ctx context.Context, tenantID string) (ports.Token, error) {
	n := f.calls.Add(1)
	t := time.NewTimer(f.latency)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return ports.Token{}, ctx.Err()
	}
	return ports.Token{AccessToken: tokenPrefix(tenantID) + strconv.FormatInt(n, 10), ExpiresIn: time.Hour}, nil
}

// tokenPrefix starts every token countingFetcher issues for tenantID.
func tokenPrefix(tenantID string) string { return "tok-" + tenantID + "-" }
