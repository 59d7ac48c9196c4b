package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/adapters/seal"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/config"
	"github.com/wa2genesys/connectorcache/internal/redact"
)

// Store kinds for [Config.Store].
const (
	StoreRedis  = "redis"
	StoreMemory = "memory"
)

// Config is the module's configuration. [LoadConfig] fills every field,
// defaults included, and validates it.
type Config struct {
	// Store is where tokens and dedupe records live: StoreRedis, or
	// StoreMemory for a single instance run locally.
	Store  string
	Redis  RedisConfig
	Memory MemoryConfig
	Token  TokenConfig
	Dedupe DedupeConfig
	Log    LogConfig
}

// RedisConfig configures the Redis client.
type RedisConfig struct {
	// URL is redis://[user[:password]@]host[:port][/db], or rediss:// for
	// TLS, with no query string. A lone name in the user info
	// (redis://secret@host) is a password, as redis-cli takes it, unless
	// Password is set: it is then the user that Password is for. It may
	// hold a password: log it only through [RedisConfig.RedactedURL].
	URL string
	// Password, when not empty, replaces the URL's password. It is a
	// secret: never log it.
	Password string
	// Sentinel, when its Master is set, finds the primary through Redis
	// Sentinel: URL's host and port are then unused; its scheme, user,
	// password and database still apply, and rediss:// reaches the
	// sentinels over TLS too.
	Sentinel SentinelConfig
	// Cluster, when its Addrs are set, runs the module in cluster mode, on
	// a Redis Cluster: URL's host and port are then unused; its scheme
	// (rediss:// for TLS), user and password still apply, and its database
	// must be 0. It excludes Sentinel.
	Cluster ClusterConfig
	// TLSCAFile is a PEM file of CA certificates trusted for rediss://;
	// LoadConfig refuses it with a redis:// URL. Empty means the system's
	// roots.
	TLSCAFile string
	// DialTimeout bounds connecting and authenticating.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command.
	ReadTimeout, WriteTimeout time.Duration
	// Pipeline shares a few connections between concurrent commands;
	// false lends each command a connection of Pool.
	Pipeline bool
	Pool     PoolConfig
	Breaker  BreakerConfig
}

// SentinelConfig finds the Redis primary through Redis Sentinel. The zero
// value (no Master) means [RedisConfig.URL] names the server itself.
type SentinelConfig struct {
	// Master is the name the sentinels monitor the primary under. Empty
	// means no Sentinel.
	Master string
	// Addrs are the sentinels' host:port addresses, asked in order: none
	// twice, and at least one exactly when Master is set.
	Addrs []string
	// Username and Password authenticate to the sentinels themselves;
	// empty when they require none, and always without Master. Password is
	// a secret: never log it.
	Username, Password string
}

// ClusterConfig runs the module on a Redis Cluster. The zero value (no
// Addrs) means no cluster.
type ClusterConfig struct {
	// Addrs are seed nodes' host:port addresses (a managed service's
	// configuration endpoint is one seed), asked in order for the slot
	// map: none twice. Empty means no cluster.
	Addrs []string
}

// BreakerConfig tunes the circuit breaker in front of Redis.
type BreakerConfig struct {
	// Failures is how many consecutive failures open the breaker.
	Failures int
	// Cooldown is how long it stays open before one probe goes through.
	Cooldown time.Duration
	// Probes is how many calls may go through while half-open.
	Probes int
}

// RedactedURL is URL with its password masked, fit for logs. A lone name
// in the user info (redis://secret@host) is masked too: Redis clients take
// it for a password. So is a query string, which LoadConfig refuses but a
// Config made by hand may hold.
func (c RedisConfig) RedactedURL() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); !hasPassword {
			u.User = url.User(redact.Mask)
		}
	}
	if u.RawQuery != "" {
		u.RawQuery = redact.Mask
	}
	if u.Fragment != "" {
		u.Fragment = redact.Mask
	}
	return u.Redacted()
}

