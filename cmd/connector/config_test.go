package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/config"
)

// writeConfig writes yaml to a file of its own and returns its path.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// clearHostEnv unsets, for the test, every variable these tests set, so
// that the surrounding environment cannot change their outcome.
func clearHostEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"STORE", "DELIVERY", "DEV", "HTTP_ADDR", "HTTP_ADMIN_ADDR", "HTTP_SHUTDOWN_TIMEOUT",
		"HTTP_MAX_INFLIGHT_BODIES", "HTTP_BODY_TIMEOUT", "HTTP_REQUEST_TIMEOUT", "WEBHOOK_MAX_MESSAGES", "WHATSAPP_APP_SECRET",
		"GENESYS_TIMEOUT", "GENESYS_MAX_RETRY_AFTER", "GENESYS_LOGIN_URL", "GENESYS_API_URL", "GENESYS_ALLOW_INSECURE_HTTP",
		"LOG_LEVEL", "TOKEN_POOL_SIZE", "TOKEN_ENCRYPTION_KEYS"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "TENANT_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// Secrets the tests configure: long enough, and none of dev.yaml's.
const (
	testAppSecret   = "test-app-secret-0123456789"
	testVerifyToken = "test-verify-token-0123456789"
)

func TestLoadConfig_DevConfig(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig("dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Dev || cfg.Module.Store != "memory" || cfg.Delivery != deliveryLog || cfg.HTTP.Addr != "127.0.0.1:8080" ||
		cfg.AppSecret != devAppSecret || len(cfg.Tenants) != 1 || cfg.Tenants[0].ID != "demo" || cfg.Tenants[0].VerifyToken != devVerifyToken {
		t.Errorf("dev config = %+v, want dev mode, memory store, log delivery, 127.0.0.1:8080, one demo tenant with the dev secrets", cfg)
	}

	// make sample posts the fixtures to tenant demo: each must be its.
	demo := cfg.Tenants[0].WhatsApp
	fixtures, err := filepath.Glob(filepath.Join("..", "..", "testdata", "whatsapp", "*.json"))
	if err != nil || len(fixtures) == 0 {
		t.Fatalf("fixtures: %v %v", fixtures, err)
	}
	for _, f := range fixtures {
		var payload struct {
			Entry []struct {
				ID      string `json:"id"`
				Changes []struct {
					Value struct {
						Metadata struct {
							PhoneNumberID string `json:"phone_number_id"`
						} `json:"metadata"`
					} `json:"value"`
				} `json:"changes"`
			} `json:"entry"`
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &payload); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, e := range payload.Entry {
			if !slices.Contains(demo.WABAIDs, e.ID) {
				t.Errorf("%s: entry id %s is not among demo's waba_ids %v", f, e.ID, demo.WABAIDs)
			}
			for _, c := range e.Changes {
				if id := c.Value.Metadata.PhoneNumberID; !slices.Contains(demo.PhoneNumberIDs, id) {
					t.Errorf("%s: phone_number_id %s is not among demo's phone_number_ids %v", f, id, demo.PhoneNumberIDs)
				}
			}
		}
	}
}

func TestLoadConfig_DevYAMLSecretsAreRefusedOutsideDevMode(t *testing.T) {
	clearHostEnv(t)
	t.Setenv("DEV", "false")
	_, err := loadConfig("dev.yaml")
	if err == nil {
		t.Fatal("dev.yaml with DEV=false loaded, want its secrets refused")
	}
	for _, want := range []string{"whatsapp.app_secret (env WHATSAPP_APP_SECRET)", "tenants[0] (demo): verify_token (env TENANT_DEMO_VERIFY_TOKEN)", "dev.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	for _, secret := range []string{devAppSecret, devVerifyToken} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q shows the value %q", err, secret)
		}
	}
}

const genesysYAML = `
store: memory
delivery: genesys
whatsapp:
  app_secret: test-app-secret-0123456789
tenants:
  - id: acme-eu
    verify_token: test-verify-token-0123456789
    whatsapp: {waba_ids: ["209988776655443"]}
    genesys:
      region: mypurecloud.ie
      client_id: cid
      client_secret: from-file
      integration_id: integ-1
  - id: globex
    verify_token: test-verify-token-globex-01
    whatsapp: {waba_ids: ["309988776655443", "309988776655444"], phone_number_ids: ["214477885522001"]}
    genesys:
      region: usw2.pure.cloud
      client_id: cid2
      client_secret: cs2
      integration_id: integ-2
      api_url: http://127.0.0.1:9999/
`

