package main

import (
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa2genesys/connectorcache/adapters/failopen"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/ports"
)

// brokenStore fails every store operation, as a store whose Redis is down.
type brokenStore struct{}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

func (brokenStore) GetToken(context.Context, string) (ports.CachedToken, bool, error) {
	return ports.CachedToken{}, false, errDown
}
func (brokenStore) PutToken(context.Context, string, ports.CachedToken, time.Duration) error {
	return errDown
}
func (brokenStore) DeleteToken(context.Context, string) error { return errDown }
func (brokenStore) LockToken(context.Context, string, string, time.Duration) (bool, error) {
	return false, errDown
}
func (brokenStore) UnlockToken(context.Context, string, string) error { return errDown }
func (brokenStore) Claim(context.Context, string, string, string, time.Duration) (ports.ClaimState, error) {
	return 0, errDown
}
func (brokenStore) Commit(context.Context, string, string, string, time.Duration) (bool, error) {
	return false, errDown
}
func (brokenStore) Release(context.Context, string, string, string) (bool, error) {
	return false, errDown
}

// failOpenOpsCounted calls every operation of every fail-open decorator on
// a broken store and returns the operations counted, sorted.
func failOpenOpsCounted(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	events := &failopen.Events{}
	tokens := failopen.NewTokenStore(brokenStore{}, nil, events)
	lock := failopen.NewTokenLock(brokenStore{}, nil, events)
	dedupe := failopen.NewDedupeStore(brokenStore{}, nil, events)
	_, _, _ = tokens.GetToken(ctx, "acme")
	_ = tokens.PutToken(ctx, "acme", ports.CachedToken{}, time.Minute)
	_ = tokens.DeleteToken(ctx, "acme")
	_, _ = lock.LockToken(ctx, "acme", "owner", time.Second)
	_ = lock.UnlockToken(ctx, "acme", "owner")
	_, _ = dedupe.Claim(ctx, "acme", "wamid.a", "owner", time.Minute)
	_, _ = dedupe.Commit(ctx, "acme", "wamid.a", "owner", time.Minute)
	_, _ = dedupe.Release(ctx, "acme", "wamid.a", "owner")
	var ops []string
	for op, n := range events.Snapshot() {
		if n != 1 {
			t.Errorf("fail-open op %s counted %d times, want 1", op, n)
		}
		ops = append(ops, op)
	}
	sort.Strings(ops)
	return ops
}

// TestModuleCollector_ExportsEveryFailOpenOpFromTheFirstScrape checks that
// connector_failopen_events_total has a series, at zero, for every operation
// the fail-open decorators count, before any of them failed.
func TestModuleCollector_ExportsEveryFailOpenOpFromTheFirstScrape(t *testing.T) {
	want := failOpenOpsCounted(t)
	if len(want) == 0 {
		t.Fatal("the fail-open decorators counted nothing; the test cannot check the list")
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(newModuleCollector(func() app.Stats { return app.Stats{} }))
	got := failOpenSeries(t, reg)
	var names []string
	for op, v := range got {
		names = append(names, op)
		if v != 0 {
			t.Errorf("op %s = %v before any failure, want 0", op, v)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("connector_failopen_events_total ops = %v, want every op the decorators count: %v", names, want)
	}
}

func TestModuleCollector_FailOpenCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newModuleCollector(func() app.Stats {
		return app.Stats{FailOpen: map[string]uint64{"lock_token": 3, "claim": 2}}
	}))
	got := failOpenSeries(t, reg)
	for op, want := range map[string]float64{"lock_token": 3, "claim": 2, "unlock_token": 0, "release": 0} {
		if v, ok := got[op]; !ok || v != want {
			t.Errorf("op %s = %v (exported %v), want %v", op, v, ok, want)
		}
	}
}

// failOpenSeries gathers connector_failopen_events_total by op.
func failOpenSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "connector_failopen_events_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "op" {
					out[lp.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}
