package app_test

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/seal"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/config"
)

// repoConfig is the config.yaml at the repository root, which documents
// every key with its default.
const repoConfig = "../config.yaml"

// wantDefaults is the configuration with nothing set: the README's table.
var wantDefaults = app.Config{
	Store: app.StoreRedis,
	Redis: app.RedisConfig{
		URL:          "redis://redis:6379",
		DialTimeout:  time.Second,
		ReadTimeout:  500 * time.Millisecond,
		WriteTimeout: 500 * time.Millisecond,
		Pipeline:     true,
		Pool: app.PoolConfig{
			MaxIdle:         16,
			MaxActive:       64,
			IdleTimeout:     5 * time.Minute,
			MaxConnLifetime: 30 * time.Minute,
			Wait:            true,
			TestIdleAfter:   time.Second,
		},
		Breaker: app.BreakerConfig{Failures: 5, Cooldown: time.Second, Probes: 1},
	},
	Memory: app.MemoryConfig{MaxEntries: 1_000_000},
	Token: app.TokenConfig{
		RefreshMargin:    300 * time.Second,
		FetchTimeout:     30 * time.Second,
		LocalMaxAge:      30 * time.Second,
		LockTTL:          5 * time.Second,
		RefreshAhead:     60 * time.Second,
		StaleMinValidity: 30 * time.Second,
		PoolSize:         1,
	},
	Dedupe: app.DedupeConfig{
		TTL:             24 * time.Hour,
		ClaimTTL:        5 * time.Minute,
		LocalMaxEntries: 100000,
		LocalMaxAge:     time.Hour,
	},
	Log: app.LogConfig{Level: zapcore.InfoLevel},
}

// Token encryption keys for tests: base64 of 32 random bytes, as
// `head -c 32 /dev/urandom | base64` writes them.
const (
	testKey1 = "7TrkNlQAycOZCAY7w8y7Ptz7DOpF/QyK1xyiLu/jMqo="
	testKey2 = "24BcNr1naLkxR1YiY+MDUSd0n/YjVHIONkyPGDURb1s="
	testKey3 = "gQll9EI9PyIqpPanuKI0U18uDnv8Mw2nHrzIw43sIJ4="
	testKey4 = "s7quJbUVfyf+yqe48od1gp3A/pWjp5viQ1m0Xxwdk9c="
)

// mustKeys returns the keyring of specs, each "<key id>:<base64 key>".
func mustKeys(t testing.TB, specs ...string) *seal.Keyring {
	t.Helper()
	keys, err := seal.ParseKeys(specs)
	if err != nil {
		t.Fatalf("seal.ParseKeys: %v", err)
	}
	return keys
}

// writeFile writes content to name in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfig_Defaults(t *testing.T) {
	tests := []struct {
		name string
		give string
	}{
		{name: "no file", give: ""},
		{name: "the repository's config.yaml", give: repoConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			got, err := app.LoadConfig(tt.give)
			if err != nil {
				t.Fatalf("LoadConfig(%q): %v", tt.give, err)
			}
			if !reflect.DeepEqual(got, wantDefaults) {
				t.Errorf("LoadConfig(%q) =\n%+v\nwant\n%+v", tt.give, got, wantDefaults)
			}
		})
	}
}

// TestConfigYAML_DocumentsEveryKey keeps config.yaml and the keys the module
// reads in step: every key is in the file, and the file holds no other.
func TestConfigYAML_DocumentsEveryKey(t *testing.T) {
	file := viper.New()
	file.SetConfigFile(repoConfig)
	if err := file.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	want, got := app.Keys(), file.AllKeys()
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("config.yaml keys = %v\nwant the module's keys %v", got, want)
	}
}

// overridesYAML sets every key to a value other than its default, with
// %TOPOLOGY% one of sentinelYAML and clusterYAML: Sentinel and Redis
// Cluster exclude each other.
const overridesYAML = `
store: memory
redis:
%TOPOLOGY%
  password: yaml-password
  pipeline: false
  tls_ca_file: %CA%
  dial_timeout: 2s
  read_timeout: 750ms
  write_timeout: 800ms
  pool:
    max_idle: 4
    max_active: 0
    idle_timeout: 0s
    max_conn_lifetime: 1h
    wait: false
    test_idle_after: 0s
  breaker:
    failures: 3
    cooldown: 5s
    probes: 2
memory:
  max_entries: 5000
token:
  refresh_margin: 120s
  fetch_timeout: 10s
  local_max_age: 10s
  lock_ttl: 2s
  refresh_ahead: 20s
  stale_min_validity: 0s
  pool_size: 4
  encryption_keys:
    - yaml-new:` + testKey1 + `
    - yaml-old:` + testKey2 + `
dedupe:
  ttl: 48h
  claim_ttl: 2m
  local_max_entries: 500
  local_max_age: 30m
log:
  level: debug
`

// sentinelYAML sets redis.url with a database and the sentinel keys.
const sentinelYAML = `  url: rediss://user:yaml-pass@cache.internal:6380/2
  sentinel:
    master: yaml-master
    addrs:
      - yaml-sentinel-1:26379
      - yaml-sentinel-2:26380
    username: yaml-sentinel-user
    password: yaml-sentinel-password`

// clusterYAML sets redis.url with database 0, the only one of a Redis
// Cluster, and the cluster keys.
const clusterYAML = `  url: rediss://user:yaml-pass@cache.internal:6380/0
  cluster:
    addrs:
      - yaml-node-1:6379
      - yaml-node-2:6380`

// topology is which of the keys that exclude each other an overrides file
// sets.
type topology int

const (
	withSentinel topology = iota // sentinelYAML
	withCluster                  // clusterYAML
)