func TestLoadConfig_GenesysTenants(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig(writeConfig(t, genesysYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tenants) != 2 {
		t.Fatalf("tenants = %+v, want 2", cfg.Tenants)
	}
	tests := []struct {
		give TenantGenesys
		want TenantGenesys
	}{
		{cfg.Tenants[0].Genesys, TenantGenesys{Region: "mypurecloud.ie", ClientID: "cid", ClientSecret: "from-file", IntegrationID: "integ-1",
			LoginURL: "https://login.mypurecloud.ie", APIURL: "https://api.mypurecloud.ie"}},
		{cfg.Tenants[1].Genesys, TenantGenesys{Region: "usw2.pure.cloud", ClientID: "cid2", ClientSecret: "cs2", IntegrationID: "integ-2",
			LoginURL: "https://login.usw2.pure.cloud", APIURL: "http://127.0.0.1:9999"}},
	}
	for _, tt := range tests {
		if tt.give != tt.want {
			t.Errorf("tenant genesys = %+v\nwant %+v", tt.give, tt.want)
		}
	}
	if cfg.Genesys.Timeout != 10*time.Second || cfg.Genesys.MaxRetryAfter != 5*time.Second || cfg.HTTP.ShutdownTimeout != 15*time.Second {
		t.Errorf("defaults = %+v %+v, want 10s timeout, 5s max retry-after, 15s shutdown", cfg.Genesys, cfg.HTTP)
	}
	wantWhatsApp := []TenantWhatsApp{
		{WABAIDs: []string{"209988776655443"}},
		{WABAIDs: []string{"309988776655443", "309988776655444"}, PhoneNumberIDs: []string{"214477885522001"}},
	}
	for i, want := range wantWhatsApp {
		if got := cfg.Tenants[i].WhatsApp; !reflect.DeepEqual(got, want) {
			t.Errorf("tenant %d whatsapp = %+v, want %+v", i, got, want)
		}
	}
}

func TestLoadConfig_HostKeyDefaults(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig(writeConfig(t, genesysYAML))
	if err != nil {
		t.Fatal(err)
	}
	wantHTTP := HTTPConfig{Addr: ":8080", ShutdownTimeout: 15 * time.Second, MaxInflightBodies: 64,
		BodyTimeout: 10 * time.Second, RequestTimeout: 20 * time.Second}
	if cfg.Dev || cfg.HTTP != wantHTTP || cfg.Webhook.MaxMessages != 1000 || cfg.Genesys.AllowInsecureHTTP {
		t.Errorf("config = %+v\nwant dev false, http %+v, webhook.max_messages 1000, allow_insecure_http false", cfg, wantHTTP)
	}
}

func TestLoadConfig_HostKeys(t *testing.T) {
	const yaml = `
store: memory
delivery: log
dev: true
http:
  addr: "127.0.0.1:8080"
  admin_addr: "127.0.0.1:9091"
  max_inflight_bodies: 8
  body_timeout: 3s
  request_timeout: 7s
webhook: {max_messages: 50}
genesys: {allow_insecure_http: true, login_url: "http://genesys-proxy.internal:8080"}
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`
	tests := []struct {
		name         string
		giveEnv      map[string]string
		wantHTTP     HTTPConfig
		wantMax      int
		wantDev      bool
		wantInsecure bool
	}{
		{
			name: "from the file",
			wantHTTP: HTTPConfig{Addr: "127.0.0.1:8080", AdminAddr: "127.0.0.1:9091", ShutdownTimeout: 15 * time.Second,
				MaxInflightBodies: 8, BodyTimeout: 3 * time.Second, RequestTimeout: 7 * time.Second},
			wantMax: 50, wantDev: true, wantInsecure: true,
		},
		{
			name: "from the environment, over the file",
			giveEnv: map[string]string{"DEV": "false", "HTTP_ADMIN_ADDR": ":9092", "HTTP_MAX_INFLIGHT_BODIES": "65536",
				"HTTP_BODY_TIMEOUT": "500ms", "HTTP_REQUEST_TIMEOUT": "1m", "WEBHOOK_MAX_MESSAGES": "100000",
				"GENESYS_ALLOW_INSECURE_HTTP": "true"},
			wantHTTP: HTTPConfig{Addr: "127.0.0.1:8080", AdminAddr: ":9092", ShutdownTimeout: 15 * time.Second,
				MaxInflightBodies: 65536, BodyTimeout: 500 * time.Millisecond, RequestTimeout: time.Minute},
			wantMax: 100000, wantDev: false, wantInsecure: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadWithEnv(t, yaml, tt.giveEnv)
			if cfg.HTTP != tt.wantHTTP || cfg.Webhook.MaxMessages != tt.wantMax || cfg.Dev != tt.wantDev ||
				cfg.Genesys.AllowInsecureHTTP != tt.wantInsecure {
				t.Errorf("config = %+v\nwant http %+v, max_messages %d, dev %v, allow_insecure_http %v",
					cfg, tt.wantHTTP, tt.wantMax, tt.wantDev, tt.wantInsecure)
			}
		})
	}
}