// PoolConfig sizes the Redis connection pool.
type PoolConfig struct {
	// MaxIdle is how many idle connections are kept. Zero keeps none.
	MaxIdle int
	// MaxActive caps open connections. Zero means no cap.
	MaxActive int
	// IdleTimeout closes connections idle longer. Zero means never.
	IdleTimeout time.Duration
	// MaxConnLifetime closes connections older than this. Zero means never.
	MaxConnLifetime time.Duration
	// Wait makes callers wait for a free connection at MaxActive instead of
	// failing (and failing open) at once.
	Wait bool
	// TestIdleAfter: a connection idle at least this long is PINGed before
	// reuse. Zero PINGs every reuse.
	TestIdleAfter time.Duration
}

// MemoryConfig tunes the in-process stores of [StoreMemory].
type MemoryConfig struct {
	// MaxEntries bounds each store (dedupe records, tokens, fetch locks):
	// a full store drops an entry that has expired, or else the entry
	// written least recently, to make room.
	// Dropping a dedupe record can only let a redelivered message through
	// twice, never lose one. Zero means memory.DefaultMaxEntries.
	MaxEntries int
}

// TokenConfig tunes the token cache.
type TokenConfig struct {
	// RefreshMargin is how long before expiry a token stops being served,
	// at most half its lifetime.
	RefreshMargin time.Duration
	// FetchTimeout bounds one call to the auth service.
	FetchTimeout time.Duration
	// LocalMaxAge is how long the in-process copy of a token is served
	// before Redis is read again (Redis store only).
	LocalMaxAge time.Duration
	// LockTTL is how long the cross-process fetch lock lives (Redis store
	// only): a process dying mid-fetch delays the others at most this long.
	LockTTL time.Duration
	// RefreshAhead is how long before a token's refresh point a request
	// that finds it cached starts a fetch in the background, so that no
	// caller waits for the auth service in steady state. It is capped at
	// half the token's margin (RefreshMargin, or half the token's
	// lifetime when that is shorter), so that a fresh token is never due
	// for a refresh at once: a longer value is harmless. Zero disables it.
	RefreshAhead time.Duration
	// StaleMinValidity: when a fetch after a token's refresh point fails,
	// the last token this process handed out is returned instead of the
	// error while it has at least this long to live. A token deleted
	// before its refresh point (rejected with a 401, or invalidated) is
	// never served so. Zero disables it.
	StaleMinValidity time.Duration
	// PoolSize is how many tokens each tenant has, handed out in turn,
	// from 1 to domain.MaxPoolSize. Zero means 1.
	PoolSize int
	// PoolSizes overrides PoolSize for the tenants it names. LoadConfig
	// leaves it nil: a host that configures tenants fills it.
	PoolSizes map[string]int
	// EncryptionKeys, when not nil, seals the tokens the Redis store holds
	// (AES-256-GCM): its first key seals, all of them open. Nil stores
	// them in clear. The memory store ignores it: its tokens never leave
	// the process.
	EncryptionKeys *seal.Keyring
}

// DedupeConfig tunes the deduplicator.
type DedupeConfig struct {
	// TTL is how long a processed message is remembered.
	TTL time.Duration
	// ClaimTTL is how long a claim holds a message being processed.
	ClaimTTL time.Duration
	// LocalMaxEntries bounds the in-process record of claims that answers
	// while Redis fails (Redis store only).
	LocalMaxEntries int
	// LocalMaxAge is how long that record remembers a message.
	LocalMaxAge time.Duration
}

// LogConfig is the host's logging; the module logs to the logger New gets.
type LogConfig struct {
	// Level is the least severe level logged.
	Level zapcore.Level
}