// writeOverrides writes a YAML file setting every key, those of Sentinel or
// of Redis Cluster as top says (the others keep their defaults), and
// returns its path and the configuration it describes.
func writeOverrides(t *testing.T, top topology) (string, app.Config) {
	t.Helper()
	dir := t.TempDir()
	ca := writeFile(t, dir, "yaml-ca.pem", "not read at load")
	topologyYAML := sentinelYAML
	if top == withCluster {
		topologyYAML = clusterYAML
	}
	path := writeFile(t, dir, "config.yaml", strings.NewReplacer("%TOPOLOGY%", topologyYAML, "%CA%", ca).Replace(overridesYAML))
	want := app.Config{
		Store: app.StoreMemory,
		Redis: app.RedisConfig{
			Password:     "yaml-password",
			TLSCAFile:    ca,
			DialTimeout:  2 * time.Second,
			ReadTimeout:  750 * time.Millisecond,
			WriteTimeout: 800 * time.Millisecond,
			Pool: app.PoolConfig{
				MaxIdle:         4,
				MaxActive:       0,
				IdleTimeout:     0,
				MaxConnLifetime: time.Hour,
				Wait:            false,
				TestIdleAfter:   0,
			},
			Breaker: app.BreakerConfig{Failures: 3, Cooldown: 5 * time.Second, Probes: 2},
		},
		Memory: app.MemoryConfig{MaxEntries: 5000},
		Token: app.TokenConfig{
			RefreshMargin:    120 * time.Second,
			FetchTimeout:     10 * time.Second,
			LocalMaxAge:      10 * time.Second,
			LockTTL:          2 * time.Second,
			RefreshAhead:     20 * time.Second,
			StaleMinValidity: 0,
			PoolSize:         4,
			EncryptionKeys:   mustKeys(t, "yaml-new:"+testKey1, "yaml-old:"+testKey2),
		},
		Dedupe: app.DedupeConfig{
			TTL:             48 * time.Hour,
			ClaimTTL:        2 * time.Minute,
			LocalMaxEntries: 500,
			LocalMaxAge:     30 * time.Minute,
		},
		Log: app.LogConfig{Level: zapcore.DebugLevel},
	}
	switch top {
	case withSentinel:
		want.Redis.URL = "rediss://user:yaml-pass@cache.internal:6380/2"
		want.Redis.Sentinel = app.SentinelConfig{
			Master:   "yaml-master",
			Addrs:    []string{"yaml-sentinel-1:26379", "yaml-sentinel-2:26380"},
			Username: "yaml-sentinel-user",
			Password: "yaml-sentinel-password",
		}
	case withCluster:
		want.Redis.URL = "rediss://user:yaml-pass@cache.internal:6380/0"
		want.Redis.Cluster = app.ClusterConfig{Addrs: []string{"yaml-node-1:6379", "yaml-node-2:6380"}}
	}
	return path, want
}

func TestLoadConfig_YAMLOverridesEveryDefault(t *testing.T) {
	tests := []struct {
		name string
		give topology
	}{
		{name: "with Sentinel", give: withSentinel},
		{name: "with Redis Cluster", give: withCluster},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			path, want := writeOverrides(t, tt.give)

			got, err := app.LoadConfig(path)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadConfig_EnvironmentOverridesYAML(t *testing.T) {
	envCA := writeFile(t, t.TempDir(), "env-ca.pem", "not read at load")
	envKeys := mustKeys(t, "env-k1:"+testKey3, "env-k0:"+testKey4)

	tests := []struct {
		key  string
		give string
		// over is the file the variable overrides: withSentinel's unless
		// set.
		over topology
		// want edits the YAML file's configuration into the expected one.
		want func(c *app.Config)
	}{
		{key: "store", give: "redis", want: func(c *app.Config) { c.Store = app.StoreRedis }},
		{key: "redis.url", give: "rediss://env-host:7000/3", want: func(c *app.Config) { c.Redis.URL = "rediss://env-host:7000/3" }},
		{key: "redis.password", give: "env-password", want: func(c *app.Config) { c.Redis.Password = "env-password" }},
		{key: "redis.sentinel.master", give: "env-master", want: func(c *app.Config) { c.Redis.Sentinel.Master = "env-master" }},
		{key: "redis.sentinel.addrs", give: " env-sentinel-1:26379, env-sentinel-2:26379,", want: func(c *app.Config) {
			c.Redis.Sentinel.Addrs = []string{"env-sentinel-1:26379", "env-sentinel-2:26379"}
		}},
		{key: "redis.sentinel.username", give: "env-sentinel-user", want: func(c *app.Config) { c.Redis.Sentinel.Username = "env-sentinel-user" }},
		{key: "redis.sentinel.password", give: "env-sentinel-password", want: func(c *app.Config) { c.Redis.Sentinel.Password = "env-sentinel-password" }},
		{key: "redis.cluster.addrs", give: " env-node-1:6379, env-node-2:6379,", over: withCluster, want: func(c *app.Config) {
			c.Redis.Cluster.Addrs = []string{"env-node-1:6379", "env-node-2:6379"}
		}},
		{key: "redis.tls_ca_file", give: envCA, want: func(c *app.Config) { c.Redis.TLSCAFile = envCA }},
		{key: "redis.dial_timeout", give: "3s", want: func(c *app.Config) { c.Redis.DialTimeout = 3 * time.Second }},
		{key: "redis.read_timeout", give: "250ms", want: func(c *app.Config) { c.Redis.ReadTimeout = 250 * time.Millisecond }},
		{key: "redis.write_timeout", give: "1.5s", want: func(c *app.Config) { c.Redis.WriteTimeout = 1500 * time.Millisecond }},
		{key: "redis.pipeline", give: "true", want: func(c *app.Config) { c.Redis.Pipeline = true }},
		{key: "redis.pool.max_idle", give: "3", want: func(c *app.Config) { c.Redis.Pool.MaxIdle = 3 }},
		{key: "redis.pool.max_active", give: "12", want: func(c *app.Config) { c.Redis.Pool.MaxActive = 12 }},
		{key: "redis.pool.idle_timeout", give: "90s", want: func(c *app.Config) { c.Redis.Pool.IdleTimeout = 90 * time.Second }},
		{key: "redis.pool.max_conn_lifetime", give: "0s", want: func(c *app.Config) { c.Redis.Pool.MaxConnLifetime = 0 }},
		{key: "redis.pool.wait", give: "true", want: func(c *app.Config) { c.Redis.Pool.Wait = true }},
		{key: "redis.pool.test_idle_after", give: "2s", want: func(c *app.Config) { c.Redis.Pool.TestIdleAfter = 2 * time.Second }},
		{key: "redis.breaker.failures", give: "10", want: func(c *app.Config) { c.Redis.Breaker.Failures = 10 }},
		{key: "redis.breaker.cooldown", give: "250ms", want: func(c *app.Config) { c.Redis.Breaker.Cooldown = 250 * time.Millisecond }},
		{key: "redis.breaker.probes", give: "4", want: func(c *app.Config) { c.Redis.Breaker.Probes = 4 }},
		{key: "memory.max_entries", give: "1073741824", want: func(c *app.Config) { c.Memory.MaxEntries = 1 << 30 }},
		{key: "token.refresh_margin", give: "60s", want: func(c *app.Config) { c.Token.RefreshMargin = time.Minute }},
		{key: "token.fetch_timeout", give: "5s", want: func(c *app.Config) { c.Token.FetchTimeout = 5 * time.Second }},
		{key: "token.local_max_age", give: "1m", want: func(c *app.Config) { c.Token.LocalMaxAge = time.Minute }},
		{key: "token.lock_ttl", give: "750ms", want: func(c *app.Config) { c.Token.LockTTL = 750 * time.Millisecond }},
		{key: "token.refresh_ahead", give: "0s", want: func(c *app.Config) { c.Token.RefreshAhead = 0 }},
		{key: "token.stale_min_validity", give: "45s", want: func(c *app.Config) { c.Token.StaleMinValidity = 45 * time.Second }},
		{key: "token.pool_size", give: "64", want: func(c *app.Config) { c.Token.PoolSize = 64 }},
		{key: "token.encryption_keys", give: " env-k1:" + testKey3 + ", env-k0:" + testKey4 + ",", want: func(c *app.Config) { c.Token.EncryptionKeys = envKeys }},
		{key: "dedupe.ttl", give: "12h", want: func(c *app.Config) { c.Dedupe.TTL = 12 * time.Hour }},
		{key: "dedupe.claim_ttl", give: "90s", want: func(c *app.Config) { c.Dedupe.ClaimTTL = 90 * time.Second }},
		{key: "dedupe.local_max_entries", give: "2000", want: func(c *app.Config) { c.Dedupe.LocalMaxEntries = 2000 }},
		{key: "dedupe.local_max_age", give: "2h", want: func(c *app.Config) { c.Dedupe.LocalMaxAge = 2 * time.Hour }},
		{key: "log.level", give: "warn", want: func(c *app.Config) { c.Log.Level = zapcore.WarnLevel }},
	}

	t.Run("the table covers every key", func(t *testing.T) {
		var covered []string
		for _, tt := range tests {
			covered = append(covered, tt.key)
		}
		for _, key := range app.Keys() {
			if !slices.Contains(covered, key) {
				t.Errorf("key %s has no environment override test", key)
			}
		}
	})

	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			clearConfigEnv(t)
			path, want := writeOverrides(t, tt.over)
			t.Setenv(config.EnvName(tt.key), tt.give)
			tt.want(&want)

			got, err := app.LoadConfig(path)
			if err != nil {
				t.Fatalf("LoadConfig with %s=%s: %v", config.EnvName(tt.key), tt.give, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("with %s=%s, LoadConfig =\n%+v\nwant\n%+v", config.EnvName(tt.key), tt.give, got, want)
			}
		})
	}
}