func TestLoadConfig_TenantWhatsApp(t *testing.T) {
	const yaml = `
store: memory
delivery: log
tenants:
  - id: acme-eu
    verify_token: test-verify-token-0123456789
    whatsapp:
      waba_ids: ["209988776655443", "209988776655444"]
      app_secret: acme-app-secret-0123456789
  - id: globex
    verify_token: test-verify-token-0123456789
    whatsapp: {waba_ids: "309988776655443, 309988776655444,", app_secret: globex-app-secret-012345}
`
	tests := []struct {
		name       string
		giveEnv    map[string]string
		wantGlobal string
		want       []TenantWhatsApp
	}{
		{
			name: "from the file: every tenant its own app secret, so no global one",
			want: []TenantWhatsApp{
				{WABAIDs: []string{"209988776655443", "209988776655444"}, AppSecret: "acme-app-secret-0123456789"},
				{WABAIDs: []string{"309988776655443", "309988776655444"}, AppSecret: "globex-app-secret-012345"},
			},
		},
		{
			name: "from the environment, over the file",
			giveEnv: map[string]string{
				"WHATSAPP_APP_SECRET":                      testAppSecret,
				"TENANT_ACME_EU_WHATSAPP_WABA_IDS":         "11,22",
				"TENANT_ACME_EU_WHATSAPP_PHONE_NUMBER_IDS": " 33 , 44 ",
				"TENANT_GLOBEX_WHATSAPP_APP_SECRET":        "globex-env-app-secret-0123",
			},
			wantGlobal: testAppSecret,
			want: []TenantWhatsApp{
				{WABAIDs: []string{"11", "22"}, PhoneNumberIDs: []string{"33", "44"}, AppSecret: "acme-app-secret-0123456789"},
				{WABAIDs: []string{"309988776655443", "309988776655444"}, AppSecret: "globex-env-app-secret-0123"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadWithEnv(t, yaml, tt.giveEnv)
			if cfg.AppSecret != tt.wantGlobal {
				t.Errorf("global app secret set = %v, want %v", cfg.AppSecret != "", tt.wantGlobal != "")
			}
			for i, want := range tt.want {
				if got := cfg.Tenants[i].WhatsApp; !reflect.DeepEqual(got, want) {
					t.Errorf("tenant %s whatsapp = %#v\nwant %#v", cfg.Tenants[i].ID, got.redact(), want.redact())
				}
			}
		})
	}
}

func TestLoadConfig_DevModeLetsDevelopmentSecretsThrough(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig(writeConfig(t, `
dev: true
delivery: log
http: {addr: "localhost:8080"}
whatsapp: {app_secret: short}
tenants:
  - {id: a, verify_token: dev-verify-token, whatsapp: {waba_ids: ["1"], app_secret: dev-app-secret}}
  - {id: b, verify_token: x, whatsapp: {waba_ids: ["2"]}}
`))
	if err != nil {
		t.Fatalf("dev: true refused short or dev.yaml secrets: %v", err)
	}
	if !cfg.Dev {
		t.Error("Dev = false, want true")
	}
}

func TestLoadConfig_GenesysURLs(t *testing.T) {
	tests := []struct {
		name     string
		tenant   string // the tenant's genesys keys besides its client, flow style
		global   string // the top-level genesys mapping, flow style
		wantErr  []string
		wantURLs [2]string // the tenant's login and API URLs when no error
	}{
		{name: "region: https", tenant: `region: mypurecloud.de`,
			wantURLs: [2]string{"https://login.mypurecloud.de", "https://api.mypurecloud.de"}},
		{name: "https anywhere", tenant: `login_url: "https://login.example", api_url: "https://api.example:8443/"`,
			wantURLs: [2]string{"https://login.example", "https://api.example:8443"}},
		{name: "http to 127.0.0.0/8 and ::1", tenant: `login_url: "http://127.3.2.1:1", api_url: "http://[::1]:2"`,
			wantURLs: [2]string{"http://127.3.2.1:1", "http://[::1]:2"}},
		{name: "http to localhost", tenant: `region: mypurecloud.com`, global: `{login_url: "http://LocalHost:3", api_url: "http://localhost"}`,
			wantURLs: [2]string{"http://LocalHost:3", "http://localhost"}},
		{name: "http anywhere when allowed", tenant: `region: mypurecloud.com, api_url: "http://genesys-proxy.internal"`,
			global:   `{allow_insecure_http: true}`,
			wantURLs: [2]string{"https://login.mypurecloud.com", "http://genesys-proxy.internal"}},
		{name: "global http login URL", tenant: `region: mypurecloud.com`, global: `{login_url: "http://login.example"}`,
			wantErr: []string{"genesys.login_url (env GENESYS_LOGIN_URL)", "genesys.allow_insecure_http"}},
		{name: "global http API URL", tenant: `region: mypurecloud.com`, global: `{api_url: "http://10.0.0.1:8080"}`,
			wantErr: []string{"genesys.api_url (env GENESYS_API_URL)"}},
		{name: "tenant http login URL", tenant: `region: mypurecloud.com, login_url: "http://login.example"`,
			wantErr: []string{"tenants[0] (a): genesys.login_url (env TENANT_A_GENESYS_LOGIN_URL)"}},
		{name: "tenant http API URL", tenant: `region: mypurecloud.com, api_url: "http://localhost.example"`,
			wantErr: []string{"tenants[0] (a): genesys.api_url (env TENANT_A_GENESYS_API_URL)"}},
		{name: "allow_insecure_http not a bool", tenant: `region: mypurecloud.com`, global: `{allow_insecure_http: maybe}`,
			wantErr: []string{"genesys.allow_insecure_http (env GENESYS_ALLOW_INSECURE_HTTP)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearHostEnv(t)
			cfg, err := loadConfig(writeConfig(t, fmt.Sprintf(`
store: memory
delivery: genesys
whatsapp: {app_secret: %s}
genesys: %s
tenants:
  - id: a
    verify_token: %s
    whatsapp: {waba_ids: ["1"]}
    genesys: {%s, client_id: c, client_secret: s, integration_id: i}
`, testAppSecret, cmp.Or(tt.global, "{}"), testVerifyToken, tt.tenant)))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if g := cfg.Tenants[0].Genesys; g.LoginURL != tt.wantURLs[0] || g.APIURL != tt.wantURLs[1] {
					t.Errorf("URLs = %s, %s; want %s, %s", g.LoginURL, g.APIURL, tt.wantURLs[0], tt.wantURLs[1])
				}
				return
			}
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, host := range []string{"login.example", "10.0.0.1", "localhost.example"} {
				if strings.Contains(err.Error(), host) {
					t.Errorf("error %q echoes the URL", err)
				}
			}
		})
	}
}