// keys holds every key with its default.
var keys = []config.Key{
	{Name: "store", Default: StoreRedis},
	{Name: "redis.url", Default: "redis://redis:6379"},
	{Name: "redis.password", Default: ""},
	{Name: "redis.sentinel.master", Default: ""},
	{Name: "redis.sentinel.addrs", Default: []string{}},
	{Name: "redis.sentinel.username", Default: ""},
	{Name: "redis.sentinel.password", Default: ""},
	{Name: "redis.cluster.addrs", Default: []string{}},
	{Name: "redis.tls_ca_file", Default: ""},
	{Name: "redis.dial_timeout", Default: "1s"},
	{Name: "redis.read_timeout", Default: "500ms"},
	{Name: "redis.write_timeout", Default: "500ms"},
	{Name: "redis.pipeline", Default: true},
	{Name: "redis.pool.max_idle", Default: 16},
	{Name: "redis.pool.max_active", Default: 64},
	{Name: "redis.pool.idle_timeout", Default: "5m"},
	{Name: "redis.pool.max_conn_lifetime", Default: "30m"},
	{Name: "redis.pool.wait", Default: true},
	{Name: "redis.pool.test_idle_after", Default: "1s"},
	{Name: "redis.breaker.failures", Default: 5},
	{Name: "redis.breaker.cooldown", Default: "1s"},
	{Name: "redis.breaker.probes", Default: 1},
	{Name: "memory.max_entries", Default: memory.DefaultMaxEntries},
	{Name: "token.refresh_margin", Default: "300s"},
	{Name: "token.fetch_timeout", Default: "30s"},
	{Name: "token.local_max_age", Default: "30s"},
	{Name: "token.lock_ttl", Default: "5s"},
	{Name: "token.refresh_ahead", Default: "60s"},
	{Name: "token.stale_min_validity", Default: "30s"},
	{Name: "token.pool_size", Default: 1},
	{Name: "token.encryption_keys", Default: []string{}},
	{Name: "dedupe.ttl", Default: "24h"},
	{Name: "dedupe.claim_ttl", Default: "5m"},
	{Name: "dedupe.local_max_entries", Default: 100000},
	{Name: "dedupe.local_max_age", Default: "1h"},
	{Name: "log.level", Default: "info"},
}

// Upper bounds of the integer keys: far above any sane value, low enough to
// catch a typo and to fit the types they are handed to.
const (
	maxPool         = 1 << 16
	maxBreaker      = 1 << 16
	maxLocalEntries = 1 << 30
	maxMemEntries   = 1 << 30
)

