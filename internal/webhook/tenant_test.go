package webhook_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// readSpy is a request body that records whether it was read.
type readSpy struct {
	r    *bytes.Reader
	read atomic.Bool
}

func newReadSpy(b []byte) *readSpy { return &readSpy{r: bytes.NewReader(b)} }

func (s *readSpy) Read(p []byte) (int, error) {
	s.read.Store(true)
	return s.r.Read(p)
}

// TestHandler_UnknownTenantIsAnsweredAsABadSignature sends each request to
// a known tenant with a bad signature and to an unknown tenant, and wants
// the very same answer, byte for byte, headers included.
func TestHandler_UnknownTenantIsAnsweredAsABadSignature(t *testing.T) {
	text := fixture(t, "text-message.json")
	big := append(bytes.Repeat([]byte(" "), 2<<20), text...)
	wrong := func(b []byte) string { return webhook.Sign([]byte("not-the-secret"), b) }
	right := func(b []byte) string { return webhook.Sign([]byte(appSecret), b) }
	const unauthorized = `{"error":"unauthorized"}` + "\n"
	tests := []struct {
		name       string
		body       []byte
		knownSig   string // acme's: wrong for the body
		unknownSig string // nobody's: acme's secret, the one others share
		wantStatus int
		wantBody   string
		wantRead   bool
	}{
		{"signed", text, wrong(text), right(text), http.StatusUnauthorized, unauthorized, true},
		{"no signature", text, "", "", http.StatusUnauthorized, unauthorized, false},
		{"signature not hex", text, "sha256=" + strings.Repeat("g", 64), "sha256=" + strings.Repeat("g", 64), http.StatusUnauthorized, unauthorized, false},
		{"signature too short", text, right(text)[:20], right(text)[:20], http.StatusUnauthorized, unauthorized, false},
		{"sha1 signature", text, "sha1=" + strings.Repeat("0", 40), "sha1=" + strings.Repeat("0", 40), http.StatusUnauthorized, unauthorized, false},
		{"2 MiB body", big, wrong(big), right(big), http.StatusRequestEntityTooLarge, `{"error":"body too large"}` + "\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			answer := func(tenant, sig string) (*httptest.ResponseRecorder, bool) {
				spy := newReadSpy(tt.body)
				req := httptest.NewRequest(http.MethodPost, "/webhook/"+tenant, spy)
				if sig != "" {
					req.Header.Set(webhook.SignatureHeader, sig)
				}
				return hs.serve(t, req), spy.read.Load()
			}
			known, knownRead := answer("acme", tt.knownSig)
			unknown, unknownRead := answer("nobody", tt.unknownSig)
			if known.Code != tt.wantStatus || known.Body.String() != tt.wantBody {
				t.Errorf("known tenant, bad signature = %d %q, want %d %q", known.Code, known.Body, tt.wantStatus, tt.wantBody)
			}
			if unknown.Code != known.Code || !bytes.Equal(unknown.Body.Bytes(), known.Body.Bytes()) ||
				!reflect.DeepEqual(unknown.Header(), known.Header()) {
				t.Errorf("unknown tenant = %d %v %q, known tenant with a bad signature = %d %v %q: want them the same",
					unknown.Code, unknown.Header(), unknown.Body, known.Code, known.Header(), known.Body)
			}
			if knownRead != tt.wantRead || unknownRead != tt.wantRead {
				t.Errorf("body read: known tenant %v, unknown %v; want %v", knownRead, unknownRead, tt.wantRead)
			}
			if !tt.wantRead && known.Header().Get("Connection") != "close" {
				t.Errorf("answer without reading the body has Connection %q, want close", known.Header().Get("Connection"))
			}
			if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
				t.Errorf("dedupe stats = %+v, want nothing claimed", st)
			}
		})
	}
}

func TestHandler_TenantWithoutAppSecretTakesNothing(t *testing.T) {
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) {
		cfg.Tenants["initech"] = webhook.Tenant{VerifyToken: "v", WABAIDs: []string{wabaAcme}}
	}})
	body := fixture(t, "text-message.json")
	for _, sig := range []string{webhook.Sign(nil, body), webhook.Sign([]byte(appSecret), body)} {
		if status, _ := hs.post(t, "initech", body, sig); status != http.StatusUnauthorized {
			t.Errorf("POST signed %s = %d, want 401", sig, status)
		}
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
}

