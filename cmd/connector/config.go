package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
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
// own keys. [loadConfig] fills every field and validates it. Its String,
// GoString and MarshalLogObject methods mask every secret (see redact.go).
type Config struct {
	Module app.Config
	// Dev is development mode: app secrets and verify tokens may then be
	// short or dev.yaml's own values, and the connector warns at start.
	// False (the zero value) enforces the rules of [checkSecret].
	Dev     bool
	HTTP    HTTPConfig
	Webhook WebhookConfig
	// Delivery is where messages go: deliveryGenesys (Open Messaging) or
	// deliveryLog (JSON lines on standard output).
	Delivery string
	// AppSecret is the Meta app secret webhook bodies are signed with, for
	// every tenant without one of its own
	// ([TenantWhatsApp.AppSecret]). Empty when every tenant has its own.
	// It is a secret: never log it.
	AppSecret string
	Genesys   GenesysConfig
	Tenants   []TenantConfig
}

// HTTPConfig configures the HTTP servers.
type HTTPConfig struct {
	// Addr is the address the webhook listens on, such as ":8080".
	Addr string
	// AdminAddr, when set, is the host:port of a second listener that
	// serves /healthz, /readyz and /metrics instead of Addr, which then
	// serves only /webhook/. Empty serves everything on Addr.
	AdminAddr string
	// ShutdownTimeout bounds how long in-flight requests may finish once a
	// shutdown begins.
	ShutdownTimeout time.Duration
	// MaxInflightBodies caps the webhook request bodies being read at
	// once, from 1 to maxInflightBodies.
	MaxInflightBodies int
	// BodyTimeout bounds reading one webhook request body; positive. The
	// server's read timeout is raised to fit it: see [serverReadTimeout].
	BodyTimeout time.Duration
	// RequestTimeout bounds processing one webhook POST once its body is
	// read: the messages not started by then are left for Meta's
	// redelivery; positive.
	RequestTimeout time.Duration
}

// WebhookConfig bounds what one webhook request may carry.
type WebhookConfig struct {
	// MaxMessages is the most messages one request may hold, from 1 to
	// maxMessages.
	MaxMessages int
}

// GenesysConfig holds the Genesys settings shared by every tenant.
type GenesysConfig struct {
	// Timeout bounds each request to Genesys.
	Timeout time.Duration
	// MaxRetryAfter is the longest a delivery waits in all for Retry-After
	// on 429 answers; zero means a 429 fails at once.
	MaxRetryAfter time.Duration
	// LoginURL and APIURL, when set, replace the region's hosts for every
	// tenant that sets none of its own (tests, proxies). Like every Genesys
	// URL they are https://, or http:// to a loopback host, unless
	// AllowInsecureHTTP.
	LoginURL, APIURL string
	// AllowInsecureHTTP lets Genesys URLs be http:// to any host. False
	// (the zero value) allows http:// only to loopback hosts.
	AllowInsecureHTTP bool
}

// TenantConfig is one tenant: a WhatsApp webhook at /webhook/{ID} whose
// messages go to one Genesys Open Messaging integration.
type TenantConfig struct {
	ID string
	// VerifyToken is what Meta's subscription handshake must present. A
	// secret.
	VerifyToken string
	WhatsApp    TenantWhatsApp
	Genesys     TenantGenesys
}

// TenantWhatsApp is what binds webhooks to a tenant.
type TenantWhatsApp struct {
	// WABAIDs are the WhatsApp Business Account ids whose webhooks the
	// tenant takes (entry[].id); at least one.
	WABAIDs []string
	// PhoneNumberIDs, when not empty, are the only business phone number
	// ids whose webhooks the tenant takes (metadata.phone_number_id). Empty
	// takes every phone number of its accounts.
	PhoneNumberIDs []string
	// AppSecret is the Meta app secret the tenant's webhooks are signed
	// with. Empty means [Config.AppSecret]. A secret.
	AppSecret string
}

// appSecret is the app secret t's webhooks are signed with: its own, or
// else the global one.
func (c Config) appSecret(t TenantConfig) string { return cmp.Or(t.WhatsApp.AppSecret, c.AppSecret) }

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
	{Name: "dev", Default: false},
	{Name: "http.addr", Default: ":8080"},
	{Name: "http.admin_addr", Default: ""},
	{Name: "http.shutdown_timeout", Default: "15s"},
	{Name: "http.max_inflight_bodies", Default: 64},
	{Name: "http.body_timeout", Default: "10s"},
	{Name: "http.request_timeout", Default: "20s"},
	{Name: "webhook.max_messages", Default: 1000},
	{Name: "delivery", Default: deliveryGenesys},
	{Name: "whatsapp.app_secret", Default: ""},
	{Name: "genesys.timeout", Default: "10s"},
	{Name: "genesys.max_retry_after", Default: "5s"},
	{Name: "genesys.login_url", Default: ""},
	{Name: "genesys.api_url", Default: ""},
	{Name: "genesys.allow_insecure_http", Default: false},
}

