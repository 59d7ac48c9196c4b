// Package config reads configuration keys from a YAML file and the
// environment with one set of rules and one form of error, for the module
// (app) and its host (cmd/connector) alike.
//
// Every key can be set from the environment: [EnvName] spells its variable.
// A variable set to the empty string counts as unset. Values are checked as
// they are read; each bad key adds one error that names the key and its
// variable, and [Reader.Err] returns them all at once. Values that may hold
// a secret (URLs, lists) are never echoed in an error.
package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cast"
	"github.com/spf13/viper"
	"go.uber.org/zap/zapcore"
)

// Key is a configuration key and its default.
type Key struct {
	// Name is the dotted key, such as redis.pool.max_idle.
	Name string
	// Default is the value used when neither the file nor the environment
	// sets the key.
	Default any
}

// EnvName is the environment variable that sets key: the key in upper
// case, dots turned into underscores (redis.pool.max_idle →
// REDIS_POOL_MAX_IDLE).
func EnvName(key string) string {
	return strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Reader reads typed values and collects one error per bad key. A Reader
// and the sections made from it share their errors. It is not safe for
// concurrent use.
type Reader struct {
	get   func(key string) any
	label func(key string) string
	errs  *[]error
}

// Read returns a Reader over keys: each key holds its default unless the
// YAML file at path ("" reads none) or the environment sets it; the
// environment wins.
func Read(path string, keys []Key) (*Reader, error) {
	v := viper.New()
	for _, k := range keys {
		v.SetDefault(k.Name, k.Default)
		if err := v.BindEnv(k.Name, EnvName(k.Name)); err != nil {
			return nil, fmt.Errorf("config: bind %s: %w", k.Name, err)
		}
	}
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config: read %s: %w", path, err)
		}
	}
	return &Reader{
		get:   v.Get,
		label: func(key string) string { return fmt.Sprintf("%s (env %s)", key, EnvName(key)) },
		errs:  new([]error),
	}, nil
}

// Err returns every error collected so far, joined, or nil.
func (r *Reader) Err() error { return errors.Join(*r.errs...) }

// Fail records an error about key.
func (r *Reader) Fail(key, format string, args ...any) {
	r.FailAt(r.label(key), format, args...)
}

// FailAt records an error about where, a place in the configuration that
// is not one key, such as a list entry.
func (r *Reader) FailAt(where, format string, args ...any) {
	*r.errs = append(*r.errs, fmt.Errorf("config: %s: %s", where, fmt.Sprintf(format, args...)))
}

// Get returns key's raw value as the file or the environment gave it: nil
// when unset.
func (r *Reader) Get(key string) any { return r.get(key) }

// IsSet reports whether key holds a value: anything but nil, the empty
// string and an empty list. A key's default counts, so IsSet tells whether
// a key was set only when its default is empty. A value of blanks is set:
// [Reader.Word] and [Reader.List] reject it rather than read it as unset.
func (r *Reader) IsSet(key string) bool {
	switch v := r.get(key).(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		return len(v) > 0
	case []string:
		return len(v) > 0
	}
	return true
}

// String returns key's value as a string, as it is.
func (r *Reader) String(key string) string {
	s, err := cast.ToStringE(r.get(key))
	if err != nil {
		r.Fail(key, "want a single value")
	}
	return s
}

// Required returns key's value, and records an error, saying why the key
// is needed, when it is empty.
func (r *Reader) Required(key, why string) string {
	s := r.String(key)
	if s == "" {
		r.Fail(key, "is required: %s", why)
	}
	return s
}

// OneOf returns key's value, trimmed and in lower case, when it is one of
// allowed.
func (r *Reader) OneOf(key string, allowed ...string) string {
	s := strings.ToLower(strings.TrimSpace(r.String(key)))
	if slices.Contains(allowed, s) {
		return s
	}
	r.Fail(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return ""
}

// Word returns key's value, trimmed: one word, with no space or control
// character inside, such as a name a server takes as one argument; empty
// when unset. A value of spaces only is an error. A bad value is echoed:
// Word is not for secrets.
func (r *Reader) Word(key string) string {
	raw := r.String(key)
	s := strings.TrimSpace(raw)
	switch {
	case raw != "" && s == "":
		r.Fail(key, "is blank; leave it empty to unset it")
	case !isWord(s):
		r.Fail(key, "%q is not one word: it holds a space or a control character", s)
	default:
		return s
	}
	return ""
}

// isWord reports whether s is valid UTF-8 free of spaces and control
// characters.
func isWord(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(c rune) bool {
		return unicode.IsSpace(c) || !unicode.IsPrint(c)
	})
}