// TestHandler_BodyOfAnotherTenantIsForbidden replays a body Meta signed for
// tenant globex, whose app secret acme shares, to acme's webhook.
func TestHandler_BodyOfAnotherTenantIsForbidden(t *testing.T) {
	hs := newHarness(t)
	body := payload(entry(wabaGlobex, phoneGlobex, textMessage("wamid.globex")))
	rec := hs.postRecorded(t, body)
	if rec.Code != http.StatusForbidden || rec.Body.String() != `{"error":"forbidden"}`+"\n" {
		t.Errorf("replay to acme = %d %q, want 403 forbidden", rec.Code, rec.Body)
	}
	if st := hs.dedupe.Stats(); st != (domain.DedupeStats{}) {
		t.Errorf("dedupe stats = %+v, want nothing claimed", st)
	}
	if ids := hs.sink.ids(); len(ids) != 0 {
		t.Errorf("delivered %v, want nothing", ids)
	}
	for name, want := range map[string]float64{
		"connector_webhook_refused_total":          1,
		"connector_webhook_skipped_messages_total": 1,
	} {
		if got := counterValue(t, hs.reg, name, map[string]string{"reason": "waba_id"}); got != want {
			t.Errorf("%s{reason=waba_id} = %v, want %v", name, got, want)
		}
	}
	if got := counterValue(t, hs.reg, "connector_webhook_rejected_total", map[string]string{"reason": "foreign"}); got != 1 {
		t.Errorf("rejected{reason=foreign} = %v, want 1", got)
	}
	refused := hs.logs.FilterMessage("webhook entry refused: not the tenant's account").All()
	if len(refused) != 1 || refused[0].ContextMap()["waba_id"] != wabaGlobex {
		t.Errorf("refusal logs = %+v, want one naming account %s", refused, wabaGlobex)
	}

	if status, res := hs.post(t, "globex", body, webhook.Sign([]byte(appSecret), body)); status != http.StatusOK || res != (webhook.Result{Delivered: 1}) {
		t.Errorf("the same body to globex = %d %+v, want 200 {Delivered:1}", status, res)
	}
}

func TestHandler_DeliversOnlyTheTenantsEntriesAndPhoneNumbers(t *testing.T) {
	const otherPhone = "114477885522002"
	mixed := payload(
		entry(wabaGlobex, phoneGlobex, textMessage("wamid.globex.1")),
		testEntry{waba: wabaAcme, changes: []testChange{
			{phone: phoneAcme, messages: []any{textMessage("wamid.acme.1"), textMessage("wamid.acme.2")}},
			{phone: otherPhone, messages: []any{textMessage("wamid.acme.other")}},
		}},
		entry("not-a-waba-id\n"+strings.Repeat("x", 300), phoneGlobex, textMessage("wamid.odd")),
		entry(wabaGlobex, phoneGlobex, textMessage("wamid.globex.2")),
	)
	otherPhoneOnly := payload(entry(wabaAcme, otherPhone, textMessage("wamid.acme.other")))
	tests := []struct {
		name string
		admission
	}{
		{"every phone number", admission{nil, mixed, http.StatusOK,
			webhook.Result{Delivered: 3, Skipped: 3}, []string{"wamid.acme.1", "wamid.acme.2", "wamid.acme.other"},
			map[string]float64{"waba_id": 3, "phone_number_id": 0}}},
		{"one phone number", admission{[]string{phoneAcme}, mixed, http.StatusOK,
			webhook.Result{Delivered: 2, Skipped: 4}, []string{"wamid.acme.1", "wamid.acme.2"},
			map[string]float64{"waba_id": 3, "phone_number_id": 1}}},
		{"two phone numbers", admission{[]string{phoneAcme, otherPhone}, mixed, http.StatusOK,
			webhook.Result{Delivered: 3, Skipped: 3}, []string{"wamid.acme.1", "wamid.acme.2", "wamid.acme.other"},
			map[string]float64{"waba_id": 3, "phone_number_id": 0}}},
		{"only a phone number not taken", admission{[]string{phoneAcme}, otherPhoneOnly, http.StatusForbidden,
			webhook.Result{}, nil,
			map[string]float64{"waba_id": 0, "phone_number_id": 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t)
		})
	}
}

