package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/internal/config"
)

// read returns a Reader over keys, the YAML yaml ("" for no file) and env,
// with no other variable of these keys set.
func read(t *testing.T, yaml string, env map[string]string, keys ...config.Key) *config.Reader {
	t.Helper()
	for _, k := range keys {
		t.Setenv(config.EnvName(k.Name), "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	path := ""
	if yaml != "" {
		path = filepath.Join(t.TempDir(), "config.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := config.Read(path, keys)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return r
}

// wantErr fails t unless r's error holds every one of want and none of
// secrets.
func wantErr(t *testing.T, r *config.Reader, want []string, secrets ...string) {
	t.Helper()
	err := r.Err()
	if err == nil {
		t.Fatalf("Err() = nil, want an error naming %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not hold %q", err, w)
		}
	}
	for _, s := range secrets {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q shows the secret %q", err, s)
		}
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ give, want string }{
		{give: "store", want: "STORE"},
		{give: "redis.url", want: "REDIS_URL"},
		{give: "redis.pool.max_idle", want: "REDIS_POOL_MAX_IDLE"},
	}
	for _, tt := range tests {
		if got := config.EnvName(tt.give); got != tt.want {
			t.Errorf("EnvName(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestRead_DefaultThenFileThenEnvironment(t *testing.T) {
	keys := []config.Key{{Name: "a.timeout", Default: "1s"}, {Name: "b", Default: 3}, {Name: "c", Default: "x"}}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want time.Duration
	}{
		{name: "default", want: time.Second},
		{name: "file", yaml: "a: {timeout: 2s}\n", want: 2 * time.Second},
		{name: "environment over file", yaml: "a: {timeout: 2s}\n", env: map[string]string{"A_TIMEOUT": "3s"}, want: 3 * time.Second},
		{name: "empty variable is unset", yaml: "a: {timeout: 2s}\n", env: map[string]string{"A_TIMEOUT": ""}, want: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, tt.yaml, tt.env, keys...)
			if got := r.Duration("a.timeout", config.Positive); got != tt.want || r.Err() != nil {
				t.Errorf("Duration = %v, %v; want %v", got, r.Err(), tt.want)
			}
		})
	}
}

func TestRead_UnreadableFile(t *testing.T) {
	if _, err := config.Read(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Read of a missing file = %v, want an error naming it", err)
	}
}

func TestReader_Duration(t *testing.T) {
	tests := []struct {
		name string
		give string
		rule config.Rule
		want time.Duration
		err  string // "" when valid
	}{
		{name: "with unit", give: "500ms", rule: config.Positive, want: 500 * time.Millisecond},
		{name: "spaces", give: " 5m ", rule: config.Positive, want: 5 * time.Minute},
		{name: "zero allowed", give: "0s", rule: config.NonNegative, want: 0},
		{name: "no unit", give: "10", rule: config.Positive, err: "write it with a unit"},
		{name: "zero not allowed", give: "0s", rule: config.Positive, err: "must be greater than zero"},
		{name: "negative", give: "-1s", rule: config.NonNegative, err: "must be zero or more"},
		{name: "too short", give: "500ms", rule: config.AtLeast(time.Second), err: "must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, "", map[string]string{"D": tt.give}, config.Key{Name: "d", Default: "1s"})
			got := r.Duration("d", tt.rule)
			if tt.err != "" {
				wantErr(t, r, []string{"d (env D)", tt.err})
				return
			}
			if got != tt.want || r.Err() != nil {
				t.Errorf("Duration(%q) = %v, %v; want %v", tt.give, got, r.Err(), tt.want)
			}
		})
	}
}

func TestReader_IntFromFileAndEnvironment(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  string
		want int
		bad  bool
	}{
		{name: "yaml integer", yaml: "n: 7\n", want: 7},
		{name: "yaml whole float", yaml: "n: 7.0\n", want: 7},
		{name: "yaml fraction", yaml: "n: 7.5\n", bad: true},
		{name: "env decimal", env: " 9 ", want: 9},
		{name: "env word", env: "nine", bad: true},
		{name: "below the range", env: "0", bad: true},
		{name: "above the range", env: "11", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, tt.yaml, map[string]string{"N": tt.env}, config.Key{Name: "n", Default: 5})
			got := r.Int("n", 1, 10)
			if tt.bad {
				wantErr(t, r, []string{"n (env N)", "whole number from 1 to 10"})
				return
			}
			if got != tt.want || r.Err() != nil {
				t.Errorf("Int = %d, %v; want %d", got, r.Err(), tt.want)
			}
		})
	}
}