// List returns key's value, a list of strings: from YAML a list of single
// values, or, from YAML or the environment, one string of items separated
// by commas (a,b). Items are trimmed and empty ones dropped, so a trailing
// comma is harmless; a value set with no item at all ("," or [""]) is an
// error. It is nil when unset. An error never echoes the value, which may
// hold secrets such as keys.
func (r *Reader) List(key string) []string {
	var items []string
	switch v := r.get(key).(type) {
	case nil:
		return nil
	case []string:
		items = v
	case []any:
		items = make([]string, len(v))
		for i, item := range v {
			s, err := cast.ToStringE(item)
			if err != nil {
				r.Fail(key, "item %d is not a single value; want a list of strings", i+1)
				return nil
			}
			items[i] = s
		}
	default:
		s, err := cast.ToStringE(v)
		if err != nil {
			r.Fail(key, "want a list, or one string of items separated by commas")
			return nil
		}
		items = strings.Split(s, ",")
	}
	var out []string
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if out == nil && r.IsSet(key) {
		r.Fail(key, "holds no item; leave it empty to unset it")
	}
	return out
}

// HostPorts returns key's value, a [Reader.List] of addresses to connect
// to, each host:port with a host (unlike [Reader.HostPort], which reads an
// address to listen on) and a port from 1 to 65535. An address listed
// twice, host names compared without regard to case, is an error: it most
// likely stands where another was meant. Addresses hold no secret: bad ones
// are echoed.
func (r *Reader) HostPorts(key string) []string {
	list := r.List(key)
	var (
		bad, twice []string
		seen       = map[string]int{}
	)
	for _, s := range list {
		if !isDialAddr(s) {
			bad = append(bad, strconv.Quote(s))
			continue
		}
		folded := strings.ToLower(s)
		if seen[folded]++; seen[folded] == 2 {
			twice = append(twice, strconv.Quote(s))
		}
	}
	switch {
	case len(bad) > 0:
		r.Fail(key, "%s: want host:port with a host and a port from 1 to 65535, such as cache-1:26379", strings.Join(bad, ", "))
	case len(twice) > 0:
		r.Fail(key, "%s: listed twice", strings.Join(twice, ", "))
	default:
		return list
	}
	return nil
}

// isDialAddr reports whether s is host:port with a host free of spaces and
// a decimal port from 1 to 65535.
func isDialAddr(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || !isWord(host) {
		return false
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && n > 0
}

// Rule is what a duration must be.
type Rule struct {
	ok   func(time.Duration) bool
	want string
}

// Duration rules.
var (
	Positive    = Rule{func(d time.Duration) bool { return d > 0 }, "greater than zero"}
	NonNegative = Rule{func(d time.Duration) bool { return d >= 0 }, "zero or more"}
)

// AtLeast is the rule of durations no shorter than min.
func AtLeast(min time.Duration) Rule {
	return Rule{func(d time.Duration) bool { return d >= min }, "at least " + min.String()}
}

// Duration returns key's value, a Go duration with its unit (500ms, 5m),
// when it follows rule.
func (r *Reader) Duration(key string, rule Rule) time.Duration {
	var (
		d   time.Duration
		err error
	)
	switch raw := r.get(key).(type) {
	case string:
		d, err = time.ParseDuration(strings.TrimSpace(raw))
	case time.Duration:
		d = raw
	default:
		err = errors.New("not a string")
	}
	switch {
	case err != nil:
		r.Fail(key, "%v is not a duration; write it with a unit, such as 500ms or 5m", r.get(key))
	case !rule.ok(d):
		r.Fail(key, "%v must be %s", d, rule.want)
	default:
		return d
	}
	return 0
}

// Int returns key's value, a whole number from lo to hi: from YAML an
// integer (or a float without fraction), from the environment a decimal.
func (r *Reader) Int(key string, lo, hi int) int {
	raw := r.get(key)
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
		n = int64(v)
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
		r.Fail(key, "%v is not a whole number from %d to %d", raw, lo, hi)
		return 0
	}
	return int(n)
}

// Bool returns key's value: true or false (also 1/0, t/f, in any case).
func (r *Reader) Bool(key string) bool {
	b, err := cast.ToBoolE(r.get(key))
	if err != nil {
		r.Fail(key, "%v is not true or false", r.get(key))
	}
	return b
}

