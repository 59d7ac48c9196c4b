package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/genesystest"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// End-to-end tests: the connector as newService wires it from a config
// file, against a real redis-server and httptest servers standing in for
// the Genesys login host and the Open Messaging API.

const (
	e2eAppSecret    = "e2e-app-secret-3f9a"
	e2eVerifyToken  = "e2e-verify-token-77c1"
	e2eClientID     = "e2e-client-id"
	e2eClientSecret = "e2e-client-secret-b41d"
	e2eIntegration  = "6c0d1b4e-2f3a-4b5c-9d8e-7f6a5b4c3d2e"
	// e2eWABAID is the WhatsApp Business Account of the tenant, and of
	// every payload the tests send (the fixtures' entry[].id).
	e2eWABAID = "209988776655443"
	// tokenMark is in every access token the login stand-in issues, so
	// that a log line holding one is easy to find.
	tokenMark = "SECRET-ACCESS-TOKEN"
)

// delivered is one message the Open Messaging stand-in accepted.
type delivered struct {
	MessageID, From, Nickname, Text, Bearer string
}

// genesysAPI stands in for a Genesys region: the login host issues tokens
// (client credentials, Basic auth) and the API host accepts Open Messaging
// inbound messages, answering from a script first. Each checks the wire
// format of what it gets.
type genesysAPI struct {
	login    *genesystest.Login
	api      *httptest.Server
	apiCalls atomic.Int64

	mu         sync.Mutex
	script     []scripted
	accepted   []delivered
	problems   []string
	hold       chan struct{} // when set, the API waits on it before answering
	arrived    chan struct{} // when set, the API signals each arrival on it
	apiArrival []time.Time
}

// scripted is one scripted answer of the API stand-in.
type scripted struct {
	status     int
	retryAfter string
}

func newGenesysAPI(t *testing.T) *genesysAPI {
	t.Helper()
	g := &genesysAPI{login: genesystest.NewLogin(t, tokenMark, map[string]string{e2eClientID: e2eClientSecret})}
	g.api = httptest.NewServer(http.HandlerFunc(g.serveAPI))
	t.Cleanup(g.api.Close)
	t.Cleanup(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, p := range g.problems {
			t.Error("genesys stand-in: " + p)
		}
	})
	return g
}

func (g *genesysAPI) problem(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.problems = append(g.problems, fmt.Sprintf(format, args...))
}

