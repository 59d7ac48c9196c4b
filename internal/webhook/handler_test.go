package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/adapters/failopen"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/fakeclock"
	"github.com/wa2genesys/connectorcache/internal/webhook"
	"github.com/wa2genesys/connectorcache/ports"
)

const (
	appSecret   = "test-app-secret"
	verifyToken = "test-verify-token"
	// wabaAcme and phoneAcme are tenant acme's WhatsApp Business Account
	// and phone number, those of the fixtures.
	wabaAcme  = "209988776655443"
	phoneAcme = "114477885522001"
	// wabaGlobex is tenant globex's account. Globex shares acme's Meta
	// app, and so its app secret, as tenants of one connector may.
	wabaGlobex  = "301122334455667"
	phoneGlobex = "301122334455001"
)

// testTenants are the tenants a harness serves by default.
func testTenants() map[string]webhook.Tenant {
	return map[string]webhook.Tenant{
		"acme":   {VerifyToken: verifyToken, AppSecret: []byte(appSecret), WABAIDs: []string{wabaAcme}},
		"globex": {VerifyToken: "globex-verify-token", AppSecret: []byte(appSecret), WABAIDs: []string{wabaGlobex}},
	}
}

// recorder is a deliverer that records what it is given; fail, when set,
// decides which deliveries fail.
type recorder struct {
	mu   sync.Mutex
	got  []webhook.Message
	fail func(webhook.Message) error
}

func (r *recorder) Deliver(_ context.Context, msg webhook.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(msg); err != nil {
			return err
		}
	}
	r.got = append(r.got, msg)
	return nil
}

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, m := range r.got {
		ids = append(ids, m.MessageID)
	}
	return ids
}

type harness struct {
	h      *webhook.Handler
	dedupe *domain.Deduplicator
	sink   *recorder
	reg    *prometheus.Registry
	logs   *observer.ObservedLogs
}

// harnessOptions vary the handler a harness serves.
type harnessOptions struct {
	// store is the dedupe store; nil means a fresh memory store.
	store ports.DedupeStore
	// dedupe configures the deduplicator.
	dedupe domain.DeduplicatorConfig
	// wrap, when set, wraps the recorder in the deliverer the handler uses.
	wrap func(webhook.Deliverer) webhook.Deliverer
	// retryAfter is the handler's Config.RetryAfter.
	retryAfter time.Duration
	// config, when set, changes the handler's Config before it is made.
	config func(*webhook.Config)
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, harnessOptions{})
}

func newHarnessWith(t *testing.T, opt harnessOptions) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if opt.store == nil {
		opt.store = memory.NewDedupeStore()
	}
	core, logs := observer.New(zap.DebugLevel)
	hs := &harness{
		dedupe: domain.NewDeduplicator(opt.store, opt.dedupe),
		sink:   &recorder{},
		reg:    reg,
		logs:   logs,
	}
	var deliverer webhook.Deliverer = hs.sink
	if opt.wrap != nil {
		deliverer = opt.wrap(hs.sink)
	}
	cfg := webhook.Config{
		Tenants:    testTenants(),
		Dedupe:     hs.dedupe,
		Deliverer:  deliverer,
		Logger:     zap.New(core),
		Metrics:    metrics,
		RetryAfter: opt.retryAfter,
	}
	if opt.config != nil {
		opt.config(&cfg)
	}
	hs.h = webhook.NewHandler(cfg)
	return hs
}

// serve serves req, failing the test if the handler panics.
func (hs *harness) serve(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	func() {
		defer func() {
			if v := recover(); v != nil {
				t.Fatalf("handler panicked: %v", v)
			}
		}()
		hs.h.ServeHTTP(rec, req)
	}()
	return rec
}

// postRecorded sends body to tenant acme's webhook, signed, and returns the
// whole answer.
func (hs *harness) postRecorded(t *testing.T, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook/acme", bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
	return hs.serve(t, req)
}

// post sends body to tenant's webhook, signed with sig, and returns the
// answer's status and decoded body.
func (hs *harness) post(t *testing.T, tenant string, body []byte, sig string) (int, webhook.Result) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook/"+tenant, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	rec := hs.serve(t, req)
	var res webhook.Result
	if rec.Code == http.StatusOK || rec.Code == http.StatusServiceUnavailable {
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatalf("answer %d body %q: %v", rec.Code, rec.Body, err)
		}
	}
	return rec.Code, res
}