func TestLoadConfig_EnvironmentIsNormalized(t *testing.T) {
	tests := []struct {
		name    string
		giveEnv map[string]string
		want    func(c *app.Config)
	}{
		{
			name:    "store in upper case with spaces",
			giveEnv: map[string]string{"STORE": " MEMORY "},
			want:    func(c *app.Config) { c.Store = app.StoreMemory },
		},
		{
			name:    "duration with spaces",
			giveEnv: map[string]string{"DEDUPE_TTL": " 36h "},
			want:    func(c *app.Config) { c.Dedupe.TTL = 36 * time.Hour },
		},
		{
			name:    "log level in upper case",
			giveEnv: map[string]string{"LOG_LEVEL": "ERROR"},
			want:    func(c *app.Config) { c.Log.Level = zapcore.ErrorLevel },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			want := wantDefaults
			tt.want(&want)

			got, err := app.LoadConfig("")
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestLoadConfig_RejectsInvalidEnvironment(t *testing.T) {
	const secret = "s3cret-hunter2"
	tests := []struct {
		name    string
		giveEnv map[string]string
		wantKey string
		want    string // also in the error, when not empty
	}{
		{name: "unknown store", giveEnv: map[string]string{"STORE": "mongo"}, wantKey: "store"},
		{name: "http URL", giveEnv: map[string]string{"REDIS_URL": "http://redis:6379"}, wantKey: "redis.url"},
		{name: "URL without scheme", giveEnv: map[string]string{"REDIS_URL": "redis:6379"}, wantKey: "redis.url"},
		{name: "URL without host", giveEnv: map[string]string{"REDIS_URL": "redis://"}, wantKey: "redis.url"},
		{name: "URL without host but a db", giveEnv: map[string]string{"REDIS_URL": "redis:///0"}, wantKey: "redis.url"},
		{name: "non-numeric db", giveEnv: map[string]string{"REDIS_URL": "redis://redis:6379/cache"}, wantKey: "redis.url"},
		{name: "negative db", giveEnv: map[string]string{"REDIS_URL": "redis://redis:6379/-1"}, wantKey: "redis.url"},
		{name: "unparsable URL", giveEnv: map[string]string{"REDIS_URL": "redis://redis:port"}, wantKey: "redis.url"},
		{name: "password in the URL's query", giveEnv: map[string]string{"REDIS_URL": "redis://redis:6379/0?password=" + secret}, wantKey: "redis.url", want: "query string"},
		{name: "options in the URL's query", giveEnv: map[string]string{"REDIS_URL": "rediss://redis:6380?db=2&ssl_cert_reqs=" + secret}, wantKey: "redis.url", want: "query string"},
		{name: "URL cut at a # in its password", giveEnv: map[string]string{"REDIS_URL": "redis://redis:6379#" + secret + "@host"}, wantKey: "redis.url", want: "fragment"},
		{name: "zero dial timeout", giveEnv: map[string]string{"REDIS_DIAL_TIMEOUT": "0s"}, wantKey: "redis.dial_timeout"},
		{name: "negative dial timeout", giveEnv: map[string]string{"REDIS_DIAL_TIMEOUT": "-1s"}, wantKey: "redis.dial_timeout"},
		{name: "word for a duration", giveEnv: map[string]string{"REDIS_READ_TIMEOUT": "abc"}, wantKey: "redis.read_timeout"},
		{name: "duration without unit", giveEnv: map[string]string{"REDIS_WRITE_TIMEOUT": "300"}, wantKey: "redis.write_timeout"},
		{name: "negative idle timeout", giveEnv: map[string]string{"REDIS_POOL_IDLE_TIMEOUT": "-1m"}, wantKey: "redis.pool.idle_timeout"},
		{name: "negative conn lifetime", giveEnv: map[string]string{"REDIS_POOL_MAX_CONN_LIFETIME": "-5s"}, wantKey: "redis.pool.max_conn_lifetime"},
		{name: "word for test idle after", giveEnv: map[string]string{"REDIS_POOL_TEST_IDLE_AFTER": "often"}, wantKey: "redis.pool.test_idle_after"},
		{name: "negative max idle", giveEnv: map[string]string{"REDIS_POOL_MAX_IDLE": "-1"}, wantKey: "redis.pool.max_idle"},
		{name: "negative max active", giveEnv: map[string]string{"REDIS_POOL_MAX_ACTIVE": "-3"}, wantKey: "redis.pool.max_active"},
		{name: "word for max idle", giveEnv: map[string]string{"REDIS_POOL_MAX_IDLE": "many"}, wantKey: "redis.pool.max_idle"},
		{name: "bad bool", giveEnv: map[string]string{"REDIS_POOL_WAIT": "maybe"}, wantKey: "redis.pool.wait"},
		{name: "pipeline as a word", giveEnv: map[string]string{"REDIS_PIPELINE": "auto"}, wantKey: "redis.pipeline"},
		{name: "zero breaker failures", giveEnv: map[string]string{"REDIS_BREAKER_FAILURES": "0"}, wantKey: "redis.breaker.failures"},
		{name: "negative breaker failures", giveEnv: map[string]string{"REDIS_BREAKER_FAILURES": "-2"}, wantKey: "redis.breaker.failures"},
		{name: "zero breaker cooldown", giveEnv: map[string]string{"REDIS_BREAKER_COOLDOWN": "0s"}, wantKey: "redis.breaker.cooldown"},
		{name: "zero breaker probes", giveEnv: map[string]string{"REDIS_BREAKER_PROBES": "0"}, wantKey: "redis.breaker.probes"},
		{name: "zero refresh margin", giveEnv: map[string]string{"TOKEN_REFRESH_MARGIN": "0s"}, wantKey: "token.refresh_margin"},
		{name: "refresh margin without unit", giveEnv: map[string]string{"TOKEN_REFRESH_MARGIN": "300"}, wantKey: "token.refresh_margin"},
		{name: "negative fetch timeout", giveEnv: map[string]string{"TOKEN_FETCH_TIMEOUT": "-30s"}, wantKey: "token.fetch_timeout"},
		{name: "dedupe ttl under a second", giveEnv: map[string]string{"DEDUPE_TTL": "500ms"}, wantKey: "dedupe.ttl"},
		{name: "zero claim ttl", giveEnv: map[string]string{"DEDUPE_CLAIM_TTL": "0s"}, wantKey: "dedupe.claim_ttl"},
		{name: "negative claim ttl", giveEnv: map[string]string{"DEDUPE_CLAIM_TTL": "-5m"}, wantKey: "dedupe.claim_ttl"},
		{name: "zero token local max age", giveEnv: map[string]string{"TOKEN_LOCAL_MAX_AGE": "0s"}, wantKey: "token.local_max_age"},
		{name: "lock ttl under a millisecond", giveEnv: map[string]string{"TOKEN_LOCK_TTL": "100us"}, wantKey: "token.lock_ttl"},
		{name: "negative refresh ahead", giveEnv: map[string]string{"TOKEN_REFRESH_AHEAD": "-1s"}, wantKey: "token.refresh_ahead", want: "zero or more"},
		{name: "refresh ahead without unit", giveEnv: map[string]string{"TOKEN_REFRESH_AHEAD": "60"}, wantKey: "token.refresh_ahead"},
		{name: "negative stale min validity", giveEnv: map[string]string{"TOKEN_STALE_MIN_VALIDITY": "-30s"}, wantKey: "token.stale_min_validity", want: "zero or more"},
		{name: "zero pool size", giveEnv: map[string]string{"TOKEN_POOL_SIZE": "0"}, wantKey: "token.pool_size", want: "from 1 to 64"},
		{name: "pool size above the maximum", giveEnv: map[string]string{"TOKEN_POOL_SIZE": "65"}, wantKey: "token.pool_size", want: "from 1 to 64"},
		{name: "pool size a word", giveEnv: map[string]string{"TOKEN_POOL_SIZE": "many"}, wantKey: "token.pool_size"},
		{name: "encryption keys of commas only", giveEnv: map[string]string{"TOKEN_ENCRYPTION_KEYS": " , "}, wantKey: "token.encryption_keys", want: "holds no item"},
		{name: "zero local max entries", giveEnv: map[string]string{"DEDUPE_LOCAL_MAX_ENTRIES": "0"}, wantKey: "dedupe.local_max_entries"},
		{name: "local max age under a second", giveEnv: map[string]string{"DEDUPE_LOCAL_MAX_AGE": "10ms"}, wantKey: "dedupe.local_max_age"},
		{name: "zero memory max entries", giveEnv: map[string]string{"MEMORY_MAX_ENTRIES": "0"}, wantKey: "memory.max_entries", want: "from 1 to 1073741824"},
		{name: "memory max entries above the maximum", giveEnv: map[string]string{"MEMORY_MAX_ENTRIES": "1073741825"}, wantKey: "memory.max_entries", want: "from 1 to 1073741824"},
		{name: "memory max entries a word", giveEnv: map[string]string{"MEMORY_MAX_ENTRIES": "lots"}, wantKey: "memory.max_entries"},
		{name: "memory max entries with a unit", giveEnv: map[string]string{"MEMORY_MAX_ENTRIES": "1M"}, wantKey: "memory.max_entries"},
		{name: "bad log level", giveEnv: map[string]string{"LOG_LEVEL": "loud"}, wantKey: "log.level"},
		{name: "missing CA file", giveEnv: map[string]string{"REDIS_TLS_CA_FILE": "/nonexistent/ca.pem"}, wantKey: "redis.tls_ca_file"},
		{name: "master without addrs", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster"}, wantKey: "redis.sentinel.addrs", want: "is required: redis.sentinel.master is set"},
		{name: "addrs without master", giveEnv: map[string]string{"REDIS_SENTINEL_ADDRS": "s1:26379"}, wantKey: "redis.sentinel.master", want: "is required: redis.sentinel.addrs is set"},
		{name: "addrs of commas only", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": " , "}, wantKey: "redis.sentinel.addrs", want: "holds no item"},
		{name: "entry without port", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "host"}, wantKey: "redis.sentinel.addrs", want: `"host"`},
		{name: "entry without host", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": ":6379"}, wantKey: "redis.sentinel.addrs", want: `":6379"`},
		{name: "port zero", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "s1:26379,h:0"}, wantKey: "redis.sentinel.addrs", want: `"h:0"`},
		{name: "port a word", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "h:x"}, wantKey: "redis.sentinel.addrs", want: `"h:x"`},
		{name: "port too large", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "h:70000"}, wantKey: "redis.sentinel.addrs", want: `"h:70000"`},
		{name: "address listed twice", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "s1:26379,s2:26379,S1:26379"}, wantKey: "redis.sentinel.addrs", want: "listed twice"},
		{name: "blank master", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "  ", "REDIS_SENTINEL_ADDRS": "s1:26379"}, wantKey: "redis.sentinel.master", want: "is blank"},
		{name: "master of two words", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "my master", "REDIS_SENTINEL_ADDRS": "s1:26379"}, wantKey: "redis.sentinel.master", want: `"my master" is not one word`},
		{name: "master with a control character", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "my\nmaster", "REDIS_SENTINEL_ADDRS": "s1:26379"}, wantKey: "redis.sentinel.master", want: "is not one word"},
		{name: "password without master", giveEnv: map[string]string{"REDIS_SENTINEL_PASSWORD": secret}, wantKey: "redis.sentinel.password", want: "redis.sentinel.master is not"},
		{name: "username without master", giveEnv: map[string]string{"REDIS_SENTINEL_USERNAME": secret}, wantKey: "redis.sentinel.username", want: "redis.sentinel.master is not"},
		{name: "bad addrs, password set", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "h:0", "REDIS_SENTINEL_PASSWORD": secret}, wantKey: "redis.sentinel.addrs", want: `"h:0"`},
		{name: "cluster addrs of commas only", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": " , "}, wantKey: "redis.cluster.addrs", want: "holds no item"},
		{name: "cluster entry without port", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379,node-2"}, wantKey: "redis.cluster.addrs", want: `"node-2"`},
		{name: "cluster entry without host", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": ":6379"}, wantKey: "redis.cluster.addrs", want: `":6379"`},
		{name: "cluster port zero", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:0"}, wantKey: "redis.cluster.addrs", want: `"node-1:0"`},
		{name: "cluster address listed twice", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379,node-2:6379,NODE-1:6379"}, wantKey: "redis.cluster.addrs", want: "listed twice"},
		{
			name:    "cluster with a sentinel master",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "s1:26379"},
			wantKey: "redis.cluster.addrs", want: "redis.sentinel.master",
		},
		{
			name:    "cluster with db 2 in the URL",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_URL": "redis://user:" + secret + "@node-1:6379/2"},
			wantKey: "redis.url", want: "database 2",
		},
		{
			name:    "cluster with db 2 in the URL, store memory",
			giveEnv: map[string]string{"STORE": "memory", "REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_URL": "redis://node-1:6379/2"},
			wantKey: "redis.url", want: "redis.cluster.addrs",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadWithEnv(t, tt.giveEnv)
			if err == nil {
				t.Fatalf("LoadConfig with %v = nil error, want one naming %s", tt.giveEnv, tt.wantKey)
			}
			if !reflect.DeepEqual(got, app.Config{}) {
				t.Errorf("LoadConfig with %v = %+v with its error, want the zero Config", tt.giveEnv, got)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("error %q does not name the key %s", err, tt.wantKey)
			}
			if env := config.EnvName(tt.wantKey); !strings.Contains(err.Error(), env) {
				t.Errorf("error %q does not name the variable %s", err, env)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not hold %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q echoes a credential", err)
			}
		})
	}
}

// loadWithEnv loads the configuration from env alone.
func loadWithEnv(t *testing.T, env map[string]string) (app.Config, error) {
	t.Helper()
	clearConfigEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	return app.LoadConfig("")
}

func TestLoadConfig_RejectsInvalidYAML(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		wantKey string
	}{
		{name: "empty store", give: "store: \"\"\n", wantKey: "store"},
		{name: "unknown store", give: "store: postgres\n", wantKey: "store"},
		{name: "duration as a bare number", give: "token:\n  refresh_margin: 300\n", wantKey: "token.refresh_margin"},
		{name: "negative duration as a bare number", give: "dedupe:\n  ttl: -5\n", wantKey: "dedupe.ttl"},
		{name: "pool size as a word", give: "redis:\n  pool:\n    max_active: lots\n", wantKey: "redis.pool.max_active"},
		{name: "wait as a word", give: "redis:\n  pool:\n    wait: sometimes\n", wantKey: "redis.pool.wait"},
		{name: "rediss URL without host", give: "redis:\n  url: rediss://\n", wantKey: "redis.url"},
		{name: "level as a number", give: "log:\n  level: 7\n", wantKey: "log.level"},
		{name: "sentinel master as a list", give: "redis:\n  sentinel:\n    master: [a, b]\n    addrs: [s1:26379]\n", wantKey: "redis.sentinel.master"},
		{name: "sentinel addrs as a mapping", give: "redis:\n  sentinel:\n    master: m\n    addrs: {s1: 26379}\n", wantKey: "redis.sentinel.addrs"},
		{name: "sentinel addr not a single value", give: "redis:\n  sentinel:\n    master: m\n    addrs: [s1:26379, [s2, 26379]]\n", wantKey: "redis.sentinel.addrs"},
		{name: "sentinel addr without port", give: "redis:\n  sentinel:\n    master: m\n    addrs: [s1]\n", wantKey: "redis.sentinel.addrs"},
		{name: "cluster addrs as a mapping", give: "redis:\n  cluster:\n    addrs: {node-1: 6379}\n", wantKey: "redis.cluster.addrs"},
		{name: "cluster addr without port", give: "redis:\n  cluster:\n    addrs: [node-1]\n", wantKey: "redis.cluster.addrs"},
		{name: "cluster addr listed twice", give: "redis:\n  cluster:\n    addrs: [node-1:6379, node-1:6379]\n", wantKey: "redis.cluster.addrs"},
		{name: "cluster and sentinel", give: "redis:\n  sentinel:\n    master: m\n    addrs: [s1:26379]\n  cluster:\n    addrs: [node-1:6379]\n", wantKey: "redis.cluster.addrs"},
		{name: "cluster with db 2", give: "redis:\n  url: redis://node-1:6379/2\n  cluster:\n    addrs: [node-1:6379]\n", wantKey: "redis.url"},
		{name: "pool size with a fraction", give: "token:\n  pool_size: 2.5\n", wantKey: "token.pool_size"},
		{name: "refresh ahead as a bare number", give: "token:\n  refresh_ahead: 60\n", wantKey: "token.refresh_ahead"},
		{name: "encryption keys as a mapping", give: "token:\n  encryption_keys: {k1: x}\n", wantKey: "token.encryption_keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			path := writeFile(t, t.TempDir(), "config.yaml", tt.give)
			_, err := app.LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig(%q) = nil error, want one naming %s", tt.give, tt.wantKey)
			}
			if !strings.Contains(err.Error(), tt.wantKey) {
				t.Errorf("error %q does not name the key %s", err, tt.wantKey)
			}
		})
	}
}

