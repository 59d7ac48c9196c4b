package app_test

// Each test here shows one promise of the module, named in the test's
// name, end to end through app.New against real redis-server processes.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

func TestAcceptance_ConnectsOnStartup(t *testing.T) {
	cfg := redisConfig(t, redistest.SharedURL(t))
	log, logs := observed()

	mod := newModule(t, cfg, log, newFetcher("tok"))

	e := startupEntry(t, logs)
	if e.Level != zapcore.InfoLevel || e.Message != "redis connected" {
		t.Errorf("startup entry = %s %q, want info \"redis connected\"", e.Level, e.Message)
	}
	if got, want := e.ContextMap()["redis_url"], cfg.Redis.RedactedURL(); got != want {
		t.Errorf("logged redis_url = %v, want %v", got, want)
	}
	// New connected before any call: the startup ping's connection stays
	// open (idle in the pool, or shared by the pipeline).
	if p := mod.Stats().Pool; p.Active < 1 || (!cfg.Redis.Pipeline && p.Idle < 1) {
		t.Errorf("Stats().Pool after New = %+v, want a pooled connection", p)
	}
	if err := mod.Ping(context.Background()); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func TestAcceptance_ConnectionErrorsLoggedNoCrash(t *testing.T) {
	ctx := context.Background()
	cfg := defaultConfig(t)
	cfg.Redis.URL = "redis://" + redistest.ClosedAddr(t)
	log, logs := observed()
	fetcher := newFetcher("tok-no-crash")

	mod, err := app.New(ctx, cfg, log, fetcher)
	if err != nil {
		t.Fatalf("New = %v, want success with Redis unreachable", err)
	}
	t.Cleanup(func() { _ = mod.Close() })
	if e := startupEntry(t, logs); e.Level != zapcore.WarnLevel {
		t.Errorf("startup entry = %s, want a warning: %s", e.Level, logText(e))
	}

	tenant := contract.TenantID(t)
	// Enough calls to open the circuit breaker and go on past it.
	for i := range 20 {
		got, err := mod.Tokens.Token(ctx, tenant)
		if err != nil || got != fetcher.token {
			t.Fatalf("Token #%d = %q, %v; want the fetcher's token", i, got, err)
		}
		claim, err := mod.Dedupe.Claim(ctx, tenant, fmt.Sprintf("wamid.nocrash.%d", i))
		if err != nil || claim.Status() != domain.ClaimNew {
			t.Fatalf("Claim #%d = %v, %v; want new", i, claim.Status(), err)
		}
		if err := claim.Commit(ctx); err != nil {
			t.Fatalf("Commit #%d = %v, want nil", i, err)
		}
	}
	if err := mod.Ping(ctx); err == nil {
		t.Error("Ping = nil with Redis unreachable, want an error")
	}
	assertFailOpenWarning(t, logs, tenant)
}

func TestAcceptance_SetNXAtomic(t *testing.T) {
	const (
		replicas = 3
		claims   = 300
	)
	ctx := context.Background()
	url := redistest.SharedURL(t)
	var mods []*app.Module
	for range replicas {
		mods = append(mods, newModule(t, redisConfig(t, url), nil, newFetcher("tok")))
	}
	tenant := contract.TenantID(t)

	// claimAll makes n concurrent claims of one message, spread over the
	// replicas, and returns their statuses and the winning claims.
	claimAll := func(n int) (map[domain.ClaimStatus]int, []*domain.Claim) {
		var (
			mu       sync.Mutex
			statuses = map[domain.ClaimStatus]int{}
			winners  []*domain.Claim
			start    = make(chan struct{})
			wg       sync.WaitGroup
		)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c, err := mods[i%replicas].Dedupe.Claim(ctx, tenant, "wamid.atomic")
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				statuses[c.Status()]++
				if c.Status() == domain.ClaimNew {
					winners = append(winners, c)
				}
			}()
		}
		close(start)
		wg.Wait()
		return statuses, winners
	}

	statuses, winners := claimAll(claims)
	if statuses[domain.ClaimNew] != 1 || statuses[domain.ClaimInFlight] != claims-1 {
		t.Fatalf("statuses of %d concurrent claims = %v, want exactly one new, the rest in-flight", claims, statuses)
	}
	for i, m := range mods {
		if fo := m.Stats().FailOpen; len(fo) != 0 {
			t.Errorf("replica %d failed open %v: a failed-open claim is granted, so the count above proves nothing", i, fo)
		}
	}
	if err := winners[0].Commit(ctx); err != nil {
		t.Fatal(err)
	}

	// After the commit every claim is a duplicate. (Claims racing inside
	// one replica may be answered in-flight by its local record while the
	// first of them asks Redis; either answer means skip.)
	statuses, _ = claimAll(100)
	if statuses[domain.ClaimNew] != 0 || statuses[domain.ClaimDone] == 0 {
		t.Errorf("statuses of 100 claims after the commit = %v, want none new", statuses)
	}
	for i, m := range mods {
		c, err := m.Dedupe.Claim(ctx, tenant, "wamid.atomic")
		if err != nil || c.Status() != domain.ClaimDone {
			t.Errorf("replica %d: Claim after the commit = %v, %v; want done", i, c.Status(), err)
		}
	}
}