func (hs *harness) postSigned(t *testing.T, body []byte) (int, webhook.Result) {
	t.Helper()
	return hs.post(t, "acme", body, webhook.Sign([]byte(appSecret), body))
}

func TestHandler_Verify(t *testing.T) {
	tests := []struct {
		name       string
		tenant     string
		give       url.Values
		wantStatus int
		wantBody   string
	}{
		{"handshake", "acme", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1158201444"}},
			http.StatusOK, "1158201444"},
		{"wrong verify token", "acme", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {"guess"}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
		{"no verify token", "acme", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
		{"wrong mode", "acme", url.Values{"hub.mode": {"unsubscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
		{"unknown tenant", "nobody", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
		{"another tenant's verify token", "globex", url.Values{"hub.mode": {"subscribe"}, "hub.verify_token": {verifyToken}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
		{"tenant without a verify token", "initech", url.Values{"hub.mode": {"subscribe"}, "hub.challenge": {"1"}},
			http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) {
				cfg.Tenants["initech"] = webhook.Tenant{AppSecret: []byte(appSecret), WABAIDs: []string{"1"}}
			}})
			rec := httptest.NewRecorder()
			hs.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/webhook/"+tt.tenant+"?"+tt.give.Encode(), nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want the challenge %q", rec.Body, tt.wantBody)
			}
			if tt.wantStatus != http.StatusOK && strings.Contains(rec.Body.String(), verifyToken) {
				t.Errorf("refusal %q shows the verify token", rec.Body)
			}
		})
	}
}

func TestHandler_RejectsWithoutClaimingOrDelivering(t *testing.T) {
	text := fixture(t, "text-message.json")
	big := append(bytes.Repeat([]byte(" "), 2<<20), text...)
	notJSON := []byte("not json")
	otherObject := []byte(`{"object":"page","entry":[]}`)
	notUTF8 := bytes.Replace(text, []byte("Hello"), []byte("He\xffllo"), 1)
	noEntries := []byte(`{"object":"whatsapp_business_account","entry":[]}`)
	globex := payload(entry(wabaGlobex, phoneGlobex, textMessage("wamid.globex")))
	sign := func(b []byte) string { return webhook.Sign([]byte(appSecret), b) }
	tests := []struct {
		name   string
		method string
		tenant string
		body   []byte
		sig    string
		want   int
	}{
		{"unknown tenant", http.MethodPost, "nobody", text, sign(text), http.StatusUnauthorized},
		{"2 MiB body", http.MethodPost, "acme", big, sign(big), http.StatusRequestEntityTooLarge},
		{"missing signature", http.MethodPost, "acme", text, "", http.StatusUnauthorized},
		{"bad signature", http.MethodPost, "acme", text, webhook.Sign([]byte("not-the-secret"), text), http.StatusUnauthorized},
		{"signature of another body", http.MethodPost, "acme", text, sign(notJSON), http.StatusUnauthorized},
		{"signature not hex", http.MethodPost, "acme", text, "sha256=" + strings.Repeat("z", 64), http.StatusUnauthorized},
		{"malformed JSON", http.MethodPost, "acme", notJSON, sign(notJSON), http.StatusBadRequest},
		{"not a WhatsApp object", http.MethodPost, "acme", otherObject, sign(otherObject), http.StatusBadRequest},
		{"not UTF-8", http.MethodPost, "acme", notUTF8, sign(notUTF8), http.StatusBadRequest},
		{"no entries", http.MethodPost, "acme", noEntries, sign(noEntries), http.StatusForbidden},
		{"another tenant's entries", http.MethodPost, "acme", globex, sign(globex), http.StatusForbidden},
		{"other method", http.MethodPut, "acme", text, sign(text), http.StatusMethodNotAllowed},
		{"no tenant", http.MethodPost, "", text, sign(text), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			req := httptest.NewRequest(tt.method, "/webhook/"+tt.tenant, bytes.NewReader(tt.body))
			if tt.sig != "" {
				req.Header.Set(webhook.SignatureHeader, tt.sig)
			}
			rec := httptest.NewRecorder()
			hs.h.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Errorf("status = %d, want %d", rec.Code, tt.want)
			}
			if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
				t.Errorf("dedupe stats = %+v, want nothing claimed", st)
			}
			if ids := hs.sink.ids(); len(ids) != 0 {
				t.Errorf("delivered %v, want nothing", ids)
			}
		})
	}
}