func TestLoadConfig_BadFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		give string
	}{
		{name: "missing", give: filepath.Join(dir, "missing.yaml")},
		{name: "malformed", give: writeFile(t, dir, "bad.yaml", "store: [redis\nredis: {url: \n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			_, err := app.LoadConfig(tt.give)
			if err == nil {
				t.Fatalf("LoadConfig(%s) = nil error", tt.give)
			}
			if !strings.Contains(err.Error(), tt.give) {
				t.Errorf("error %q does not name the file %s", err, tt.give)
			}
		})
	}
}

func TestLoadConfig_BadURLErrorHidesPassword(t *testing.T) {
	const password = "hunter2"
	tests := []struct {
		name string
		give string
	}{
		{name: "http scheme", give: "http://user:hunter2@redis:6379"},
		{name: "no host", give: "redis://user:hunter2@/0"},
		{name: "non-numeric db", give: "redis://user:hunter2@redis:6379/cache"},
		{name: "bad port", give: "redis://user:hunter2@redis:port/0"},
		{name: "space in the host", give: "redis://user:hunter2@re dis:6379"},
		{name: "control character", give: "redis://user:hunter2@redis:6379/0\x7f"},
		{name: "password in the query", give: "redis://redis:6379/0?password=hunter2"},
		{name: "TLS CA file with redis://", give: "redis://user:hunter2@redis:6379/0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv("REDIS_URL", tt.give)
			t.Setenv("REDIS_TLS_CA_FILE", repoConfig) // any file: redis:// refuses it
			_, err := app.LoadConfig("")
			if err == nil {
				t.Fatalf("LoadConfig with REDIS_URL=%q = nil error", tt.give)
			}
			if !strings.Contains(err.Error(), "redis.url") {
				t.Errorf("error %q does not name redis.url", err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error %q echoes the password", err)
			}
		})
	}
}

