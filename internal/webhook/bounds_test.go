package webhook_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// delivererFunc is a webhook.Deliverer made of a function.
type delivererFunc func(ctx context.Context, msg webhook.Message) error

func (f delivererFunc) Deliver(ctx context.Context, msg webhook.Message) error { return f(ctx, msg) }

// pipeBody is a request body that blocks until its pipe is written; started
// is closed on its first Read.
type pipeBody struct {
	r       *io.PipeReader
	w       *io.PipeWriter
	started chan struct{}
	once    sync.Once
}

func newPipeBody() *pipeBody {
	r, w := io.Pipe()
	return &pipeBody{r: r, w: w, started: make(chan struct{})}
}

func (b *pipeBody) Read(p []byte) (int, error) {
	b.once.Do(func() { close(b.started) })
	return b.r.Read(p)
}

// heldBody is a POST whose body is being read, and held there until it is
// released.
type heldBody struct {
	body  *pipeBody
	bytes []byte
	done  chan *httptest.ResponseRecorder
}

// holdBodies starts n POSTs to tenant acme and returns once the handler is
// reading each body: n slots of MaxInflightBodies are held.
func (hs *harness) holdBodies(t *testing.T, n int) []heldBody {
	t.Helper()
	var held []heldBody
	for i := range n {
		b := heldBody{body: newPipeBody(), bytes: payload(entry(wabaAcme, phoneAcme, textMessage(fmt.Sprintf("wamid.held.%d", i)))),
			done: make(chan *httptest.ResponseRecorder, 1)}
		req := httptest.NewRequest(http.MethodPost, "/webhook/acme", b.body)
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), b.bytes))
		go func() {
			rec := httptest.NewRecorder()
			hs.h.ServeHTTP(rec, req)
			b.done <- rec
		}()
		select {
		case <-b.body.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("body %d never read", i)
		}
		held = append(held, b)
	}
	return held
}

// releaseBodies sends each held body whole, and wants each POST answered 200.
func releaseBodies(t *testing.T, held []heldBody) {
	t.Helper()
	for i, b := range held {
		if _, err := b.body.w.Write(b.bytes); err != nil {
			t.Fatal(err)
		}
		_ = b.body.w.Close()
		if rec := <-b.done; rec.Code != http.StatusOK {
			t.Errorf("held POST %d = %d %s, want 200", i, rec.Code, rec.Body)
		}
	}
}

func TestHandler_InflightBodiesAreCapped(t *testing.T) {
	const limit = 2
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) { cfg.MaxInflightBodies = limit }})
	held := hs.holdBodies(t, limit)

	text := fixture(t, "text-message.json")
	spy := newReadSpy(text)
	req := httptest.NewRequest(http.MethodPost, "/webhook/acme", spy)
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), text))
	rec := hs.serve(t, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" || rec.Header().Get("Connection") != "close" {
		t.Errorf("POST beyond the cap = %d, Retry-After %q, Connection %q; want 503, 5, close",
			rec.Code, rec.Header().Get("Retry-After"), rec.Header().Get("Connection"))
	}
	if spy.read.Load() {
		t.Error("the body of the POST beyond the cap was read")
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "busy"}); got != 1 {
		t.Errorf("rejected{reason=busy} = %v, want 1", got)
	}

	releaseBodies(t, held)
	if status, res := hs.postSigned(t, text); status != http.StatusOK || res != (webhook.Result{Delivered: 1}) {
		t.Errorf("POST once the bodies are read = %d %+v, want 200 {Delivered:1}", status, res)
	}
}