func TestHandler_DeliversOnceThenSkipsDuplicates(t *testing.T) {
	hs := newHarness(t)
	body := fixture(t, "text-message.json")
	for i, want := range []webhook.Result{{Delivered: 1}, {Duplicates: 1}} {
		status, res := hs.postSigned(t, body)
		if status != http.StatusOK || res != want {
			t.Errorf("POST %d = %d %+v, want 200 %+v", i+1, status, res, want)
		}
	}
	hs.sink.mu.Lock()
	defer hs.sink.mu.Unlock()
	if len(hs.sink.got) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(hs.sink.got))
	}
	if m := hs.sink.got[0]; m.TenantID != "acme" || m.MessageID != wamidText || m.Nickname != "Dana Ortiz" {
		t.Errorf("delivered %+v, want the text message for tenant acme", m)
	}
}

func TestHandler_BatchWithOneSeenDeliversTheOtherTwo(t *testing.T) {
	hs := newHarness(t)
	if status, _ := hs.postSigned(t, fixture(t, "text-message.json")); status != http.StatusOK {
		t.Fatalf("first POST = %d", status)
	}
	status, res := hs.postSigned(t, fixture(t, "batch-three-messages.json"))
	if want := (webhook.Result{Delivered: 2, Duplicates: 1}); status != http.StatusOK || res != want {
		t.Errorf("batch POST = %d %+v, want 200 %+v", status, res, want)
	}
	if got, want := hs.sink.ids(), []string{wamidText, wamidSecond, wamidThird}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

func TestHandler_FailedDeliveryIsReleasedAndRedelivered(t *testing.T) {
	hs := newHarness(t)
	down := true
	hs.sink.fail = func(m webhook.Message) error {
		if down && m.MessageID == wamidSecond {
			return errors.New("genesys answered 500")
		}
		return nil
	}
	body := fixture(t, "batch-three-messages.json")
	status, res := hs.postSigned(t, body)
	if want := (webhook.Result{Delivered: 1, Failed: 1, Deferred: 1}); status != http.StatusServiceUnavailable || res != want {
		t.Errorf("POST while failing = %d %+v, want 503 %+v", status, res, want)
	}
	hs.sink.mu.Lock()
	down = false
	hs.sink.mu.Unlock()
	status, res = hs.postSigned(t, body)
	if want := (webhook.Result{Delivered: 2, Duplicates: 1}); status != http.StatusOK || res != want {
		t.Errorf("redelivery = %d %+v, want 200 %+v", status, res, want)
	}
	if got, want := hs.sink.ids(), []string{wamidText, wamidSecond, wamidThird}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v, want each once, in order: %v", got, want)
	}
	if st := hs.dedupe.Stats(); st.Released != 1 || st.Committed != 3 {
		t.Errorf("dedupe stats = %+v, want 1 released, 3 committed", st)
	}
}

// TestHandler_CancelledRequestStartsNothing: a request cancelled before its
// messages start claims none of them, so that none is held until its claim
// expires; it is answered 503 with them deferred, and the redelivery
// delivers them.
func TestHandler_CancelledRequestStartsNothing(t *testing.T) {
	hs := newHarness(t)
	body := fixture(t, "batch-three-messages.json")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/webhook/acme", bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)

	var res webhook.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != http.StatusServiceUnavailable || res != (webhook.Result{Deferred: 3}) {
		t.Errorf("cancelled request = %d %s, want 503 with 3 deferred", rec.Code, rec.Body)
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
	if got := hs.sink.ids(); len(got) != 0 {
		t.Errorf("delivered %v, want nothing", got)
	}
	if status, res := hs.postSigned(t, body); status != http.StatusOK || res.Delivered != 3 {
		t.Errorf("redelivery = %d %+v, want the 3 delivered", status, res)
	}
}

// gate is a deliverer that holds the delivery of one message until open
// is closed, signalling on arrived when it gets there; other messages pass
// straight to next. The held delivery ignores its context, as a stuck one
// does.
type gate struct {
	next    webhook.Deliverer
	id      string
	arrived chan struct{}
	open    chan struct{}
}

func newGate(id string) *gate {
	return &gate{id: id, arrived: make(chan struct{}, 1), open: make(chan struct{})}
}

// wrap makes g pass the messages it does not hold to next.
func (g *gate) wrap(next webhook.Deliverer) webhook.Deliverer {
	g.next = next
	return g
}

func (g *gate) Deliver(ctx context.Context, msg webhook.Message) error {
	if msg.MessageID == g.id {
		select {
		case g.arrived <- struct{}{}:
		default:
		}
		<-g.open
	}
	return g.next.Deliver(ctx, msg)
}

// startHeld POSTs body in the background and returns once the delivery of
// the gated message is held; the answer comes on the returned channel.
func (hs *harness) startHeld(t *testing.T, g *gate, body []byte) <-chan *httptest.ResponseRecorder {
	t.Helper()
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		req := httptest.NewRequest(http.MethodPost, "/webhook/acme", bytes.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, req)
		done <- rec
	}()
	select {
	case <-g.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the held delivery never started")
	}
	return done
}

