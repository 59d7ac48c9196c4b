package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

func TestNew_RejectsBadInput(t *testing.T) {
	const password = "hunter2"
	dir := t.TempDir()
	notPEM := writeFile(t, dir, "ca.pem", "this is not a certificate")

	tests := []struct {
		name    string
		give    func(c *app.Config)
		want    string
		fetcher ports.TokenFetcher
	}{
		{
			name:    "nil fetcher",
			give:    func(c *app.Config) { c.Store = app.StoreMemory },
			want:    "fetcher",
			fetcher: nil,
		},
		{
			name:    "unknown store",
			give:    func(c *app.Config) { c.Store = "mongo" },
			want:    "store",
			fetcher: newFetcher("tok"),
		},
		{
			name:    "http URL with a password",
			give:    func(c *app.Config) { c.Redis.URL = "http://user:" + password + "@redis:6379" },
			want:    "scheme",
			fetcher: newFetcher("tok"),
		},
		{
			name:    "CA file that is not PEM",
			give:    func(c *app.Config) { c.Redis.TLSCAFile = notPEM },
			want:    "redis.tls_ca_file",
			fetcher: newFetcher("tok"),
		},
		{
			name:    "missing CA file",
			give:    func(c *app.Config) { c.Redis.TLSCAFile = filepath.Join(dir, "missing.pem") },
			want:    "redis.tls_ca_file",
			fetcher: newFetcher("tok"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			tt.give(&cfg)
			mod, err := app.New(context.Background(), cfg, nil, tt.fetcher)
			if err == nil {
				_ = mod.Close()
				t.Fatalf("New = nil error, want one about %s", tt.want)
			}
			if mod != nil {
				t.Errorf("New returned a module with its error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %s", err, tt.want)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q echoes the password", err)
			}
		})
	}
}

// exercise runs the module through the flow a connector follows and checks
// every answer and the counters. The module must be fresh.
func exercise(t *testing.T, mod *app.Module, fetcher *fakeFetcher) {
	t.Helper()
	ctx := context.Background()
	tenant := contract.TenantID(t)

	// Tokens: fetched once, then served; fetched again after Invalidate.
	for i := range 2 {
		got, err := mod.Tokens.Token(ctx, tenant)
		if err != nil || got != fetcher.token {
			t.Fatalf("Token #%d = %q, %v; want the fetcher's token", i+1, got, err)
		}
	}
	if n := fetcher.calls.Load(); n != 1 {
		t.Errorf("fetcher calls after two Token calls = %d, want 1", n)
	}
	if err := mod.Tokens.Invalidate(ctx, tenant); err != nil {
		t.Fatalf("Invalidate: %v", err)
	}
	if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
		t.Fatalf("Token after Invalidate: %v", err)
	}
	if n := fetcher.calls.Load(); n != 2 {
		t.Errorf("fetcher calls after Invalidate and Token = %d, want 2", n)
	}

	// Dedupe: new, in flight while held, done once committed.
	claimStatus := func(messageID string) *domain.Claim {
		t.Helper()
		c, err := mod.Dedupe.Claim(ctx, tenant, messageID)
		if err != nil {
			t.Fatalf("Claim %s: %v", messageID, err)
		}
		return c
	}
	first := claimStatus("wamid.A")
	if first.Status() != domain.ClaimNew {
		t.Fatalf("first Claim = %v, want new", first.Status())
	}
	if got := claimStatus("wamid.A").Status(); got != domain.ClaimInFlight {
		t.Errorf("Claim while held = %v, want in-flight", got)
	}
	if err := first.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := claimStatus("wamid.A").Status(); got != domain.ClaimDone {
		t.Errorf("Claim after Commit = %v, want done", got)
	}

	// A released message is processed again on a retry.
	failed := claimStatus("wamid.B")
	if failed.Status() != domain.ClaimNew {
		t.Fatalf("Claim B = %v, want new", failed.Status())
	}
	if err := failed.Release(ctx); err != nil {
		t.Fatalf("Release: %v", err)
	}
	retry := claimStatus("wamid.B")
	if retry.Status() != domain.ClaimNew {
		t.Errorf("Claim after Release = %v, want new", retry.Status())
	}
	if err := retry.Commit(ctx); err != nil {
		t.Fatalf("Commit of the retry: %v", err)
	}

	// Bad ids never reach the store.
	if _, err := mod.Tokens.Token(ctx, "tenant:with:colons"); !errors.Is(err, domain.ErrInvalidTenantID) {
		t.Errorf("Token with a bad tenant id = %v, want ErrInvalidTenantID", err)
	}
	if _, err := mod.Dedupe.Claim(ctx, tenant, "wamid with space"); !errors.Is(err, domain.ErrInvalidMessageID) {
		t.Errorf("Claim with a bad message id = %v, want ErrInvalidMessageID", err)
	}

	st := mod.Stats()
	wantTokens := domain.TokenStats{Hits: 1, Misses: 2, Fetches: 2}
	if st.Tokens != wantTokens {
		t.Errorf("Stats().Tokens = %+v, want %+v", st.Tokens, wantTokens)
	}
	wantDedupe := domain.DedupeStats{New: 3, InFlight: 1, Done: 1, Committed: 2, Released: 1}
	if st.Dedupe != wantDedupe {
		t.Errorf("Stats().Dedupe = %+v, want %+v", st.Dedupe, wantDedupe)
	}
	if len(st.FailOpen) != 0 {
		t.Errorf("Stats().FailOpen = %v, want none: the store works", st.FailOpen)
	}
	if st.Breaker != app.BreakerClosed {
		t.Errorf("Stats().Breaker = %v, want closed", st.Breaker)
	}
	if err := mod.Ping(ctx); err != nil {
		t.Errorf("Ping = %v, want nil", err)
	}
}