func TestLoadConfig_EnvironmentOverrides(t *testing.T) {
	clearHostEnv(t)
	t.Setenv("HTTP_ADDR", "127.0.0.1:9090")
	t.Setenv("WHATSAPP_APP_SECRET", "app-secret-from-env-0123")
	t.Setenv("GENESYS_MAX_RETRY_AFTER", "0s")
	t.Setenv("GENESYS_LOGIN_URL", "http://127.0.0.1:7777")
	t.Setenv("TENANT_ACME_EU_GENESYS_CLIENT_SECRET", "env-secret")
	t.Setenv("TENANT_ACME_EU_VERIFY_TOKEN", "verify-token-from-env-0123")
	t.Setenv("STORE", "memory")
	cfg, err := loadConfig(writeConfig(t, genesysYAML))
	if err != nil {
		t.Fatal(err)
	}
	acme := cfg.Tenants[0]
	if cfg.HTTP.Addr != "127.0.0.1:9090" || cfg.AppSecret != "app-secret-from-env-0123" || cfg.Genesys.MaxRetryAfter != 0 ||
		acme.Genesys.ClientSecret != "env-secret" || acme.VerifyToken != "verify-token-from-env-0123" ||
		acme.Genesys.LoginURL != "http://127.0.0.1:7777" || acme.Genesys.APIURL != "https://api.mypurecloud.ie" {
		t.Errorf("config = %+v\nwant the environment's values", cfg)
	}
	if cfg.Tenants[1].Genesys.ClientSecret != "cs2" {
		t.Errorf("globex client secret changed by acme-eu's variable")
	}

	t.Setenv("DELIVERY", "log")
	cfg, err = loadConfig(writeConfig(t, "whatsapp: {app_secret: "+testAppSecret+"}\n"+
		"tenants: [{id: t1, verify_token: "+testVerifyToken+", whatsapp: {waba_ids: [\"1\"]}}]\n"))
	if err != nil {
		t.Fatalf("log delivery needs no Genesys keys: %v", err)
	}
	if cfg.Delivery != deliveryLog {
		t.Errorf("delivery = %q, want log from DELIVERY", cfg.Delivery)
	}
}