func decodeResult(t *testing.T, rec *httptest.ResponseRecorder) webhook.Result {
	t.Helper()
	var res webhook.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		t.Fatalf("answer %d body %q: %v", rec.Code, rec.Body, err)
	}
	return res
}

func TestHandler_InFlightMessageAnswers503UntilItsHolderCommits(t *testing.T) {
	g := newGate(wamidText)
	hs := newHarnessWith(t, harnessOptions{wrap: g.wrap})
	body := fixture(t, "text-message.json")
	held := hs.startHeld(t, g, body)

	rec := hs.postRecorded(t, body)
	if res := decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != (webhook.Result{InFlight: 1}) {
		t.Errorf("POST while the message is in flight = %d %+v, want 503 {InFlight:1}", rec.Code, res)
	}
	if got := rec.Header().Get("Retry-After"); got != "5" {
		t.Errorf("Retry-After = %q, want the default 5", got)
	}
	if ids := hs.sink.ids(); len(ids) != 0 {
		t.Errorf("delivered %v while the holder's delivery is held, want nothing", ids)
	}

	close(g.open)
	first := <-held
	if res := decodeResult(t, first); first.Code != http.StatusOK || res != (webhook.Result{Delivered: 1}) {
		t.Errorf("holder's POST = %d %+v, want 200 {Delivered:1}", first.Code, res)
	}
	rec = hs.postRecorded(t, body)
	if res := decodeResult(t, rec); rec.Code != http.StatusOK || res != (webhook.Result{Duplicates: 1}) {
		t.Errorf("redelivery after the commit = %d %+v, want 200 {Duplicates:1}", rec.Code, res)
	}
	if rec.Header().Get("Retry-After") != "" {
		t.Errorf("a 200 answer carries Retry-After %q", rec.Header().Get("Retry-After"))
	}
	if got := hs.sink.ids(); len(got) != 1 || got[0] != wamidText {
		t.Errorf("delivered %v, want the message exactly once", got)
	}
}

func TestHandler_InFlightMessageDefersTheRestOfTheBatch(t *testing.T) {
	g := newGate(wamidSecond)
	hs := newHarnessWith(t, harnessOptions{wrap: g.wrap})
	body := fixture(t, "batch-three-messages.json")
	held := hs.startHeld(t, g, body) // the first delivered, the second held

	rec := hs.postRecorded(t, body)
	if want, res := (webhook.Result{Duplicates: 1, InFlight: 1, Deferred: 1}), decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != want {
		t.Errorf("concurrent POST = %d %+v, want 503 %+v", rec.Code, res, want)
	}
	close(g.open)
	if first := <-held; first.Code != http.StatusOK {
		t.Errorf("holder's POST = %d %s, want 200", first.Code, first.Body)
	}
	if got, want := hs.sink.ids(), []string{wamidText, wamidSecond, wamidThird}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("delivered %v, want each once, in order: %v", got, want)
	}
}

func TestHandler_RetryAfter(t *testing.T) {
	tests := []struct {
		give time.Duration
		want string
	}{
		{0, "5"},
		{time.Millisecond, "1"},
		{1500 * time.Millisecond, "2"},
		{30 * time.Second, "30"},
	}
	for _, tt := range tests {
		t.Run(tt.give.String(), func(t *testing.T) {
			hs := newHarnessWith(t, harnessOptions{retryAfter: tt.give})
			hs.sink.fail = func(webhook.Message) error { return errors.New("genesys answered 500") }
			rec := hs.postRecorded(t, fixture(t, "text-message.json"))
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != tt.want {
				t.Errorf("answer = %d, Retry-After %q; want 503, %q", rec.Code, rec.Header().Get("Retry-After"), tt.want)
			}
		})
	}
}

// releaseFailsOnce is a dedupe store whose first Release fails, as one
// during a short Redis outage does.
type releaseFailsOnce struct {
	ports.DedupeStore
	failed atomic.Bool
}

func (s *releaseFailsOnce) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	if s.failed.CompareAndSwap(false, true) {
		return false, errors.New("read tcp 127.0.0.1:6379: connection reset by peer")
	}
	return s.DedupeStore.Release(ctx, tenantID, messageID, owner)
}