func TestAcceptance_KeysInNamespaces(t *testing.T) {
	ctx := context.Background()
	url := redistest.SharedURL(t)
	mod := newModule(t, redisConfig(t, url), nil, newFetcher("tok"))
	tenant := contract.TenantID(t)
	const message = "wamid.HBgLMTU1NTEyMzQ1NjcVAgASGBQzQUVCNTM2"

	if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	if _, err := mod.Dedupe.Claim(ctx, tenant, message); err != nil {
		t.Fatal(err)
	}

	want := []string{"genesys:dedupe:" + tenant + ":" + message, "genesys:token:" + tenant}
	got, err := redis.Strings(rawDo(t, url, "KEYS", "*"+tenant+"*"), nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("keys of the tenant = %q, want %q", got, want)
	}
	for _, key := range want {
		if n, _ := redis.Int(rawDo(t, url, "EXISTS", key), nil); n != 1 {
			t.Errorf("EXISTS %s = %d, want 1", key, n)
		}
	}
}

func TestAcceptance_TTLsApplied(t *testing.T) {
	// slack is how far a TTL read back may be below the one set: the time
	// between setting and reading on a loaded machine.
	const slack = 10 * time.Second
	ctx := context.Background()
	url := redistest.SharedURL(t)

	// pttl returns the remaining TTL of key; -2 means no key.
	pttl := func(t *testing.T, key string) time.Duration {
		t.Helper()
		ms, err := redis.Int64(rawDo(t, url, "PTTL", key), nil)
		if err != nil {
			t.Fatal(err)
		}
		if ms < 0 {
			return time.Duration(ms)
		}
		return time.Duration(ms) * time.Millisecond
	}
	assertTTL := func(t *testing.T, what, key string, want time.Duration) {
		t.Helper()
		got := pttl(t, key)
		if got > want || got < want-slack {
			t.Errorf("%s: PTTL %s = %v, want %v (less at most %v)", what, key, got, want, slack)
		}
	}

	t.Run("token", func(t *testing.T) {
		tests := []struct {
			name      string
			giveLife  time.Duration
			wantTTL   time.Duration
			wantCache bool
		}{
			{name: "expires_in 3600s", giveLife: 3600 * time.Second, wantTTL: 3300 * time.Second, wantCache: true},
			{name: "expires_in 86400s", giveLife: 86400 * time.Second, wantTTL: 86100 * time.Second, wantCache: true},
			{name: "expires_in 400s: margin capped at half", giveLife: 400 * time.Second, wantTTL: 200 * time.Second, wantCache: true},
			{name: "expires_in 300s: margin capped at half", giveLife: 300 * time.Second, wantTTL: 150 * time.Second, wantCache: true},
			{name: "expires_in 1s: not cached", giveLife: time.Second, wantCache: false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				fetcher := newFetcher("tok-ttl")
				fetcher.expiresIn = tt.giveLife
				mod := newModule(t, redisConfig(t, url), nil, fetcher)
				tenant := contract.TenantID(t)

				if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
					t.Fatal(err)
				}
				key := redigo.TokenKey(tenant)
				if !tt.wantCache {
					if got := pttl(t, key); got != -2 {
						t.Errorf("PTTL %s = %v, want no key", key, got)
					}
					return
				}
				assertTTL(t, "token", key, tt.wantTTL)
			})
		}
	})

	t.Run("dedupe", func(t *testing.T) {
		tests := []struct {
			name          string
			give          func(c *app.Config)
			wantClaimTTL  time.Duration
			wantCommitTTL time.Duration
		}{
			{name: "defaults", give: func(*app.Config) {}, wantClaimTTL: 5 * time.Minute, wantCommitTTL: 86400 * time.Second},
			{
				name: "configured",
				give: func(c *app.Config) {
					c.Dedupe.ClaimTTL = 90 * time.Second
					c.Dedupe.TTL = 2 * time.Hour
				},
				wantClaimTTL:  90 * time.Second,
				wantCommitTTL: 2 * time.Hour,
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := redisConfig(t, url)
				tt.give(&cfg)
				mod := newModule(t, cfg, nil, newFetcher("tok"))
				tenant := contract.TenantID(t)
				key := redigo.DedupeKey(tenant, "wamid.ttl")

				claim, err := mod.Dedupe.Claim(ctx, tenant, "wamid.ttl")
				if err != nil || claim.Status() != domain.ClaimNew {
					t.Fatalf("Claim = %v, %v; want new", claim.Status(), err)
				}
				assertTTL(t, "claimed", key, tt.wantClaimTTL)
				if err := claim.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				assertTTL(t, "committed", key, tt.wantCommitTTL)
			})
		}
	})
}