// LoadConfig reads the YAML file at path ("" reads none), lets the
// environment override any key (upper case, dots turned into underscores:
// REDIS_POOL_MAX_IDLE), and validates the result. The error names every
// bad key and its variable.
func LoadConfig(path string) (Config, error) {
	r, err := config.Read(path, keys)
	if err != nil {
		return Config{}, err
	}
	redisURL := r.RedisURL("redis.url")
	cfg := Config{
		Store: r.OneOf("store", StoreRedis, StoreMemory),
		Redis: RedisConfig{
			URL:          redisURL,
			Password:     r.String("redis.password"),
			Sentinel:     readSentinel(r),
			Cluster:      readCluster(r, redisURL),
			TLSCAFile:    r.String("redis.tls_ca_file"),
			DialTimeout:  r.Duration("redis.dial_timeout", config.Positive),
			ReadTimeout:  r.Duration("redis.read_timeout", config.Positive),
			WriteTimeout: r.Duration("redis.write_timeout", config.Positive),
			Pipeline:     r.Bool("redis.pipeline"),
			Pool: PoolConfig{
				MaxIdle:         r.Int("redis.pool.max_idle", 0, maxPool),
				MaxActive:       r.Int("redis.pool.max_active", 0, maxPool),
				IdleTimeout:     r.Duration("redis.pool.idle_timeout", config.NonNegative),
				MaxConnLifetime: r.Duration("redis.pool.max_conn_lifetime", config.NonNegative),
				Wait:            r.Bool("redis.pool.wait"),
				TestIdleAfter:   r.Duration("redis.pool.test_idle_after", config.NonNegative),
			},
			Breaker: BreakerConfig{
				Failures: r.Int("redis.breaker.failures", 1, maxBreaker),
				Cooldown: r.Duration("redis.breaker.cooldown", config.Positive),
				Probes:   r.Int("redis.breaker.probes", 1, maxBreaker),
			},
		},
		Memory: MemoryConfig{
			MaxEntries: r.Int("memory.max_entries", 1, maxMemEntries),
		},
		Token: TokenConfig{
			RefreshMargin:    r.Duration("token.refresh_margin", config.Positive),
			FetchTimeout:     r.Duration("token.fetch_timeout", config.Positive),
			LocalMaxAge:      r.Duration("token.local_max_age", config.Positive),
			LockTTL:          r.Duration("token.lock_ttl", config.AtLeast(time.Millisecond)),
			RefreshAhead:     r.Duration("token.refresh_ahead", config.NonNegative),
			StaleMinValidity: r.Duration("token.stale_min_validity", config.NonNegative),
			PoolSize:         r.Int("token.pool_size", 1, domain.MaxPoolSize),
			EncryptionKeys:   readEncryptionKeys(r),
		},
		Dedupe: DedupeConfig{
			TTL:             r.Duration("dedupe.ttl", config.AtLeast(time.Second)),
			ClaimTTL:        r.Duration("dedupe.claim_ttl", config.AtLeast(time.Second)),
			LocalMaxEntries: r.Int("dedupe.local_max_entries", 1, maxLocalEntries),
			LocalMaxAge:     r.Duration("dedupe.local_max_age", config.AtLeast(time.Second)),
		},
		Log: LogConfig{Level: r.Level("log.level")},
	}
	if cfg.Redis.TLSCAFile != "" {
		if _, err := os.Stat(cfg.Redis.TLSCAFile); err != nil {
			r.Fail("redis.tls_ca_file", "cannot be read: %v", err)
		}
		// A bad redis.url ("" here) is reported as bad, not also here.
		if redisURL != "" && !config.RedisTLS(redisURL) {
			r.Fail("redis.tls_ca_file", "is set but redis.url is redis://: use rediss:// for TLS")
		}
	}
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readEncryptionKeys reads token.encryption_keys: unset, or a list of
// "<key id>:<base64 of 32 bytes>", the first of which seals. The keys are
// secret: an error names a key by position and id, never by value.
func readEncryptionKeys(r *config.Reader) *seal.Keyring {
	const key = "token.encryption_keys"
	specs := r.List(key)
	if len(specs) == 0 {
		return nil
	}
	keys, err := seal.ParseKeys(specs)
	if err != nil {
		r.Fail(key, "%v", err)
		return nil
	}
	return keys
}

// readSentinel reads the redis.sentinel keys: all unset, or a master name,
// its sentinels' addresses and, if they need them, their credentials. The
// rules across keys look at what is set, valid or not, so that a bad value
// is reported once, as bad.
func readSentinel(r *config.Reader) SentinelConfig {
	const (
		master   = "redis.sentinel.master"
		addrs    = "redis.sentinel.addrs"
		username = "redis.sentinel.username"
		password = "redis.sentinel.password"
	)
	s := SentinelConfig{
		Master:   r.Word(master),
		Addrs:    r.HostPorts(addrs),
		Username: r.String(username),
		Password: r.String(password),
	}
	switch {
	case r.IsSet(master) && !r.IsSet(addrs):
		r.Fail(addrs, "is required: %s is set", master)
	case !r.IsSet(master) && r.IsSet(addrs):
		r.Fail(master, "is required: %s is set", addrs)
	}
	if !r.IsSet(master) {
		for _, key := range []string{username, password} {
			if r.IsSet(key) {
				r.Fail(key, "is set but %s is not; only sentinels take it", master)
			}
		}
	}
	return s
}

// readCluster reads redis.cluster.addrs: unset, or the seed nodes of a
// Redis Cluster. Set, it excludes redis.sentinel.master, and a database
// other than 0 in redisURL, the value read from redis.url ("" when bad).
// Like readSentinel's, these rules look at what is set, valid or not.
func readCluster(r *config.Reader, redisURL string) ClusterConfig {
	const (
		addrs  = "redis.cluster.addrs"
		master = "redis.sentinel.master"
	)
	c := ClusterConfig{Addrs: r.HostPorts(addrs)}
	if !r.IsSet(addrs) {
		return c
	}
	if r.IsSet(master) {
		r.Fail(addrs, "is set and so is %s: Redis Cluster and Sentinel exclude each other; unset one", master)
	}
	if db := config.RedisDB(redisURL); db != 0 {
		r.Fail("redis.url", "names database %d, but %s is set: Redis Cluster has only database 0", db, addrs)
	}
	return c
}

// Plain copies of the configuration types that print their own way: the
// same fields without the methods, for fmt to format once the secrets are
// masked. Their fields of types that print their own way still do.
type (
	plainConfig         Config
	plainRedisConfig    RedisConfig
	plainSentinelConfig SentinelConfig
	plainTokenConfig    TokenConfig
)

// String formats c as %+v would, with the Redis URL redacted and the
// passwords masked; the encryption keys show as their ids.
func (c Config) String() string { return fmt.Sprintf("%+v", plainConfig(c)) }

// GoString formats c as %#v would, with the secrets masked as in
// [Config.String].
func (c Config) GoString() string { return redact.GoSyntax("app.Config", plainConfig(c)) }

// Format formats c for every verb with the secrets masked: %#v as
// [Config.GoString], any other verb as it formats [Config.String].
func (c Config) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as encoding/json would, with the secrets masked as
// in [Config.String].
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(plainConfig(c)) }

