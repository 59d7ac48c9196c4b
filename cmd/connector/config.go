package main

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cast"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/config"
)

// Delivery kinds for [Config.Delivery].
const (
	deliveryGenesys = "genesys"
	deliveryLog     = "log"
)

// Config is the connector's configuration: the module's, plus the host's
// own keys. [loadConfig] fills every field and validates it.
type Config struct {
	Module app.Config
	HTTP   HTTPConfig
	// Delivery is where messages go: deliveryGenesys (Open Messaging) or
	// deliveryLog (JSON lines on standard output).
	Delivery string
	// AppSecret is the Meta app secret webhook bodies are signed with. It
	// is a secret: never log it.
	AppSecret string
	Genesys   GenesysConfig
	Tenants   []TenantConfig
}

// HTTPConfig configures the HTTP server.
type HTTPConfig struct {
	// Addr is the address to listen on, such as ":8080".
	Addr string
	// ShutdownTimeout bounds how long in-flight requests may finish once a
	// shutdown begins.
	ShutdownTimeout time.Duration
}

// GenesysConfig holds the Genesys settings shared by every tenant.
type GenesysConfig struct {
	// Timeout bounds each request to Genesys.
	Timeout time.Duration
	// MaxRetryAfter is the longest a delivery waits in all for Retry-After
	// on 429 answers; zero means a 429 fails at once.
	MaxRetryAfter time.Duration
	// LoginURL and APIURL, when set, replace the region's hosts for every
	// tenant that sets none of its own (tests, proxies).
	LoginURL, APIURL string
}

// TenantConfig is one tenant: a WhatsApp webhook at /webhook/{ID} whose
// messages go to one Genesys Open Messaging integration.
type TenantConfig struct {
	ID string
	// VerifyToken is what Meta's subscription handshake must present. A
	// secret.
	VerifyToken string
	Genesys     TenantGenesys
}

// TenantGenesys is a tenant's Genesys organization and integration.
type TenantGenesys struct {
	// Region is the Genesys Cloud region host, such as mypurecloud.com,
	// mypurecloud.ie or usw2.pure.cloud.
	Region       string
	ClientID     string
	ClientSecret string // a secret
	// IntegrationID is the Open Messaging integration messages go to.
	IntegrationID string
	// LoginURL and APIURL are the base URLs used; loadConfig derives them
	// from Region unless set.
	LoginURL, APIURL string
	// TokenPoolSize is how many access tokens the tenant has, from 1 to
	// domain.MaxPoolSize, overriding the module's token.pool_size. Zero
	// means the module's.
	TokenPoolSize int
}

// hostKeys are the host's keys with their defaults.
var hostKeys = []config.Key{
	{Name: "http.addr", Default: ":8080"},
	{Name: "http.shutdown_timeout", Default: "15s"},
	{Name: "delivery", Default: deliveryGenesys},
	{Name: "whatsapp.app_secret", Default: ""},
	{Name: "genesys.timeout", Default: "10s"},
	{Name: "genesys.max_retry_after", Default: "5s"},
	{Name: "genesys.login_url", Default: ""},
	{Name: "genesys.api_url", Default: ""},
}

// tenantKeys are the keys of one entry of the tenants list. Each but the id
// can be set from the environment as TENANT_<ID>_<KEY>: see
// [tenantEnvName].
var tenantKeys = []string{
	"id",
	"verify_token",
	"genesys.region",
	"genesys.client_id",
	"genesys.client_secret",
	"genesys.integration_id",
	"genesys.login_url",
	"genesys.api_url",
	"genesys.token_pool_size",
}

// tenantEnvName is the environment variable that sets key for tenant id:
// TENANT_, the id in upper case with every character other than an ASCII
// letter or digit turned into '_', '_', then the key as config.EnvName
// spells it. Tenant "acme-eu" and key genesys.client_secret give
// TENANT_ACME_EU_GENESYS_CLIENT_SECRET.
func tenantEnvName(id, key string) string {
	up := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			return r
		}
		return '_'
	}, id)
	return "TENANT_" + up + "_" + config.EnvName(key)
}