// Level returns key's value, a zap log level.
func (r *Reader) Level(key string) zapcore.Level {
	s := r.String(key)
	l, err := zapcore.ParseLevel(s)
	if err != nil {
		r.Fail(key, "%q is not a log level (debug, info, warn, error)", s)
	}
	return l
}

// HostPort returns key's value, an address to listen on such as :8080.
func (r *Reader) HostPort(key string) string {
	s := strings.TrimSpace(r.String(key))
	if _, _, err := net.SplitHostPort(s); err != nil {
		r.Fail(key, "%q is not host:port, such as :8080", s)
		return ""
	}
	return s
}

// RedisURL returns key's value, a redis:// or rediss:// URL with a host,
// at most a database number for path, and no query string or fragment:
// Redis clients read options from a query differently, or not at all, and
// a password there would be neither used nor masked in logs. The URL may
// hold a password: it is never echoed, nor is its query.
func (r *Reader) RedisURL(key string) string {
	s := strings.TrimSpace(r.String(key))
	u, err := url.Parse(s)
	switch {
	case err != nil:
		r.Fail(key, "not a valid URL")
	case u.Scheme != "redis" && u.Scheme != "rediss":
		r.Fail(key, "scheme %q, want redis:// or rediss://", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		r.Fail(key, "no host; want redis://host:port")
	case strings.ContainsAny(s, "?#"):
		// Past the checks above, a ? or # can only start a query or a
		// fragment: the user info and the host hold neither unescaped.
		r.Fail(key, "holds a query string or a fragment (after ? or #), which is not read; a password holding ? or # must escape them as %%3F and %%23")
	case u.Path != "" && u.Path != "/" && !isDBPath(u.Path):
		r.Fail(key, "path %q is not a database number", u.Path)
	default:
		return s
	}
	return ""
}

func isDBPath(p string) bool {
	n, err := strconv.Atoi(strings.TrimPrefix(p, "/"))
	return err == nil && n >= 0
}

// RedisDB returns the database number that redisURL, a URL
// [Reader.RedisURL] accepted, names in its path: 0 when it names none, and
// when redisURL is not such a URL.
func RedisDB(redisURL string) int {
	u, err := url.Parse(redisURL)
	if err != nil || !isDBPath(u.Path) {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
	return n
}

// RedisTLS reports whether redisURL, a URL [Reader.RedisURL] accepted,
// asks for TLS: whether its scheme is rediss. It is false when redisURL is
// not such a URL.
func RedisTLS(redisURL string) bool {
	u, err := url.Parse(redisURL)
	return err == nil && u.Scheme == "rediss"
}

// BaseURL returns key's value, an optional http(s) base URL without user
// info, with no trailing slash; empty when unset. It is never echoed.
func (r *Reader) BaseURL(key string) string {
	s := strings.TrimSuffix(strings.TrimSpace(r.String(key)), "/")
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		r.Fail(key, "not an http(s) base URL such as https://api.mypurecloud.com")
		return ""
	}
	return s
}

// Section returns a Reader over one entry of a list, such as one tenant:
// values is the entry as the file holds it, its nested mappings read as
// dotted keys (genesys.client_id). known lists the keys an entry may hold;
// any other is an error. Each key can be set from the environment variable
// env(key), which wins over the file. Errors are about where: "tenants[0]
// (acme): genesys.region (env TENANT_ACME_GENESYS_REGION): …".
func (r *Reader) Section(where string, values map[string]any, known []string, env func(key string) string) *Reader {
	flat := map[string]any{}
	var unknown []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			key := prefix + strings.ToLower(k)
			if sub, ok := v.(map[string]any); ok && slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(k, key+".") }) {
				walk(key+".", sub)
				continue
			}
			if !slices.Contains(known, key) {
				unknown = append(unknown, key)
				continue
			}
			flat[key] = v
		}
	}
	walk("", values)
	if len(unknown) > 0 {
		slices.Sort(unknown)
		r.FailAt(where, "unknown keys %s", strings.Join(unknown, ", "))
	}
	return &Reader{
		get: func(key string) any {
			if v := os.Getenv(env(key)); v != "" {
				return v
			}
			return flat[key]
		},
		label: func(key string) string { return fmt.Sprintf("%s: %s (env %s)", where, key, env(key)) },
		errs:  r.errs,
	}
}