// MarshalLogObject writes c to a zap log under its configuration keys'
// names, with the secrets masked as in [Config.String].
func (c Config) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("store", c.Store)
	return errors.Join(
		enc.AddObject("redis", c.Redis),
		enc.AddObject("memory", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddInt("max_entries", c.Memory.MaxEntries)
			return nil
		})),
		enc.AddObject("token", c.Token),
		enc.AddObject("dedupe", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddDuration("ttl", c.Dedupe.TTL)
			enc.AddDuration("claim_ttl", c.Dedupe.ClaimTTL)
			enc.AddInt("local_max_entries", c.Dedupe.LocalMaxEntries)
			enc.AddDuration("local_max_age", c.Dedupe.LocalMaxAge)
			return nil
		})),
		enc.AddObject("log", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString("level", c.Log.Level.String())
			return nil
		})),
	)
}

// redacted is a plain copy of c with URL redacted ([RedisConfig.RedactedURL])
// and Password masked.
func (c RedisConfig) redacted() plainRedisConfig {
	c.URL, c.Password = c.RedactedURL(), redact.Secret(c.Password)
	return plainRedisConfig(c)
}

// String formats c as %+v would, with URL redacted
// ([RedisConfig.RedactedURL]) and the passwords masked.
func (c RedisConfig) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString formats c as %#v would, with the secrets masked as in
// [RedisConfig.String].
func (c RedisConfig) GoString() string { return redact.GoSyntax("app.RedisConfig", c.redacted()) }