// TestHandler_DeclaredTooLargeIsRefusedWithoutASlot holds every slot and
// POSTs a body whose Content-Length is over MaxBodyBytes, to a known tenant
// and to an unknown one: each is answered 413 at once, its body not read.
func TestHandler_DeclaredTooLargeIsRefusedWithoutASlot(t *testing.T) {
	const limit = 1
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) { cfg.MaxInflightBodies = limit }})
	held := hs.holdBodies(t, limit)

	text := fixture(t, "text-message.json")
	var answers []*httptest.ResponseRecorder
	for _, tenant := range []string{"acme", "nobody"} {
		spy := newReadSpy(text)
		req := httptest.NewRequest(http.MethodPost, "/webhook/"+tenant, spy)
		req.ContentLength = 2 << 20
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), text))
		rec := hs.serve(t, req)
		if rec.Code != http.StatusRequestEntityTooLarge || rec.Header().Get("Connection") != "close" ||
			rec.Body.String() != `{"error":"body too large"}`+"\n" {
			t.Errorf("POST to %s with Content-Length 2 MiB = %d %q, Connection %q; want 413 body too large, close",
				tenant, rec.Code, rec.Body, rec.Header().Get("Connection"))
		}
		if spy.read.Load() {
			t.Errorf("the body of the POST to %s was read", tenant)
		}
		answers = append(answers, rec)
	}
	if !reflect.DeepEqual(answers[0].Header(), answers[1].Header()) {
		t.Errorf("known tenant's headers %v, unknown tenant's %v: want them the same", answers[0].Header(), answers[1].Header())
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "too_large"}); got != 2 {
		t.Errorf("rejected{reason=too_large} = %v, want 2", got)
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "busy"}); got != 0 {
		t.Errorf("rejected{reason=busy} = %v, want 0: the declared size is refused before a slot is sought", got)
	}
	releaseBodies(t, held)
}

// TestHandler_StalledBodyTimesOut sends part of a body over a real
// connection and stalls. The bound on the answer is generous: it catches a
// handler that waits for the body for ever, not a slow one.
func TestHandler_StalledBodyTimesOut(t *testing.T) {
	const bodyTimeout = 200 * time.Millisecond
	for _, tenant := range []string{"acme", "nobody"} {
		t.Run(tenant, func(t *testing.T) {
			hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) { cfg.BodyTimeout = bodyTimeout }})
			srv := httptest.NewServer(hs.h)
			defer srv.Close()
			conn, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()

			body := fixture(t, "text-message.json")
			head := fmt.Sprintf("POST /webhook/%s HTTP/1.1\r\nHost: connector\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s: %s\r\n\r\n",
				tenant, len(body), webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Write(body[:len(body)/2]); err != nil {
				t.Fatal(err)
			}
			const bound = 100 * bodyTimeout
			if err := conn.SetReadDeadline(time.Now().Add(bound)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer within %v to a stalled body (BodyTimeout %v): %v", bound, bodyTimeout, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
				t.Errorf("answer = %d, close %v; want 408 and the connection closed", resp.StatusCode, resp.Close)
			}
			if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
				t.Errorf("dedupe stats = %+v, want nothing claimed", st)
			}
		})
	}
}

// TestHandler_BodyDeadlineEndsWithTheBody checks, over a real connection,
// that BodyTimeout bounds reading the body only, not the processing after
// it: every message of a batch whose first delivery runs past the deadline
// is delivered, and the connection serves the next request. The first of
// three stalls twice BodyTimeout after the body is read, so it ends after
// the deadline whatever the scheduling; BodyTimeout is long enough for a
// busy machine to read a small body sent at once.
func TestHandler_BodyDeadlineEndsWithTheBody(t *testing.T) {
	const bodyTimeout = time.Second
	hs := newHarnessWith(t, harnessOptions{
		config: func(cfg *webhook.Config) { cfg.BodyTimeout = bodyTimeout },
		wrap: func(next webhook.Deliverer) webhook.Deliverer {
			return delivererFunc(func(ctx context.Context, msg webhook.Message) error {
				if msg.MessageID == wamidText {
					time.Sleep(2 * bodyTimeout)
				}
				return next.Deliver(ctx, msg)
			})
		},
	})
	srv := httptest.NewServer(hs.h)
	defer srv.Close()
	body := fixture(t, "batch-three-messages.json")
	for i, want := range []webhook.Result{{Delivered: 3}, {Duplicates: 3}} {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhook/acme", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`{"delivered":%d,"duplicates":%d,"in_flight":0,"failed":0,"deferred":0,"skipped":0,"statuses":0}`,
			want.Delivered, want.Duplicates); resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != want {
			t.Errorf("POST %d = %d %s, want 200 %s", i+1, resp.StatusCode, b, want)
		}
	}
}

