package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/redact"
)

// Secrets of the configuration redactedConfig returns: none may show.
var configSecrets = []string{
	"global-app-secret-7f3e",
	"acme-verify-token-91c2",
	"acme-app-secret-5d0a",
	"acme-client-secret-22b9",
	"globex-verify-token-c4e1",
	"globex-client-secret-8a6f",
	"redis-url-password-3b7d",
	"redis-password-e90c",
	"sentinel-password-14fa",
}

// redactedConfig is a configuration with every kind of secret set, to
// configSecrets' values.
func redactedConfig() Config {
	return Config{
		Module: app.Config{
			Store: app.StoreRedis,
			Redis: app.RedisConfig{
				URL:      "redis://connector:redis-url-password-3b7d@cache-1:6379/2",
				Password: "redis-password-e90c",
				Sentinel: app.SentinelConfig{Master: "mymaster", Addrs: []string{"s1:26379"}, Password: "sentinel-password-14fa"},
			},
		},
		HTTP:      HTTPConfig{Addr: ":8080", AdminAddr: "10.0.0.5:9090"},
		Delivery:  deliveryGenesys,
		AppSecret: "global-app-secret-7f3e",
		Tenants: []TenantConfig{
			{
				ID:          "acme-eu",
				VerifyToken: "acme-verify-token-91c2",
				WhatsApp:    TenantWhatsApp{WABAIDs: []string{"209988776655443"}, AppSecret: "acme-app-secret-5d0a"},
				Genesys: TenantGenesys{Region: "mypurecloud.ie", ClientID: "acme-client-id", ClientSecret: "acme-client-secret-22b9",
					IntegrationID: "integ-1", LoginURL: "https://login.mypurecloud.ie", APIURL: "https://api.mypurecloud.ie"},
			},
			{
				ID:          "globex",
				VerifyToken: "globex-verify-token-c4e1",
				WhatsApp:    TenantWhatsApp{WABAIDs: []string{"309988776655443"}, PhoneNumberIDs: []string{"214477885522001"}},
				Genesys:     TenantGenesys{ClientID: "globex-client-id", ClientSecret: "globex-client-secret-8a6f"},
			},
		},
	}
}

// checkRedacted fails the test when out shows a secret, or lacks one of
// want: the settings that are not secret, and the mask.
func checkRedacted(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for _, secret := range configSecrets {
		if strings.Contains(out, secret) || strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s shows the secret %q:\n%s", what, secret, out)
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

func TestConfig_FormatsWithoutSecrets(t *testing.T) {
	cfg := redactedConfig()
	acme := cfg.Tenants[0]
	tests := []struct {
		name string
		give any
		want []string
	}{
		{"Config", cfg, []string{"acme-eu", "globex", "acme-client-id", "209988776655443", "cache-1:6379", "mymaster", "10.0.0.5:9090", redact.Mask}},
		{"*Config", &cfg, []string{"acme-eu", "acme-client-id", redact.Mask}},
		{"TenantConfig", acme, []string{"acme-eu", "acme-client-id", "integ-1", "209988776655443", redact.Mask}},
		{"TenantWhatsApp", acme.WhatsApp, []string{"209988776655443", redact.Mask}},
		{"TenantGenesys", acme.Genesys, []string{"acme-client-id", "https://api.mypurecloud.ie", redact.Mask}},
		{"[]TenantConfig", cfg.Tenants, []string{"acme-eu", "globex", redact.Mask}},
		{"a struct holding a TenantConfig", struct{ T TenantConfig }{acme}, []string{"acme-eu", redact.Mask}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%q", "%10.5000s"} {
				checkRedacted(t, verb, fmt.Sprintf(verb, tt.give), tt.want...)
			}
			for _, verb := range []string{"%x", "%X"} {
				checkRedacted(t, verb, fmt.Sprintf(verb, tt.give), fmt.Sprintf(verb, redact.Mask))
			}
			// encoding/json, which zap.Reflect, and zap.Any of a struct
			// holding a configuration, go through.
			b, err := json.Marshal(tt.give)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			checkRedacted(t, "json.Marshal", string(b), tt.want...)
		})
	}
	if got := fmt.Sprintf("%#v", acme.Genesys); !strings.HasPrefix(got, "main.TenantGenesys{") {
		t.Errorf("%%#v = %s, want it to start with the type's name", got)
	}
	if got := fmt.Sprintf("%+v", TenantWhatsApp{WABAIDs: []string{"1"}}); strings.Contains(got, redact.Mask) {
		t.Errorf("%%+v of a tenant without its own app secret = %s, want it shown unset, not masked", got)
	}
	if cfg.Tenants[0].VerifyToken != "acme-verify-token-91c2" || cfg.Module.Redis.Password != "redis-password-e90c" {
		t.Error("formatting changed the configuration")
	}
}

func TestConfig_LogsWithoutSecrets(t *testing.T) {
	cfg := redactedConfig()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	log.Info("configuration", zap.Object("config", cfg))
	log.Info("tenant", zap.Any("tenant", cfg.Tenants[0]), zap.Any("genesys", cfg.Tenants[1].Genesys),
		zap.Any("whatsapp", cfg.Tenants[0].WhatsApp), zap.Stringer("stringer", cfg))
	for _, e := range logs.All() {
		checkRedacted(t, "observed "+e.Message, fmt.Sprint(e.ContextMap()), "acme-eu", redact.Mask)
	}

	// The JSON encoder the connector logs with.
	var out syncBuffer
	jsonLog := newLogger(zapcore.InfoLevel, &out)
	jsonLog.Info("configuration", zap.Object("config", cfg), zap.Array("tenants", zapcore.ArrayMarshalerFunc(func(a zapcore.ArrayEncoder) error {
		for _, tt := range cfg.Tenants {
			if err := a.AppendObject(tt); err != nil {
				return err
			}
		}
		return nil
	})))
	checkRedacted(t, "JSON log", out.String(), `"id":"acme-eu"`, `"client_id":"acme-client-id"`, `"waba_ids":["209988776655443"]`,
		`"phone_number_ids":["214477885522001"]`, `"redis_url":"`+cfg.Module.Redis.RedactedURL()+`"`, `"admin_addr":"10.0.0.5:9090"`,
		`"verify_token":"`+redact.Mask+`"`, `"client_secret":"`+redact.Mask+`"`)
}
