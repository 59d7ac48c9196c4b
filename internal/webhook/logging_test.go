package webhook_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// maxLoggedField is the most any log field may hold, in bytes, whatever a
// request carries.
const maxLoggedField = 200

// checkLogSizes fails the test for a log whose message or field is longer
// than maxLoggedField.
func checkLogSizes(t *testing.T, logs *observer.ObservedLogs) {
	t.Helper()
	for _, e := range logs.All() {
		if len(e.Message) > maxLoggedField {
			t.Errorf("log message of %d bytes", len(e.Message))
		}
		for k, v := range e.ContextMap() {
			if s := fmt.Sprint(v); len(s) > maxLoggedField {
				t.Errorf("log %q: field %s of %d bytes: %.80q…", e.Message, k, len(s), s)
			}
		}
	}
}

// TestHandler_LogsWhatRequestsCarryOnlyAsIDsOrLengths sends requests whose
// tenant ids and message fields are not ids, and wants them logged as their
// lengths, and no log field longer than maxLoggedField.
func TestHandler_LogsWhatRequestsCarryOnlyAsIDsOrLengths(t *testing.T) {
	long := strings.Repeat("a", 1_000_000)
	text := fixture(t, "text-message.json")
	poison := payload(entry(wabaAcme, phoneAcme,
		map[string]any{"from": "1", "id": strings.Repeat("w", 600), "type": strings.Repeat("t", 1000)}))
	const bidiID = "wamid.\u202egpj.exe"
	bidi := payload(entry(wabaAcme, phoneAcme, textMessage(bidiID)))
	newPost := func(tenant string, body []byte, sig string) func() *http.Request {
		return func() *http.Request {
			req := httptest.NewRequest(http.MethodPost, "/webhook/"+tenant, bytes.NewReader(body))
			if sig != "" {
				req.Header.Set(webhook.SignatureHeader, sig)
			}
			return req
		}
	}
	sign := func(b []byte) string { return webhook.Sign([]byte(appSecret), b) }
	tests := []struct {
		name string
		give func() *http.Request
		want map[string]any // fields some log must have
	}{
		{"1,000,000-byte tenant, signed", newPost(long, text, sign(text)), map[string]any{"tenant_len": int64(len(long))}},
		{"1,000,000-byte tenant, unsigned", newPost(long, text, ""), map[string]any{"tenant_len": int64(len(long))}},
		{"1,000,000-byte tenant, handshake", func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/webhook/"+long+"?hub.mode=subscribe&hub.verify_token=x&hub.challenge=1", nil)
		}, map[string]any{"tenant_len": int64(len(long))}},
		{"tenant with a newline", newPost("a%0Ab", text, sign(text)), map[string]any{"tenant_len": int64(3)}},
		{"tenant with a colon", newPost("acme:1", text, sign(text)), map[string]any{"tenant_len": int64(6)}},
		{"long message id and type", newPost("acme", poison, sign(poison)), map[string]any{"type_len": int64(1000), "message_id_len": int64(600)}},
		{"message id with a bidirectional override", newPost("acme", bidi, sign(bidi)), map[string]any{"tenant": "acme", "message_id_len": int64(len(bidiID))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			hs.serve(t, tt.give())
			checkLogSizes(t, hs.logs)
			found := false
			for _, e := range hs.logs.All() {
				m, ok := e.ContextMap(), true
				for k, v := range tt.want {
					ok = ok && m[k] == v
				}
				found = found || ok
			}
			if !found {
				t.Errorf("no log with fields %v among %d logs", tt.want, hs.logs.Len())
			}
		})
	}
}

// TestHandler_UnknownTenantIDsAreLoggedAsLengths sends requests to tenant
// ids that are not configured, some of which pass the id syntax check, and
// wants them logged as their lengths only.
func TestHandler_UnknownTenantIDsAreLoggedAsLengths(t *testing.T) {
	text := fixture(t, "text-message.json")
	ids := []string{
		"nobody",
		"acme\u200b",        // a zero-width space after a configured id
		"\u202eemca",        // a right-to-left override
		"acme\u2066x\u2069", // a bidirectional isolate
	}
	for _, id := range ids {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			t.Run(fmt.Sprintf("%s %+q", method, id), func(t *testing.T) {
				hs := newHarness(t)
				target := "/webhook/" + url.PathEscape(id)
				var req *http.Request
				if method == http.MethodGet {
					req = httptest.NewRequest(method, target+"?hub.mode=subscribe&hub.verify_token="+verifyToken+"&hub.challenge=1", nil)
				} else {
					req = httptest.NewRequest(method, target, bytes.NewReader(text))
					req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), text))
				}
				if rec := hs.serve(t, req); rec.Code != http.StatusForbidden && rec.Code != http.StatusUnauthorized {
					t.Errorf("%s = %d, want it refused", method, rec.Code)
				}
				found := false
				for _, e := range hs.logs.All() {
					m := e.ContextMap()
					if v, ok := m["tenant"]; ok {
						t.Errorf("log %q names the tenant %+q", e.Message, v)
					}
					found = found || m["tenant_len"] == int64(len(id))
				}
				if !found {
					t.Errorf("no log with tenant_len %d among %d logs", len(id), hs.logs.Len())
				}
			})
		}
	}
}

// TestHandler_WarningsAboutBadRequestsAreSampled logs through a logger
// whose clock stands still: the sampler reads the time of each entry, which
// the logger's clock gives, so every request falls in one sampling period
// however long the loop takes.
func TestHandler_WarningsAboutBadRequestsAreSampled(t *testing.T) {
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) {
		cfg.Logger = cfg.Logger.WithOptions(zap.WithClock(stoppedClock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}))
	}})
	body := fixture(t, "text-message.json")
	const requests = 50
	for range requests {
		hs.post(t, "acme", body, webhook.Sign([]byte("not-the-secret"), body))
		hs.post(t, "nobody", body, webhook.Sign([]byte(appSecret), body))
	}
	for _, msg := range []string{"webhook signature invalid", "webhook for unknown tenant"} {
		if n := hs.logs.FilterMessage(msg).Len(); n != 1 {
			t.Errorf("%d %q warnings for %d requests, want 1", n, msg, requests)
		}
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "unauthorized"}); got != 2*requests {
		t.Errorf("rejected{reason=unauthorized} = %v, want every request counted: %d", got, 2*requests)
	}
}

// stoppedClock is a zapcore.Clock whose time stands still at now.
type stoppedClock struct{ now time.Time }

func (c stoppedClock) Now() time.Time                         { return c.now }
func (c stoppedClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