// Upper bounds of the host's integer keys.
const (
	maxInflightBodies = 1 << 16
	maxMessages       = 100000
	// maxMetaIDLen is the longest WhatsApp Business Account or phone
	// number id accepted, in digits.
	maxMetaIDLen = 64
)

// tenantKeys are the keys of one entry of the tenants list. Each but the id
// can be set from the environment as TENANT_<ID>_<KEY>: see
// [tenantEnvName].
var tenantKeys = []string{
	"id",
	"verify_token",
	"whatsapp.waba_ids",
	"whatsapp.phone_number_ids",
	"whatsapp.app_secret",
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
		Dev:    r.Bool("dev"),
		HTTP: HTTPConfig{
			Addr:              r.HostPort("http.addr"),
			ShutdownTimeout:   r.Duration("http.shutdown_timeout", config.Positive),
			MaxInflightBodies: r.Int("http.max_inflight_bodies", 1, maxInflightBodies),
			BodyTimeout:       r.Duration("http.body_timeout", config.Positive),
			RequestTimeout:    r.Duration("http.request_timeout", config.Positive),
		},
		Webhook:   WebhookConfig{MaxMessages: r.Int("webhook.max_messages", 1, maxMessages)},
		Delivery:  r.OneOf("delivery", deliveryGenesys, deliveryLog),
		AppSecret: r.String("whatsapp.app_secret"),
		Genesys: GenesysConfig{
			Timeout:           r.Duration("genesys.timeout", config.Positive),
			MaxRetryAfter:     r.Duration("genesys.max_retry_after", config.NonNegative),
			AllowInsecureHTTP: r.Bool("genesys.allow_insecure_http"),
		},
	}
	if r.IsSet("http.admin_addr") {
		cfg.HTTP.AdminAddr = r.HostPort("http.admin_addr")
		if _, port, _ := net.SplitHostPort(cfg.HTTP.AdminAddr); cfg.HTTP.AdminAddr == cfg.HTTP.Addr && port != "0" {
			r.Fail("http.admin_addr", "is http.addr; give the admin listener an address of its own, or leave it empty")
		}
	}
	cfg.Genesys.LoginURL = genesysURL(r, "genesys.login_url", cfg.Genesys.AllowInsecureHTTP)
	cfg.Genesys.APIURL = genesysURL(r, "genesys.api_url", cfg.Genesys.AllowInsecureHTTP)
	if cfg.AppSecret != "" && !cfg.Dev {
		checkSecret(r, "whatsapp.app_secret", cfg.AppSecret)
	}
	cfg.Tenants = readTenants(r, cfg)
	if cfg.AppSecret == "" {
		var without []string
		for _, t := range cfg.Tenants {
			if t.WhatsApp.AppSecret == "" {
				without = append(without, t.ID)
			}
		}
		switch {
		case len(cfg.Tenants) == 0:
			r.Fail("whatsapp.app_secret", "is required: webhooks are verified with it")
		case len(without) > 0:
			r.Fail("whatsapp.app_secret", "is required unless every tenant sets its own whatsapp.app_secret; these do not: %s",
				strings.Join(without, ", "))
		}
	}
	checkOwnership(r, cfg.Tenants)
	if cfg.Dev {
		checkDevListeners(r, cfg.HTTP)
	}
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
			r.FailAt(where, "want a mapping with id, verify_token, whatsapp and genesys")
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
	insecure := cfg.Genesys.AllowInsecureHTTP
	t := TenantConfig{
		ID:          id,
		VerifyToken: r.Required("verify_token", "Meta's webhook handshake presents it"),
		WhatsApp: TenantWhatsApp{
			WABAIDs:        metaIDs(r, "whatsapp.waba_ids"),
			PhoneNumberIDs: metaIDs(r, "whatsapp.phone_number_ids"),
			AppSecret:      r.String("whatsapp.app_secret"),
		},
		Genesys: TenantGenesys{
			Region:        strings.TrimSpace(r.String("genesys.region")),
			ClientID:      strings.TrimSpace(r.String("genesys.client_id")),
			ClientSecret:  r.String("genesys.client_secret"),
			IntegrationID: strings.TrimSpace(r.String("genesys.integration_id")),
			LoginURL:      cmp.Or(genesysURL(r, "genesys.login_url", insecure), cfg.Genesys.LoginURL),
			APIURL:        cmp.Or(genesysURL(r, "genesys.api_url", insecure), cfg.Genesys.APIURL),
		},
	}
	if !r.IsSet("whatsapp.waba_ids") {
		r.Fail("whatsapp.waba_ids", "is required: list the WhatsApp Business Account ids (entry[].id) whose webhooks the tenant takes")
	}
	if !cfg.Dev {
		checkSecret(r, "verify_token", t.VerifyToken)
		checkSecret(r, "whatsapp.app_secret", t.WhatsApp.AppSecret)
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

// Development values shipped in dev.yaml, for `make run` and `make sample`.
// Outside development mode no app secret or verify token may be one of
// them: see [checkSecret].
const (
	devAppSecret   = "dev-app-secret"
	devVerifyToken = "dev-verify-token"
)

// minSecretLen is the fewest bytes an app secret or a verify token holds
// outside development mode.
const minSecretLen = 16

// checkSecret records an error about key when secret, an app secret or a
// verify token, is set but shorter than minSecretLen bytes or one of
// dev.yaml's values. Callers skip it in development mode. The error never
// holds the value.
func checkSecret(r *config.Reader, key, secret string) {
	switch {
	case secret == "":
	case secret == devAppSecret || secret == devVerifyToken:
		r.Fail(key, "is a development value from dev.yaml; set a secret of your own, or dev: true for a local run")
	case len(secret) < minSecretLen:
		r.Fail(key, "is shorter than %d bytes; set a longer secret, or dev: true for a local run", minSecretLen)
	}
}

// metaIDs reads key, an optional list of Meta object ids (WhatsApp
// Business Account or phone number ids): each 1 to maxMetaIDLen decimal
// digits. In YAML a number too long for an integer would lose digits: such
// an id must be quoted.
func metaIDs(r *config.Reader, key string) []string {
	items := []any{r.Get(key)}
	if list, ok := items[0].([]any); ok {
		items = list
	}
	for i, item := range items {
		// Numbers are refused: YAML reads 0x10 as 16 and 0123 as 83.
		if _, ok := item.(string); !ok && item != nil {
			r.Fail(key, "item %d is not a string of digits; quote the ids", i+1)
			return nil
		}
	}
	ids := r.List(key)
	for i, id := range ids {
		if len(id) > maxMetaIDLen || strings.ContainsFunc(id, func(c rune) bool { return c < '0' || c > '9' }) {
			r.Fail(key, "item %d is not an id of 1 to %d digits", i+1, maxMetaIDLen)
			return nil
		}
	}
	return ids
}

// checkOwnership fails the configuration when two tenants could take the
// same webhook entry: a phone number id listed by two tenants, or a
// WhatsApp Business Account id listed by two tenants unless each of them
// lists its phone number ids (which then split the account between them).
// A body signed for one could otherwise be delivered to the other.
func checkOwnership(r *config.Reader, tenants []TenantConfig) {
	wabaOwners := map[string][]TenantConfig{}
	phoneOwner := map[string]string{}
	for _, t := range tenants {
		for _, id := range t.WhatsApp.WABAIDs {
			if owners := wabaOwners[id]; len(owners) > 0 && owners[len(owners)-1].ID == t.ID {
				continue // listed twice by t: no other tenant's
			}
			wabaOwners[id] = append(wabaOwners[id], t)
		}
		for _, id := range t.WhatsApp.PhoneNumberIDs {
			if other, ok := phoneOwner[id]; ok && other != t.ID {
				r.FailAt("tenants", "tenants %s and %s both list phone number id %s", other, t.ID, id)
			}
			phoneOwner[id] = t.ID
		}
	}
	for _, id := range slices.Sorted(maps.Keys(wabaOwners)) {
		owners := wabaOwners[id]
		if len(owners) < 2 {
			continue
		}
		for _, t := range owners {
			if len(t.WhatsApp.PhoneNumberIDs) == 0 {
				r.FailAt("tenants", "tenant %s lists WhatsApp Business Account id %s, which another tenant lists too, "+
					"without whatsapp.phone_number_ids: list the phone numbers each takes", t.ID, id)
			}
		}
	}
}

// checkDevListeners fails the configuration when development mode, which
// lets development secrets through, would listen beyond loopback.
func checkDevListeners(r *config.Reader, h HTTPConfig) {
	for _, l := range []struct{ key, addr string }{{"http.addr", h.Addr}, {"http.admin_addr", h.AdminAddr}} {
		if l.addr == "" {
			continue
		}
		if host, _, err := net.SplitHostPort(l.addr); err == nil && !isLoopback(host) {
			r.Fail(l.key, "is %s, not a loopback address, and dev is true: development mode listens on loopback only", l.addr)
		}
	}
}

// genesysURL reads key, an optional Genesys base URL ([config.Reader.BaseURL]):
// https://, or http:// to a loopback host (127.0.0.0/8, ::1, localhost)
// or when insecure is true. The URL is never echoed.
func genesysURL(r *config.Reader, key string, insecure bool) string {
	s := r.BaseURL(key)
	if s == "" || insecure {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "" // BaseURL parsed it already
	}
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		r.Fail(key, "is http:// to a host that is not loopback; use https://, or set genesys.allow_insecure_http: true")
		return ""
	}
	return s
}

// isLoopback reports whether host, a URL's host name without port or
// brackets, is localhost or a loopback address (127.0.0.0/8, ::1).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
