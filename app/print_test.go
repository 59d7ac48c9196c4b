package app_test

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/app"
)

// TestConfigPrintsNoSecret prints and logs each configuration type that
// holds a secret, every way fmt and zap do: the values show, the secrets
// never do.
func TestConfigPrintsNoSecret(t *testing.T) {
	const (
		urlPassword      = "url-Passw0rd-1"
		lonePassword     = "lone-Passw0rd-2"
		queryPassword    = "query-Passw0rd-3"
		password         = "option-Passw0rd-4"
		sentinelPassword = "sentinel-Passw0rd-5"
	)
	secrets := []string{urlPassword, lonePassword, queryPassword, password, sentinelPassword, testKey1, testKey2}

	tests := []struct {
		name    string
		giveURL string
	}{
		{name: "user and password in the URL", giveURL: "rediss://user:" + urlPassword + "@cache:6380/2"},
		{name: "lone name in the URL", giveURL: "redis://" + lonePassword + "@cache:6379"},
		{name: "password in the URL's query", giveURL: "redis://cache:6379/0?password=" + queryPassword},
		{name: "unparsable URL", giveURL: "redis://user:" + urlPassword + "@cache:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			cfg.Redis.URL = tt.giveURL
			cfg.Redis.Password = password
			cfg.Redis.Sentinel = app.SentinelConfig{
				Master: "mymaster", Addrs: []string{"sentinel-1:26379"},
				Username: "sentinel-user", Password: sentinelPassword,
			}
			cfg.Token.EncryptionKeys = mustKeys(t, "key-new:"+testKey1, "key-old:"+testKey2)

			values := []struct {
				name string
				give any
				want string // shows in every output
			}{
				{"Config", cfg, "sentinel-user"},
				{"*Config", &cfg, "sentinel-user"},
				{"RedisConfig", cfg.Redis, "sentinel-user"},
				{"*RedisConfig", &cfg.Redis, "sentinel-user"},
				{"SentinelConfig", cfg.Redis.Sentinel, "sentinel-user"},
				{"*SentinelConfig", &cfg.Redis.Sentinel, "sentinel-user"},
				{"TokenConfig", cfg.Token, "key-new"},
				{"*TokenConfig", &cfg.Token, "key-new"},
				{"in a struct", struct{ Module app.Config }{cfg}, "sentinel-user"},
			}
			for _, v := range values {
				marshaled, err := json.Marshal(v.give)
				if err != nil {
					t.Fatalf("json.Marshal(%s): %v", v.name, err)
				}
				outputs := map[string]string{
					"fmt":     fmt.Sprintf("%v %+v %#v %s %d %q %10.2000s", v.give, v.give, v.give, v.give, v.give, v.give, v.give),
					"zap.Any": observedField(t, zap.Any("cfg", v.give)),
					// zap.Any of an arbitrary struct, and zap.Reflect, go
					// through encoding/json.
					"zap, JSON":    jsonField(t, zap.Any("cfg", v.give)),
					"zap.Reflect":  jsonField(t, zap.Reflect("cfg", v.give)),
					"json.Marshal": string(marshaled),
				}
				for how, out := range outputs {
					if !strings.Contains(out, v.want) {
						t.Errorf("%s of %s does not show %q: %s", how, v.name, v.want, out)
					}
					for _, s := range secrets {
						if strings.Contains(out, s) || strings.Contains(out, hex.EncodeToString([]byte(s))) {
							t.Errorf("%s of %s shows the secret %q: %s", how, v.name, s, out)
						}
					}
				}
			}

		})
	}
}

// TestRedisConfigPrintsTheURLRedacted checks what the Redis configuration
// prints in place of its secrets.
func TestRedisConfigPrintsTheURLRedacted(t *testing.T) {
	c := app.RedisConfig{URL: "rediss://user:hunter2@cache:6380/2", Password: "hunter3"}
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "%v", give: fmt.Sprintf("%v", c), want: "URL:rediss://user:xxxxx@cache:6380/2 Password:xxxxx "},
		{name: "%#v", give: fmt.Sprintf("%#v", c), want: `app.RedisConfig{URL:"rediss://user:xxxxx@cache:6380/2", Password:"xxxxx", `},
		{name: "%v, no password", give: fmt.Sprintf("%v", app.RedisConfig{URL: "redis://cache:6379"}), want: "{URL:redis://cache:6379 Password: "},
		{name: "zap", give: observedField(t, zap.Object("redis", c)), want: "password:xxxxx "},
	}
	for _, tt := range tests {
		if !strings.Contains(tt.give, tt.want) {
			t.Errorf("%s = %s\nwant it to hold %s", tt.name, tt.give, tt.want)
		}
	}
}

// observedField is field as the zap observer records it.
func observedField(t *testing.T, field zap.Field) string {
	t.Helper()
	log, logs := observed()
	log.Info("config", field)
	return fmt.Sprint(logs.All()[0].ContextMap())
}

// jsonField is field as zap's production JSON encoder writes it.
func jsonField(t *testing.T, field zap.Field) string {
	t.Helper()
	buf, err := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()).EncodeEntry(zapcore.Entry{Message: "config"}, []zap.Field{field})
	if err != nil {
		t.Fatalf("JSON encoding: %v", err)
	}
	defer buf.Free()
	return buf.String()
}
