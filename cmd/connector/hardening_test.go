package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wa2genesys/connectorcache/internal/genesystest"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// Hardening tests: the connector binary (this test binary re-executed into
// main, see TestMain) runs as a process of its own on loopback, with a
// configuration file and an environment of its own; each test sends it what
// an attacker or a careless operator would, and checks that it holds.

// waitBound bounds every wait of these tests for a condition: generous, so
// that a busy CI machine never fails them.
const waitBound = 60 * time.Second

// binary is a connector process started by startBinary.
type binary struct {
	cmd    *exec.Cmd
	stdout *syncBuffer
	// logs is its standard error, whole: a line of any length is kept.
	logs   *syncBuffer
	exited chan struct{}
	// addr is the webhook listener's address.
	addr string
}

// binaryEnv is the environment of a connector process: only what any
// process needs from the test's own, so that no configuration variable of
// the surrounding environment reaches it, then env.
func binaryEnv(env ...string) []string {
	out := []string{runMainEnv + "=1"}
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "GORACE"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	return append(out, env...)
}

// acmeConfig writes a configuration of settings, YAML lines such as
// store: memory, then delivery: log and the one tenant acme with the e2e
// app secret, verify token and WABA id, and returns its path.
func acmeConfig(t *testing.T, settings string) string {
	t.Helper()
	return writeConfig(t, settings+fmt.Sprintf(`
delivery: log
whatsapp: {app_secret: %s}
tenants:
  - id: acme
    verify_token: %s
    whatsapp: {waba_ids: [%q]}
`, e2eAppSecret, e2eVerifyToken, e2eWABAID))
}

