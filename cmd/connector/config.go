package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cast"
	"github.com/spf13/viper"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/app"
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
}

// hostDefaults are the host's keys with their defaults; each is bound to
// its environment variable (app.EnvName).
var hostDefaults = []struct {
	key string
	val any
}{
	{"http.addr", ":8080"},
	{"http.shutdown_timeout", "15s"},
	{"delivery", deliveryGenesys},
	{"whatsapp.app_secret", ""},
	{"genesys.timeout", "10s"},
	{"genesys.max_retry_after", "5s"},
	{"genesys.login_url", ""},
	{"genesys.api_url", ""},
}

// tenantKeys are the keys of one entry of the tenants list. Each can be set
// from the environment as TENANT_<ID>_<KEY>: see [tenantEnvName].
var tenantKeys = []string{
	"verify_token",
	"genesys.region",
	"genesys.client_id",
	"genesys.client_secret",
	"genesys.integration_id",
	"genesys.login_url",
	"genesys.api_url",
}

// validTenantID is what a tenant id may hold: it is a URL path segment, part
// of Redis keys and of environment variable names.
var validTenantID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// tenantEnvName is the environment variable that sets key for tenant id:
// TENANT_, the id in upper case with every character other than a letter
// or digit turned into '_', '_', then the key as app.EnvName spells it.
// Tenant "acme-eu" and key genesys.client_secret give
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
	return "TENANT_" + up + "_" + app.EnvName(key)
}

// loadConfig reads the YAML file at path ("" reads none) and the
// environment, and validates both the module's keys and the host's. Errors
// name the key (and the tenant), never a secret's value.
func loadConfig(path string) (Config, error) {
	v, err := app.NewViper(path)
	if err != nil {
		return Config{}, err
	}
	for _, d := range hostDefaults {
		v.SetDefault(d.key, d.val)
		if err := v.BindEnv(d.key, app.EnvName(d.key)); err != nil {
			return Config{}, fmt.Errorf("config: bind %s: %w", d.key, err)
		}
	}
	mod, modErr := app.ConfigFrom(v)
	c := checker{}
	cfg := Config{
		Module: mod,
		HTTP: HTTPConfig{
			Addr:            c.addr(v, "http.addr"),
			ShutdownTimeout: c.duration(v, "http.shutdown_timeout", false),
		},
		Delivery:  c.oneOf(v, "delivery", deliveryGenesys, deliveryLog),
		AppSecret: v.GetString("whatsapp.app_secret"),
		Genesys: GenesysConfig{
			Timeout:       c.duration(v, "genesys.timeout", false),
			MaxRetryAfter: c.duration(v, "genesys.max_retry_after", true),
			LoginURL:      c.baseURL("genesys.login_url", app.EnvName("genesys.login_url"), v.GetString("genesys.login_url")),
			APIURL:        c.baseURL("genesys.api_url", app.EnvName("genesys.api_url"), v.GetString("genesys.api_url")),
		},
	}
	if cfg.AppSecret == "" {
		c.fail("config: whatsapp.app_secret (env WHATSAPP_APP_SECRET) is required: webhooks are verified with it")
	}
	cfg.Tenants = c.tenants(v, cfg)
	if err := errors.Join(modErr, errors.Join(c.errs...)); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checker validates keys and collects one error per bad key.
type checker struct{ errs []error }

func (c *checker) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf(format, args...))
}

func (c *checker) keyFail(key, format string, args ...any) {
	c.fail("config: %s (env %s): %s", key, app.EnvName(key), fmt.Sprintf(format, args...))
}

func (c *checker) addr(v *viper.Viper, key string) string {
	s := strings.TrimSpace(v.GetString(key))
	if _, _, err := net.SplitHostPort(s); err != nil {
		c.keyFail(key, "%q is not host:port, such as :8080", s)
		return ""
	}
	return s
}

func (c *checker) oneOf(v *viper.Viper, key string, allowed ...string) string {
	s := strings.ToLower(strings.TrimSpace(v.GetString(key)))
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	c.keyFail(key, "%q is not one of %s", s, strings.Join(allowed, ", "))
	return ""
}

func (c *checker) duration(v *viper.Viper, key string, zeroOK bool) time.Duration {
	var (
		d   time.Duration
		err error
	)
	switch raw := v.Get(key).(type) {
	case string:
		d, err = time.ParseDuration(strings.TrimSpace(raw))
	case time.Duration:
		d = raw
	default:
		err = errors.New("not a string")
	}
	switch {
	case err != nil:
		c.keyFail(key, "%v is not a duration; write it with a unit, such as 500ms or 5s", v.Get(key))
	case d < 0 || (d == 0 && !zeroOK):
		c.keyFail(key, "%v must be greater than zero", d)
	default:
		return d
	}
	return 0
}

// baseURL validates an optional http(s) base URL, without echoing it.
func (c *checker) baseURL(key, env, s string) string {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		c.fail("config: %s (env %s): not an http(s) base URL such as https://api.mypurecloud.com", key, env)
		return ""
	}
	return s
}