func TestLoadConfig_NamesEveryBadKeyInOneError(t *testing.T) {
	clearConfigEnv(t)
	bad := map[string]string{
		"store":               "mongo",
		"redis.url":           "http://redis:6379",
		"redis.dial_timeout":  "abc",
		"redis.pool.max_idle": "-1",
		"dedupe.claim_ttl":    "0s",
		"log.level":           "loud",
	}
	for key, val := range bad {
		t.Setenv(config.EnvName(key), val)
	}

	_, err := app.LoadConfig("")
	if err == nil {
		t.Fatal("LoadConfig = nil error")
	}
	for key := range bad {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s:\n%v", key, err)
		}
	}
}

// TestLoadConfig_TLSCAFileNeedsRediss checks that redis.tls_ca_file is
// refused with a redis:// URL, whose connections would not use it.
func TestLoadConfig_TLSCAFileNeedsRediss(t *testing.T) {
	const secret = "url-s3cret"
	ca := writeFile(t, t.TempDir(), "ca.pem", "not read at load")
	tests := []struct {
		name     string
		giveURL  string
		wantErrs []string // keys named, one error each; none for a valid configuration
	}{
		{name: "rediss", giveURL: "rediss://user:" + secret + "@cache:6380/2"},
		{name: "rediss in upper case", giveURL: "REDISS://cache:6380"},
		{name: "redis", giveURL: "redis://user:" + secret + "@cache:6379/2", wantErrs: []string{"redis.tls_ca_file"}},
		{name: "redis, lone name", giveURL: "redis://" + secret + "@cache:6379", wantErrs: []string{"redis.tls_ca_file"}},
		{name: "bad URL, reported once", giveURL: "http://user:" + secret + "@cache", wantErrs: []string{"redis.url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadWithEnv(t, map[string]string{"REDIS_URL": tt.giveURL, "REDIS_TLS_CA_FILE": ca})
			if tt.wantErrs == nil {
				if err != nil || got.Redis.TLSCAFile != ca {
					t.Errorf("LoadConfig = TLSCAFile %q, %v; want %q, no error", got.Redis.TLSCAFile, err, ca)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig = nil error, want one naming %v", tt.wantErrs)
			}
			if n := strings.Count(err.Error(), "config: "); n != len(tt.wantErrs) {
				t.Errorf("LoadConfig gave %d errors, want %d:\n%v", n, len(tt.wantErrs), err)
			}
			for _, key := range tt.wantErrs {
				if !strings.Contains(err.Error(), key+" (env "+config.EnvName(key)+")") {
					t.Errorf("error %q does not name %s", err, key)
				}
			}
			if tt.wantErrs[0] == "redis.tls_ca_file" && !strings.Contains(err.Error(), "is set but redis.url is redis://: use rediss:// for TLS") {
				t.Errorf("error %q does not say to use rediss://", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q echoes the URL's password", err)
			}
		})
	}
}

func TestLoadConfig_PasswordFromEnvironmentReplacesYAML(t *testing.T) {
	clearConfigEnv(t)
	path := writeFile(t, t.TempDir(), "config.yaml", "redis:\n  password: from-yaml\n")
	t.Setenv("REDIS_PASSWORD", "from-env")

	cfg, err := app.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Redis.Password != "from-env" {
		t.Errorf("Redis.Password = %q, want the environment's", cfg.Redis.Password)
	}
}

func TestLoadConfig_Sentinel(t *testing.T) {
	tests := []struct {
		name    string
		give    string // YAML
		giveEnv map[string]string
		want    app.SentinelConfig
	}{
		{
			name: "YAML list",
			give: "redis:\n  sentinel:\n    master: mymaster\n    addrs:\n      - s1:26379\n      - \" s2:26379 \"\n",
			want: app.SentinelConfig{Master: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}},
		},
		{
			name: "YAML comma-separated string",
			give: "redis:\n  sentinel: {master: mymaster, addrs: \"s1:26379, s2:26379\"}\n",
			want: app.SentinelConfig{Master: "mymaster", Addrs: []string{"s1:26379", "s2:26379"}},
		},
		{
			name: "environment, comma-separated, with credentials",
			giveEnv: map[string]string{
				"REDIS_SENTINEL_MASTER":   " mymaster ",
				"REDIS_SENTINEL_ADDRS":    "10.0.0.1:26379, 10.0.0.2:26379,[fd00::3]:26379,",
				"REDIS_SENTINEL_USERNAME": "sentinel-user",
				"REDIS_SENTINEL_PASSWORD": "sentinel-password",
			},
			want: app.SentinelConfig{
				Master:   "mymaster",
				Addrs:    []string{"10.0.0.1:26379", "10.0.0.2:26379", "[fd00::3]:26379"},
				Username: "sentinel-user",
				Password: "sentinel-password",
			},
		},
		{
			name:    "environment over the file's list",
			give:    "redis:\n  sentinel:\n    master: file-master\n    addrs: [file-s1:26379, file-s2:26379]\n",
			giveEnv: map[string]string{"REDIS_SENTINEL_ADDRS": "env-s1:26379"},
			want:    app.SentinelConfig{Master: "file-master", Addrs: []string{"env-s1:26379"}},
		},
		{
			name: "empty list in the file",
			give: "redis:\n  sentinel:\n    master: \"\"\n    addrs: []\n",
			want: app.SentinelConfig{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wantDefaults
			want.Redis.Sentinel = tt.want
			got, err := loadGiven(t, tt.give, tt.giveEnv)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Redis.Sentinel = %+v, want %+v", got.Redis.Sentinel, tt.want)
			}
		})
	}
}