// startBinary starts the connector binary with the configuration file at
// path and env (KEY=value), waits until it listens, and kills it when t
// ends.
func startBinary(t *testing.T, path string, env ...string) *binary {
	t.Helper()
	b := &binary{stdout: &syncBuffer{}, logs: &syncBuffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(os.Args[0], "-config", path)
	b.cmd.Env = binaryEnv(env...)
	b.cmd.Stdout, b.cmd.Stderr = b.stdout, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.exited
	})
	deadline := time.After(waitBound)
	for {
		if addr := listeningAddr(b.logs.String()); addr != "" {
			b.addr = addr
			return b
		}
		select {
		case <-b.exited:
			t.Fatalf("the connector exited (%v) before it listened; its logs:\n%s", b.cmd.ProcessState, b.logs)
		case <-deadline:
			t.Fatalf("the connector did not log that it listens within %v; its logs:\n%s", waitBound, b.logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// listeningAddr returns the address of the "connector listening" line of
// logs, "" when there is none yet.
func listeningAddr(logs string) string {
	for line := range strings.Lines(logs) {
		var l struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "connector listening" {
			return l.Addr
		}
	}
	return ""
}

// runRefused runs the connector binary with the configuration file at path
// and env, which must make it refuse to start, and returns its standard
// error. It fails t unless the process exits with status 1 within
// waitBound.
func runRefused(t *testing.T, path string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-config", path)
	cmd.Env = binaryEnv(env...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || ctx.Err() != nil {
		t.Fatalf("connector = %v, want exit status 1 at start; its logs:\n%s", err, stderr.String())
	}
	return stderr.String()
}

// post POSTs body to tenant's webhook on addr with the signature header sig
// ("" sends none), and returns the status and, for 200 and 503, the
// answer's counts.
func post(t *testing.T, addr, tenant string, body []byte, sig string) (int, webhook.Result) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook/"+tenant, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	client := &http.Client{Timeout: waitBound}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res webhook.Result
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK || (resp.StatusCode == http.StatusServiceUnavailable && bytes.Contains(b, []byte(`"delivered"`))) {
		if err := json.Unmarshal(b, &res); err != nil {
			t.Errorf("answer %d %q: %v", resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode, res
}

// signed is post with body signed under the e2e app secret.
func signed(t *testing.T, addr, tenant string, body []byte) (int, webhook.Result) {
	t.Helper()
	return post(t, addr, tenant, body, webhook.Sign([]byte(e2eAppSecret), body))
}

// scrapeBinary reads the metrics the connector at addr serves.
func scrapeBinary(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	client := &http.Client{Timeout: waitBound}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// counter is a metric's value at addr, zero when the series is absent.
func counter(t *testing.T, addr, name string, labels map[string]string) float64 {
	t.Helper()
	v, _ := metricValue(scrapeBinary(t, addr), name, labels)
	return v
}

// wabaPayload is a webhook body of one entry, for account waba, whose one
// change holds msgs, each a JSON object written out: they may hold bytes
// that are not UTF-8.
func wabaPayload(waba string, msgs ...string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[{"id":"` + waba + `","changes":[{"field":"messages","value":{` +
		`"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550104477","phone_number_id":"114477885522001"},` +
		`"contacts":[{"profile":{"name":"Dana Ortiz"},"wa_id":"12025550142"}],"messages":[` + strings.Join(msgs, ",") + `]}}]}]}`)
}

// textMsg is an inbound text message with id, written out as it is: id may
// hold any bytes but '"' and '\'.
func textMsg(id string) string {
	return `{"from":"12025550142","id":"` + id + `","timestamp":"1764137400","type":"text","text":{"body":"hello"}}`
}

// textMsgs are n text messages with the ids prefix followed by first,
// first+1, … written with four digits.
func textMsgs(prefix string, first, n int) []string {
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = textMsg(fmt.Sprintf("%s%04d", prefix, first+i))
	}
	return msgs
}

// WhatsApp Business Accounts of the tenants of TestHardening_Webhook.
const (
	wabaA        = "111111111111111"
	wabaB        = "222222222222222"
	wabaRedirect = "333333333333333"
	wabaLogin    = "444444444444444"
)

// redirector answers every request with a redirect to target, the same
// path, counting the requests it got and those target got: a Genesys host
// that would send the connector's token or client secret elsewhere.
type redirector struct {
	srv, target *httptest.Server
	status      atomic.Int64
	hits        atomic.Int64
	targetHits  atomic.Int64
}

func newRedirector(t *testing.T) *redirector {
	t.Helper()
	r := &redirector{}
	r.status.Store(http.StatusFound)
	r.target = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		r.targetHits.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(r.target.Close)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.hits.Add(1)
		http.Redirect(w, req, r.target.URL+req.URL.Path, int(r.status.Load()))
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// TestHardening_Webhook sends one connector, on Redis and delivering to
// Genesys stand-ins, the payloads of the webhook findings. Tenants tenant-a
// and tenant-b share one app secret, as under a business solution
// provider's Meta app, and own accounts wabaA and wabaB; tenant-r's Genesys
// API and tenant-l's login host redirect elsewhere.
func TestHardening_Webhook(t *testing.T) {
	redisSrv := redistest.Start(t)
	gA, gB := newGenesysAPI(t), newGenesysAPI(t)
	redirect := newRedirector(t)
	loginR := genesystest.NewLogin(t, tokenMark, map[string]string{e2eClientID: e2eClientSecret})
	tenant := func(id, waba, loginURL, apiURL string) string {
		return fmt.Sprintf(`
  - id: %s
    verify_token: %s
    whatsapp: {waba_ids: [%q]}
    genesys: {client_id: %s, client_secret: %s, integration_id: %s, login_url: %s, api_url: %s}`,
			id, e2eVerifyToken, waba, e2eClientID, e2eClientSecret, e2eIntegration, loginURL, apiURL)
	}
	path := writeConfig(t, fmt.Sprintf(`
store: redis
redis: {url: %s}
delivery: genesys
http: {addr: "127.0.0.1:0"}
whatsapp: {app_secret: %s}
log: {level: info}
tenants:%s%s%s%s
`, redisSrv.URL(), e2eAppSecret,
		tenant("tenant-a", wabaA, gA.login.URL, gA.api.URL),
		tenant("tenant-b", wabaB, gB.login.URL, gB.api.URL),
		tenant("tenant-r", wabaRedirect, loginR.URL, redirect.srv.URL),
		tenant("tenant-l", wabaLogin, redirect.srv.URL, redirect.srv.URL)))
	b := startBinary(t, path)

	// nothingClaimed fails t if tenant has a dedupe record.
	nothingClaimed := func(t *testing.T, tenant string) {
		t.Helper()
		if keys := dedupeKeys(t, redisSrv.URL(), tenant); len(keys) != 0 {
			t.Errorf("dedupe keys of %s = %v, want none", tenant, keys)
		}
	}
	// rejected counts the POSTs rejected whole for reason.
	rejected := func(t *testing.T, reason string) float64 {
		t.Helper()
		return counter(t, b.addr, "connector_webhook_rejected_total", map[string]string{"reason": reason})
	}
	// rejectedByB POSTs body, signed, to tenant-b, and fails t unless it is
	// answered status, counted as rejected whole for reason, and neither
	// claims anything nor calls tenant-b's Genesys.
	rejectedByB := func(t *testing.T, what string, body []byte, status int, reason string) {
		t.Helper()
		before := rejected(t, reason)
		if got, _ := signed(t, b.addr, "tenant-b", body); got != status {
			t.Errorf("%s = %d, want %d", what, got, status)
		}
		if d := rejected(t, reason) - before; d != 1 {
			t.Errorf("connector_webhook_rejected_total{reason=%s} grew by %v, want 1", reason, d)
		}
		nothingClaimed(t, "tenant-b")
		if n := gB.apiCalls.Load() + gB.login.Calls(); n != 0 {
			t.Errorf("tenant-b's Genesys got %d calls, want none", n)
		}
	}

	t.Run("replay to another tenant", func(t *testing.T) {
		const id = "wamid.REPLAY-1"
		body := wabaPayload(wabaA, textMsg(id))
		rejectedByB(t, "tenant-a's webhook POSTed to tenant-b", body, http.StatusForbidden, "foreign")
		if status, res := signed(t, b.addr, "tenant-a", body); status != http.StatusOK || res.Delivered != 1 {
			t.Errorf("the same webhook POSTed to tenant-a = %d %+v, want 200, delivered", status, res)
		}
		if got := gA.deliveredIDs(); got[id] != 1 {
			t.Errorf("tenant-a's Genesys messages = %v, want %s once", got, id)
		}
	})

	t.Run("message ids that are not UTF-8", func(t *testing.T) {
		// Decoded as JSON, both ids would be "z\uFFFD9": the same dedupe key.
		keys := dedupeKeys(t, redisSrv.URL(), "tenant-a")
		delivered := len(gA.deliveredIDs())
		notUTF8 := rejected(t, "not_utf8")
		for _, id := range []string{"z\xfe9", "z\xff9"} {
			if status, _ := signed(t, b.addr, "tenant-a", wabaPayload(wabaA, textMsg(id))); status != http.StatusBadRequest {
				t.Errorf("message id %q = %d, want 400", id, status)
			}
		}
		if d := rejected(t, "not_utf8") - notUTF8; d != 2 {
			t.Errorf("connector_webhook_rejected_total{reason=not_utf8} grew by %v, want 2", d)
		}
		if after := dedupeKeys(t, redisSrv.URL(), "tenant-a"); len(after) != len(keys) {
			t.Errorf("dedupe keys of tenant-a = %v, want no more than before: %v", after, keys)
		}
		if got := gA.deliveredIDs(); len(got) != delivered {
			t.Errorf("tenant-a's Genesys messages = %v, want none more", got)
		}
	})

	t.Run("undeliverable messages skipped", func(t *testing.T) {
		skipped := func(reason string) float64 {
			return counter(t, b.addr, "connector_webhook_skipped_messages_total", map[string]string{"reason": reason})
		}
		noSender, badID := skipped("no_sender"), skipped("bad_id")
		body := wabaPayload(wabaA,
			textMsg("wamid.POISON-GOOD-1"),
			`{"id":"wamid.POISON-NO-SENDER","timestamp":"1764137400","type":"text","text":{"body":"hello"}}`,
			textMsg("wamid.POISON BAD ID"),
			textMsg("wamid.POISON-GOOD-2"))
		status, res := signed(t, b.addr, "tenant-a", body)
		if want := (webhook.Result{Delivered: 2, Skipped: 2}); status != http.StatusOK || res != want {
			t.Errorf("batch with two undeliverable messages = %d %+v, want 200 %+v", status, res, want)
		}
		got := gA.deliveredIDs()
		for _, id := range []string{"wamid.POISON-GOOD-1", "wamid.POISON-GOOD-2"} {
			if got[id] != 1 {
				t.Errorf("Genesys messages = %v, want %s once", got, id)
			}
		}
		if d := skipped("no_sender") - noSender; d != 1 {
			t.Errorf("connector_webhook_skipped_messages_total{reason=no_sender} grew by %v, want 1", d)
		}
		if d := skipped("bad_id") - badID; d != 1 {
			t.Errorf("connector_webhook_skipped_messages_total{reason=bad_id} grew by %v, want 1", d)
		}
	})

	t.Run("too many messages", func(t *testing.T) {
		body := wabaPayload(wabaB, textMsgs("wamid.MANY-", 0, 1001)...)
		rejectedByB(t, "1001 messages", body, http.StatusRequestEntityTooLarge, "too_many_messages")
	})

	t.Run("redirects not followed", func(t *testing.T) {
		tests := []struct {
			name   string
			tenant string
			waba   string
			status int
		}{
			{"API 302", "tenant-r", wabaRedirect, http.StatusFound},
			{"API 307", "tenant-r", wabaRedirect, http.StatusTemporaryRedirect},
			{"login 302", "tenant-l", wabaLogin, http.StatusFound},
			{"login 307", "tenant-l", wabaLogin, http.StatusTemporaryRedirect},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				redirect.status.Store(int64(tt.status))
				hits := redirect.hits.Load()
				body := wabaPayload(tt.waba, textMsg("wamid.REDIRECT-"+strconv.Itoa(i)))
				if status, res := signed(t, b.addr, tt.tenant, body); status != http.StatusServiceUnavailable || res.Failed != 1 {
					t.Errorf("POST = %d %+v, want 503, failed", status, res)
				}
				if redirect.hits.Load() == hits {
					t.Error("the redirecting host was never asked")
				}
				if n := redirect.targetHits.Load(); n != 0 {
					t.Errorf("the redirect target got %d requests, want none", n)
				}
				nothingClaimed(t, tt.tenant)
			})
		}
	})
}

// TestHardening_ConfigRefusedAtStart starts the binary with configurations
// an operator could ship by mistake: each is refused with exit status 1 and
// an error naming the key, never its value, and its safe counterpart
// starts.
func TestHardening_ConfigRefusedAtStart(t *testing.T) {
	dev, err := os.ReadFile("dev.yaml")
	if err != nil {
		t.Fatal(err)
	}
	devNoDev := bytes.Replace(dev, []byte("\ndev: true\n"), []byte("\n"), 1)
	if bytes.Equal(devNoDev, dev) {
		t.Fatal("dev.yaml has no line dev: true")
	}
	devPath := writeConfig(t, string(dev))
	devNoDevPath := writeConfig(t, string(devNoDev))
	genesysAt := func(apiURL string, insecure bool) string {
		return writeConfig(t, fmt.Sprintf(`
store: memory
delivery: genesys
http: {addr: "127.0.0.1:0"}
whatsapp: {app_secret: %s}
genesys: {api_url: %q, allow_insecure_http: %t}
tenants:
  - id: acme
    verify_token: %s
    whatsapp: {waba_ids: [%q]}
    genesys: {region: mypurecloud.com, client_id: %s, client_secret: %s, integration_id: %s}
`, e2eAppSecret, apiURL, insecure, e2eVerifyToken, e2eWABAID, e2eClientID, e2eClientSecret, e2eIntegration))
	}
	redisPath := acmeConfig(t, `
store: redis
http: {addr: "127.0.0.1:0"}`)
	caFile := redistest.NewPKI(t).CAFile

	tests := []struct {
		name string
		path string
		env  []string
		// want are in the error; never are not.
		want, never []string
	}{
		{
			name:  "dev.yaml without dev: true",
			path:  devNoDevPath,
			env:   []string{"HTTP_ADDR=127.0.0.1:0"},
			want:  []string{"whatsapp.app_secret", "verify_token", "dev: true"},
			never: []string{devAppSecret, devVerifyToken},
		},
		{
			name:  "dev app secret from the environment",
			path:  redisPath,
			env:   []string{"STORE=memory", "WHATSAPP_APP_SECRET=" + devAppSecret},
			want:  []string{"whatsapp.app_secret"},
			never: []string{devAppSecret},
		},
		{
			name:  "Genesys API over http:// to a host that is not loopback",
			path:  genesysAt("http://example.com", false),
			want:  []string{"genesys.api_url", "allow_insecure_http"},
			never: []string{"example.com"},
		},
		{
			name:  "Redis URL with a query string",
			path:  redisPath,
			env:   []string{"REDIS_URL=redis://127.0.0.1:6379/0?password=x"},
			want:  []string{"redis.url"},
			never: []string{"password=x"},
		},
		{
			name: "Redis CA file with redis://",
			path: redisPath,
			env:  []string{"REDIS_URL=redis://127.0.0.1:6379", "REDIS_TLS_CA_FILE=" + caFile},
			want: []string{"redis.tls_ca_file", "rediss://"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr := runRefused(t, tt.path, tt.env...)
			for _, want := range tt.want {
				if !strings.Contains(stderr, want) {
					t.Errorf("error lacks %q:\n%s", want, stderr)
				}
			}
			for _, never := range tt.never {
				if strings.Contains(stderr, never) {
					t.Errorf("error holds %q:\n%s", never, stderr)
				}
			}
		})
	}

	t.Run("dev.yaml starts in development mode", func(t *testing.T) {
		b := startBinary(t, devPath, "HTTP_ADDR=127.0.0.1:0")
		if !strings.Contains(b.logs.String(), "DEVELOPMENT MODE") {
			t.Errorf("logs lack the development mode warning:\n%s", b.logs)
		}
	})
	t.Run("insecure Genesys API allowed explicitly", func(t *testing.T) {
		startBinary(t, genesysAt("http://example.com", true))
	})
}

// TestHardening_LongTenantIDLoggedAsLength POSTs to tenant ids of a
// megabyte and more: what the handler logs of them is their length, and no
// line of the logs is long.
func TestHardening_LongTenantIDLoggedAsLength(t *testing.T) {
	path := acmeConfig(t, `
store: memory
http: {addr: "127.0.0.1:0"}`)
	b := startBinary(t, path)
	body := wabaPayload(e2eWABAID, textMsg("wamid.LONG-1"))

	// A 1,000,000-byte id fits the server's 1 MiB bound on the request
	// line and headers: the handler gets it, and answers as for any
	// unknown tenant.
	const reaching = 1_000_000
	if status, _ := signed(t, b.addr, strings.Repeat("a", reaching), body); status != http.StatusUnauthorized {
		t.Errorf("POST to a %d-byte tenant id = %d, want 401", reaching, status)
	}
	// A 2 MiB one is refused by the server before any handler: answered
	// 431, or, when the connection is closed before the client read that,
	// with its connection closed.
	req, err := http.NewRequest(http.MethodPost, "http://"+b.addr+"/webhook/"+strings.Repeat("a", 2<<20), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(e2eAppSecret), body))
	if resp, err := (&http.Client{Timeout: waitBound}).Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("POST to a 2 MiB tenant id = %d, want 431", resp.StatusCode)
		}
	}
	families := scrapeBinary(t, b.addr)
	if n, _ := metricValue(families, "connector_webhook_requests_total", map[string]string{"method": "post", "code": "401"}); n != 1 {
		t.Errorf("connector_webhook_requests_total{method=post,code=401} = %v, want 1: the 1,000,000-byte id only", n)
	}
	if m := families["connector_webhook_requests_total"]; m == nil || len(m.GetMetric()) != 1 {
		t.Errorf("connector_webhook_requests_total = %v, want one series: the 2 MiB id never reaches the handler", m)
	}

	const maxLine = 2 << 10
	want := `"tenant_len":` + strconv.Itoa(reaching)
	deadline := time.Now().Add(waitBound)
	for !strings.Contains(b.logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("logs lack %s", want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for line := range strings.Lines(b.logs.String()) {
		if len(line) > maxLine {
			t.Errorf("a log line is %d bytes, want at most %d: %.200q…", len(line), maxLine, line)
		}
	}
}

// TestHardening_MemoryStoreBounded runs the memory store bounded at 1000
// entries and delivers 3000 distinct messages: the store then remembers
// the last 1000 only, so a redelivery of an older one is delivered again
// (the duplicate memory.max_entries allows) and one of the last 1000 is
// still a duplicate.
func TestHardening_MemoryStoreBounded(t *testing.T) {
	const (
		bound = 1000
		total = 3 * bound
	)
	path := acmeConfig(t, fmt.Sprintf(`
store: memory
memory: {max_entries: %d}
http: {addr: "127.0.0.1:0"}`, bound))
	b := startBinary(t, path)

	const prefix = "wamid.MEM-"
	for first := 0; first < total; first += bound {
		body := wabaPayload(e2eWABAID, textMsgs(prefix, first, bound)...)
		if status, res := signed(t, b.addr, "acme", body); status != http.StatusOK || res.Delivered != bound {
			t.Fatalf("messages %d to %d = %d %+v, want 200, all delivered", first, first+bound-1, status, res)
		}
	}
	// The duplicates first: delivering an evicted message again writes a
	// record, which evicts the oldest one left.
	tests := []struct {
		name string
		give int
		want webhook.Result
	}{
		{"the last message", total - 1, webhook.Result{Duplicates: 1}},
		{"the oldest message kept", total - bound, webhook.Result{Duplicates: 1}},
		{"the newest message evicted", total - bound - 1, webhook.Result{Delivered: 1}},
		{"the first message", 0, webhook.Result{Delivered: 1}},
	}
	for _, tt := range tests {
		body := wabaPayload(e2eWABAID, textMsgs(prefix, tt.give, 1)...)
		if status, res := signed(t, b.addr, "acme", body); status != http.StatusOK || res != tt.want {
			t.Errorf("%s again = %d %+v, want 200 %+v", tt.name, status, res, tt.want)
		}
	}
	// Standard output reaches the test through a pipe, maybe after the
	// answers.
	lines := func() int { return strings.Count(b.stdout.String(), "\n") }
	deadline := time.Now().Add(waitBound)
	for lines() < total+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := lines(); n != total+2 {
		t.Errorf("%d messages delivered on stdout, want %d", n, total+2)
	}
}

// procStatus returns field, a size such as VmRSS or VmHWM, of process pid
// from /proc/<pid>/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("/proc/%d/status line %q: %v", pid, line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// raceEnabled reports whether this binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// TestHardening_StalledBodies opens 300 connections that each send a
// webhook's headers and all but the last byte of a 1 MiB − 1 body, then
// stall. The connector reads at most http.max_inflight_bodies (64) bodies
// at once and answers the others 503 unread, so its memory grows by what
// 64 bodies take, not 300. The body timeout is longer than the test, so
// the stalled bodies hold their slots until the clients give up: exactly
// 236 clients are answered whatever the scheduling, and with no cap none
// would be. A legitimate POST is answered 503 busy while the slots are
// full, and delivered once the stalled clients closed their connections
// and the connector has read what they sent.
//
// The resident set is sampled (VmRSS) throughout and its high-water mark
// (VmHWM) read at the end, once every stalled body was read to the end of
// what its client sent, so that the peak counts whenever it came. Its
// growth over the baseline is bounded:
//
//   - 256 MiB. A body held takes about 2.2 MiB: io.ReadAll's buffer (1 MiB
//     and up to a quarter more), the garbage of its growth, and the
//     heap's headroom before a collection (GOGC=100). 64 bodies took
//     113 to 145 MiB more, idle or with both cores busy; the 300 bodies
//     held with the cap raised to 300 took 379 to 597 MiB.
//   - 1 GiB under -race, whose shadow memory of what the process writes
//     multiplies the footprint unevenly: 64 bodies took 587 to 660 MiB
//     more. The cap itself is checked by the count of clients answered.
func TestHardening_StalledBodies(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads the connector's resident set size from /proc, which only Linux has")
	}
	const (
		clients = 300
		slots   = 64
		length  = 1<<20 - 1 // the Content-Length: within the 1 MiB a body may take
	)
	growthBound := int64(256 << 20)
	if raceEnabled() {
		growthBound = 1 << 30
	}
	path := acmeConfig(t, fmt.Sprintf(`
store: memory
http: {addr: "127.0.0.1:0", max_inflight_bodies: %d, body_timeout: 1h}`, slots))
	b := startBinary(t, path)
	pid := b.cmd.Process.Pid
	// One request first, so that the baseline holds what serving any
	// request takes.
	if status, _ := signed(t, b.addr, "acme", wabaPayload(e2eWABAID, textMsg("wamid.STALL-0"))); status != http.StatusOK {
		t.Fatalf("warm-up POST = %d, want 200", status)
	}
	before := procStatus(t, pid, "VmRSS")

	request := append([]byte(fmt.Sprintf("POST /webhook/acme HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"Content-Length: %d\r\n%s: sha256=%s\r\n\r\n", b.addr, length, webhook.SignatureHeader, strings.Repeat("0", 64))),
		bytes.Repeat([]byte("x"), length-1)...)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
		// answers counts what the clients got, by kind.
		answers  = map[string]int{}
		answered int
	)
	answer := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		answers[what]++
		answered++
	}
	countAnswered := func() int {
		mu.Lock()
		defer mu.Unlock()
		return answered
	}
	closeAll := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
		conns = nil
	}
	t.Cleanup(func() {
		closeAll()
		wg.Wait()
	})
	for range clients {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", b.addr, waitBound)
			if err != nil {
				answer("dial failed: " + err.Error())
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if _, err := c.Write(request); err != nil {
				answer(cutOff) // answered 503 and closed before it was all sent, or closed by the test
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(2 * waitBound))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				answer(cutOff)
				return
			}
			resp.Body.Close()
			answer(resp.Status)
		})
	}

	peak := before
	sample := func() { peak = max(peak, procStatus(t, pid, "VmRSS")) }
	// Until every client but the 64 whose bodies are being read has its
	// answer.
	deadline := time.Now().Add(waitBound)
	for countAnswered() < clients-slots {
		sample()
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d clients answered after %v, want all but the %d whose bodies are read", countAnswered(), clients, waitBound, slots)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sample()
	mu.Lock()
	for what, n := range answers {
		if what != "503 Service Unavailable" && what != cutOff {
			t.Errorf("%d stalled clients got %q, want 503, or the connection closed", n, what)
		}
	}
	mu.Unlock()
	if status, _ := signed(t, b.addr, "acme", wabaPayload(e2eWABAID, textMsg("wamid.STALL-1"))); status != http.StatusServiceUnavailable {
		t.Errorf("legitimate POST while the slots are full = %d, want 503", status)
	}
	if n := countAnswered(); n != clients-slots {
		t.Errorf("%d clients answered while the slots are full, want %d", n, clients-slots)
	}

	// The clients give up. The connector reads what each sent, then
	// answers it 400 (body unreadable) and frees its slot.
	closeAll()
	unreadable := func() float64 {
		return counter(t, b.addr, "connector_webhook_rejected_total", map[string]string{"reason": "body_unreadable"})
	}
	for unreadable() < slots {
		sample()
		if time.Now().After(deadline.Add(waitBound)) {
			t.Fatalf("%v of the %d stalled bodies read to their end after the clients closed, want all", unreadable(), slots)
		}
		time.Sleep(10 * time.Millisecond)
	}
	sample()
	peak = max(peak, procStatus(t, pid, "VmHWM"))
	if status, res := signed(t, b.addr, "acme", wabaPayload(e2eWABAID, textMsg("wamid.STALL-2"))); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("legitimate POST once the stalled clients left = %d %+v, want 200, delivered", status, res)
	}

	t.Logf("connector RSS: %d MiB before, %d MiB at the peak: %d MiB more (bound %d MiB)",
		before>>20, peak>>20, (peak-before)>>20, growthBound>>20)
	if peak-before > growthBound {
		t.Errorf("the connector's RSS grew by %d MiB under %d stalled bodies, want at most %d MiB",
			(peak-before)>>20, clients, growthBound>>20)
	}
}

// cutOff is what a stalled client got when the connector closed the
// connection before it could read an answer.
const cutOff = "connection closed"

// TestHardening_BodiesNoHandlerReadsCloseTheConnection: a request whose
// body is not read to its end, a webhook POST refused before its body is
// read or a request with a body on any other route, is answered with
// Connection: close, so that the server does not read the body after the
// answer, outside http.max_inflight_bodies. A request whose body is read,
// and one without a body, keep their connection.
func TestHardening_BodiesNoHandlerReadsCloseTheConnection(t *testing.T) {
	path := acmeConfig(t, `
store: memory
http: {addr: "127.0.0.1:0"}`)
	b := startBinary(t, path)
	body := bytes.Repeat([]byte("x"), 200<<10)
	payload := wabaPayload(e2eWABAID, textMsg("wamid.KEEP-1"))

	tests := []struct {
		name       string
		method     string
		path       string
		body       io.Reader
		sign       bool
		wantStatus int
		wantClose  bool
	}{
		{"handshake with a body", http.MethodGet, "/webhook/acme?hub.mode=subscribe", bytes.NewReader(body), false, http.StatusForbidden, true},
		{"handshake with a chunked body", http.MethodGet, "/webhook/acme?hub.mode=subscribe", io.MultiReader(bytes.NewReader(body)), false, http.StatusForbidden, true},
		{"PUT to the webhook", http.MethodPut, "/webhook/acme", bytes.NewReader(body), false, http.StatusMethodNotAllowed, true},
		{"POST below the webhook", http.MethodPost, "/webhook/acme/more", bytes.NewReader(body), false, http.StatusNotFound, true},
		{"POST without a tenant", http.MethodPost, "/webhook/", bytes.NewReader(body), false, http.StatusNotFound, true},
		{"POST elsewhere", http.MethodPost, "/elsewhere", bytes.NewReader(body), false, http.StatusNotFound, true},
		{"POST to an unclean path", http.MethodPost, "/webhook/.", bytes.NewReader(body), false, http.StatusTemporaryRedirect, true},
		{"POST to a parent path", http.MethodPost, "/webhook/..", bytes.NewReader(body), false, http.StatusTemporaryRedirect, true},
		{"webhook POST without a signature", http.MethodPost, "/webhook/acme", bytes.NewReader(payload), false, http.StatusUnauthorized, true},
		{"health check with a body", http.MethodGet, "/healthz", bytes.NewReader(body), false, http.StatusOK, true},
		{"health check", http.MethodGet, "/healthz", nil, false, http.StatusOK, false},
		{"webhook POST", http.MethodPost, "/webhook/acme", bytes.NewReader(payload), true, http.StatusOK, false},
		{"webhook POST of an unknown tenant", http.MethodPost, "/webhook/nobody", bytes.NewReader(payload), true, http.StatusUnauthorized, false},
	}
	client := &http.Client{
		Timeout:       waitBound,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+b.addr+tt.path, tt.body)
			if err != nil {
				t.Fatal(err)
			}
			if tt.sign {
				req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(e2eAppSecret), payload))
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || resp.Close != tt.wantClose {
				t.Errorf("%s %s = %d, Connection: close %t; want %d, %t", tt.method, tt.path, resp.StatusCode, resp.Close, tt.wantStatus, tt.wantClose)
			}
		})
	}
}

// TestHardening_StalledBodyTimesOut: a body not sent within
// http.body_timeout is answered 408, through every wrapper the connector
// puts around the webhook handler, which must let it set the connection's
// read deadline.
func TestHardening_StalledBodyTimesOut(t *testing.T) {
	b := startBinary(t, acmeConfig(t, `
store: memory
http: {addr: "127.0.0.1:0", body_timeout: 1s}`))
	c, err := net.DialTimeout("tcp", b.addr, waitBound)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := fmt.Fprintf(c, "POST /webhook/acme HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n%s: sha256=%s\r\n\r\n{\"object\":",
		b.addr, webhook.SignatureHeader, strings.Repeat("0", 64)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(waitBound))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("stalled body = %s, Connection: close %t; want 408, closed", resp.Status, resp.Close)
	}
	if strings.Contains(b.logs.String(), "without a deadline") {
		t.Errorf("the body was read without its deadline:\n%s", b.logs)
	}
}