// tenants reads and validates the tenants list.
func (c *checker) tenants(v *viper.Viper, cfg Config) []TenantConfig {
	raw := v.Get("tenants")
	if raw == nil {
		c.fail("config: tenants: none configured; add at least one under tenants: in the config file")
		return nil
	}
	list, ok := raw.([]any)
	if !ok || len(list) == 0 {
		c.fail("config: tenants: want a list of tenants, each with an id")
		return nil
	}
	var (
		out     []TenantConfig
		seen    = map[string]bool{}
		envSeen = map[string]string{}
	)
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			c.fail("config: tenants[%d]: want a mapping with id, verify_token and genesys", i)
			continue
		}
		flat, unknown := flatten(m)
		if len(unknown) > 0 {
			c.fail("config: tenants[%d]: unknown keys %s", i, strings.Join(unknown, ", "))
		}
		id := flat["id"]
		switch {
		case !validTenantID.MatchString(id):
			c.fail("config: tenants[%d]: id %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", i, id)
			continue
		case seen[id]:
			c.fail("config: tenants[%d]: id %q is listed twice", i, id)
			continue
		}
		seen[id] = true
		envID := tenantEnvName(id, "")
		if other, clash := envSeen[envID]; clash {
			c.fail("config: tenants[%d] (%s): its environment variables %s* clash with tenant %s's", i, id, envID, other)
		}
		envSeen[envID] = id
		for _, key := range tenantKeys {
			if val, ok := os.LookupEnv(tenantEnvName(id, key)); ok {
				flat[key] = val
			}
		}
		out = append(out, c.tenant(i, id, flat, cfg))
	}
	return out
}

// tenant validates one tenant's settings.
func (c *checker) tenant(i int, id string, flat map[string]string, cfg Config) TenantConfig {
	t := TenantConfig{
		ID:          id,
		VerifyToken: flat["verify_token"],
		Genesys: TenantGenesys{
			Region:        strings.TrimSpace(flat["genesys.region"]),
			ClientID:      strings.TrimSpace(flat["genesys.client_id"]),
			ClientSecret:  flat["genesys.client_secret"],
			IntegrationID: strings.TrimSpace(flat["genesys.integration_id"]),
		},
	}
	missing := func(key, why string) {
		c.fail("config: tenants[%d] (%s): %s (env %s) is required%s", i, id, key, tenantEnvName(id, key), why)
	}
	if t.VerifyToken == "" {
		missing("verify_token", ": Meta's webhook handshake presents it")
	}
	g := &t.Genesys
	g.LoginURL = c.baseURL(fmt.Sprintf("tenants[%d] (%s): genesys.login_url", i, id), tenantEnvName(id, "genesys.login_url"), flat["genesys.login_url"])
	g.APIURL = c.baseURL(fmt.Sprintf("tenants[%d] (%s): genesys.api_url", i, id), tenantEnvName(id, "genesys.api_url"), flat["genesys.api_url"])
	if g.Region != "" && !validRegion(g.Region) {
		c.fail("config: tenants[%d] (%s): genesys.region (env %s) %q is not a region host such as mypurecloud.com",
			i, id, tenantEnvName(id, "genesys.region"), g.Region)
	}
	if g.LoginURL == "" {
		g.LoginURL = cfg.Genesys.LoginURL
	}
	if g.APIURL == "" {
		g.APIURL = cfg.Genesys.APIURL
	}
	if g.Region != "" && validRegion(g.Region) {
		if g.LoginURL == "" {
			g.LoginURL = genesys.LoginURL(g.Region)
		}
		if g.APIURL == "" {
			g.APIURL = genesys.APIURL(g.Region)
		}
	}
	if cfg.Delivery != deliveryGenesys {
		return t
	}
	const why = " with delivery: genesys"
	if g.Region == "" && (g.LoginURL == "" || g.APIURL == "") {
		missing("genesys.region", why)
	}
	if g.ClientID == "" {
		missing("genesys.client_id", why)
	}
	if g.ClientSecret == "" {
		missing("genesys.client_secret", why)
	}
	if g.IntegrationID == "" {
		missing("genesys.integration_id", why)
	}
	return t
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

// flatten turns a tenant's mapping into dotted keys (genesys.client_id),
// with string values, and lists keys it does not know.
func flatten(m map[string]any) (map[string]string, []string) {
	known := map[string]bool{"id": true}
	for _, k := range tenantKeys {
		known[k] = true
	}
	flat := map[string]string{}
	var unknown []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			key := prefix + strings.ToLower(k)
			if sub, ok := val.(map[string]any); ok && key == "genesys" {
				walk(key+".", sub)
				continue
			}
			if !known[key] {
				unknown = append(unknown, key)
				continue
			}
			s, err := cast.ToStringE(val)
			if err != nil {
				unknown = append(unknown, key+" (not a single value)")
				continue
			}
			flat[key] = s
		}
	}
	walk("", m)
	sort.Strings(unknown)
	return flat, unknown
}
