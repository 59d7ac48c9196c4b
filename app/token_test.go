package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// errAuthDown is what flakyFetcher answers once it fails.
var errAuthDown = errors.New("auth service down")

// flakyFetcher is an auth service that hands out one token until failing
// is set, then fails with errAuthDown; it counts every call.
type flakyFetcher struct {
	fakeFetcher
	failing atomic.Bool
}

func newFlakyFetcher(token string) *flakyFetcher {
	return &flakyFetcher{fakeFetcher: fakeFetcher{token: token, expiresIn: time.Hour}}
}

func (f *flakyFetcher) FetchToken(ctx context.Context, tenantID string) (ports.Token, error) {
	if f.failing.Load() {
		f.calls.Add(1)
		return ports.Token{}, errAuthDown
	}
	return f.fakeFetcher.FetchToken(ctx, tenantID)
}

// sealedConfig returns redisConfig's configuration for the Redis at url,
// with the token encryption keys that keys, a TOKEN_ENCRYPTION_KEYS value,
// gives when LoadConfig reads it from the environment.
func sealedConfig(t *testing.T, url, keys string) app.Config {
	t.Helper()
	cfg := redisConfig(t, url)
	t.Setenv("TOKEN_ENCRYPTION_KEYS", keys)
	loaded, err := app.LoadConfig("")
	if err != nil {
		t.Fatalf("LoadConfig with TOKEN_ENCRYPTION_KEYS set: %v", err)
	}
	if loaded.Token.EncryptionKeys == nil {
		t.Fatal("LoadConfig with TOKEN_ENCRYPTION_KEYS set: no keyring")
	}
	cfg.Token.EncryptionKeys = loaded.Token.EncryptionKeys
	return cfg
}

// storedAccessToken returns the access_token field of the value Redis at
// url holds under key; "" when it holds none.
func storedAccessToken(t *testing.T, url, key string) string {
	t.Helper()
	raw, err := redis.Bytes(rawDo(t, url, "GET", key), nil)
	if errors.Is(err, redis.ErrNil) {
		return ""
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	var v struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("GET %s = %q, not the stored token's JSON: %v", key, raw, err)
	}
	return v.AccessToken
}

// assertSealed fails unless Redis at url holds a token under key, sealed
// with the key of id keyID, and holding no trace of accessToken.
func assertSealed(t *testing.T, url, key, keyID, accessToken string) {
	t.Helper()
	raw, err := redis.String(rawDo(t, url, "GET", key), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	if strings.Contains(raw, accessToken) {
		t.Errorf("GET %s = %q holds the access token in clear", key, raw)
	}
	if got := storedAccessToken(t, url, key); !strings.HasPrefix(got, "v1."+keyID+".") {
		t.Errorf("GET %s: access_token = %q, want it sealed: v1.%s.…", key, got, keyID)
	}
}

func TestNew_SealsTokensInRedis(t *testing.T) {
	const token = "sealed-access-token-5f2c9a"
	ctx := context.Background()
	url := redistest.SharedURL(t)
	tenant := contract.TenantID(t)
	log, logs := observed()
	mod := newModule(t, sealedConfig(t, url, "k2:"+testKey2+",k1:"+testKey1), log, newFetcher(token))

	got, err := mod.Tokens.Token(ctx, tenant)
	if err != nil || got != token {
		t.Fatalf("Token = %q, %v; want %q", got, err, token)
	}
	assertSealed(t, url, redigo.TokenKey(tenant), "k2", token)

	found := logs.FilterMessage("tokens sealed in redis").All()
	if len(found) != 1 || found[0].ContextMap()["sealing_key"] != "k2" {
		t.Errorf("startup entries about sealing = %v, want one naming sealing_key k2", found)
	}
	assertNoSecrets(t, logs, token, testKey1, testKey2)
}

// TestNew_SealedTokensOpenOnlyWithTheirKey runs a second module, as another
// replica, on the Redis a first one cached a sealed token in: with the key
// that sealed it, in any place of its keyring, it hands that token out
// without fetching; without that key, the value is a miss and it fetches
// its own.
func TestNew_SealedTokensOpenOnlyWithTheirKey(t *testing.T) {
	const (
		writerToken = "writer-token-81d0"
		readerToken = "reader-token-3b7e"
	)
	tests := []struct {
		name        string
		give        string // the reader's TOKEN_ENCRYPTION_KEYS
		wantToken   string
		wantFetches int64
	}{
		{name: "same keys", give: "k1:" + testKey1, wantToken: writerToken, wantFetches: 0},
		{name: "rotated: a new key first, the old one after it", give: "k2:" + testKey2 + ",k1:" + testKey1, wantToken: writerToken, wantFetches: 0},
		{name: "another key id", give: "k9:" + testKey2, wantToken: readerToken, wantFetches: 1},
		{name: "the same key id for another key", give: "k1:" + testKey2, wantToken: readerToken, wantFetches: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url := redistest.SharedURL(t)
			tenant := contract.TenantID(t)
			writer := newModule(t, sealedConfig(t, url, "k1:"+testKey1), nil, newFetcher(writerToken))
			if _, err := writer.Tokens.Token(ctx, tenant); err != nil {
				t.Fatal(err)
			}
			readerFetcher := newFetcher(readerToken)
			log, logs := observed()
			reader := newModule(t, sealedConfig(t, url, tt.give), log, readerFetcher)

			got, err := reader.Tokens.Token(ctx, tenant)
			if err != nil || got != tt.wantToken {
				t.Errorf("the reader's Token = %q, %v; want %q", got, err, tt.wantToken)
			}
			if n := readerFetcher.calls.Load(); n != tt.wantFetches {
				t.Errorf("the reader fetched %d tokens, want %d", n, tt.wantFetches)
			}
			assertNoSecrets(t, logs, writerToken, readerToken, testKey1, testKey2)
		})
	}
}