// TestHandler_LostReleaseIsRedeliveredAfterTheClaimExpires follows a
// message whose delivery failed and whose release the fail-open store then
// skipped: its claim stays held, with no holder left to settle it. Meta's
// redeliveries are answered 503 until the claim expires, then the message is
// delivered, once.
func TestHandler_LostReleaseIsRedeliveredAfterTheClaimExpires(t *testing.T) {
	const claimTTL = time.Second
	clock := fakeclock.New()
	events := &failopen.Events{}
	store := failopen.NewDedupeStore(&releaseFailsOnce{DedupeStore: memory.NewDedupeStore(memory.WithClock(clock.Now))}, nil, events)
	hs := newHarnessWith(t, harnessOptions{store: store, dedupe: domain.DeduplicatorConfig{ClaimTTL: claimTTL}})
	failures := 1
	hs.sink.fail = func(webhook.Message) error {
		if failures > 0 {
			failures--
			return errors.New("genesys answered 500")
		}
		return nil
	}
	body := fixture(t, "text-message.json")

	if status, res := hs.postSigned(t, body); status != http.StatusServiceUnavailable || res != (webhook.Result{Failed: 1}) {
		t.Fatalf("POST while delivery fails = %d %+v, want 503 {Failed:1}", status, res)
	}
	if got := events.Snapshot()["release"]; got != 1 {
		t.Fatalf("fail-open release events = %d, want 1: the scenario needs the release lost", got)
	}
	for i := 0; i < 3; i++ {
		clock.Advance(claimTTL / 4)
		rec := hs.postRecorded(t, body)
		if res := decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != (webhook.Result{InFlight: 1}) {
			t.Errorf("redelivery %d within the claim TTL = %d %+v, want 503 {InFlight:1}", i+1, rec.Code, res)
		}
		if rec.Header().Get("Retry-After") == "" {
			t.Errorf("redelivery %d: 503 without Retry-After", i+1)
		}
	}
	if ids := hs.sink.ids(); len(ids) != 0 {
		t.Fatalf("delivered %v within the claim TTL, want nothing yet", ids)
	}

	clock.Advance(claimTTL / 4) // the lost claim has expired
	if status, res := hs.postSigned(t, body); status != http.StatusOK || res != (webhook.Result{Delivered: 1}) {
		t.Errorf("redelivery after the claim TTL = %d %+v, want 200 {Delivered:1}", status, res)
	}
	if status, res := hs.postSigned(t, body); status != http.StatusOK || res != (webhook.Result{Duplicates: 1}) {
		t.Errorf("redelivery after the delivery = %d %+v, want 200 {Duplicates:1}", status, res)
	}
	if got := hs.sink.ids(); len(got) != 1 || got[0] != wamidText {
		t.Errorf("delivered %v, want the message exactly once", got)
	}
}

// panicsOnce is a deliverer whose first delivery panics.
type panicsOnce struct {
	next     webhook.Deliverer
	panicked atomic.Bool
}

func (p *panicsOnce) Deliver(ctx context.Context, msg webhook.Message) error {
	if p.panicked.CompareAndSwap(false, true) {
		panic("deliverer bug") // as a nil map write in a careless deliverer would
	}
	return p.next.Deliver(ctx, msg)
}