// loadGiven loads the configuration file holding give ("" means no file)
// with the variables env set, and nothing else of the environment.
func loadGiven(t *testing.T, give string, env map[string]string) (app.Config, error) {
	t.Helper()
	clearConfigEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := ""
	if give != "" {
		path = writeFile(t, t.TempDir(), "config.yaml", give)
	}
	return app.LoadConfig(path)
}

// TestLoadConfig_RedisErrorsOnce checks that a bad value is reported as
// bad, not also by the rules that tie the redis keys together: as missing
// for the sentinel keys, as naming a database Redis Cluster does not have
// for redis.url.
func TestLoadConfig_RedisErrorsOnce(t *testing.T) {
	tests := []struct {
		name    string
		giveEnv map[string]string
	}{
		{name: "bad master, addrs set", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "my master", "REDIS_SENTINEL_ADDRS": "s1:26379"}},
		{name: "bad addrs, master set", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "mymaster", "REDIS_SENTINEL_ADDRS": "host"}},
		{name: "bad master, password set", giveEnv: map[string]string{"REDIS_SENTINEL_MASTER": "my master", "REDIS_SENTINEL_ADDRS": "s1:26379", "REDIS_SENTINEL_PASSWORD": "pw"}},
		{name: "cluster, db not a number", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_URL": "redis://node-1:6379/x"}},
		{name: "cluster, http URL with db 2", giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_URL": "http://node-1:6379/2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadWithEnv(t, tt.giveEnv)
			if err == nil {
				t.Fatalf("LoadConfig with %q = nil error", tt.giveEnv)
			}
			if n := strings.Count(err.Error(), "config: "); n != 1 {
				t.Errorf("LoadConfig with %q gave %d errors, want 1:\n%v", tt.giveEnv, n, err)
			}
		})
	}
}

