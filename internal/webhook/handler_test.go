package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/webhook"
	"github.com/wa2genesys/connectorcache/ports"
)

const (
	appSecret   = "test-app-secret"
	verifyToken = "test-verify-token"
)

// recorder is a deliverer that records what it is given; fail, when set,
// decides which deliveries fail.
type recorder struct {
	mu   sync.Mutex
	got  []ports.InboundMessage
	fail func(ports.InboundMessage) error
}

func (r *recorder) Deliver(_ context.Context, msg ports.InboundMessage) error {
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
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &harness{
		dedupe: domain.NewDeduplicator(memory.NewDedupeStore(), domain.DeduplicatorConfig{}),
		sink:   &recorder{},
		reg:    reg,
	}
	hs.h = webhook.NewHandler(webhook.Config{
		AppSecret:    []byte(appSecret),
		VerifyTokens: map[string]string{"acme": verifyToken},
		Dedupe:       hs.dedupe,
		Deliverer:    hs.sink,
		Metrics:      metrics,
	})
	return hs
}

// post sends body to tenant's webhook, signed with sig, and returns the
// answer's status and decoded body.
func (hs *harness) post(t *testing.T, tenant string, body []byte, sig string) (int, webhook.Result) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhook/"+tenant, bytes.NewReader(body))
	if sig != "" {
		req.Header.Set(webhook.SignatureHeader, sig)
	}
	rec := httptest.NewRecorder()
	hs.h.ServeHTTP(rec, req)
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
			http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
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
	sign := func(b []byte) string { return webhook.Sign([]byte(appSecret), b) }
	tests := []struct {
		name   string
		method string
		tenant string
		body   []byte
		sig    string
		want   int
	}{
		{"unknown tenant", http.MethodPost, "nobody", text, sign(text), http.StatusNotFound},
		{"2 MiB body", http.MethodPost, "acme", big, sign(big), http.StatusRequestEntityTooLarge},
		{"missing signature", http.MethodPost, "acme", text, "", http.StatusUnauthorized},
		{"bad signature", http.MethodPost, "acme", text, webhook.Sign([]byte("not-the-secret"), text), http.StatusUnauthorized},
		{"signature of another body", http.MethodPost, "acme", text, sign(notJSON), http.StatusUnauthorized},
		{"malformed JSON", http.MethodPost, "acme", notJSON, sign(notJSON), http.StatusBadRequest},
		{"not a WhatsApp object", http.MethodPost, "acme", otherObject, sign(otherObject), http.StatusBadRequest},
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
	hs.sink.fail = func(m ports.InboundMessage) error {
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

func TestHandler_CancelledRequestReleasesItsClaim(t *testing.T) {
	hs := newHarness(t)
	hs.sink.fail = func(ports.InboundMessage) error { return context.Canceled }
	body := fixture(t, "text-message.json")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/webhook/acme", bytes.NewReader(body))
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
	hs.h.ServeHTTP(httptest.NewRecorder(), req)

	hs.sink.mu.Lock()
	hs.sink.fail = nil
	hs.sink.mu.Unlock()
	if status, res := hs.postSigned(t, body); status != http.StatusOK || res.Delivered != 1 {
		t.Errorf("retry after a cancelled request = %d %+v, want it delivered", status, res)
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
	hs.sink.fail = func(ports.InboundMessage) error { return errors.New("down") }
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
