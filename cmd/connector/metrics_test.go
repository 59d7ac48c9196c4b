package main

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/storeop"
)

// TestModuleCollector_ExportsEveryFailOpenOpFromTheFirstScrape checks that
// connector_failopen_events_total has a series, at zero, for every store
// operation (the fail-open decorators count by the same names), before any
// of them failed.
func TestModuleCollector_ExportsEveryFailOpenOpFromTheFirstScrape(t *testing.T) {
	want := slices.Sorted(slices.Values(storeop.All))
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

func TestModuleCollector_TokenCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newModuleCollector(func() app.Stats {
		return app.Stats{Tokens: domain.TokenStats{
			Hits: 11, Misses: 7, Fetches: 5, FetchErrors: 3,
			Refreshes: 4, RefreshErrors: 2, StaleServed: 6,
		}}
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "connector_token_") {
			got[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"connector_token_cache_hits_total":     11,
		"connector_token_cache_misses_total":   7,
		"connector_token_fetches_total":        5,
		"connector_token_fetch_errors_total":   3,
		"connector_token_refreshes_total":      4,
		"connector_token_refresh_errors_total": 2,
		"connector_token_stale_served_total":   6,
	}
	if !maps.Equal(got, want) {
		t.Errorf("token counters = %v\nwant %v", got, want)
	}
}