func TestNew_MemoryStore(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Store = app.StoreMemory
	// The memory store never touches Redis: an address nothing listens on
	// proves it.
	cfg.Redis.URL = "redis://" + redistest.ClosedAddr(t)
	log, logs := observed()
	fetcher := newFetcher("memory-token")

	mod, err := app.New(context.Background(), cfg, log, fetcher)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exercise(t, mod, fetcher)

	st := mod.Stats()
	if st.Store != app.StoreMemory {
		t.Errorf("Stats().Store = %q, want %q", st.Store, app.StoreMemory)
	}
	if st.Pool != (app.PoolStats{}) {
		t.Errorf("Stats().Pool = %+v, want zero for the memory store", st.Pool)
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Errorf("logged %d warnings with the memory store, want none: %v", n, logs.All())
	}
	if err := mod.Close(); err != nil {
		t.Errorf("Close = %v, want nil", err)
	}
}

func TestNew_NilLoggerIsAllowed(t *testing.T) {
	tests := []struct {
		name string
		give func(t *testing.T) app.Config
	}{
		{name: "memory", give: func(t *testing.T) app.Config {
			c := defaultConfig(t)
			c.Store = app.StoreMemory
			return c
		}},
		{name: "redis up", give: func(t *testing.T) app.Config { return redisConfig(t, redistest.SharedURL(t)) }},
		{name: "redis down", give: func(t *testing.T) app.Config { return redisConfig(t, "redis://"+redistest.ClosedAddr(t)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mod := newModule(t, tt.give(t), nil, newFetcher("tok"))
			ctx := context.Background()
			if _, err := mod.Tokens.Token(ctx, contract.TenantID(t)); err != nil {
				t.Errorf("Token: %v", err)
			}
			if _, err := mod.Dedupe.Claim(ctx, contract.TenantID(t), "wamid.1"); err != nil {
				t.Errorf("Claim: %v", err)
			}
		})
	}
}

func TestNew_RedisStore(t *testing.T) {
	cfg := redisConfig(t, redistest.SharedURL(t))
	log, logs := observed()
	fetcher := newFetcher("redis-token")

	mod, err := app.New(context.Background(), cfg, log, fetcher)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exercise(t, mod, fetcher)

	st := mod.Stats()
	if st.Store != app.StoreRedis {
		t.Errorf("Stats().Store = %q, want %q", st.Store, app.StoreRedis)
	}
	if st.Pool.Active < 1 || (!cfg.Redis.Pipeline && st.Pool.Idle < 1) {
		t.Errorf("Stats().Pool = %+v, want open connections after use", st.Pool)
	}
	if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 0 {
		t.Errorf("logged %d warnings with a working Redis, want none: %v", n, logs.All())
	}

	if err := mod.Close(); err != nil {
		t.Fatalf("Close = %v, want nil", err)
	}
	if err := mod.Ping(context.Background()); err == nil {
		t.Error("Ping after Close = nil, want an error: the pool is closed")
	}
}

// TestNew_RedisSharesStateBetweenModules runs two modules, as two replicas
// of the connector would, on one Redis: a token one fetched serves the
// other, and a message one claimed is a duplicate for the other.
func TestNew_RedisSharesStateBetweenModules(t *testing.T) {
	ctx := context.Background()
	url := redistest.SharedURL(t)
	fetcherA, fetcherB := newFetcher("shared-token"), newFetcher("other-token")
	a := newModule(t, redisConfig(t, url), nil, fetcherA)
	b := newModule(t, redisConfig(t, url), nil, fetcherB)
	tenant := contract.TenantID(t)

	if _, err := a.Tokens.Token(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	got, err := b.Tokens.Token(ctx, tenant)
	if err != nil || got != "shared-token" {
		t.Errorf("replica B's Token = %q, %v; want replica A's token from Redis", got, err)
	}
	if n := fetcherB.calls.Load(); n != 0 {
		t.Errorf("replica B fetched %d tokens, want 0", n)
	}

	claim, err := a.Dedupe.Claim(ctx, tenant, "wamid.shared")
	if err != nil || claim.Status() != domain.ClaimNew {
		t.Fatalf("replica A's Claim = %v, %v; want new", claim.Status(), err)
	}
	dup, err := b.Dedupe.Claim(ctx, tenant, "wamid.shared")
	if err != nil || dup.Status() != domain.ClaimInFlight {
		t.Errorf("replica B's Claim while A holds it = %v, %v; want in-flight", dup.Status(), err)
	}
	if err := claim.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	dup, err = b.Dedupe.Claim(ctx, tenant, "wamid.shared")
	if err != nil || dup.Status() != domain.ClaimDone {
		t.Errorf("replica B's Claim after A's Commit = %v, %v; want done", dup.Status(), err)
	}
}

// TestNew_RedisPassword configures the password of a requirepass server
// through the environment, as a deployment does.
func TestNew_RedisPassword(t *testing.T) {
	const password = "s3cret-redis-pass"
	const wrongPassword = "not-the-pass-4471"
	srv := redistest.Start(t, "--requirepass", password)

	tests := []struct {
		name         string
		giveURL      string
		givePassword string
		wantUp       bool
	}{
		{name: "REDIS_PASSWORD", giveURL: srv.URL(), givePassword: password, wantUp: true},
		{name: "password in REDIS_URL", giveURL: "redis://:" + password + "@" + srv.Addr(), wantUp: true},
		{name: "REDIS_PASSWORD replaces a wrong one in the URL", giveURL: "redis://:" + wrongPassword + "@" + srv.Addr(), givePassword: password, wantUp: true},
		{name: "no password", giveURL: srv.URL(), wantUp: false},
		{name: "wrong password", giveURL: srv.URL(), givePassword: wrongPassword, wantUp: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clearConfigEnv(t)
			t.Setenv("REDIS_URL", tt.giveURL)
			t.Setenv("REDIS_PASSWORD", tt.givePassword)
			cfg, err := app.LoadConfig("")
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			log, logs := observed()
			fetcher := newFetcher("token-behind-a-password")
			mod := newModule(t, cfg, log, fetcher)
			tenant := contract.TenantID(t)

			start := startupEntry(t, logs)
			pingErr := mod.Ping(ctx)
			claim, err := mod.Dedupe.Claim(ctx, tenant, "wamid.pw")
			if err != nil || claim.Status() != domain.ClaimNew {
				t.Fatalf("Claim = %v, %v; want new either way", claim.Status(), err)
			}
			got, err := mod.Tokens.Token(ctx, tenant)
			if err != nil || got != fetcher.token {
				t.Errorf("Token = %q, %v; want the fetcher's token either way", got, err)
			}
			key := redigo.DedupeKey(tenant, "wamid.pw")
			stored := rawExists(t, srv, password, key)

			if tt.wantUp {
				if pingErr != nil {
					t.Errorf("Ping = %v, want nil", pingErr)
				}
				if start.Level != zapcore.InfoLevel {
					t.Errorf("startup entry = %s, want info: %s", start.Level, logText(start))
				}
				if !stored {
					t.Errorf("key %s is not in Redis: the claim did not reach it", key)
				}
				if fo := mod.Stats().FailOpen; len(fo) != 0 {
					t.Errorf("Stats().FailOpen = %v, want none", fo)
				}
			} else {
				if pingErr == nil {
					t.Error("Ping = nil without the right password, want an error")
				}
				if start.Level != zapcore.WarnLevel {
					t.Errorf("startup entry = %s, want warn: %s", start.Level, logText(start))
				}
				if stored {
					t.Errorf("key %s is in Redis without the right password", key)
				}
				if mod.Stats().FailOpen["claim"] == 0 {
					t.Errorf("Stats().FailOpen = %v, want the claim counted", mod.Stats().FailOpen)
				}
				assertFailOpenWarning(t, logs, tenant)
			}
			if pingErr != nil && (strings.Contains(pingErr.Error(), password) || strings.Contains(pingErr.Error(), wrongPassword)) {
				t.Errorf("Ping error %q holds a password", pingErr)
			}
			assertNoSecrets(t, logs, password, wrongPassword, fetcher.token)
		})
	}
}

// rawExists reports whether key exists on srv, authenticating with password.
func rawExists(t *testing.T, srv *redistest.Server, password, key string) bool {
	t.Helper()
	n, ok := srv.Do(t, []redis.DialOption{redis.DialPassword(password)}, "EXISTS", key).(int64)
	return ok && n == 1
}

// TestNew_RedisACLUserInURL connects as an ACL user named in the URL, one
// allowed only the module's key namespaces, with the default user disabled.
func TestNew_RedisACLUserInURL(t *testing.T) {
	const (
		user     = "connector"
		password = "acl-pass-5521"
	)
	srv := redistest.Start(t,
		"--user", "default", "off",
		"--user", user, "on", ">"+password, "~genesys:token:*", "~genesys:token-lock:*", "~genesys:dedupe:*", "+@all")
	ctx := context.Background()
	clearConfigEnv(t)
	t.Setenv("REDIS_URL", "redis://"+user+":"+password+"@"+srv.Addr())
	cfg, err := app.LoadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	log, logs := observed()
	mod := newModule(t, cfg, log, newFetcher("acl-token"))
	tenant := contract.TenantID(t)

	if err := mod.Ping(ctx); err != nil {
		t.Fatalf("Ping = %v, want nil", err)
	}
	if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
		t.Fatal(err)
	}
	claim, err := mod.Dedupe.Claim(ctx, tenant, "wamid.acl")
	if err != nil || claim.Status() != domain.ClaimNew {
		t.Fatalf("Claim = %v, %v; want new", claim.Status(), err)
	}
	if err := claim.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if fo := mod.Stats().FailOpen; len(fo) != 0 {
		t.Errorf("Stats().FailOpen = %v, want none: every command must be allowed to the user", fo)
	}
	auth := []redis.DialOption{redis.DialUsername(user), redis.DialPassword(password)}
	for _, key := range []string{redigo.TokenKey(tenant), redigo.DedupeKey(tenant, "wamid.acl")} {
		if n, _ := srv.Do(t, auth, "EXISTS", key).(int64); n != 1 {
			t.Errorf("EXISTS %s = %d, want 1", key, n)
		}
	}
	// The server enforces the ACL: the user is confined to the namespaces,
	// and nobody gets in without it.
	c, err := redis.Dial("tcp", srv.Addr(), auth...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do("GET", "outside:"+tenant); err == nil {
		t.Error("GET outside the namespaces succeeded: the ACL is not in force")
	}
	anon, err := redis.Dial("tcp", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Do("GET", redigo.TokenKey(tenant)); err == nil {
		t.Error("GET as the default user succeeded: it should be disabled")
	}

	if e := startupEntry(t, logs); !strings.Contains(logText(e), user+":xxxxx@") {
		t.Errorf("startup entry %s does not show the user with the password masked", logText(e))
	}
	assertNoSecrets(t, logs, password, "acl-token")
}