func TestLoadConfig_Cluster(t *testing.T) {
	tests := []struct {
		name    string
		give    string // YAML
		giveEnv map[string]string
		want    app.ClusterConfig
		wantURL string // the default when empty
	}{
		{
			name: "YAML list",
			give: "redis:\n  cluster:\n    addrs:\n      - node-1:6379\n      - \" node-2:6379 \"\n",
			want: app.ClusterConfig{Addrs: []string{"node-1:6379", "node-2:6379"}},
		},
		{
			name: "YAML comma-separated string",
			give: "redis:\n  cluster: {addrs: \"node-1:6379, node-2:6379\"}\n",
			want: app.ClusterConfig{Addrs: []string{"node-1:6379", "node-2:6379"}},
		},
		{
			name:    "environment, comma-separated",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": " 10.0.0.1:6379, 10.0.0.2:6379,[fd00::3]:6379,"},
			want:    app.ClusterConfig{Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "[fd00::3]:6379"}},
		},
		{
			name:    "a managed service's configuration endpoint, over TLS",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "clustercfg.cache.example:6379", "REDIS_URL": "rediss://user:pass@clustercfg.cache.example:6379"},
			want:    app.ClusterConfig{Addrs: []string{"clustercfg.cache.example:6379"}},
			wantURL: "rediss://user:pass@clustercfg.cache.example:6379",
		},
		{
			name:    "environment over the file's list",
			give:    "redis:\n  cluster:\n    addrs: [file-node-1:6379, file-node-2:6379]\n",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "env-node-1:6379"},
			want:    app.ClusterConfig{Addrs: []string{"env-node-1:6379"}},
		},
		{
			name:    "db 0 in the URL",
			give:    "redis:\n  url: redis://node-1:6379/0\n  cluster:\n    addrs: [node-1:6379]\n",
			want:    app.ClusterConfig{Addrs: []string{"node-1:6379"}},
			wantURL: "redis://node-1:6379/0",
		},
		{
			name:    "a slash and no db in the URL",
			giveEnv: map[string]string{"REDIS_CLUSTER_ADDRS": "node-1:6379", "REDIS_URL": "redis://node-1:6379/"},
			want:    app.ClusterConfig{Addrs: []string{"node-1:6379"}},
			wantURL: "redis://node-1:6379/",
		},
		{
			name: "sentinel keys empty in the file",
			give: "redis:\n  sentinel:\n    master: \"\"\n    addrs: []\n  cluster:\n    addrs: [node-1:6379]\n",
			want: app.ClusterConfig{Addrs: []string{"node-1:6379"}},
		},
		{
			name:    "db 2 with no cluster",
			giveEnv: map[string]string{"REDIS_URL": "redis://redis:6379/2"},
			wantURL: "redis://redis:6379/2",
		},
		{
			name: "empty list in the file",
			give: "redis:\n  cluster:\n    addrs: []\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := wantDefaults
			want.Redis.Cluster = tt.want
			if tt.wantURL != "" {
				want.Redis.URL = tt.wantURL
			}
			got, err := loadGiven(t, tt.give, tt.giveEnv)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LoadConfig =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestRedisConfig_RedactedURL(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{give: "redis://redis:6379", want: "redis://redis:6379"},
		{give: "redis://user:hunter2@redis:6379/2", want: "redis://user:xxxxx@redis:6379/2"},
		{give: "rediss://:hunter2@cache.internal:6380", want: "rediss://:xxxxx@cache.internal:6380"},
		{give: "redis://hunter2@redis:6379", want: "redis://xxxxx@redis:6379"}, // a lone name is taken for a password
		{give: "redis://redis:6379/0?password=hunter2", want: "redis://redis:6379/0?xxxxx"},
		{give: "redis://redis:6379#hunter2", want: "redis://redis:6379#xxxxx"},
		{give: "redis://user:hunter2@redis:port", want: "(unparsable)"},
	}
	for _, tt := range tests {
		got := app.RedisConfig{URL: tt.give}.RedactedURL()
		if got != tt.want {
			t.Errorf("RedactedURL(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestLoadConfig_EncryptionKeys checks the forms token.encryption_keys
// takes, and that the key listed first is the one that seals.
func TestLoadConfig_EncryptionKeys(t *testing.T) {
	tests := []struct {
		name    string
		give    string // YAML
		giveEnv map[string]string
		want    []string // key ids, the sealing key's first; nil for no keyring
	}{
		{name: "unset", want: nil},
		{name: "empty list in the file", give: "token:\n  encryption_keys: []\n", want: nil},
		{
			name: "YAML list",
			give: "token:\n  encryption_keys:\n    - k2:" + testKey2 + "\n    - \" k1:" + testKey1 + " \"\n",
			want: []string{"k2", "k1"},
		},
		{
			name:    "environment, comma-separated",
			giveEnv: map[string]string{"TOKEN_ENCRYPTION_KEYS": "k1:" + testKey1 + ", k2:" + testKey2 + ","},
			want:    []string{"k1", "k2"},
		},
		{
			name:    "environment over the file's list",
			give:    "token:\n  encryption_keys: [\"file:" + testKey1 + "\"]\n",
			giveEnv: map[string]string{"TOKEN_ENCRYPTION_KEYS": "env:" + testKey2},
			want:    []string{"env"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadGiven(t, tt.give, tt.giveEnv)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			var ids []string
			if keys := got.Token.EncryptionKeys; keys != nil {
				ids = keys.IDs()
			}
			if !slices.Equal(ids, tt.want) || (ids == nil) != (tt.want == nil) {
				t.Errorf("Token.EncryptionKeys ids = %q, want %q", ids, tt.want)
			}
		})
	}
}

// TestLoadConfig_BadEncryptionKeyIsNamedNeverShown checks that a bad
// token.encryption_keys is a configuration error naming the key by
// position and id, and that the error holds no piece of any key.
func TestLoadConfig_BadEncryptionKeyIsNamedNeverShown(t *testing.T) {
	const (
		short     = "94ldyU8G5VK0zgH6AnXU/A=="                     // 16 bytes
		long      = "pe6Mr/sWxqHX8iD05rb4lsAzhofU6lQzfMk1H9DoVm29" // 33 bytes
		notBase64 = "7TrkNlQAycOZCAY7w8y7*tz7DOpF/QyK1xyiLu/jMqo="
	)
	secrets := []string{testKey1, testKey2, short, long, notBase64}
	tests := []struct {
		name    string
		give    string // YAML
		giveEnv string // TOKEN_ENCRYPTION_KEYS
		want    []string
	}{
		{name: "second key too short", giveEnv: "k0:" + testKey1 + ",k1:" + short, want: []string{"key 2 (id k1)", "16 bytes, want 32"}},
		{name: "key too long", giveEnv: "k1:" + long, want: []string{"key 1 (id k1)", "33 bytes, want 32"}},
		{name: "key not base64", giveEnv: "k1:" + notBase64, want: []string{"key 1 (id k1)", "not base64"}},
		{name: "no key id", giveEnv: testKey1, want: []string{"key 1", "<key id>:<base64 key>"}},
		{name: "key and id swapped", giveEnv: testKey1 + ":k1", want: []string{"key 1", "id must be"}},
		{name: "key id with a space", giveEnv: "key one:" + testKey1, want: []string{"key 1", "id must be"}},
		{name: "key id used twice", giveEnv: "k1:" + testKey1 + ",k1:" + testKey2, want: []string{"key 2 (id k1)", "used twice"}},
		{
			name: "YAML, second key too short",
			give: "token:\n  encryption_keys: [\"k0:" + testKey1 + "\", \"k1:" + short + "\"]\n",
			want: []string{"key 2 (id k1)", "16 bytes"},
		},
		{
			name: "YAML item a mapping (a space after the colon)",
			give: "token:\n  encryption_keys:\n    - k1: " + testKey1 + "\n",
			want: []string{"item 1 is not a single value"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadGiven(t, tt.give, map[string]string{"TOKEN_ENCRYPTION_KEYS": tt.giveEnv})
			if err == nil {
				t.Fatal("LoadConfig = nil error, want one naming token.encryption_keys")
			}
			if !reflect.DeepEqual(got, app.Config{}) {
				t.Errorf("LoadConfig = %+v with its error, want the zero Config", got)
			}
			for _, w := range append([]string{"token.encryption_keys", "TOKEN_ENCRYPTION_KEYS"}, tt.want...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not hold %q", err, w)
				}
			}
			for _, s := range secrets {
				if piece := sharedPiece(err.Error(), s, 8); piece != "" {
					t.Errorf("error %q holds %q, a piece of a key", err, piece)
				}
			}
		})
	}
}

// sharedPiece returns the first n-byte piece of secret that text holds, or
// "" when it holds none.
func sharedPiece(text, secret string, n int) string {
	for i := 0; i+n <= len(secret); i++ {
		if piece := secret[i : i+n]; strings.Contains(text, piece) {
			return piece
		}
	}
	return ""
}