// Format formats c for every verb with the secrets masked, as
// [Config.Format] does.
func (c RedisConfig) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as encoding/json would, with the secrets masked as
// in [RedisConfig.String].
func (c RedisConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// MarshalLogObject writes c to a zap log under its configuration keys'
// names, with the secrets masked as in [RedisConfig.String].
func (c RedisConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("url", c.RedactedURL())
	enc.AddString("password", redact.Secret(c.Password))
	enc.AddString("tls_ca_file", c.TLSCAFile)
	enc.AddDuration("dial_timeout", c.DialTimeout)
	enc.AddDuration("read_timeout", c.ReadTimeout)
	enc.AddDuration("write_timeout", c.WriteTimeout)
	enc.AddBool("pipeline", c.Pipeline)
	return errors.Join(
		enc.AddObject("sentinel", c.Sentinel),
		enc.AddObject("cluster", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			return enc.AddArray("addrs", stringArray(c.Cluster.Addrs))
		})),
		enc.AddObject("pool", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddInt("max_idle", c.Pool.MaxIdle)
			enc.AddInt("max_active", c.Pool.MaxActive)
			enc.AddDuration("idle_timeout", c.Pool.IdleTimeout)
			enc.AddDuration("max_conn_lifetime", c.Pool.MaxConnLifetime)
			enc.AddBool("wait", c.Pool.Wait)
			enc.AddDuration("test_idle_after", c.Pool.TestIdleAfter)
			return nil
		})),
		enc.AddObject("breaker", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddInt("failures", c.Breaker.Failures)
			enc.AddDuration("cooldown", c.Breaker.Cooldown)
			enc.AddInt("probes", c.Breaker.Probes)
			return nil
		})),
	)
}

// redacted is a plain copy of c with Password masked.
func (c SentinelConfig) redacted() plainSentinelConfig {
	c.Password = redact.Secret(c.Password)
	return plainSentinelConfig(c)
}

// String formats c as %+v would, with Password masked.
func (c SentinelConfig) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// GoString formats c as %#v would, with Password masked.
func (c SentinelConfig) GoString() string {
	return redact.GoSyntax("app.SentinelConfig", c.redacted())
}

// Format formats c for every verb with Password masked, as [Config.Format]
// does.
func (c SentinelConfig) Format(f fmt.State, verb rune) { redact.Format(f, verb, c.String, c.GoString) }

// MarshalJSON encodes c as encoding/json would, with Password masked.
func (c SentinelConfig) MarshalJSON() ([]byte, error) { return json.Marshal(c.redacted()) }

// MarshalLogObject writes c to a zap log under its configuration keys'
// names, with Password masked.
func (c SentinelConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("master", c.Master)
	enc.AddString("username", c.Username)
	enc.AddString("password", redact.Secret(c.Password))
	return enc.AddArray("addrs", stringArray(c.Addrs))
}

// String formats c as %+v would; EncryptionKeys shows as its key ids
// ([seal.Keyring.String]).
func (c TokenConfig) String() string { return fmt.Sprintf("%+v", plainTokenConfig(c)) }

// GoString formats c as %#v would; EncryptionKeys shows as its key ids
// ([seal.Keyring.GoString]).
func (c TokenConfig) GoString() string {
	return redact.GoSyntax("app.TokenConfig", plainTokenConfig(c))
}

// MarshalLogObject writes c to a zap log under its configuration keys'
// names; of EncryptionKeys, only the key ids, as encryption_key_ids.
func (c TokenConfig) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddDuration("refresh_margin", c.RefreshMargin)
	enc.AddDuration("fetch_timeout", c.FetchTimeout)
	enc.AddDuration("local_max_age", c.LocalMaxAge)
	enc.AddDuration("lock_ttl", c.LockTTL)
	enc.AddDuration("refresh_ahead", c.RefreshAhead)
	enc.AddDuration("stale_min_validity", c.StaleMinValidity)
	enc.AddInt("pool_size", c.PoolSize)
	var err error
	if len(c.PoolSizes) > 0 {
		err = enc.AddObject("pool_sizes", zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			for _, tenant := range slices.Sorted(maps.Keys(c.PoolSizes)) {
				enc.AddInt(tenant, c.PoolSizes[tenant])
			}
			return nil
		}))
	}
	if c.EncryptionKeys != nil {
		err = errors.Join(err, enc.AddArray("encryption_key_ids", stringArray(c.EncryptionKeys.IDs())))
	}
	return err
}

// stringArray is a list of strings as a zap array.
type stringArray []string

func (a stringArray) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	for _, s := range a {
		enc.AppendString(s)
	}
	return nil
}
