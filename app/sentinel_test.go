package app_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// TestNew_FindsThePrimaryThroughSentinel wires the module from the
// environment alone: redis.url keeps its default, the sentinels name the
// primary.
func TestNew_FindsThePrimaryThroughSentinel(t *testing.T) {
	primary := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, redistest.SentinelOptions{Master: "connector", MasterAddr: primary.Addr(), DownAfter: time.Minute})
	t.Setenv("REDIS_SENTINEL_MASTER", "connector")
	t.Setenv("REDIS_SENTINEL_ADDRS", redistest.ClosedAddr(t)+", "+sentinel.Addr())
	cfg, err := app.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	mod := newModule(t, cfg, zap.New(core), newFetcher("tok"))

	ctx := context.Background()
	if err := mod.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	c, err := mod.Dedupe.Claim(ctx, "sentinel-tenant", "wamid.1")
	if err != nil || c.Status() != domain.ClaimNew {
		t.Fatalf("Claim = %v, %v", c.Status(), err)
	}
	if n := rawDo(t, primary.URL(), "EXISTS", "genesys:dedupe:sentinel-tenant:wamid.1"); n != int64(1) {
		t.Errorf("the claim is not on the primary the sentinel names (EXISTS = %v)", n)
	}
	if got := mod.Stats().Primary; got.Addr != primary.Addr() || got.Failovers != 0 {
		t.Errorf("Stats().Primary = %+v, want %s and no failover", got, primary.Addr())
	}
	connected := logs.FilterMessage("redis connected").All()
	if len(connected) != 1 || connected[0].ContextMap()["primary"] != primary.Addr() {
		t.Errorf("startup log = %v, want one line naming the primary %s", connected, primary.Addr())
	}
}