// loadConfig reads the YAML file at path ("" reads none) and the
// environment, and validates both the module's keys and the host's. Errors
// name the key (and the tenant), never a secret's value.
func loadConfig(path string) (Config, error) {
	mod, modErr := app.LoadConfig(path)
	r, err := config.Read(path, hostKeys)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Module: mod,
		HTTP: HTTPConfig{
			Addr:            r.HostPort("http.addr"),
			ShutdownTimeout: r.Duration("http.shutdown_timeout", config.Positive),
		},
		Delivery:  r.OneOf("delivery", deliveryGenesys, deliveryLog),
		AppSecret: r.Required("whatsapp.app_secret", "webhooks are verified with it"),
		Genesys: GenesysConfig{
			Timeout:       r.Duration("genesys.timeout", config.Positive),
			MaxRetryAfter: r.Duration("genesys.max_retry_after", config.NonNegative),
			LoginURL:      r.BaseURL("genesys.login_url"),
			APIURL:        r.BaseURL("genesys.api_url"),
		},
	}
	cfg.Tenants = readTenants(r, cfg)
	cfg.Module.Token.PoolSizes = tokenPoolSizes(cfg.Tenants)
	if err := errors.Join(modErr, r.Err()); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// readTenants reads and validates the tenants list.
func readTenants(r *config.Reader, cfg Config) []TenantConfig {
	list, ok := r.Get("tenants").([]any)
	if !ok || len(list) == 0 {
		r.FailAt("tenants", "none configured; list at least one under tenants:, each with an id")
		return nil
	}
	var (
		out     []TenantConfig
		seen    = map[string]bool{}
		envSeen = map[string]string{}
	)
	for i, item := range list {
		where := fmt.Sprintf("tenants[%d]", i)
		m, ok := item.(map[string]any)
		if !ok {
			r.FailAt(where, "want a mapping with id, verify_token and genesys")
			continue
		}
		id := tenantID(m)
		if err := domain.ValidateTenantID(id); err != nil {
			r.FailAt(where, "id %q: %v", id, err)
			continue
		}
		if seen[id] {
			r.FailAt(where, "id %q is listed twice", id)
			continue
		}
		seen[id] = true
		where = fmt.Sprintf("%s (%s)", where, id)
		envID := tenantEnvName(id, "")
		if other, clash := envSeen[envID]; clash {
			r.FailAt(where, "its environment variables %s* clash with tenant %s's", envID, other)
		}
		envSeen[envID] = id
		tr := r.Section(where, m, tenantKeys, func(key string) string { return tenantEnvName(id, key) })
		out = append(out, readTenant(tr, id, cfg))
	}
	return out
}

// tenantID returns the id of a tenants entry, whatever the case of its
// key.
func tenantID(m map[string]any) string {
	for k, v := range m {
		if strings.EqualFold(k, "id") {
			return cast.ToString(v)
		}
	}
	return ""
}

// readTenant reads one tenant's settings from its section.
func readTenant(r *config.Reader, id string, cfg Config) TenantConfig {
	t := TenantConfig{
		ID:          id,
		VerifyToken: r.Required("verify_token", "Meta's webhook handshake presents it"),
		Genesys: TenantGenesys{
			Region:        strings.TrimSpace(r.String("genesys.region")),
			ClientID:      strings.TrimSpace(r.String("genesys.client_id")),
			ClientSecret:  r.String("genesys.client_secret"),
			IntegrationID: strings.TrimSpace(r.String("genesys.integration_id")),
			LoginURL:      cmp.Or(r.BaseURL("genesys.login_url"), cfg.Genesys.LoginURL),
			APIURL:        cmp.Or(r.BaseURL("genesys.api_url"), cfg.Genesys.APIURL),
		},
	}
	if r.IsSet("genesys.token_pool_size") {
		t.Genesys.TokenPoolSize = r.Int("genesys.token_pool_size", 1, domain.MaxPoolSize)
	}
	g := &t.Genesys
	if g.Region != "" {
		if !validRegion(g.Region) {
			r.Fail("genesys.region", "%q is not a region host such as mypurecloud.com", g.Region)
		} else {
			g.LoginURL = cmp.Or(g.LoginURL, genesys.LoginURL(g.Region))
			g.APIURL = cmp.Or(g.APIURL, genesys.APIURL(g.Region))
		}
	}
	if cfg.Delivery != deliveryGenesys {
		return t
	}
	const why = "delivery is genesys"
	if g.LoginURL == "" || g.APIURL == "" {
		r.Required("genesys.region", why)
	}
	r.Required("genesys.client_id", why)
	r.Required("genesys.client_secret", why)
	r.Required("genesys.integration_id", why)
	return t
}

// tokenPoolSizes maps the tenants that set their own token pool size to
// it; nil when none does.
func tokenPoolSizes(tenants []TenantConfig) map[string]int {
	var sizes map[string]int
	for _, t := range tenants {
		if t.Genesys.TokenPoolSize == 0 {
			continue
		}
		if sizes == nil {
			sizes = map[string]int{}
		}
		sizes[t.ID] = t.Genesys.TokenPoolSize
	}
	return sizes
}

// validRegion accepts a host name such as mypurecloud.com.
func validRegion(s string) bool {
	if !strings.Contains(s, ".") || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