func TestHandler_PanickingDeliveryReleasesItsClaim(t *testing.T) {
	hs := newHarnessWith(t, harnessOptions{wrap: func(next webhook.Deliverer) webhook.Deliverer {
		return &panicsOnce{next: next}
	}})
	body := fixture(t, "text-message.json")

	rec := hs.postRecorded(t, body)
	if res := decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != (webhook.Result{Failed: 1}) {
		t.Errorf("POST whose delivery panics = %d %+v, want 503 {Failed:1}", rec.Code, res)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if st := hs.dedupe.Stats(); st.Released != 1 {
		t.Errorf("dedupe stats = %+v, want the claim released", st)
	}
	panics := hs.logs.FilterMessage("delivery panicked").All()
	if len(panics) != 1 || !strings.Contains(panics[0].ContextMap()["stack"].(string), "panicsOnce") {
		t.Errorf("panic logs = %+v, want one with the stack of the panic", panics)
	}

	if status, res := hs.postSigned(t, body); status != http.StatusOK || res != (webhook.Result{Delivered: 1}) {
		t.Errorf("redelivery = %d %+v, want 200 {Delivered:1}", status, res)
	}
	if got := hs.sink.ids(); len(got) != 1 || got[0] != wamidText {
		t.Errorf("delivered %v, want the message exactly once", got)
	}
	if got := histogramCount(t, hs.reg, "connector_delivery_duration_seconds", map[string]string{"result": "failed"}); got != 1 {
		t.Errorf("failed deliveries = %d, want the panic counted as one", got)
	}
}

func TestHandler_StatusesAreAcknowledgedNotClaimed(t *testing.T) {
	hs := newHarness(t)
	status, res := hs.postSigned(t, fixture(t, "status-delivered.json"))
	if want := (webhook.Result{Statuses: 1}); status != http.StatusOK || res != want {
		t.Errorf("POST = %d %+v, want 200 %+v", status, res, want)
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
}

func TestHandler_Metrics(t *testing.T) {
	hs := newHarness(t)
	body := fixture(t, "text-message.json")
	hs.postSigned(t, body)
	hs.postSigned(t, body)
	hs.post(t, "acme", body, "")
	hs.sink.fail = func(webhook.Message) error { return errors.New("down") }
	hs.postSigned(t, fixture(t, "image-message.json"))

	tests := []struct {
		code string
		want float64
	}{{"200", 2}, {"401", 1}, {"503", 1}}
	for _, tt := range tests {
		got := counterValue(t, hs.reg, "connector_webhook_requests_total", map[string]string{"method": "post", "code": tt.code})
		if got != tt.want {
			t.Errorf("requests{code=%s} = %v, want %v", tt.code, got, tt.want)
		}
	}
	for result, want := range map[string]uint64{"delivered": 1, "failed": 1} {
		if got := histogramCount(t, hs.reg, "connector_delivery_duration_seconds", map[string]string{"result": result}); got != want {
			t.Errorf("deliveries{result=%s} = %d, want %d", result, got, want)
		}
	}
}

// counterValue returns the value of the counter name with labels in reg.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	m := findMetric(t, reg, name, labels)
	if m == nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) uint64 {
	t.Helper()
	m := findMetric(t, reg, name, labels)
	if m == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}

func findMetric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
					continue metrics
				}
			}
			return m
		}
	}
	return nil
}

// TestHandler_MessagesThatCanNeverBeDeliveredAreSkipped puts poison
// messages in a batch: the others are delivered, the poison ones counted
// and logged without their content, and the answer is 200.
func TestHandler_MessagesThatCanNeverBeDeliveredAreSkipped(t *testing.T) {
	const content = "card 4111 1111 1111 1111"
	hs := newHarness(t)
	body := payload(entry(wabaAcme, phoneAcme,
		textMessage("wamid.good.1"),
		map[string]any{"from": "1", "id": "wamid.bad id", "type": "text", "text": map[string]string{"body": content}},
		map[string]any{"id": "wamid.no-sender", "type": "text", "text": map[string]string{"body": content}},
		map[string]any{"from": "1", "id": "wamid.malformed", "timestamp": 17, "type": "text", "text": map[string]string{"body": content}},
		textMessage("wamid.good.2"),
	))
	status, res := hs.postSigned(t, body)
	if want := (webhook.Result{Delivered: 2, Skipped: 3}); status != http.StatusOK || res != want {
		t.Errorf("POST = %d %+v, want 200 %+v", status, res, want)
	}
	if got := hs.sink.ids(); strings.Join(got, ",") != "wamid.good.1,wamid.good.2" {
		t.Errorf("delivered %v, want the two good messages", got)
	}
	for _, reason := range []string{"bad_id", "no_sender", "malformed"} {
		if got := counterValue(t, hs.reg, "connector_webhook_skipped_messages_total", map[string]string{"reason": reason}); got != 1 {
			t.Errorf("skipped{reason=%s} = %v, want 1", reason, got)
		}
	}
	skipped := hs.logs.FilterMessage("webhook message skipped: it can never be delivered").All()
	want := map[string]any{"tenant": "acme", "index": int64(1), "reason": "bad_id", "type": "text", "message_id_len": int64(len("wamid.bad id"))}
	if len(skipped) == 0 || !reflect.DeepEqual(skipped[0].ContextMap(), want) {
		t.Errorf("skip logs = %+v, want the first with fields %v", skipped, want)
	}
	for _, e := range hs.logs.All() {
		if strings.Contains(fmt.Sprint(e.ContextMap()), content) {
			t.Errorf("log %q shows a message's content: %v", e.Message, e.ContextMap())
		}
	}
}
