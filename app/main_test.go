package app_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/config"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

// fakeFetcher is an auth service that hands out one token and counts calls.
type fakeFetcher struct {
	token     string
	expiresIn time.Duration
	calls     atomic.Int64
}

func newFetcher(token string) *fakeFetcher {
	return &fakeFetcher{token: token, expiresIn: time.Hour}
}

func (f *fakeFetcher) FetchToken(context.Context, string) (ports.Token, error) {
	f.calls.Add(1)
	return ports.Token{AccessToken: f.token, ExpiresIn: f.expiresIn}, nil
}

// observed returns a logger that records every entry at debug level or above.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// clearConfigEnv hides every configuration variable of the process
// environment from the test: viper ignores empty variables.
func clearConfigEnv(t testing.TB) {
	t.Helper()
	for _, key := range app.Keys() {
		t.Setenv(config.EnvName(key), "")
	}
}

// defaultConfig returns the defaults, whatever the process environment
// holds.
func defaultConfig(t testing.TB) app.Config {
	t.Helper()
	clearConfigEnv(t)
	cfg, err := app.LoadConfig("")
	if err != nil {
		t.Fatalf("LoadConfig(\"\"): %v", err)
	}
	return cfg
}

// redisConfig returns the defaults pointed at the Redis at url, with
// timeouts generous enough for a loaded machine.
func redisConfig(t testing.TB, url string) app.Config {
	t.Helper()
	cfg := defaultConfig(t)
	cfg.Store = app.StoreRedis
	cfg.Redis.URL = url
	cfg.Redis.DialTimeout = 5 * time.Second
	cfg.Redis.ReadTimeout = 5 * time.Second
	cfg.Redis.WriteTimeout = 5 * time.Second
	return cfg
}

// newModule builds a module and closes it when the test ends.
func newModule(t testing.TB, cfg app.Config, log *zap.Logger, f ports.TokenFetcher) *app.Module {
	t.Helper()
	mod, err := app.New(context.Background(), cfg, log, f)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	t.Cleanup(func() { _ = mod.Close() })
	return mod
}

// rawDo runs one command on its own connection to the Redis at url.
func rawDo(t *testing.T, url, cmd string, args ...any) any {
	t.Helper()
	c, err := redis.DialURLContext(context.Background(), url,
		redis.DialConnectTimeout(5*time.Second), redis.DialReadTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("dial %s: %v", cmd, err)
	}
	defer c.Close()
	reply, err := c.Do(cmd, args...)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return reply
}

// logText is everything an entry carries: its message and every field,
// encoded as zap would encode them.
func logText(e observer.LoggedEntry) string {
	return e.Message + " " + fmt.Sprint(e.ContextMap())
}

// assertNoSecrets fails when any secret appears in any logged message or
// field.
func assertNoSecrets(t *testing.T, logs *observer.ObservedLogs, secrets ...string) {
	t.Helper()
	for _, e := range logs.All() {
		text := logText(e)
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("a log entry holds the secret %q: %s", s, text)
			}
		}
	}
}

// startupEntry returns the entry New logged about reaching Redis: the one
// carrying the redis_url field.
func startupEntry(t *testing.T, logs *observer.ObservedLogs) observer.LoggedEntry {
	t.Helper()
	var found []observer.LoggedEntry
	for _, e := range logs.All() {
		if _, ok := e.ContextMap()["redis_url"]; ok {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d startup entries with a redis_url field, want 1; logged: %v", len(found), logs.All())
	}
	return found[0]
}