func TestHandler_TooManyMessages(t *testing.T) {
	tests := []struct {
		name       string
		give       []byte
		wantStatus int
		wantNew    uint64
	}{
		{"1,000 messages", payload(entry(wabaAcme, phoneAcme, textMessages("wamid.m", 1000)...)), http.StatusOK, 1000},
		{"1,001 messages", payload(entry(wabaAcme, phoneAcme, textMessages("wamid.m", 1001)...)), http.StatusRequestEntityTooLarge, 0},
		{"1,001 counting another tenant's", payload(
			entry(wabaAcme, phoneAcme, textMessages("wamid.m", 1)...),
			entry(wabaGlobex, phoneGlobex, textMessages("wamid.g", 1000)...),
		), http.StatusRequestEntityTooLarge, 0},
		{"1,001 counting poison", payload(
			entry(wabaAcme, phoneAcme, append(textMessages("wamid.m", 1000), textMessage("wamid. poison"))...),
		), http.StatusRequestEntityTooLarge, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			rec := hs.postRecorded(t, tt.give)
			if rec.Code != tt.wantStatus {
				t.Errorf("POST = %d %s, want %d", rec.Code, rec.Body, tt.wantStatus)
			}
			if st := hs.dedupe.Stats(); st.New != tt.wantNew || st.New+st.Done+st.InFlight != tt.wantNew {
				t.Errorf("dedupe stats = %+v, want %d claimed", st, tt.wantNew)
			}
		})
	}
}

func TestHandler_MaxMessagesConfigured(t *testing.T) {
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) { cfg.MaxMessages = 2 }})
	if status, _ := hs.postSigned(t, fixture(t, "batch-three-messages.json")); status != http.StatusRequestEntityTooLarge {
		t.Errorf("three messages with MaxMessages 2 = %d, want 413", status)
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
}

// claimerFunc is a webhook.Claimer made of a function.
type claimerFunc func(ctx context.Context, tenantID, messageID string) (*domain.Claim, error)

func (f claimerFunc) Claim(ctx context.Context, tenantID, messageID string) (*domain.Claim, error) {
	return f(ctx, tenantID, messageID)
}

// heldOnce is a deliverer that holds the first delivery of wamidText: it
// calls hold, then fails the delivery if fail is set, and otherwise
// delivers it. It records whether the delivery's context was done once
// hold returned.
type heldOnce struct {
	next    webhook.Deliverer
	hold    func()
	fail    bool
	held    atomic.Bool
	ctxDone atomic.Bool
}

func (d *heldOnce) Deliver(ctx context.Context, msg webhook.Message) error {
	if msg.MessageID == wamidText && d.held.CompareAndSwap(false, true) {
		d.hold()
		d.ctxDone.Store(ctx.Err() != nil)
		if d.fail {
			return errors.New("delivery refused")
		}
	}
	return d.next.Deliver(ctx, msg)
}

// heldDeliveryCases are what a POST of the three-message batch comes to
// when its first delivery is held until the request is over: that
// delivery finishes and is settled, the other two are deferred, and the
// redelivery delivers what is left.
var heldDeliveryCases = []struct {
	name           string
	fail           bool // whether the held delivery fails
	want           webhook.Result
	wantStats      domain.DedupeStats
	wantRedelivery webhook.Result
}{
	{"the held delivery succeeds", false, webhook.Result{Delivered: 1, Deferred: 2},
		domain.DedupeStats{New: 1, Committed: 1}, webhook.Result{Delivered: 2, Duplicates: 1}},
	{"the held delivery fails", true, webhook.Result{Failed: 1, Deferred: 2},
		domain.DedupeStats{New: 1, Released: 1}, webhook.Result{Delivered: 3}},
}

