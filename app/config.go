package app

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
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
	Token  TokenConfig
	Dedupe DedupeConfig
	Log    LogConfig
}

// RedisConfig configures the Redis connection pool.
type RedisConfig struct {
	// URL is redis://[user[:password]@]host[:port][/db], or rediss:// for
	// TLS. It may hold a password: log it only through [RedisConfig.RedactedURL].
	URL string
	// Password, when not empty, replaces the URL's password.
	Password string
	// TLSCAFile is a PEM file of CA certificates trusted for rediss://.
	// Empty means the system's roots.
	TLSCAFile string
	// DialTimeout bounds connecting and authenticating.
	DialTimeout time.Duration
	// ReadTimeout and WriteTimeout bound each command.
	ReadTimeout, WriteTimeout time.Duration
	// Pipeline sends concurrent commands over a few shared connections,
	// batched, instead of one pooled connection per command; Pool is then
	// unused.
	Pipeline bool
	Pool     PoolConfig
	Breaker  BreakerConfig
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
// it for a password.
func (c RedisConfig) RedactedURL() string {
	u, err := url.Parse(c.URL)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); !hasPassword {
			u.User = url.User("xxxxx")
		}
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

// LogConfig configures the logger [NewLogger] builds.
type LogConfig struct {
	Level zapcore.Level
}

// defaults holds every key with its default. The environment variable of a
// key is the key in upper case with dots turned into underscores.
var defaults = []struct {
	key string
	val any
}{
	{"store", StoreRedis},
	{"redis.url", "redis://redis:6379"},
	{"redis.password", ""},
	{"redis.tls_ca_file", ""},
	{"redis.dial_timeout", "1s"},
	{"redis.read_timeout", "500ms"},
	{"redis.write_timeout", "500ms"},
	{"redis.pipeline", true},
	{"redis.pool.max_idle", 16},
	{"redis.pool.max_active", 64},
	{"redis.pool.idle_timeout", "5m"},
	{"redis.pool.max_conn_lifetime", "30m"},
	{"redis.pool.wait", true},
	{"redis.pool.test_idle_after", "1s"},
	{"redis.breaker.failures", 5},
	{"redis.breaker.cooldown", "1s"},
	{"redis.breaker.probes", 1},
	{"token.refresh_margin", "300s"},
	{"token.fetch_timeout", "30s"},
	{"token.local_max_age", "30s"},
	{"token.lock_ttl", "5s"},
	{"dedupe.ttl", "24h"},
	{"dedupe.claim_ttl", "5m"},
	{"dedupe.local_max_entries", 100000},
	{"dedupe.local_max_age", "1h"},
	{"log.level", "info"},
}

// EnvName is the environment variable that sets key.
func EnvName(key string) string {
	return strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// LoadConfig reads the YAML file at path ("" reads none), lets the
// environment override any key, and validates the result. Errors name the
// offending key.
func LoadConfig(path string) (Config, error) {
	v, err := NewViper(path)
	if err != nil {
		return Config{}, err
	}
	return ConfigFrom(v)
}

// NewViper returns a viper holding the module's defaults, the YAML file at
// path ("" reads none) and the environment, every key bound to its variable.
// A host that extends the configuration reads its own keys from it.
func NewViper(path string) (*viper.Viper, error) {
	v := viper.New()
	for _, d := range defaults {
		v.SetDefault(d.key, d.val)
		if err := v.BindEnv(d.key, EnvName(d.key)); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", d.key, err)
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	return v, nil
}

// ConfigFrom builds and validates a Config from v.
func ConfigFrom(v *viper.Viper) (Config, error) {
	r := reader{v: v}
	cfg := Config{
		Store: r.oneOf("store", StoreRedis, StoreMemory),
		Redis: RedisConfig{
			URL:          r.redisURL("redis.url"),
			Password:     r.str("redis.password"),
			TLSCAFile:    r.str("redis.tls_ca_file"),
			DialTimeout:  r.duration("redis.dial_timeout", positive),
			ReadTimeout:  r.duration("redis.read_timeout", positive),
			WriteTimeout: r.duration("redis.write_timeout", positive),
			Pipeline:     r.boolean("redis.pipeline"),
			Pool: PoolConfig{
				MaxIdle:         r.integer("redis.pool.max_idle", 0, maxPool),
				MaxActive:       r.integer("redis.pool.max_active", 0, maxPool),
				IdleTimeout:     r.duration("redis.pool.idle_timeout", nonNegative),
				MaxConnLifetime: r.duration("redis.pool.max_conn_lifetime", nonNegative),
				Wait:            r.boolean("redis.pool.wait"),
				TestIdleAfter:   r.duration("redis.pool.test_idle_after", nonNegative),
			},
			Breaker: BreakerConfig{
				Failures: r.integer("redis.breaker.failures", 1, maxBreaker),
				Cooldown: r.duration("redis.breaker.cooldown", positive),
				Probes:   r.integer("redis.breaker.probes", 1, maxBreaker),
			},
		},
		Token: TokenConfig{
			RefreshMargin: r.duration("token.refresh_margin", positive),
			FetchTimeout:  r.duration("token.fetch_timeout", positive),
			LocalMaxAge:   r.duration("token.local_max_age", positive),
			LockTTL:       r.duration("token.lock_ttl", atLeastMillisecond),
		},
		Dedupe: DedupeConfig{
			TTL:             r.duration("dedupe.ttl", atLeastSecond),
			ClaimTTL:        r.duration("dedupe.claim_ttl", atLeastSecond),
			LocalMaxEntries: r.integer("dedupe.local_max_entries", 1, maxLocalEntries),
			LocalMaxAge:     r.duration("dedupe.local_max_age", atLeastSecond),
		},
		Log: LogConfig{Level: r.level("log.level")},
	}
	if cfg.Redis.TLSCAFile != "" {
		if _, err := os.Stat(cfg.Redis.TLSCAFile); err != nil {
			r.fail("redis.tls_ca_file", "cannot be read: %v", err)
		}
	}
	if err := errors.Join(r.errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Upper bounds of the integer keys: far above any sane value, low enough to
// catch a typo and to fit the types they are handed to.
const (
	maxPool         = 1 << 16
	maxBreaker      = 1 << 16
	maxLocalEntries = 1 << 30
)

// reader reads typed keys from viper and collects one error per bad key.
type reader struct {
	v    *viper.Viper
	errs []error
}

func (r *reader) fail(key, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("config: %s (env %s): %s", key, EnvName(key), fmt.Sprintf(format, args...)))
}

func (r *reader) str(key string) string { return r.v.GetString(key) }

func (r *reader) oneOf(key string, allowed ...string) string {
	s := strings.ToLower(strings.TrimSpace(r.v.GetString(key)))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	r.fail(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return ""
}

type durationRule struct {
	ok   func(time.Duration) bool
	want string
}

var (
	positive           = durationRule{func(d time.Duration) bool { return d > 0 }, "greater than zero"}
	nonNegative        = durationRule{func(d time.Duration) bool { return d >= 0 }, "zero or more"}
	atLeastSecond      = durationRule{func(d time.Duration) bool { return d >= time.Second }, "at least 1s"}
	atLeastMillisecond = durationRule{func(d time.Duration) bool { return d >= time.Millisecond }, "at least 1ms"}
)

func (r *reader) duration(key string, rule durationRule) time.Duration {
	raw := r.v.Get(key)
	s, ok := raw.(string)
	if !ok {
		if d, isDur := raw.(time.Duration); isDur {
			s = d.String()
		} else {
			r.fail(key, "%v is not a duration; write it with a unit, such as 500ms or 5m", raw)
			return 0
		}
	}
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		r.fail(key, "%q is not a duration; write it with a unit, such as 500ms or 5m", s)
		return 0
	}
	if !rule.ok(d) {
		r.fail(key, "%v must be %s", d, rule.want)
		return 0
	}
	return d
}

// integer reads a whole number in [lo, hi]: from YAML an integer, or a
// float with no fraction; from the environment a decimal string.
func (r *reader) integer(key string, lo, hi int) int {
	raw := r.v.Get(key)
	var (
		n   int64
		err error
	)
	switch v := raw.(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	case uint64:
		n, err = int64(v), nil
		if v > math.MaxInt64 {
			err = errors.New("too large")
		}
	case float64:
		n = int64(v)
		if float64(n) != v {
			err = errors.New("not whole")
		}
	case string:
		n, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	default:
		err = errors.New("not a number")
	}
	if err != nil || n < int64(lo) || n > int64(hi) {
		r.fail(key, "%v is not a whole number from %d to %d", raw, lo, hi)
		return 0
	}
	return int(n)
}

func (r *reader) boolean(key string) bool {
	b, err := cast.ToBoolE(r.v.Get(key))
	if err != nil {
		r.fail(key, "%v is not true or false", r.v.Get(key))
	}
	return b
}

func (r *reader) level(key string) zapcore.Level {
	l, err := zapcore.ParseLevel(r.v.GetString(key))
	if err != nil {
		r.fail(key, "%q is not a log level (debug, info, warn, error)", r.v.GetString(key))
	}
	return l
}

// redisURL validates a Redis URL without ever echoing it: it may hold a
// password.
func (r *reader) redisURL(key string) string {
	s := strings.TrimSpace(r.v.GetString(key))
	u, err := url.Parse(s)
	switch {
	case err != nil:
		r.fail(key, "not a valid URL")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		r.fail(key, "scheme %q, want redis:// or rediss://", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		r.fail(key, "no host; want redis://host:port")
	case u.Path != "" && u.Path != "/" && !isDBPath(u.Path):
		r.fail(key, "path %q is not a database number", u.Path)
	default:
		return s
	}
	return ""
}

func isDBPath(p string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(p, "/"))
	return err == nil && n >= 0
}