func TestReader_ScalarRules(t *testing.T) {
	keys := []config.Key{
		{Name: "kind", Default: "redis"}, {Name: "on", Default: true}, {Name: "level", Default: "info"},
		{Name: "addr", Default: ":8080"},
	}
	t.Run("valid", func(t *testing.T) {
		r := read(t, "", map[string]string{"KIND": " MEMORY ", "ON": "false", "LEVEL": "warn", "ADDR": "127.0.0.1:9"}, keys...)
		if got := r.OneOf("kind", "redis", "memory"); got != "memory" {
			t.Errorf("OneOf = %q, want memory", got)
		}
		if r.Bool("on") {
			t.Error("Bool = true, want false")
		}
		if got := r.Level("level"); got != zapcore.WarnLevel {
			t.Errorf("Level = %v, want warn", got)
		}
		if got := r.HostPort("addr"); got != "127.0.0.1:9" {
			t.Errorf("HostPort = %q", got)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("invalid, every key named in one error", func(t *testing.T) {
		r := read(t, "", map[string]string{"KIND": "mongo", "ON": "maybe", "LEVEL": "loud", "ADDR": "8080"}, keys...)
		r.OneOf("kind", "redis", "memory")
		r.Bool("on")
		r.Level("level")
		r.HostPort("addr")
		wantErr(t, r, []string{"kind (env KIND)", `"mongo" is not one of redis, memory`, "on (env ON)", "level (env LEVEL)", "addr (env ADDR)"})
	})
}

func TestReader_URLsAreNeverEchoed(t *testing.T) {
	const secret = "hunter2"
	tests := []struct {
		name string
		read func(r *config.Reader, key string) string
		give string
		want string // the value read, "" when invalid
		err  string
	}{
		{name: "redis", read: (*config.Reader).RedisURL, give: "rediss://u:" + secret + "@cache:6380/2", want: "rediss://u:" + secret + "@cache:6380/2"},
		{name: "redis, http scheme", read: (*config.Reader).RedisURL, give: "http://u:" + secret + "@cache", err: `scheme "http"`},
		{name: "redis, no host", read: (*config.Reader).RedisURL, give: "redis:" + secret, err: "no host"},
		{name: "redis, path not a db", read: (*config.Reader).RedisURL, give: "redis://cache/x", err: "not a database number"},
		{name: "redis, password in the query", read: (*config.Reader).RedisURL, give: "redis://cache:6379/0?password=" + secret, err: "query string"},
		{name: "redis, other query", read: (*config.Reader).RedisURL, give: "rediss://cache:6380?db=2&x=" + secret, err: "query string"},
		{name: "redis, empty query", read: (*config.Reader).RedisURL, give: "redis://cache:6379?", err: "query string"},
		{name: "redis, password cut at a #", read: (*config.Reader).RedisURL, give: "redis://cache:6379#" + secret, err: "fragment"},
		{name: "redis, ? escaped in the password", read: (*config.Reader).RedisURL, give: "redis://:" + secret + "%3F@cache", want: "redis://:" + secret + "%3F@cache"},
		{name: "base URL, trailing slash", read: (*config.Reader).BaseURL, give: "https://api.example/", want: "https://api.example"},
		{name: "base URL, unset", read: (*config.Reader).BaseURL, give: "", want: ""},
		{name: "base URL with user info", read: (*config.Reader).BaseURL, give: "https://u:" + secret + "@api.example", err: "not an http(s) base URL"},
		{name: "base URL, other scheme", read: (*config.Reader).BaseURL, give: "ftp://" + secret, err: "not an http(s) base URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, "", map[string]string{"U": tt.give}, config.Key{Name: "u", Default: ""})
			got := tt.read(r, "u")
			if tt.err != "" {
				wantErr(t, r, []string{"u (env U)", tt.err}, secret)
				return
			}
			if got != tt.want || r.Err() != nil {
				t.Errorf("read %q = %q, %v; want %q", tt.give, got, r.Err(), tt.want)
			}
		})
	}
}

func TestRedisDB(t *testing.T) {
	tests := []struct {
		give string
		want int
	}{
		{give: "redis://cache:6379", want: 0},
		{give: "redis://cache:6379/", want: 0},
		{give: "redis://cache:6379/0", want: 0},
		{give: "rediss://u:p@cache:6380/2", want: 2},
		{give: "redis://cache:6379/15", want: 15},
		{give: "redis://cache:6379/x", want: 0},
		{give: "", want: 0},
	}
	for _, tt := range tests {
		if got := config.RedisDB(tt.give); got != tt.want {
			t.Errorf("RedisDB(%q) = %d, want %d", tt.give, got, tt.want)
		}
	}
}

func TestRedisTLS(t *testing.T) {
	tests := []struct {
		give string
		want bool
	}{
		{give: "rediss://cache:6380", want: true},
		{give: "REDISS://u:p@cache:6380/2", want: true},
		{give: "redis://cache:6379", want: false},
		{give: "redis://cache:port", want: false},
		{give: "", want: false},
	}
	for _, tt := range tests {
		if got := config.RedisTLS(tt.give); got != tt.want {
			t.Errorf("RedisTLS(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
}

func TestReader_Section(t *testing.T) {
	const yaml = `
tenants:
  - id: acme
    token: from-file
    nested: {region: eu, size: 3}
    nested_typo: {x: 1}
    colour: blue
`
	r := read(t, yaml, map[string]string{"T_ACME_NESTED_REGION": "us"}, config.Key{Name: "tenants", Default: nil})
	list, ok := r.Get("tenants").([]any)
	if !ok || len(list) != 1 {
		t.Fatalf("Get(tenants) = %#v, want a list of one", r.Get("tenants"))
	}
	env := func(key string) string { return "T_ACME_" + config.EnvName(key) }
	s := r.Section("tenants[0] (acme)", list[0].(map[string]any), []string{"id", "token", "nested.region", "nested.size", "missing"}, env)

	if got := s.String("token"); got != "from-file" {
		t.Errorf("token = %q, want the file's", got)
	}
	if got := s.String("nested.region"); got != "us" {
		t.Errorf("nested.region = %q, want the environment's", got)
	}
	if got := s.Int("nested.size", 1, 5); got != 3 {
		t.Errorf("nested.size = %d, want 3", got)
	}
	s.Required("missing", "the test needs it")
	wantErr(t, r, []string{
		"tenants[0] (acme): unknown keys colour, nested_typo",
		"tenants[0] (acme): missing (env T_ACME_MISSING): is required: the test needs it",
	})
}

func TestReader_IsSet(t *testing.T) {
	keys := []config.Key{{Name: "s", Default: ""}, {Name: "l", Default: []string{}}}
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		key  string
		want bool
	}{
		{name: "empty string default", key: "s", want: false},
		{name: "empty list default", key: "l", want: false},
		{name: "empty string in the file", yaml: "s: \"\"\n", key: "s", want: false},
		{name: "null in the file", yaml: "l:\n", key: "l", want: false},
		{name: "empty list in the file", yaml: "l: []\n", key: "l", want: false},
		{name: "empty variable", env: map[string]string{"S": ""}, key: "s", want: false},
		{name: "string in the file", yaml: "s: x\n", key: "s", want: true},
		{name: "list in the file", yaml: "l: [a]\n", key: "l", want: true},
		{name: "list of one empty item", yaml: "l: [\"\"]\n", key: "l", want: true},
		{name: "variable", env: map[string]string{"L": "a,b"}, key: "l", want: true},
		{name: "blank variable", env: map[string]string{"S": "  "}, key: "s", want: true},
		{name: "number", yaml: "s: 0\n", key: "s", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, tt.yaml, tt.env, keys...)
			if got := r.IsSet(tt.key); got != tt.want {
				t.Errorf("IsSet(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestReader_Word(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
		err  string // "" when valid
	}{
		{name: "unset", give: "", want: ""},
		{name: "name", give: "mymaster", want: "mymaster"},
		{name: "spaces around", give: " my-master.1 ", want: "my-master.1"},
		{name: "non-ASCII", give: "maître", want: "maître"},
		{name: "blank", give: "   ", err: "is blank"},
		{name: "space inside", give: "my master", err: `"my master" is not one word`},
		{name: "tab inside", give: "my\tmaster", err: "is not one word"},
		{name: "control character", give: "my\x7fmaster", err: "is not one word"},
		{name: "invalid UTF-8", give: "my\xffmaster", err: "is not one word"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, "", map[string]string{"W": tt.give}, config.Key{Name: "w", Default: ""})
			got := r.Word("w")
			if tt.err != "" {
				wantErr(t, r, []string{"w (env W)", tt.err})
				return
			}
			if got != tt.want || r.Err() != nil {
				t.Errorf("Word(%q) = %q, %v; want %q", tt.give, got, r.Err(), tt.want)
			}
		})
	}
}

func TestReader_List(t *testing.T) {
	// secret stands for a list item that is a secret, such as a key: no
	// error echoes it.
	const secret = "s3cret"
	tests := []struct {
		name string
		yaml string
		env  string
		want []string
		err  string // "" when valid
	}{
		{name: "default", want: nil},
		{name: "empty list in the file", yaml: "l: []\n", want: nil},
		{name: "yaml list", yaml: "l: [a, b]\n", want: []string{"a", "b"}},
		{name: "yaml block list, trimmed, nulls dropped", yaml: "l:\n  - \" a \"\n  -\n  - 7\n", want: []string{"a", "7"}},
		{name: "yaml list item keeps its commas", yaml: "l: [\"a,b\"]\n", want: []string{"a,b"}},
		{name: "comma-separated string in the file", yaml: "l: a, b\n", want: []string{"a", "b"}},
		{name: "env", env: " a , b ", want: []string{"a", "b"}},
		{name: "env, trailing comma", env: "a,b,", want: []string{"a", "b"}},
		{name: "env, empty item inside", env: "a,,b", want: []string{"a", "b"}},
		{name: "env over file", yaml: "l: [a, b]\n", env: "c", want: []string{"c"}},
		{name: "env of commas only", env: " , ", err: "holds no item"},
		{name: "yaml list of empty items", yaml: "l: [\"\", \" \"]\n", err: "holds no item"},
		{name: "yaml item a mapping", yaml: "l: [" + secret + "-a, {" + secret + "-b: 1}]\n", err: "item 2 is not a single value"},
		{name: "yaml mapping", yaml: "l: {" + secret + ": 1}\n", err: "want a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, tt.yaml, map[string]string{"L": tt.env}, config.Key{Name: "l", Default: []string{}})
			got := r.List("l")
			if tt.err != "" {
				wantErr(t, r, []string{"l (env L)", tt.err}, secret)
				return
			}
			if !slices.Equal(got, tt.want) || (got == nil) != (tt.want == nil) || r.Err() != nil {
				t.Errorf("List = %#v, %v; want %#v", got, r.Err(), tt.want)
			}
		})
	}
}

func TestReader_HostPorts(t *testing.T) {
	tests := []struct {
		name string
		give string
		want []string
		err  []string // each in the error; nil when valid
	}{
		{name: "unset", give: "", want: nil},
		{name: "names, IPv4, IPv6", give: "s1:26379, 10.0.0.2:26380,[::1]:26381", want: []string{"s1:26379", "10.0.0.2:26380", "[::1]:26381"}},
		{name: "port bounds", give: "a:1,b:65535", want: []string{"a:1", "b:65535"}},
		{name: "no port", give: "host", err: []string{`"host": want host:port`}},
		{name: "no host", give: ":6379", err: []string{`":6379"`}},
		{name: "port zero", give: "h:0", err: []string{`"h:0"`}},
		{name: "port a word", give: "h:x", err: []string{`"h:x"`}},
		{name: "port too large", give: "h:70000", err: []string{`"h:70000"`}},
		{name: "port with a sign", give: "h:+1", err: []string{`"h:+1"`}},
		{name: "empty port", give: "h:", err: []string{`"h:"`}},
		{name: "space in the host", give: "re dis:26379", err: []string{`"re dis:26379"`}},
		{name: "spaces instead of commas", give: "a:1 b:2", err: []string{`"a:1 b:2"`}},
		{name: "every bad entry named", give: "ok:1,host,h:0", err: []string{`"host", "h:0": want`}},
		{name: "listed twice", give: "a:1,b:2,A:1", err: []string{`"A:1": listed twice`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := read(t, "", map[string]string{"A": tt.give}, config.Key{Name: "a", Default: []string{}})
			got := r.HostPorts("a")
			if tt.err != nil {
				wantErr(t, r, append([]string{"a (env A)"}, tt.err...))
				return
			}
			if !slices.Equal(got, tt.want) || r.Err() != nil {
				t.Errorf("HostPorts(%q) = %q, %v; want %q", tt.give, got, r.Err(), tt.want)
			}
		})
	}
}