func (g *genesysAPI) serveAPI(w http.ResponseWriter, r *http.Request) {
	g.apiCalls.Add(1)
	g.mu.Lock()
	g.apiArrival = append(g.apiArrival, time.Now())
	hold, arrived := g.hold, g.arrived
	g.mu.Unlock()
	if arrived != nil {
		arrived <- struct{}{}
	}
	if hold != nil {
		<-hold
	}

	want := "/api/v2/conversations/messages/" + e2eIntegration + "/inbound/open/message"
	if r.Method != http.MethodPost || r.URL.Path != want {
		g.problem("api got %s %s, want POST %s", r.Method, r.URL.Path, want)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		g.problem("api Content-Type = %q", ct)
	}
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	var body struct {
		Channel struct {
			MessageID string `json:"messageId"`
			From      struct {
				Nickname string `json:"nickname"`
				ID       string `json:"id"`
				IDType   string `json:"idType"`
			} `json:"from"`
			Time string `json:"time"`
		} `json:"channel"`
		Text string `json:"text"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		g.problem("api body: %v", err)
	}
	c := body.Channel
	if !strings.HasPrefix(c.MessageID, "wamid.") || c.From.ID == "" || c.From.IDType != "Opaque" || body.Text == "" {
		g.problem("api body %+v lacks messageId, from.id, idType Opaque or text", body)
	}
	if _, err := time.Parse(time.RFC3339, c.Time); err != nil {
		g.problem("api channel.time %q: %v", c.Time, err)
	}

	valid := g.login.Valid(bearer)
	g.mu.Lock()
	a := scripted{status: http.StatusAccepted}
	if len(g.script) > 0 {
		a, g.script = g.script[0], g.script[1:]
	}
	if !valid {
		a = scripted{status: http.StatusUnauthorized}
	}
	if a.status == http.StatusUnauthorized {
		g.login.Revoke(bearer) // a retry must bring a fresh token
	}
	if a.status < 300 {
		g.accepted = append(g.accepted, delivered{c.MessageID, c.From.ID, c.From.Nickname, body.Text, bearer})
	}
	g.mu.Unlock()
	if a.retryAfter != "" {
		w.Header().Set("Retry-After", a.retryAfter)
	}
	w.WriteHeader(a.status)
	_, _ = io.WriteString(w, `{}`)
}

func (g *genesysAPI) setScript(s ...scripted) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.script = s
}

func (g *genesysAPI) deliveredIDs() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for _, d := range g.accepted {
		out[d.MessageID]++
	}
	return out
}

// host is a connector under test.
type host struct {
	t       *testing.T
	tenant  string
	srv     *httptest.Server
	svc     *service
	genesys *genesysAPI
	logs    *syncBuffer
}

// hostOptions vary the connector a test starts.
type hostOptions struct {
	redisURL      string // "" means the shared server
	clusterAddrs  string // seed nodes of a Redis Cluster, comma-separated; "" means none
	maxRetryAfter string
	clientSecret  string // "" means the one the login stand-in knows
	// env sets more configuration variables, such as TOKEN_REFRESH_MARGIN.
	env map[string]string
}

// startHost writes a config file for a Genesys-delivering connector with one
// tenant, loads it as the binary does, wires it, and serves it.
func startHost(t *testing.T, opt hostOptions) *host {
	t.Helper()
	clearHostEnv(t)
	if opt.redisURL == "" {
		opt.redisURL = redistest.SharedURL(t)
	}
	if opt.maxRetryAfter == "" {
		opt.maxRetryAfter = "5s"
	}
	if opt.clientSecret == "" {
		opt.clientSecret = e2eClientSecret
	}
	t.Setenv("REDIS_URL", opt.redisURL)
	t.Setenv("REDIS_CLUSTER_ADDRS", opt.clusterAddrs)
	t.Setenv("STORE", "redis")
	for k, v := range opt.env {
		t.Setenv(k, v)
	}
	g := newGenesysAPI(t)
	h := &host{t: t, tenant: contract.TenantID(t), genesys: g, logs: &syncBuffer{}}
	t.Setenv(tenantEnvName(h.tenant, "genesys.client_secret"), opt.clientSecret)

	path := filepath.Join(t.TempDir(), "config.yaml")
	yaml := fmt.Sprintf(`
store: redis
delivery: genesys
whatsapp:
  app_secret: %s
genesys:
  max_retry_after: %s
  login_url: %s
  api_url: %s
tenants:
  - id: %s
    verify_token: %s
    whatsapp:
      waba_ids: [%q]
    genesys:
      region: mypurecloud.com
      client_id: %s
      integration_id: %s
log:
  level: debug
`, e2eAppSecret, opt.maxRetryAfter, g.login.URL, g.api.URL, h.tenant, e2eVerifyToken, e2eWABAID, e2eClientID, e2eIntegration)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	log := newLogger(zap.DebugLevel, h.logs)
	h.svc, err = newService(context.Background(), cfg, log, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(h.svc.handler)
	t.Cleanup(func() {
		h.srv.Close()
		_ = h.svc.mod.Close()
	})
	return h
}

// post POSTs body, signed with the app secret, to the tenant's webhook.
func (h *host) post(body []byte) (int, webhook.Result) {
	h.t.Helper()
	return h.postSigned(h.tenant, body, webhook.Sign([]byte(e2eAppSecret), body))
}

func (h *host) postSigned(tenant string, body []byte, sig string) (int, webhook.Result) {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/webhook/"+tenant, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Error(err)
		return 0, webhook.Result{}
	}
	defer resp.Body.Close()
	var res webhook.Result
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable {
		if err := json.Unmarshal(b, &res); err != nil {
			h.t.Errorf("answer %d %q: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, res
}

func (h *host) get(path string) (int, []byte) {
	h.t.Helper()
	resp, err := http.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// dedupeKeys returns the tenant's dedupe keys in Redis at url.
func dedupeKeys(t *testing.T, url, tenant string) []string {
	t.Helper()
	c, err := redis.DialURL(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	keys, err := redis.Strings(c.Do("KEYS", "genesys:dedupe:"+tenant+":*"))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// textPayload is a one-message webhook payload, as WhatsApp sends it.
func textPayload(wamid, text string) []byte {
	return []byte(fmt.Sprintf(`{"object":"whatsapp_business_account","entry":[{"id":%q,"changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550104477","phone_number_id":"114477885522001"},"contacts":[{"profile":{"name":"Dana Ortiz"},"wa_id":"12025550142"}],"messages":[{"from":"12025550142","id":%q,"timestamp":"1764137400","type":"text","text":{"body":%q}}]}}]}]}`, e2eWABAID, wamid, text))
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "whatsapp", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const wamidText = "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA="

func TestE2E_SameWebhookTwiceMakesOneGenesysMessage(t *testing.T) {
	h := startHost(t, hostOptions{})
	body := readFixture(t, "text-message.json")
	for i, want := range []webhook.Result{{Delivered: 1}, {Duplicates: 1}} {
		if status, res := h.post(body); status != http.StatusOK || res != want {
			t.Errorf("POST %d = %d %+v, want 200 %+v", i+1, status, res, want)
		}
	}
	h.genesys.mu.Lock()
	defer h.genesys.mu.Unlock()
	if len(h.genesys.accepted) != 1 {
		t.Fatalf("Genesys messages = %d, want 1", len(h.genesys.accepted))
	}
	want := delivered{MessageID: wamidText, From: "12025550142", Nickname: "Dana Ortiz",
		Text: "Hello, my parcel #2231 still has not arrived.", Bearer: tokenMark + "-1"}
	if got := h.genesys.accepted[0]; got != want {
		t.Errorf("Genesys got %+v\nwant %+v", got, want)
	}
}

func TestE2E_ConcurrentPostsOfOneMessageMakeOneGenesysMessage(t *testing.T) {
	h := startHost(t, hostOptions{})
	body := readFixture(t, "text-message.json")
	const n = 500
	var (
		wg       sync.WaitGroup
		statuses sync.Map
		start    = make(chan struct{})
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			status, _ := h.post(body)
			c, _ := statuses.LoadOrStore(status, new(atomic.Int64))
			c.(*atomic.Int64).Add(1)
		}()
	}
	close(start)
	wg.Wait()
	statuses.Range(func(k, v any) bool {
		// 200: delivered, or done already; 503: in flight in another
		// request, for Meta to redeliver.
		if k.(int) != http.StatusOK && k.(int) != http.StatusServiceUnavailable {
			t.Errorf("%d POSTs answered %d, want 200 or 503", v.(*atomic.Int64).Load(), k)
		}
		return true
	})
	if got := h.genesys.deliveredIDs(); len(got) != 1 || got[wamidText] != 1 {
		t.Errorf("Genesys messages = %v, want exactly one", got)
	}
	if status, res := h.post(body); status != http.StatusOK || res != (webhook.Result{Duplicates: 1}) {
		t.Errorf("redelivery after all answered = %d %+v, want 200 {Duplicates:1}", status, res)
	}
	if got := h.genesys.deliveredIDs(); len(got) != 1 || got[wamidText] != 1 {
		t.Errorf("Genesys messages after the redelivery = %v, want still exactly one", got)
	}
}

func TestE2E_BatchWithOneSeenDeliversTwo(t *testing.T) {
	h := startHost(t, hostOptions{})
	if status, _ := h.post(readFixture(t, "text-message.json")); status != http.StatusOK {
		t.Fatalf("first POST = %d", status)
	}
	status, res := h.post(readFixture(t, "batch-three-messages.json"))
	if want := (webhook.Result{Delivered: 2, Duplicates: 1}); status != http.StatusOK || res != want {
		t.Errorf("batch POST = %d %+v, want 200 %+v", status, res, want)
	}
	got := h.genesys.deliveredIDs()
	if len(got) != 3 {
		t.Errorf("Genesys messages = %v, want the 3 of the batch", got)
	}
	for id, n := range got {
		if n != 1 {
			t.Errorf("message %s delivered %d times", id, n)
		}
	}
}

func TestE2E_Genesys401OnceRefetchesTheToken(t *testing.T) {
	h := startHost(t, hostOptions{})
	h.genesys.setScript(scripted{status: http.StatusUnauthorized})
	if status, res := h.post(readFixture(t, "text-message.json")); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("POST = %d %+v, want 200, delivered", status, res)
	}
	if got := h.genesys.login.Calls(); got != 2 {
		t.Errorf("auth calls = %d, want exactly 2 (the first token, then a fresh one after the 401)", got)
	}
	h.genesys.mu.Lock()
	defer h.genesys.mu.Unlock()
	if len(h.genesys.accepted) != 1 || h.genesys.accepted[0].Bearer != tokenMark+"-2" {
		t.Errorf("accepted %+v, want one message sent with the second token", h.genesys.accepted)
	}
}

func TestE2E_Genesys500Answers503AndRedeliveryIsDelivered(t *testing.T) {
	h := startHost(t, hostOptions{})
	h.genesys.setScript(scripted{status: http.StatusInternalServerError})
	body := readFixture(t, "text-message.json")
	if status, res := h.post(body); status != http.StatusServiceUnavailable || res.Failed != 1 {
		t.Errorf("POST while Genesys fails = %d %+v, want 503, failed", status, res)
	}
	if keys := dedupeKeys(t, redistest.SharedURL(t), h.tenant); len(keys) != 0 {
		t.Errorf("dedupe keys after the failure = %v, want the claim released", keys)
	}
	if status, res := h.post(body); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("Meta's redelivery = %d %+v, want 200, delivered", status, res)
	}
	if got := h.genesys.deliveredIDs(); got[wamidText] != 1 || len(got) != 1 {
		t.Errorf("Genesys messages = %v, want the message once", got)
	}
}

func TestE2E_ThousandMessagesOneAuthCall(t *testing.T) {
	h := startHost(t, hostOptions{})
	const n, workers = 1000, 16
	jobs := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				body := textPayload(fmt.Sprintf("wamid.THOUSAND%06d", i), fmt.Sprintf("message %d", i))
				if status, res := h.post(body); status != http.StatusOK || res.Delivered != 1 {
					t.Errorf("POST %d = %d %+v", i, status, res)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if got := len(h.genesys.deliveredIDs()); got != n {
		t.Errorf("Genesys messages = %d, want %d", got, n)
	}
	if got := h.genesys.login.Calls(); got != 1 {
		t.Errorf("auth calls = %d, want exactly 1", got)
	}
}

func TestE2E_RedisStoppedMidRunStillDelivers(t *testing.T) {
	redisSrv := redistest.Start(t)
	h := startHost(t, hostOptions{redisURL: redisSrv.URL()})

	if status, _ := h.post(textPayload("wamid.BEFORE-STOP", "before")); status != http.StatusOK {
		t.Fatalf("POST before the stop = %d", status)
	}
	r := h.readiness()
	if r.Status != "ok" || r.RedisReachable == nil || !*r.RedisReachable || r.FailOpen {
		t.Errorf("readyz with Redis up = %+v, want ok, reachable", r)
	}
	if r.RedisPrimary != redisSrv.Addr() || r.RedisFailovers != 0 {
		t.Errorf("readyz primary %q after %d failovers, want %s after none", r.RedisPrimary, r.RedisFailovers, redisSrv.Addr())
	}

	redisSrv.Stop()
	for i := 0; i < 5; i++ {
		body := textPayload(fmt.Sprintf("wamid.AFTER-STOP-%d", i), "after")
		if status, res := h.post(body); status != http.StatusOK || res.Delivered != 1 {
			t.Errorf("POST %d with Redis stopped = %d %+v, want 200, delivered", i, status, res)
		}
	}
	if got := h.genesys.deliveredIDs(); len(got) != 6 {
		t.Errorf("Genesys messages = %v, want all 6", got)
	}
	status, raw := h.get("/readyz")
	r = h.readiness()
	if status != http.StatusOK || r.Status != "degraded" || r.RedisReachable == nil || *r.RedisReachable || !r.FailOpen {
		t.Errorf("readyz with Redis stopped = %d %s, want 200, degraded, unreachable, failing open", status, raw)
	}
	if r.FailOpenEvents == 0 {
		t.Errorf("readyz fail_open_events = 0 after failing open")
	}
	if status, _ := h.get("/healthz"); status != http.StatusOK {
		t.Errorf("healthz = %d, want 200 while the process runs", status)
	}
}

func TestE2E_RedisFailoverBehindAnEndpointIsFollowed(t *testing.T) {
	oldPrimary := redistest.Start(t)
	newPrimary := redistest.Start(t)
	endpoint := redistest.NewProxy(t, oldPrimary.Addr())
	h := startHost(t, hostOptions{redisURL: endpoint.URL()})
	if status, _ := h.post(textPayload("wamid.BEFORE-FAILOVER", "before")); status != http.StatusOK {
		t.Fatalf("POST before the failover = %d", status)
	}

	endpoint.Route(newPrimary.Addr())
	oldPrimary.Do(t, nil, "REPLICAOF", "127.0.0.1", fmt.Sprint(newPrimary.Port))
	for i := range 5 {
		body := textPayload(fmt.Sprintf("wamid.AFTER-FAILOVER-%d", i), "after")
		if status, res := h.post(body); status != http.StatusOK || res.Delivered != 1 {
			t.Errorf("POST %d after the failover = %d %+v, want 200, delivered", i, status, res)
		}
	}
	// The first write after the failover met the demoted server; the
	// later ones are on the new primary.
	if n, _ := redis.Int(newPrimary.Do(t, nil, "DBSIZE"), nil); n == 0 {
		t.Error("nothing written on the new primary")
	}
	r := h.readiness()
	if r.RedisPrimary != endpoint.Addr() || r.RedisFailovers != 1 {
		t.Errorf("readyz primary %q after %d failovers, want %s after 1", r.RedisPrimary, r.RedisFailovers, endpoint.Addr())
	}
	if got, ok := metricValue(h.scrape(), "connector_redis_failovers_total", nil); !ok || got != 1 {
		t.Errorf("connector_redis_failovers_total = %v (found %v), want 1", got, ok)
	}
}

func TestE2E_RedisClusterHealthNamesAFailingNode(t *testing.T) {
	// The live nodes serve their slots even once the cluster marks the
	// dead one failed.
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Args: []string{"--cluster-require-full-coverage", "no"}})
	h := startHost(t, hostOptions{redisURL: "redis://cluster", clusterAddrs: strings.Join(cl.Addrs(), ",")})
	for i := range 5 {
		if status, res := h.post(textPayload(fmt.Sprintf("wamid.CLUSTER-%d", i), "hello")); status != http.StatusOK || res.Delivered != 1 {
			t.Fatalf("POST %d = %d %+v", i, status, res)
		}
	}
	r := h.readiness()
	if r.Status != "ok" || r.RedisNodes != 3 || len(r.RedisFailingNodes) != 0 || r.RedisPrimary != "" {
		t.Errorf("readyz on a healthy cluster = %+v, want ok, 3 nodes, none failing, no primary", r)
	}
	if got, ok := metricValue(h.scrape(), "connector_redis_cluster_nodes", nil); !ok || got != 3 {
		t.Errorf("connector_redis_cluster_nodes = %v (found %v), want 3", got, ok)
	}

	dead := cl.Primaries[1]
	dead.Kill()
	for i := range 10 {
		if status, res := h.post(textPayload(fmt.Sprintf("wamid.CLUSTER-DOWN-%d", i), "hello")); status != http.StatusOK || res.Delivered != 1 {
			t.Errorf("POST %d with a node down = %d %+v, want 200, delivered", i, status, res)
		}
	}
	r = h.readiness()
	if r.Status != "degraded" || r.RedisNodes != 3 || !slices.Equal(r.RedisFailingNodes, []string{dead.Addr()}) {
		t.Errorf("readyz with a node down = %+v, want degraded, 3 nodes, %s failing", r, dead.Addr())
	}
	families := h.scrape()
	if got, ok := metricValue(families, "connector_redis_cluster_failing_nodes", nil); !ok || got != 1 {
		t.Errorf("connector_redis_cluster_failing_nodes = %v (found %v), want 1", got, ok)
	}
	if got, ok := metricValue(families, "connector_redis_cluster_map_refreshes_total", nil); !ok || got < 1 {
		t.Errorf("connector_redis_cluster_map_refreshes_total = %v (found %v), want at least 1", got, ok)
	}
	if _, ok := metricValue(families, "connector_redis_cluster_redirects_total", map[string]string{"kind": "moved"}); !ok {
		t.Error("connector_redis_cluster_redirects_total{kind=moved} missing")
	}
}

func (h *host) readiness() readiness {
	h.t.Helper()
	status, b := h.get("/readyz")
	if status != http.StatusOK {
		h.t.Errorf("readyz = %d, want 200", status)
	}
	var r readiness
	if err := json.Unmarshal(b, &r); err != nil {
		h.t.Fatalf("readyz body %q: %v", b, err)
	}
	return r
}

func TestE2E_RejectedRequestsClaimAndDeliverNothing(t *testing.T) {
	h := startHost(t, hostOptions{})
	text := readFixture(t, "text-message.json")
	big := append(bytes.Repeat([]byte(" "), 2<<20), text...)
	malformed := []byte(`{"object":"whatsapp_business_account","entry":[`)
	otherAccount := bytes.Replace(text, []byte(`"id": "`+e2eWABAID+`"`), []byte(`"id": "309988776655443"`), 1)
	if bytes.Equal(otherAccount, text) {
		t.Fatalf("text-message.json has no entry id %s", e2eWABAID)
	}
	sign := func(b []byte) string { return webhook.Sign([]byte(e2eAppSecret), b) }
	tests := []struct {
		name   string
		tenant string
		body   []byte
		sig    string
		want   int
	}{
		{"bad signature", h.tenant, text, webhook.Sign([]byte("wrong-secret"), text), http.StatusUnauthorized},
		{"missing signature", h.tenant, text, "", http.StatusUnauthorized},
		{"2 MiB body", h.tenant, big, sign(big), http.StatusRequestEntityTooLarge},
		{"malformed JSON", h.tenant, malformed, sign(malformed), http.StatusBadRequest},
		// The same answer as a bad signature: no answer tells which tenants exist.
		{"unknown tenant", "no-such-tenant", text, sign(text), http.StatusUnauthorized},
		{"another account's webhook", h.tenant, otherAccount, sign(otherAccount), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _ := h.postSigned(tt.tenant, tt.body, tt.sig); status != tt.want {
				t.Errorf("status = %d, want %d", status, tt.want)
			}
		})
	}
	t.Run("wrong verify token", func(t *testing.T) {
		status, body := h.get("/webhook/" + h.tenant + "?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=123")
		if status != http.StatusForbidden || bytes.Contains(body, []byte("123")) {
			t.Errorf("handshake = %d %q, want 403 without the challenge", status, body)
		}
	})
	t.Run("handshake for an unknown tenant", func(t *testing.T) {
		status, body := h.get("/webhook/no-such-tenant?hub.mode=subscribe&hub.verify_token=" + e2eVerifyToken + "&hub.challenge=123")
		if status != http.StatusForbidden || bytes.Contains(body, []byte("123")) {
			t.Errorf("handshake = %d %q, want 403 without the challenge", status, body)
		}
	})
	t.Run("right verify token", func(t *testing.T) {
		status, body := h.get("/webhook/" + h.tenant + "?hub.mode=subscribe&hub.verify_token=" + e2eVerifyToken + "&hub.challenge=123")
		if status != http.StatusOK || string(body) != "123" {
			t.Errorf("handshake = %d %q, want 200 123", status, body)
		}
	})

	if st := h.svc.mod.Stats().Dedupe; st.New+st.InFlight+st.Done+st.Committed+st.Released != 0 {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
	if keys := dedupeKeys(t, redistest.SharedURL(t), h.tenant); len(keys) != 0 {
		t.Errorf("dedupe keys = %v, want none", keys)
	}
	if n := h.genesys.apiCalls.Load() + h.genesys.login.Calls(); n != 0 {
		t.Errorf("Genesys calls = %d, want none", n)
	}
}

func TestE2E_RateLimitedRetryAfterIsHonouredUpToABound(t *testing.T) {
	h := startHost(t, hostOptions{maxRetryAfter: "3s"})

	h.genesys.setScript(scripted{status: http.StatusTooManyRequests, retryAfter: "1"})
	if status, res := h.post(textPayload("wamid.RATE-1", "one")); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("POST with a 1s Retry-After = %d %+v, want 200, delivered", status, res)
	}
	h.genesys.mu.Lock()
	arrivals := append([]time.Time(nil), h.genesys.apiArrival...)
	h.genesys.mu.Unlock()
	if len(arrivals) != 2 || arrivals[1].Sub(arrivals[0]) < 900*time.Millisecond {
		t.Errorf("API arrivals %v, want a retry about 1s after the 429", arrivals)
	}

	h.genesys.setScript(scripted{status: http.StatusTooManyRequests, retryAfter: "3600"})
	start := time.Now()
	body := textPayload("wamid.RATE-2", "two")
	if status, _ := h.post(body); status != http.StatusServiceUnavailable {
		t.Errorf("POST with a 1h Retry-After = %d, want 503", status)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a Retry-After past the bound took %v; want an answer without waiting", took)
	}
	if status, res := h.post(body); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("redelivery = %d %+v, want 200, delivered", status, res)
	}
}

func TestE2E_MetricsShowWhatHappened(t *testing.T) {
	h := startHost(t, hostOptions{})
	text := readFixture(t, "text-message.json")
	h.post(text)                              // delivered: token miss, fetch
	h.post(text)                              // duplicate
	h.postSigned(h.tenant, text, "sha256=00") // 401
	h.genesys.setScript(scripted{status: http.StatusInternalServerError})
	h.post(textPayload("wamid.METRICS-FAIL", "x")) // 503: token hit, claim released

	families := h.scrape()
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"connector_webhook_requests_total", map[string]string{"method": "post", "code": "200"}, 2},
		{"connector_webhook_requests_total", map[string]string{"method": "post", "code": "401"}, 1},
		{"connector_webhook_requests_total", map[string]string{"method": "post", "code": "503"}, 1},
		{"connector_token_cache_misses_total", nil, 1},
		{"connector_token_cache_hits_total", nil, 1},
		{"connector_token_fetches_total", nil, 1},
		{"connector_token_fetch_errors_total", nil, 0},
		{"connector_dedupe_claims_total", map[string]string{"status": "new"}, 2},
		{"connector_dedupe_claims_total", map[string]string{"status": "done"}, 1},
		{"connector_dedupe_claims_total", map[string]string{"status": "in_flight"}, 0},
		{"connector_dedupe_committed_total", nil, 1},
		{"connector_dedupe_released_total", nil, 1},
		{"connector_failopen_events_total", map[string]string{"op": "claim"}, 0},
		{"connector_redis_breaker_state", map[string]string{"state": "closed"}, 1},
		{"connector_redis_failovers_total", nil, 0},
	}
	for _, tt := range tests {
		if got, ok := metricValue(families, tt.name, tt.labels); !ok || got != tt.want {
			t.Errorf("%s%v = %v (found %v), want %v", tt.name, tt.labels, got, ok, tt.want)
		}
	}
	for result, want := range map[string]uint64{"delivered": 1, "failed": 1} {
		m := findSeries(families, "connector_delivery_duration_seconds", map[string]string{"result": result})
		if m == nil || m.GetHistogram().GetSampleCount() != want {
			t.Errorf("connector_delivery_duration_seconds{result=%s} count = %v, want %d", result, m, want)
		}
	}
	if active, ok := metricValue(families, "connector_redis_pool_active_connections", nil); !ok || active < 1 {
		t.Errorf("connector_redis_pool_active_connections = %v (found %v), want at least 1", active, ok)
	}
	if _, ok := metricValue(families, "connector_redis_pool_idle_connections", nil); !ok {
		t.Error("connector_redis_pool_idle_connections missing")
	}
}

func (h *host) scrape() map[string]*dto.MetricFamily {
	h.t.Helper()
	status, body := h.get("/metrics")
	if status != http.StatusOK {
		h.t.Fatalf("/metrics = %d", status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		h.t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

func findSeries(families map[string]*dto.MetricFamily, name string, labels map[string]string) *dto.Metric {
	f := families[name]
	if f == nil {
		return nil
	}
series:
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for k, v := range labels {
			if got[k] != v {
				continue series
			}
		}
		return m
	}
	return nil
}

func metricValue(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	m := findSeries(families, name, labels)
	switch {
	case m == nil:
		return 0, false
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

func TestE2E_NoSecretInLogs(t *testing.T) {
	redisSrv := redistest.Start(t)
	h := startHost(t, hostOptions{redisURL: redisSrv.URL()})
	text := readFixture(t, "text-message.json")

	h.get("/webhook/" + h.tenant + "?hub.mode=subscribe&hub.verify_token=" + e2eVerifyToken + "&hub.challenge=1")
	h.get("/webhook/" + h.tenant + "?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1")
	h.postSigned(h.tenant, text, webhook.Sign([]byte("wrong"), text))
	h.genesys.setScript(scripted{status: http.StatusUnauthorized})
	h.post(text) // 401, fresh token, delivered
	h.genesys.setScript(scripted{status: http.StatusInternalServerError})
	h.post(textPayload("wamid.LOGS-1", "x")) // delivery failure logged
	redisSrv.Stop()
	h.post(textPayload("wamid.LOGS-2", "y")) // fail-open warnings
	h.get("/readyz")

	// A tenant whose client secret the login host rejects, echoing it.
	bad := startHost(t, hostOptions{clientSecret: "rejected-client-secret-9e2"})
	bad.post(text)

	for _, logs := range []string{h.logs.String(), bad.logs.String()} {
		if !strings.Contains(logs, "delivery failed") {
			t.Errorf("logs lack the delivery failure; the test is not seeing the logs:\n%s", logs)
		}
		for _, secret := range []string{e2eAppSecret, e2eVerifyToken, e2eClientSecret, "rejected-client-secret-9e2", tokenMark} {
			if strings.Contains(logs, secret) {
				t.Errorf("logs hold the secret %q:\n%s", secret, logs)
			}
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