func TestLoadConfig_TenantTokenPoolSize(t *testing.T) {
	const yaml = `
store: memory
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants:
  - {id: acme-eu, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {token_pool_size: 4}}
  - {id: globex, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["2"]}}
  - {id: initech, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["3"]}, genesys: {token_pool_size: ""}}
`
	tests := []struct {
		name     string
		giveEnv  map[string]string
		wantSize int
		want     map[string]int
	}{
		{name: "from the file", wantSize: 1, want: map[string]int{"acme-eu": 4}},
		{
			name:     "from the environment, over the file",
			giveEnv:  map[string]string{"TENANT_ACME_EU_GENESYS_TOKEN_POOL_SIZE": "64", "TENANT_GLOBEX_GENESYS_TOKEN_POOL_SIZE": " 1 ", "TOKEN_POOL_SIZE": "8"},
			wantSize: 8,
			want:     map[string]int{"acme-eu": 64, "globex": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadWithEnv(t, yaml, tt.giveEnv)
			if got := cfg.Module.Token; got.PoolSize != tt.wantSize || !maps.Equal(got.PoolSizes, tt.want) {
				t.Errorf("Module.Token pool sizes = %d, %v; want %d, %v", got.PoolSize, got.PoolSizes, tt.wantSize, tt.want)
			}
			if got := cfg.Tenants[2].Genesys.TokenPoolSize; got != 0 {
				t.Errorf("initech's TokenPoolSize = %d, want 0 (the module's) for an empty value", got)
			}
		})
	}

	t.Run("none set", func(t *testing.T) {
		clearHostEnv(t)
		cfg, err := loadConfig(writeConfig(t, genesysYAML))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Module.Token.PoolSizes != nil {
			t.Errorf("Module.Token.PoolSizes = %v, want nil: no tenant sets its own", cfg.Module.Token.PoolSizes)
		}
	})
}

func TestTenantEnvName(t *testing.T) {
	tests := []struct {
		id, key, want string
	}{
		{"acme", "genesys.client_secret", "TENANT_ACME_GENESYS_CLIENT_SECRET"},
		{"acme-eu", "verify_token", "TENANT_ACME_EU_VERIFY_TOKEN"},
		{"Shop.42", "genesys.region", "TENANT_SHOP_42_GENESYS_REGION"},
	}
	for _, tt := range tests {
		if got := tenantEnvName(tt.id, tt.key); got != tt.want {
			t.Errorf("tenantEnvName(%q, %q) = %q, want %q", tt.id, tt.key, got, tt.want)
		}
	}
}

func TestLoadConfig_Errors(t *testing.T) {
	const (
		// secretValue, 11 bytes, is every secret of the cases: no error
		// may show it.
		secretValue = "leak-me-not"
		// valid is a configuration that loads; the cases that start from
		// it set one bad key from the environment.
		valid = `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`
	)
	tests := []struct {
		name string
		give string
		env  map[string]string
		want []string // each must appear in the error
	}{
		{"missing client secret", `
delivery: genesys
whatsapp: {app_secret: ` + secretValue + `}
tenants:
  - id: acme
    verify_token: ` + secretValue + `
    genesys: {region: mypurecloud.com, client_id: cid, integration_id: i}
`, nil, []string{"tenants[0] (acme)", "genesys.client_secret", "TENANT_ACME_GENESYS_CLIENT_SECRET"}},
		{"missing region, client id, integration", `
delivery: genesys
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: acme, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {client_secret: ` + secretValue + `}}]
`, nil, []string{"genesys.region", "genesys.client_id", "genesys.integration_id", "TENANT_ACME_GENESYS_INTEGRATION_ID"}},
		{"missing verify token", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: acme}]
`, nil, []string{"tenants[0] (acme)", "verify_token", "TENANT_ACME_VERIFY_TOKEN"}},
		{"missing app secret", `
delivery: log
tenants: [{id: acme, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"whatsapp.app_secret", "WHATSAPP_APP_SECRET"}},
		{"no tenants", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
`, nil, []string{"tenants"}},
		{"tenant id with a colon", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: "a:b", verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"tenants[0]", `"a:b"`}},
		{"tenant listed twice", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}, {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"tenants[1]", "twice"}},
		{"tenants whose variables clash", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a-b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}, {id: a_b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"tenants[1] (a_b)", "TENANT_A_B_", "clash"}},
		{"misspelt key", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {client_secert: ` + secretValue + `}}]
`, nil, []string{"tenants[0]", "genesys.client_secert"}},
		{"region given as a URL", `
delivery: genesys
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {region: "https://mypurecloud.com", client_id: c, client_secret: s, integration_id: i}}]
`, nil, []string{"tenants[0] (a)", "genesys.region"}},
		{"login URL with credentials in it", `
delivery: genesys
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {region: mypurecloud.com, login_url: "https://u:` + secretValue + `@login.example", client_id: c, client_secret: s, integration_id: i}}]
`, nil, []string{"genesys.login_url", "TENANT_A_GENESYS_LOGIN_URL"}},
		{"unknown delivery", `
delivery: smtp
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"delivery (env DELIVERY)", "smtp"}},
		{"address without port", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, map[string]string{"HTTP_ADDR": "8080"}, []string{"http.addr (env HTTP_ADDR)"}},
		{"duration without unit", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
genesys: {timeout: 10}
`, nil, []string{"genesys.timeout (env GENESYS_TIMEOUT)"}},
		{"tenant token pool size zero", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {token_pool_size: 0}}]
