package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	for _, k := range []string{"STORE", "DELIVERY", "HTTP_ADDR", "HTTP_SHUTDOWN_TIMEOUT", "WHATSAPP_APP_SECRET",
		"GENESYS_TIMEOUT", "GENESYS_MAX_RETRY_AFTER", "GENESYS_LOGIN_URL", "GENESYS_API_URL", "LOG_LEVEL",
		"TOKEN_POOL_SIZE", "TOKEN_ENCRYPTION_KEYS"} {
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

func TestLoadConfig_DevConfig(t *testing.T) {
	clearHostEnv(t)
	cfg, err := loadConfig("dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Module.Store != "memory" || cfg.Delivery != deliveryLog || cfg.HTTP.Addr != ":8080" ||
		cfg.AppSecret == "" || len(cfg.Tenants) != 1 || cfg.Tenants[0].ID != "demo" || cfg.Tenants[0].VerifyToken == "" {
		t.Errorf("dev config = %+v, want memory store, log delivery, :8080, one demo tenant", cfg)
	}
}

const genesysYAML = `
store: memory
delivery: genesys
whatsapp:
  app_secret: s3cret-app
tenants:
  - id: acme-eu
    verify_token: vt
    genesys:
      region: mypurecloud.ie
      client_id: cid
      client_secret: from-file
      integration_id: integ-1
  - id: globex
    verify_token: vt2
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
}

func TestLoadConfig_EnvironmentOverrides(t *testing.T) {
	clearHostEnv(t)
	t.Setenv("HTTP_ADDR", "127.0.0.1:9090")
	t.Setenv("WHATSAPP_APP_SECRET", "from-env")
	t.Setenv("GENESYS_MAX_RETRY_AFTER", "0s")
	t.Setenv("GENESYS_LOGIN_URL", "http://127.0.0.1:7777")
	t.Setenv("TENANT_ACME_EU_GENESYS_CLIENT_SECRET", "env-secret")
	t.Setenv("TENANT_ACME_EU_VERIFY_TOKEN", "env-vt")
	t.Setenv("STORE", "memory")
	cfg, err := loadConfig(writeConfig(t, genesysYAML))
	if err != nil {
		t.Fatal(err)
	}
	acme := cfg.Tenants[0]
	if cfg.HTTP.Addr != "127.0.0.1:9090" || cfg.AppSecret != "from-env" || cfg.Genesys.MaxRetryAfter != 0 ||
		acme.Genesys.ClientSecret != "env-secret" || acme.VerifyToken != "env-vt" ||
		acme.Genesys.LoginURL != "http://127.0.0.1:7777" || acme.Genesys.APIURL != "https://api.mypurecloud.ie" {
		t.Errorf("config = %+v\nwant the environment's values", cfg)
	}
	if cfg.Tenants[1].Genesys.ClientSecret != "cs2" {
		t.Errorf("globex client secret changed by acme-eu's variable")
	}

	t.Setenv("DELIVERY", "log")
	cfg, err = loadConfig(writeConfig(t, "whatsapp: {app_secret: x}\ntenants: [{id: t1, verify_token: v}]\n"))
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
whatsapp: {app_secret: x}
tenants:
  - {id: acme-eu, verify_token: v, genesys: {token_pool_size: 4}}
  - {id: globex, verify_token: v}
  - {id: initech, verify_token: v, genesys: {token_pool_size: ""}}
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
			clearHostEnv(t)
			for k, v := range tt.giveEnv {
				t.Setenv(k, v)
			}
			cfg, err := loadConfig(writeConfig(t, yaml))
			if err != nil {
				t.Fatal(err)
			}
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
	const secretValue = "leak-me-not"
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
whatsapp: {app_secret: x}
tenants: [{id: acme, verify_token: v, genesys: {client_secret: ` + secretValue + `}}]
`, nil, []string{"genesys.region", "genesys.client_id", "genesys.integration_id", "TENANT_ACME_GENESYS_INTEGRATION_ID"}},
		{"missing verify token", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: acme}]
`, nil, []string{"tenants[0] (acme)", "verify_token", "TENANT_ACME_VERIFY_TOKEN"}},
		{"missing app secret", `
delivery: log
tenants: [{id: acme, verify_token: v}]
`, nil, []string{"whatsapp.app_secret", "WHATSAPP_APP_SECRET"}},
		{"no tenants", `
delivery: log
whatsapp: {app_secret: x}
`, nil, []string{"tenants"}},
		{"tenant id with a colon", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: "a:b", verify_token: v}]
`, nil, []string{"tenants[0]", `"a:b"`}},
		{"tenant listed twice", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}, {id: a, verify_token: v}]
`, nil, []string{"tenants[1]", "twice"}},
		{"tenants whose variables clash", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a-b, verify_token: v}, {id: a_b, verify_token: v}]
`, nil, []string{"tenants[1] (a_b)", "TENANT_A_B_", "clash"}},
		{"misspelt key", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v, genesys: {client_secert: ` + secretValue + `}}]
`, nil, []string{"tenants[0]", "genesys.client_secert"}},
		{"region given as a URL", `
delivery: genesys
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v, genesys: {region: "https://mypurecloud.com", client_id: c, client_secret: s, integration_id: i}}]
`, nil, []string{"tenants[0] (a)", "genesys.region"}},
		{"login URL with credentials in it", `
delivery: genesys
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v, genesys: {region: mypurecloud.com, login_url: "https://u:` + secretValue + `@login.example", client_id: c, client_secret: s, integration_id: i}}]
`, nil, []string{"genesys.login_url", "TENANT_A_GENESYS_LOGIN_URL"}},
		{"unknown delivery", `
delivery: smtp
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
`, nil, []string{"delivery (env DELIVERY)", "smtp"}},
		{"address without port", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
`, map[string]string{"HTTP_ADDR": "8080"}, []string{"http.addr (env HTTP_ADDR)"}},
		{"duration without unit", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
genesys: {timeout: 10}
`, nil, []string{"genesys.timeout (env GENESYS_TIMEOUT)"}},
		{"tenant token pool size zero", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v, genesys: {token_pool_size: 0}}]
`, nil, []string{"tenants[0] (a)", "genesys.token_pool_size", "TENANT_A_GENESYS_TOKEN_POOL_SIZE", "from 1 to 64"}},
		{"tenant token pool size too large", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
`, map[string]string{"TENANT_A_GENESYS_TOKEN_POOL_SIZE": "65"}, []string{"tenants[0] (a)", "genesys.token_pool_size", "from 1 to 64"}},
		{"tenant token pool size a word", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v, genesys: {token_pool_size: many}}]
`, nil, []string{"tenants[0] (a)", "genesys.token_pool_size"}},
		{"bad token encryption key", `
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
`, map[string]string{"TOKEN_ENCRYPTION_KEYS": "k1:" + secretValue}, []string{"token.encryption_keys (env TOKEN_ENCRYPTION_KEYS)", "key 1 (id k1)"}},
		{"module key", `
store: floppy
delivery: log
whatsapp: {app_secret: x}
tenants: [{id: a, verify_token: v}]
`, nil, []string{"store (env STORE)"}},
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
			if strings.Contains(err.Error(), secretValue) {
				t.Errorf("error %q shows a secret's value", err)
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