// admission is a signed POST to tenant acme and what it comes to.
type admission struct {
	phones        []string // acme's PhoneNumberIDs
	body          []byte
	wantStatus    int
	wantRes       webhook.Result
	wantDelivered []string
	wantRefused   map[string]float64 // by reason
}

// check POSTs a's body to a handler whose tenant acme takes a's phone
// numbers, and checks the answer, the messages delivered, that only they
// were claimed, and the refused counters. It returns the handler's harness.
func (a admission) check(t *testing.T) *harness {
	t.Helper()
	hs := newHarnessWith(t, harnessOptions{config: func(cfg *webhook.Config) {
		acme := cfg.Tenants["acme"]
		acme.PhoneNumberIDs = a.phones
		cfg.Tenants["acme"] = acme
	}})
	status, res := hs.postSigned(t, a.body)
	if status != a.wantStatus || res != a.wantRes {
		t.Errorf("POST = %d %+v, want %d %+v", status, res, a.wantStatus, a.wantRes)
	}
	if got := hs.sink.ids(); strings.Join(got, ",") != strings.Join(a.wantDelivered, ",") {
		t.Errorf("delivered %v, want %v", got, a.wantDelivered)
	}
	if st := hs.dedupe.Stats(); st.New != uint64(len(a.wantDelivered)) || st.Done != 0 || st.InFlight != 0 {
		t.Errorf("dedupe stats = %+v, want only the %d delivered claimed", st, len(a.wantDelivered))
	}
	for reason, want := range a.wantRefused {
		if got := counterValue(t, hs.reg, "connector_webhook_refused_total", map[string]string{"reason": reason}); got != want {
			t.Errorf("refused{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	return hs
}

// TestHandler_MalformedEntriesAndChangesAreRefusedAlone checks that an
// entry or a change of the wrong JSON types is refused, counted and logged by
// its position without its content, while the rest of the payload is
// delivered; and that it never makes a payload the tenant's, except a
// malformed change in the tenant's entry when the tenant takes every phone
// number of its accounts.
func TestHandler_MalformedEntriesAndChangesAreRefusedAlone(t *testing.T) {
	const secret = "12345678901234567890123"
	good := rawEntry(wabaAcme, rawChange(phoneAcme, rawMessage("wamid.acme.1")))
	badEntry := `{"id":` + secret + `,"changes":[` + rawChange(phoneAcme, rawMessage("wamid.hidden")) + `]}`
	badChange := `{"value":{"metadata":{"phone_number_id":` + secret + `},"messages":[` + rawMessage("wamid.hidden") + `]}}`
	const (
		entryRefused  = "webhook entry refused: malformed"
		changeRefused = "webhook change refused: malformed"
	)
	tests := []struct {
		name string
		admission
		wantLog    string
		wantFields map[string]any
	}{
		{"a malformed entry beside the tenant's", admission{nil, rawPayload(badEntry, good), http.StatusOK,
			webhook.Result{Delivered: 1}, []string{"wamid.acme.1"},
			map[string]float64{"malformed": 1, "waba_id": 0}},
			entryRefused, map[string]any{"tenant": "acme", "entry_index": int64(0)}},
		{"only a malformed entry", admission{nil, rawPayload(badEntry), http.StatusForbidden,
			webhook.Result{}, nil,
			map[string]float64{"malformed": 1, "waba_id": 0}},
			entryRefused, map[string]any{"tenant": "acme", "entry_index": int64(0)}},
		{"an entry that is not an object", admission{nil, rawPayload(good, `"`+secret+`"`), http.StatusOK,
			webhook.Result{Delivered: 1}, []string{"wamid.acme.1"},
			map[string]float64{"malformed": 1}},
			entryRefused, map[string]any{"tenant": "acme", "entry_index": int64(1)}},
		{"a malformed change beside a good one", admission{nil,
			rawPayload(rawEntry(wabaAcme, badChange, rawChange(phoneAcme, rawMessage("wamid.acme.1")))), http.StatusOK,
			webhook.Result{Delivered: 1}, []string{"wamid.acme.1"},
			map[string]float64{"malformed": 1, "phone_number_id": 0}},
			changeRefused, map[string]any{"tenant": "acme", "waba_id": wabaAcme, "entry_index": int64(0), "change_index": int64(0)}},
		{"the tenant's entry, its only change malformed", admission{nil, rawPayload(rawEntry(wabaAcme, badChange)), http.StatusOK,
			webhook.Result{}, nil,
			map[string]float64{"malformed": 1}},
			changeRefused, map[string]any{"tenant": "acme", "waba_id": wabaAcme, "entry_index": int64(0), "change_index": int64(0)}},
		{"the tenant's entry, its only change malformed, one phone number", admission{[]string{phoneAcme},
			rawPayload(rawEntry(wabaAcme, badChange)), http.StatusForbidden,
			webhook.Result{}, nil,
			map[string]float64{"malformed": 1, "phone_number_id": 0}},
			changeRefused, map[string]any{"tenant": "acme", "waba_id": wabaAcme, "entry_index": int64(0), "change_index": int64(0)}},
		{"a malformed change of another tenant's entry", admission{nil, rawPayload(rawEntry(wabaGlobex, badChange), good), http.StatusOK,
			webhook.Result{Delivered: 1}, []string{"wamid.acme.1"},
			map[string]float64{"malformed": 0, "waba_id": 1}},
			"webhook entry refused: not the tenant's account", map[string]any{"tenant": "acme", "waba_id": wabaGlobex, "messages": int64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := tt.check(t)
			logs := hs.logs.FilterMessage(tt.wantLog).All()
			if len(logs) != 1 || !reflect.DeepEqual(logs[0].ContextMap(), tt.wantFields) {
				t.Errorf("logs %q = %+v, want one with fields %v", tt.wantLog, logs, tt.wantFields)
			}
			for _, e := range hs.logs.All() {
				if strings.Contains(e.Message+fmt.Sprint(e.ContextMap()), secret) {
					t.Errorf("log %q shows a malformed part's content: %v", e.Message, e.ContextMap())
				}
			}
		})
	}
}

// TestHandler_RefusedMalformedShowsFromTheFirstScrape checks that the new
// refusal reason is among the refused counter's fixed label values.
func TestHandler_RefusedMalformedShowsFromTheFirstScrape(t *testing.T) {
	hs := newHarness(t)
	for _, reason := range []string{"waba_id", "phone_number_id", "malformed"} {
		if findMetric(t, hs.reg, "connector_webhook_refused_total", map[string]string{"reason": reason}) == nil {
			t.Errorf("refused{reason=%s} does not show before anything is refused", reason)
		}
	}
}

// TestHandler_RefusedIDsAreLoggedOnlyWhenTheyAreIDs checks that a refused
// entry's account id is logged when it is one, and as its length otherwise.
func TestHandler_RefusedIDsAreLoggedOnlyWhenTheyAreIDs(t *testing.T) {
	odd := "1234\n" + strings.Repeat("9", 100)
	tests := []struct {
		name string
		give string
		want map[string]any
	}{
		{"digits", wabaGlobex, map[string]any{"waba_id": wabaGlobex}},
		{"65 digits", strings.Repeat("1", 65), map[string]any{"waba_id_len": int64(65)}},
		{"not digits", odd, map[string]any{"waba_id_len": int64(len(odd))}},
		{"empty", "", map[string]any{"waba_id_len": int64(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := newHarness(t)
			hs.postSigned(t, payload(entry(tt.give, phoneGlobex, textMessage("wamid.x"))))
			logs := hs.logs.FilterMessage("webhook entry refused: not the tenant's account").All()
			if len(logs) != 1 {
				t.Fatalf("refusal logs = %+v, want one", logs)
			}
			got := logs[0].ContextMap()
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("log field %s = %#v, want %#v (fields %v)", k, got[k], v, got)
				}
			}
		})
	}
}

// TestTenantAndConfigPrintWithoutSecrets prints tenants and a handler's
// Config every way fmt and zap do: the ids show, the secrets never do.
func TestTenantAndConfigPrintWithoutSecrets(t *testing.T) {
	const (
		verify = "verify-Tok3n-of-acme"
		secret = "app-S3cret-of-acme"
	)
	acme := webhook.Tenant{VerifyToken: verify, AppSecret: []byte(secret), WABAIDs: []string{wabaAcme}, PhoneNumberIDs: []string{phoneAcme}}
	cfg := webhook.Config{Tenants: map[string]webhook.Tenant{"acme": acme, "bare": {}}, MaxMessages: 7}

	tests := []struct {
		name string
		give any
		want []string // each shows in every output
	}{
		{"Tenant", acme, []string{wabaAcme, phoneAcme, "xxxxx"}},
		{"*Tenant", &acme, []string{wabaAcme, phoneAcme, "xxxxx"}},
		{"Config", cfg, []string{"acme", "bare", wabaAcme, "7"}},
		{"*Config", &cfg, []string{"acme", "bare", wabaAcme, "7"}},
		{"in a struct", struct{ Webhook webhook.Config }{cfg}, []string{"acme", wabaAcme}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marshaled, err := json.Marshal(tt.give)
			if err != nil {
				t.Fatalf("json.Marshal: %v", err)
			}
			outputs := map[string]string{
				"fmt":     fmt.Sprintf("%v %+v %#v %s", tt.give, tt.give, tt.give, tt.give),
				"zap.Any": observedField(zap.Any("v", tt.give)),
				// zap.Any of an arbitrary struct, and zap.Reflect, go
				// through encoding/json.
				"zap, JSON":    jsonField(t, zap.Any("v", tt.give)),
				"zap.Reflect":  jsonField(t, zap.Reflect("v", tt.give)),
				"json.Marshal": string(marshaled),
			}
			for _, verb := range []string{"%q", "%x", "%d", "%10.4s"} {
				outputs[verb] = fmt.Sprintf(verb, tt.give)
			}
			for how, out := range outputs {
				if !strings.HasPrefix(how, "%") {
					for _, want := range tt.want {
						if !strings.Contains(out, want) {
							t.Errorf("%s does not show %q: %s", how, want, out)
						}
					}
				}
				for _, s := range []string{verify, secret, hex.EncodeToString([]byte(secret)), fmt.Sprint([]byte(secret)), secret[:6], verify[:6]} {
					if strings.Contains(out, s) {
						t.Errorf("%s shows the secret as %q: %s", how, s, out)
					}
				}
			}
		})
	}
}

// TestTenantPrintsWhetherItsSecretsAreSet checks what a tenant prints in
// place of its secrets.
func TestTenantPrintsWhetherItsSecretsAreSet(t *testing.T) {
	tests := []struct {
		name   string
		give   webhook.Tenant
		want   string
		wantGo string
	}{
		{
			name:   "both set",
			give:   webhook.Tenant{VerifyToken: "v", AppSecret: []byte("s"), WABAIDs: []string{wabaAcme}},
			want:   `webhook.Tenant{VerifyToken: "xxxxx", AppSecret: "xxxxx", WABAIDs: [` + wabaAcme + `], PhoneNumberIDs: []}`,
			wantGo: `webhook.Tenant{VerifyToken:"xxxxx", AppSecret:"xxxxx", WABAIDs:[]string{"` + wabaAcme + `"}, PhoneNumberIDs:[]string(nil)}`,
		},
		{
			name:   "neither set",
			give:   webhook.Tenant{PhoneNumberIDs: []string{phoneAcme}},
			want:   `webhook.Tenant{VerifyToken: "", AppSecret: "", WABAIDs: [], PhoneNumberIDs: [` + phoneAcme + `]}`,
			wantGo: `webhook.Tenant{VerifyToken:"", AppSecret:"", WABAIDs:[]string(nil), PhoneNumberIDs:[]string{"` + phoneAcme + `"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(tt.give); got != tt.want {
				t.Errorf("%%v = %s\nwant %s", got, tt.want)
			}
			if got := fmt.Sprintf("%#v", tt.give); got != tt.wantGo {
				t.Errorf("%%#v = %s\nwant %s", got, tt.wantGo)
			}
		})
	}
}

// observedField is field as the zap observer records it.
func observedField(field zap.Field) string {
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("value", field)
	return fmt.Sprint(logs.All()[0].ContextMap())
}

// jsonField is field as zap's production JSON encoder writes it.
func jsonField(t *testing.T, field zap.Field) string {
	t.Helper()
	buf, err := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()).EncodeEntry(zapcore.Entry{Message: "value"}, []zap.Field{field})
	if err != nil {
		t.Fatalf("JSON encoding: %v", err)
	}
	defer buf.Free()
	return buf.String()
}