`, nil, []string{"tenants[0] (a)", "genesys.token_pool_size", "TENANT_A_GENESYS_TOKEN_POOL_SIZE", "from 1 to 64"}},
		{"tenant token pool size too large", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, map[string]string{"TENANT_A_GENESYS_TOKEN_POOL_SIZE": "65"}, []string{"tenants[0] (a)", "genesys.token_pool_size", "from 1 to 64"}},
		{"tenant token pool size a word", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}, genesys: {token_pool_size: many}}]
`, nil, []string{"tenants[0] (a)", "genesys.token_pool_size"}},
		{"bad token encryption key", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, map[string]string{"TOKEN_ENCRYPTION_KEYS": "k1:" + secretValue}, []string{"token.encryption_keys (env TOKEN_ENCRYPTION_KEYS)", "key 1 (id k1)"}},
		{"module key", `
store: floppy
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"store (env STORE)"}},

		{"dev not a bool", valid, map[string]string{"DEV": "perhaps"}, []string{"dev (env DEV)"}},
		{"admin address without port", valid, map[string]string{"HTTP_ADMIN_ADDR": "9090"}, []string{"http.admin_addr (env HTTP_ADMIN_ADDR)"}},
		{"admin address the webhook's", valid, map[string]string{"HTTP_ADDR": "127.0.0.1:8080", "HTTP_ADMIN_ADDR": "127.0.0.1:8080"},
			[]string{"http.admin_addr (env HTTP_ADMIN_ADDR)", "http.addr"}},
		{"max inflight bodies zero", valid, map[string]string{"HTTP_MAX_INFLIGHT_BODIES": "0"},
			[]string{"http.max_inflight_bodies (env HTTP_MAX_INFLIGHT_BODIES)", "from 1 to 65536"}},
		{"max inflight bodies too many", valid, map[string]string{"HTTP_MAX_INFLIGHT_BODIES": "65537"},
			[]string{"http.max_inflight_bodies (env HTTP_MAX_INFLIGHT_BODIES)", "from 1 to 65536"}},
		{"body timeout zero", valid, map[string]string{"HTTP_BODY_TIMEOUT": "0s"}, []string{"http.body_timeout (env HTTP_BODY_TIMEOUT)", "greater than zero"}},
		{"body timeout without unit", valid, map[string]string{"HTTP_BODY_TIMEOUT": "10"}, []string{"http.body_timeout (env HTTP_BODY_TIMEOUT)", "unit"}},
		{"request timeout negative", valid, map[string]string{"HTTP_REQUEST_TIMEOUT": "-1s"}, []string{"http.request_timeout (env HTTP_REQUEST_TIMEOUT)"}},
		{"max messages zero", valid, map[string]string{"WEBHOOK_MAX_MESSAGES": "0"}, []string{"webhook.max_messages (env WEBHOOK_MAX_MESSAGES)", "from 1 to 100000"}},
		{"max messages too many", `
delivery: log
webhook: {max_messages: 100001}
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"]}}]
`, nil, []string{"webhook.max_messages (env WEBHOOK_MAX_MESSAGES)", "from 1 to 100000"}},

		{"missing waba ids", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789}]
`, nil, []string{"tenants[0] (a): whatsapp.waba_ids (env TENANT_A_WHATSAPP_WABA_IDS)", "required"}},
		{"empty waba ids", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: []}}]