// TestHandler_RequestTimeoutDefersTheMessagesNotStarted holds the first
// delivery of a batch until its request's time is up: the delivery still
// finishes and its claim is settled as it went, and the messages after it
// are not started. The held delivery waits for the very context the
// request's claims are made on to be done, so the next message finds it
// done whatever the scheduling. Should the time be up before even the
// first message started (a handler goroutine that did not run for
// RequestTimeout), every message is deferred: a right answer too.
func TestHandler_RequestTimeoutDefersTheMessagesNotStarted(t *testing.T) {
	for _, tt := range heldDeliveryCases {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.NewDedupeStore()
			requestCtx := make(chan context.Context, 1)
			var d *heldOnce
			hs := newHarnessWith(t, harnessOptions{
				store: store,
				config: func(cfg *webhook.Config) {
					cfg.RequestTimeout = 100 * time.Millisecond
					next := cfg.Dedupe
					cfg.Dedupe = claimerFunc(func(ctx context.Context, tenantID, messageID string) (*domain.Claim, error) {
						if messageID == wamidText {
							select {
							case requestCtx <- ctx:
							default:
							}
						}
						return next.Claim(ctx, tenantID, messageID)
					})
				},
				wrap: func(next webhook.Deliverer) webhook.Deliverer {
					d = &heldOnce{next: next, fail: tt.fail, hold: func() { <-(<-requestCtx).Done() }}
					return d
				},
			})
			want, wantStats, wantRedelivery := tt.want, tt.wantStats, tt.wantRedelivery
			body := fixture(t, "batch-three-messages.json")
			rec := hs.postRecorded(t, body)
			if !d.held.Load() {
				t.Log("the time was up before the first message started")
				want, wantStats, wantRedelivery = webhook.Result{Deferred: 3}, domain.DedupeStats{}, webhook.Result{Delivered: 3}
			}
			if res := decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != want {
				t.Errorf("POST = %d %+v, want 503 %+v", rec.Code, res, want)
			}
			if rec.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if st := hs.dedupe.Stats(); st != wantStats {
				t.Errorf("dedupe stats = %+v, want %+v: the held claim settled, the messages after it never claimed", st, wantStats)
			}

			// Meta's redelivery, to a handler on the same store with the
			// default RequestTimeout.
			again := newHarnessWith(t, harnessOptions{store: store})
			if status, res := again.postSigned(t, body); status != http.StatusOK || res != wantRedelivery {
				t.Errorf("redelivery = %d %+v, want 200 %+v", status, res, wantRedelivery)
			}
			got := append(hs.sink.ids(), again.sink.ids()...)
			if want := []string{wamidText, wamidSecond, wamidThird}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("delivered %v, want each once, in order: %v", got, want)
			}
		})
	}
}

// TestHandler_CancelledRequestLetsItsDeliveryFinish cancels a request from
// within its first delivery: the delivery's context is not done, the
// delivery finishes and is committed (or, failed, released), and the
// messages after it are left for the redelivery.
func TestHandler_CancelledRequestLetsItsDeliveryFinish(t *testing.T) {
	for _, tt := range heldDeliveryCases {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var d *heldOnce
			hs := newHarnessWith(t, harnessOptions{
				wrap: func(next webhook.Deliverer) webhook.Deliverer {
					d = &heldOnce{next: next, fail: tt.fail, hold: cancel}
					return d
				},
			})
			body := fixture(t, "batch-three-messages.json")
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/webhook/acme", bytes.NewReader(body))
			req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(appSecret), body))
			rec := hs.serve(t, req)
			if res := decodeResult(t, rec); rec.Code != http.StatusServiceUnavailable || res != tt.want {
				t.Errorf("POST = %d %+v, want 503 %+v", rec.Code, res, tt.want)
			}
			if d.ctxDone.Load() {
				t.Error("the delivery's context was done once the request was cancelled")
			}
			if st := hs.dedupe.Stats(); st != tt.wantStats {
				t.Errorf("dedupe stats = %+v, want %+v", st, tt.wantStats)
			}
			if status, res := hs.postSigned(t, body); status != http.StatusOK || res != tt.wantRedelivery {
				t.Errorf("redelivery = %d %+v, want 200 %+v", status, res, tt.wantRedelivery)
			}
			if got, want := hs.sink.ids(), []string{wamidText, wamidSecond, wamidThird}; strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("delivered %v, want each once, in order: %v", got, want)
			}
		})
	}
}

// TestHandler_InvalidUTF8IsRefused sends two bodies whose message ids are
// not UTF-8 and differ in one byte. Decoded, both would read as the same id.
func TestHandler_InvalidUTF8IsRefused(t *testing.T) {
	hs := newHarness(t)
	for _, id := range []string{"z\xfe9", "z\xff9"} {
		body := []byte(`{"object":"whatsapp_business_account","entry":[{"id":"` + wabaAcme +
			`","changes":[{"value":{"metadata":{"phone_number_id":"` + phoneAcme +
			`"},"messages":[{"from":"12025550142","id":"` + id + `","type":"text","text":{"body":"hi"}}]}}]}]}`)
		rec := hs.postRecorded(t, body)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("POST with message id %q = %d %s, want 400", id, rec.Code, rec.Body)
		}
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "not_utf8"}); got != 2 {
		t.Errorf("rejected{reason=not_utf8} = %v, want 2", got)
	}
}