// TestNew_MemoryStoreIgnoresEncryptionKeys checks that keys set with the
// memory store, whose tokens never leave the process, are ignored, and
// that the module says so once.
func TestNew_MemoryStoreIgnoresEncryptionKeys(t *testing.T) {
	cfg := defaultConfig(t)
	cfg.Store = app.StoreMemory
	cfg.Token.EncryptionKeys = mustKeys(t, "k1:"+testKey1)
	log, logs := observed()
	mod := newModule(t, cfg, log, newFetcher("memory-token"))

	if got, err := mod.Tokens.Token(context.Background(), "acme"); err != nil || got != "memory-token" {
		t.Errorf("Token = %q, %v; want the fetched token", got, err)
	}
	if n := logs.FilterMessageSnippet("ignored").FilterLevelExact(zapcore.InfoLevel).Len(); n != 1 {
		t.Errorf("logged %d info entries saying the keys are ignored, want 1: %v", n, logs.All())
	}
}

// TestNew_TokenPoolSlotsInRedis checks that token.pool_size, and a
// tenant's own size in PoolSizes, reach the token cache: each slot is a
// token of its own, sealed under its own key.
func TestNew_TokenPoolSlotsInRedis(t *testing.T) {
	const token = "pooled-token-a41c"
	tests := []struct {
		name     string
		giveSize int
		// giveOwn, when not zero, is the tenant's own pool size.
		giveOwn int
		want    int // slots
	}{
		{name: "pool_size", giveSize: 2, want: 2},
		{name: "the tenant's own size", giveSize: 2, giveOwn: 3, want: 3},
		{name: "the tenant's own size of 1", giveSize: 4, giveOwn: 1, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			url := redistest.SharedURL(t)
			tenant := contract.TenantID(t)
			cfg := sealedConfig(t, url, "k1:"+testKey1)
			cfg.Token.PoolSize = tt.giveSize
			cfg.Token.PoolSizes = map[string]int{"another-tenant": 7}
			if tt.giveOwn != 0 {
				cfg.Token.PoolSizes[tenant] = tt.giveOwn
			}
			fetcher := newFetcher(token)
			mod := newModule(t, cfg, nil, fetcher)

			for range 2 * tt.want {
				if _, err := mod.Tokens.Token(ctx, tenant); err != nil {
					t.Fatal(err)
				}
			}
			if n := fetcher.calls.Load(); n != int64(tt.want) {
				t.Errorf("fetched %d tokens for %d calls, want one per slot: %d", n, 2*tt.want, tt.want)
			}
			for slot := range tt.want {
				assertSealed(t, url, redigo.TokenKey(domain.TokenSlotID(tenant, slot)), "k1", token)
			}
			if got := storedAccessToken(t, url, redigo.TokenKey(domain.TokenSlotID(tenant, tt.want))); got != "" {
				t.Errorf("slot %d is stored, want %d slots only", tt.want, tt.want)
			}
		})
	}
}