func TestAcceptance_HealthCheckCallsPing(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	cfg := redisConfig(t, srv.URL())
	cfg.Redis.DialTimeout = time.Second
	cfg.Redis.ReadTimeout = time.Second
	cfg.Redis.WriteTimeout = time.Second
	mod := newModule(t, cfg, nil, newFetcher("tok"))
	const bound = 5 * time.Second

	if err := mod.Ping(ctx); err != nil {
		t.Fatalf("Ping with Redis up = %v, want nil", err)
	}

	srv.Stop()
	within(t, bound, "Ping with Redis stopped", func() {
		if err := mod.Ping(ctx); err == nil {
			t.Error("Ping with Redis stopped = nil, want an error")
		}
	})

	srv.Restart(t)
	// The pool reconnects by itself: Ping answers again without a new
	// module.
	deadline := time.Now().Add(bound)
	var err error
	for err = mod.Ping(ctx); err != nil && time.Now().Before(deadline); err = mod.Ping(ctx) {
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Ping after Redis restarted = %v, want nil within %v", err, bound)
	}

	// And the stores use Redis again.
	tenant := contract.TenantID(t)
	if _, err := mod.Dedupe.Claim(ctx, tenant, "wamid.after-restart"); err != nil {
		t.Fatal(err)
	}
	key := redigo.DedupeKey(tenant, "wamid.after-restart")
	if n, _ := srv.Do(t, nil, "EXISTS", key).(int64); n != 1 {
		t.Errorf("EXISTS %s after the restart = %d, want 1: the claim did not reach Redis", key, n)
	}
}

func TestAcceptance_HealthCheckMemoryStoreIsUp(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Store = app.StoreMemory
	mod := newModule(t, cfg, nil, newFetcher("tok"))
	if err := mod.Ping(context.Background()); err != nil {
		t.Errorf("Ping of the memory store = %v, want nil", err)
	}
}