`, nil, []string{"tenants[0] (a): whatsapp.waba_ids", "required"}},
		{"waba ids with no item", valid, map[string]string{"TENANT_A_WHATSAPP_WABA_IDS": " , "},
			[]string{"tenants[0] (a): whatsapp.waba_ids (env TENANT_A_WHATSAPP_WABA_IDS)", "no item"}},
		{"waba id not digits", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1", "` + secretValue + `"]}}]
`, nil, []string{"tenants[0] (a): whatsapp.waba_ids", "item 2", "digits"}},
		{"waba id too long", valid, map[string]string{"TENANT_A_WHATSAPP_WABA_IDS": "1," + strings.Repeat("9", 65)},
			[]string{"tenants[0] (a): whatsapp.waba_ids", "item 2", "1 to 64 digits"}},
		{"waba id a number too long for YAML", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: [123456789012345678901234567890]}}]
`, nil, []string{"tenants[0] (a): whatsapp.waba_ids", "item 1", "quote"}},
		{"phone number id not digits", valid, map[string]string{"TENANT_A_WHATSAPP_PHONE_NUMBER_IDS": "+15550104477"},
			[]string{"tenants[0] (a): whatsapp.phone_number_ids (env TENANT_A_WHATSAPP_PHONE_NUMBER_IDS)", "item 1"}},

		{"app secret short", valid, map[string]string{"WHATSAPP_APP_SECRET": secretValue},
			[]string{"whatsapp.app_secret (env WHATSAPP_APP_SECRET)", "shorter than 16 bytes"}},
		{"app secret dev.yaml's", valid, map[string]string{"WHATSAPP_APP_SECRET": devAppSecret},
			[]string{"whatsapp.app_secret (env WHATSAPP_APP_SECRET)", "dev.yaml"}},
		{"verify token short", valid, map[string]string{"TENANT_A_VERIFY_TOKEN": secretValue},
			[]string{"tenants[0] (a): verify_token (env TENANT_A_VERIFY_TOKEN)", "shorter than 16 bytes"}},
		{"verify token dev.yaml's", valid, map[string]string{"TENANT_A_VERIFY_TOKEN": devVerifyToken},
			[]string{"tenants[0] (a): verify_token (env TENANT_A_VERIFY_TOKEN)", "dev.yaml"}},
		{"tenant app secret short", valid, map[string]string{"TENANT_A_WHATSAPP_APP_SECRET": secretValue},
			[]string{"tenants[0] (a): whatsapp.app_secret (env TENANT_A_WHATSAPP_APP_SECRET)", "shorter than 16 bytes"}},
		{"tenant app secret dev.yaml's", valid, map[string]string{"TENANT_A_WHATSAPP_APP_SECRET": devVerifyToken},
			[]string{"tenants[0] (a): whatsapp.app_secret (env TENANT_A_WHATSAPP_APP_SECRET)", "dev.yaml"}},
		{"no global app secret for a tenant without its own", `
delivery: log
tenants:
  - {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["1"], app_secret: a-app-secret-0123456789}}
  - {id: b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["2"]}}