// waitFor fails t unless cond holds within a deadline generous for a
// loaded machine, calling it every few milliseconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// warningsAbout returns the warnings logged with message msg, checking that
// each names tenant and the auth service's error.
func warningsAbout(t *testing.T, logs *observer.ObservedLogs, msg, tenant string) int {
	t.Helper()
	found := logs.FilterMessage(msg).FilterLevelExact(zapcore.WarnLevel).All()
	for _, e := range found {
		fields := e.ContextMap()
		if fields["tenant"] != tenant || !strings.Contains(logText(e), errAuthDown.Error()) {
			t.Errorf("warning %q, want the tenant %s and the error %q", logText(e), tenant, errAuthDown)
		}
	}
	return len(found)
}

// TestNew_StaleTokenServedWithWarning checks that token.stale_min_validity
// reaches the token cache: with the cached token gone from Redis past its
// refresh point and the auth service down, the last token is handed out,
// counted and warned about.
func TestNew_StaleTokenServedWithWarning(t *testing.T) {
	const token = "stale-token-77e1"
	ctx := context.Background()
	url := redistest.SharedURL(t)
	tenant := contract.TenantID(t)
	cfg := redisConfig(t, url)
	cfg.Token.LocalMaxAge = time.Millisecond // Redis is read again at once
	cfg.Token.RefreshAhead = 0
	fetcher := newFlakyFetcher("never-handed-out")
	fetcher.failing.Store(true)
	log, logs := observed()
	mod := newModule(t, cfg, log, fetcher)

	// A token past its refresh point, as another replica cached it, whose
	// TTL then ends.
	storeToken(t, url, tenant, token, time.Now().Add(-time.Second))
	if got, err := mod.Tokens.Token(ctx, tenant); err != nil || got != token {
		t.Fatalf("Token = %q, %v; want the cached token", got, err)
	}
	rawDo(t, url, "DEL", redigo.TokenKey(tenant))
	waitFor(t, "a token served stale", func() bool {
		got, err := mod.Tokens.Token(ctx, tenant)
		if err != nil || got != token {
			t.Fatalf("Token with the auth service down = %q, %v; want the last token", got, err)
		}
		return mod.Stats().Tokens.StaleServed > 0
	})
	if n := warningsAbout(t, logs, "auth service failed; serving the last token while it is valid", tenant); n != 1 {
		t.Errorf("logged %d warnings about serving stale, want 1: %v", n, logs.All())
	}
	assertNoSecrets(t, logs, token)
}

// TestNew_RefreshAheadFailureWarns checks that token.refresh_ahead reaches
// the token cache: a hit on a token within the window starts a refresh in
// the background, and a refresh that fails is counted and warned about
// while the cached token is still handed out.
func TestNew_RefreshAheadFailureWarns(t *testing.T) {
	const token = "ahead-token-c03d"
	ctx := context.Background()
	url := redistest.SharedURL(t)
	tenant := contract.TenantID(t)
	cfg := redisConfig(t, url)
	cfg.Token.RefreshAhead = time.Hour
	fetcher := newFlakyFetcher("never-handed-out")
	fetcher.failing.Store(true)
	log, logs := observed()
	mod := newModule(t, cfg, log, fetcher)
	// A token at its refresh point, as another replica cached it: with no
	// wait on the clock, the first hit is within any window.
	storeToken(t, url, tenant, token, time.Now())

	if got, err := mod.Tokens.Token(ctx, tenant); err != nil || got != token {
		t.Fatalf("Token within the refresh-ahead window = %q, %v; want the cached token", got, err)
	}
	// The warning comes last, once the failure is counted.
	waitFor(t, "a warning about a failed refresh ahead", func() bool {
		return logs.FilterMessage("token refresh ahead failed; the cached token is still served").Len() > 0
	})
	if st := mod.Stats().Tokens; st.Refreshes != 1 || st.RefreshErrors != 1 || fetcher.calls.Load() != 1 {
		t.Errorf("Stats().Tokens = %+v after %d fetches, want one refresh ahead", st, fetcher.calls.Load())
	}
	if n := warningsAbout(t, logs, "token refresh ahead failed; the cached token is still served", tenant); n != 1 {
		t.Errorf("logged %d warnings about the refresh, want 1: %v", n, logs.All())
	}
	assertNoSecrets(t, logs, token)
}

// storeToken caches token for tenant straight in the Redis at url, as
// another replica would: expiring in an hour, with refreshAt as its
// refresh point, for a minute.
func storeToken(t *testing.T, url, tenant, token string, refreshAt time.Time) {
	t.Helper()
	stored := fmt.Sprintf(`{"access_token":%q,"expires_at":%d,"refresh_at":%d}`,
		token, time.Now().Add(time.Hour).UnixMilli(), refreshAt.UnixMilli())
	rawDo(t, url, "SET", redigo.TokenKey(tenant), stored, "PX", time.Minute.Milliseconds())
}