`, nil, []string{"whatsapp.app_secret (env WHATSAPP_APP_SECRET)", "is required", ": b"}},
		{"waba id an unquoted number", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants: [{id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: [0x10]}}]
`, nil, []string{"whatsapp.waba_ids", "item 1", "quote the ids"}},
		{"waba id of two tenants, one without phone number ids", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants:
  - {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111"], phone_number_ids: ["901"]}}
  - {id: b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111"]}}
`, nil, []string{"tenant b", "111", "whatsapp.phone_number_ids"}},
		{"phone number id of two tenants", `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants:
  - {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111"], phone_number_ids: ["901"]}}
  - {id: c, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["222"], phone_number_ids: ["901"]}}
`, nil, []string{"tenants a and c", "901"}},
		{"dev mode on every interface", valid, map[string]string{"DEV": "true", "HTTP_ADDR": ":8080"},
			[]string{"http.addr (env HTTP_ADDR)", "loopback"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clearHostEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := loadConfig(writeConfig(t, tt.give))
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
			for _, secret := range []string{secretValue, devAppSecret, devVerifyToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret's value", err)
				}
			}
		})
	}
}

// TestLoadConfig_AnIDListedTwiceByOneTenant: an id a tenant lists twice is
// still that tenant's alone, not one two tenants could take.
func TestLoadConfig_AnIDListedTwiceByOneTenant(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig(writeConfig(t, `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants:
  - {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111", "111"]}}
  - {id: b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["222"]}}
`))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if got := cfg.Tenants[0].WhatsApp.WABAIDs; len(got) != 2 {
		t.Errorf("tenant a's waba ids = %v, want both as listed", got)
	}
}

// loadWithEnv loads the configuration yaml with the host's variables
// cleared, then env set, and fails t on an error.
func loadWithEnv(t *testing.T, yaml string, env map[string]string) Config {
	t.Helper()
	clearHostEnv(t)
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := loadConfig(writeConfig(t, yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestCheckSecret(t *testing.T) {
	tests := []struct {
		give    string
		wantErr string // "" for none
	}{
		{give: ""}, // unset: whether it is required is another rule
		{give: "0123456789abcdef"},
		{give: "0123456789abcde", wantErr: "shorter than 16 bytes"},
		{give: "é", wantErr: "shorter than 16 bytes"},
		{give: devAppSecret, wantErr: "dev.yaml"},
		{give: devVerifyToken, wantErr: "dev.yaml"}, // 16 bytes, and still refused
	}
	for _, tt := range tests {
		r, err := config.Read("", nil)
		if err != nil {
			t.Fatal(err)
		}
		checkSecret(r, "whatsapp.app_secret", tt.give)
		err = r.Err()
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("checkSecret(%d bytes) = %v, want no error", len(tt.give), err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("checkSecret(%d bytes) = %v, want an error saying %q", len(tt.give), err, tt.wantErr)
		case err != nil && tt.give != "" && strings.Contains(err.Error(), tt.give):
			t.Errorf("checkSecret error %q shows the secret", err)
		}
	}
}

func TestServerReadTimeout(t *testing.T) {
	tests := []struct{ give, want time.Duration }{
		{give: 10 * time.Second, want: 30 * time.Second},
		{give: 20 * time.Second, want: 30 * time.Second},
		{give: time.Minute, want: readHeaderTimeout + time.Minute},
	}
	for _, tt := range tests {
		got := serverReadTimeout(tt.give)
		if got != tt.want || got < readHeaderTimeout+tt.give {
			t.Errorf("serverReadTimeout(%v) = %v, want %v: at least the header timeout plus the body's", tt.give, got, tt.want)
		}
	}
}

func TestWarnAtStart(t *testing.T) {
	tests := []struct {
		name string
		give Config
		want []string // the warnings, in order
	}{
		{name: "production", give: Config{Module: app.Config{Store: app.StoreRedis}, Delivery: deliveryGenesys}},
		{name: "dev mode", give: Config{Dev: true, Module: app.Config{Store: app.StoreRedis}, Delivery: deliveryGenesys},
			want: []string{"DEVELOPMENT MODE: "}},
		{name: "memory store with Genesys", give: Config{Module: app.Config{Store: app.StoreMemory}, Delivery: deliveryGenesys},
			want: []string{"memory store with Genesys delivery: run one process only"}},
		{name: "memory store with log delivery", give: Config{Module: app.Config{Store: app.StoreMemory}, Delivery: deliveryLog}},
		{name: "both", give: Config{Dev: true, Module: app.Config{Store: app.StoreMemory}, Delivery: deliveryGenesys},
			want: []string{"DEVELOPMENT MODE: ", "memory store with Genesys delivery"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			warnAtStart(tt.give, zap.New(core))
			entries := logs.All()
			if len(entries) != len(tt.want) {
				t.Fatalf("logged %v, want %d warnings", entries, len(tt.want))
			}
			for i, e := range entries {
				if e.Level != zapcore.WarnLevel || !strings.HasPrefix(e.Message, tt.want[i]) {
					t.Errorf("entry %d = %v %q, want a warning starting %q", i, e.Level, e.Message, tt.want[i])
				}
			}
		})
	}
}

func TestLocalURL(t *testing.T) {
	tests := []struct{ give, want string }{
		{":8080", "http://localhost:8080"},
		{"0.0.0.0:9000", "http://localhost:9000"},
		{"127.0.0.1:18080", "http://127.0.0.1:18080"},
		{"[::]:8080", "http://localhost:8080"},
	}
	for _, tt := range tests {
		if got := localURL(tt.give); got != tt.want {
			t.Errorf("localURL(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestLoadConfig_SharedAccountSplitByPhoneNumbers: two tenants may list one
// WhatsApp Business Account when each lists the phone numbers it takes.
func TestLoadConfig_SharedAccountSplitByPhoneNumbers(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig(writeConfig(t, `
delivery: log
whatsapp: {app_secret: test-app-secret-0123456789}
tenants:
  - {id: a, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111"], phone_number_ids: ["901"]}}
  - {id: b, verify_token: test-verify-token-0123456789, whatsapp: {waba_ids: ["111"], phone_number_ids: ["902"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tenants) != 2 {
		t.Errorf("tenants = %d, want 2", len(cfg.Tenants))
	}
}
