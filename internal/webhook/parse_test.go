package webhook_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// fixture reads a payload from the project's testdata.
func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "whatsapp", name))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const (
	wamidText   = "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA="
	wamidSecond = "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBRDMkE5MEU3RjQ0QjE2MDVEOEEyMgA="
	wamidThird  = "wamid.HBgMNDQ3NzAwOTAwNDU2FQIAEhgUNUQ4QjJGMUEwQzY2RTNCOTcxRDQA"
	wamidImage  = "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBRFOEIxN0M0QTIwRDk1RjNCNjY3NwA="
)

func TestParse_Fixtures(t *testing.T) {
	dana := func(id, typ, text string, ts int64) webhook.Message {
		return webhook.Message{MessageID: id, From: "12025550142", Nickname: "Dana Ortiz", Type: typ, Text: text, Timestamp: time.Unix(ts, 0)}
	}
	acme := func(c webhook.Change) webhook.Batch {
		c.PhoneNumberID = phoneAcme
		return webhook.Batch{Entries: []webhook.Entry{{WABAID: wabaAcme, Changes: []webhook.Change{c}}}}
	}
	tests := []struct {
		give string
		want webhook.Batch
	}{
		{"text-message.json", acme(webhook.Change{Messages: []webhook.Message{
			dana(wamidText, "text", "Hello, my parcel #2231 still has not arrived.", 1764137400),
		}})},
		{"batch-three-messages.json", acme(webhook.Change{Messages: []webhook.Message{
			dana(wamidText, "text", "Hello, my parcel #2231 still has not arrived.", 1764137400),
			dana(wamidSecond, "text", "It was due last Friday.", 1764137415),
			{MessageID: wamidThird, From: "447700900456", Nickname: "Priya Raman", Type: "text",
				Text: "Can I pick up my order in store instead?", Timestamp: time.Unix(1764137422, 0)},
		}})},
		{"image-message.json", acme(webhook.Change{Messages: []webhook.Message{
			dana(wamidImage, "image", "The parcel that did arrive was crushed", 1764137533),
		}})},
		{"status-delivered.json", acme(webhook.Change{Statuses: 1})},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			got, err := webhook.Parse(fixture(t, tt.give))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %+v\nwant  %+v", got, tt.want)
			}
		})
	}
}

func TestParse_Payloads(t *testing.T) {
	const head = `{"object":"whatsapp_business_account","entry":[{"changes":[{"value":`
	const tail = `}]}]}`
	tests := []struct {
		name string
		give string
		want []webhook.Message
	}{
		{"no contacts: no nickname", head + `{"messages":[{"from":"1","id":"wamid.a","type":"text","text":{"body":"hi"}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "text", Text: "hi"}}},
		{"bad timestamp is zero", head + `{"messages":[{"from":"1","id":"wamid.a","timestamp":"soon","type":"text","text":{"body":"hi"}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "text", Text: "hi"}}},
		{"video caption", head + `{"messages":[{"from":"1","id":"wamid.a","type":"video","video":{"caption":"look"}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "video", Text: "look"}}},
		{"document caption", head + `{"messages":[{"from":"1","id":"wamid.a","type":"document","document":{"caption":"invoice"}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "document", Text: "invoice"}}},
		{"button", head + `{"messages":[{"from":"1","id":"wamid.a","type":"button","button":{"text":"Yes"}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "button", Text: "Yes"}}},
		{"button reply", head + `{"messages":[{"from":"1","id":"wamid.a","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"b1","title":"Track"}}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "interactive", Text: "Track"}}},
		{"list reply", head + `{"messages":[{"from":"1","id":"wamid.a","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"l1","title":"Returns"}}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "interactive", Text: "Returns"}}},
		{"location has no text", head + `{"messages":[{"from":"1","id":"wamid.a","type":"location","location":{"latitude":1,"longitude":2}}]}` + tail,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "location"}}},
		{"no entries", `{"object":"whatsapp_business_account","entry":[]}`, nil},
		{"unknown fields ignored", `{"object":"whatsapp_business_account","new_field":1,"entry":[{"changes":[{"value":{"messages":[{"from":"1","id":"wamid.a","type":"text","text":{"body":"x"},"context":{"id":"q"}}]}}]}]}`,
			[]webhook.Message{{MessageID: "wamid.a", From: "1", Type: "text", Text: "x"}}},
		{"many entries and changes, in order", `{"object":"whatsapp_business_account","entry":[` +
			`{"changes":[{"value":{"messages":[{"from":"1","id":"wamid.1"}]}},{"value":{"messages":[{"from":"2","id":"wamid.2"}]}}]},` +
			`{"changes":[{"value":{"contacts":[{"profile":{"name":"Three"},"wa_id":"3"}],"messages":[{"from":"3","id":"wamid.3"}]}}]}]}`,
			[]webhook.Message{{MessageID: "wamid.1", From: "1"}, {MessageID: "wamid.2", From: "2"}, {MessageID: "wamid.3", From: "3", Nickname: "Three"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.Parse([]byte(tt.give))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Messages(), tt.want) {
				t.Errorf("Parse = %+v\nwant  %+v", got.Messages(), tt.want)
			}
			if len(got.Skipped()) != 0 {
				t.Errorf("Parse skipped %+v, want nothing", got.Skipped())
			}
		})
	}
}

func TestParse_EntriesAndChanges(t *testing.T) {
	body := payload(
		testEntry{waba: wabaAcme, changes: []testChange{
			{phone: phoneAcme, messages: []any{textMessage("wamid.1")}},
			{phone: "114477885522002", messages: []any{textMessage("wamid.2"), textMessage("wamid.3")}},
		}},
		entry(wabaGlobex, phoneGlobex, textMessage("wamid.4")),
	)
	b, err := webhook.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		phone string
		ids   []string
	}
	var got []change
	var wabas []string
	for _, e := range b.Entries {
		wabas = append(wabas, e.WABAID)
		for _, c := range e.Changes {
			var ids []string
			for _, m := range c.Messages {
				ids = append(ids, m.MessageID)
			}
			got = append(got, change{c.PhoneNumberID, ids})
		}
	}
	want := []change{{phoneAcme, []string{"wamid.1"}}, {"114477885522002", []string{"wamid.2", "wamid.3"}}, {phoneGlobex, []string{"wamid.4"}}}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(wabas, []string{wabaAcme, wabaGlobex}) {
		t.Errorf("Parse = accounts %v, changes %+v; want %v, %+v", wabas, got, []string{wabaAcme, wabaGlobex}, want)
	}
	if n := b.MessageCount(); n != 4 {
		t.Errorf("MessageCount = %d, want 4", n)
	}
}

// TestParse_Malformed covers the payloads rejected whole: those that are not
// JSON, not a JSON object, not a WhatsApp Business Account object, or whose
// entry is not an array. The error never quotes the payload.
func TestParse_Malformed(t *testing.T) {
	const secret = "12345678901234567890123"
	tests := []struct {
		name string
		give string
	}{
		{"empty", ``},
		{"not JSON", `hello`},
		{"truncated", `{"object":"whatsapp_business_account","entry":[`},
		{"trailing data", `{"object":"whatsapp_business_account"} {}`},
		{"array", `[]`},
		{"a number", secret},
		{"other object", `{"object":"page` + secret + `","entry":[]}`},
		{"object a number", `{"object":` + secret + `,"entry":[]}`},
		{"other object, its entry malformed", `{"object":"page","entry":[{"id":` + secret + `}]}`},
		{"no object", `{"entry":[]}`},
		{"entry not a list", `{"object":"whatsapp_business_account","entry":{}}`},
		{"entry a number", `{"object":"whatsapp_business_account","entry":` + secret + `}`},
		{"entry a string", `{"object":"whatsapp_business_account","entry":"` + secret + `"}`},
		{"entry not a list, after a malformed one", `{"object":"whatsapp_business_account","entry":[{"id":` + secret + `}],"entry":"` + secret + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.Parse([]byte(tt.give))
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Errorf("Parse error = %v, want ErrMalformed", err)
			}
			if err != nil && strings.Contains(err.Error(), secret) {
				t.Errorf("Parse error %q quotes the payload", err)
			}
			if len(got.Entries) != 0 {
				t.Errorf("Parse returned %d entries with its error", len(got.Entries))
			}
		})
	}
}

// rawMessage is a text message with id, from sender 1.
func rawMessage(id string) string {
	return `{"from":"1","id":"` + id + `","type":"text","text":{"body":"hi"}}`
}

// rawChange is a change for phone with messages.
func rawChange(phone string, messages ...string) string {
	return `{"field":"messages","value":{"metadata":{"phone_number_id":"` + phone + `"},"messages":[` + strings.Join(messages, ",") + `]}}`
}

// rawEntry is an entry of account waba with changes.
func rawEntry(waba string, changes ...string) string {
	return `{"id":"` + waba + `","changes":[` + strings.Join(changes, ",") + `]}`
}

// rawPayload is a WhatsApp Business Account payload of entries, built as
// JSON text with rawEntry, rawChange and rawMessage so that any part of it
// can be of the wrong JSON types.
func rawPayload(entries ...string) []byte {
	return []byte(`{"object":"whatsapp_business_account","entry":[` + strings.Join(entries, ",") + `]}`)
}

// outline is b as a line per entry: "malformed", or its account and its
// changes, each "malformed" or its phone number and its messages' ids.
func outline(b webhook.Batch) []string {
	var lines []string
	for _, e := range b.Entries {
		if e.Malformed {
			lines = append(lines, "malformed")
			continue
		}
		var changes []string
		for _, c := range e.Changes {
			if c.Malformed {
				changes = append(changes, "malformed")
				continue
			}
			var ids []string
			for _, m := range c.Messages {
				ids = append(ids, m.MessageID)
			}
			changes = append(changes, c.PhoneNumberID+" ["+strings.Join(ids, " ")+"]")
		}
		lines = append(lines, e.WABAID+": "+strings.Join(changes, ", "))
	}
	return lines
}

// TestParse_MalformedEntriesAndChangesSpoilOnlyThemselves puts an entry or
// a change of the wrong JSON types among good ones: it is marked malformed,
// with nothing of what it holds, and the others are parsed as usual.
func TestParse_MalformedEntriesAndChangesSpoilOnlyThemselves(t *testing.T) {
	const (
		secret     = "12345678901234567890123"
		otherPhone = "114477885522002"
	)
	acme := rawEntry(wabaAcme, rawChange(phoneAcme, rawMessage("wamid.acme")))
	globex := rawEntry(wabaGlobex, rawChange(phoneGlobex, rawMessage("wamid.globex")))
	hidden := rawChange(phoneAcme, rawMessage("wamid.hidden"))
	// inAcme is acme's entry with bad between two good changes.
	inAcme := func(bad string) string {
		return rawEntry(wabaAcme, rawChange(phoneAcme, rawMessage("wamid.1")), bad, rawChange(otherPhone, rawMessage("wamid.2")))
	}
	changeMalformed := []string{wabaAcme + ": " + phoneAcme + " [wamid.1], malformed, " + otherPhone + " [wamid.2]"}
	tests := []struct {
		name      string
		give      []byte
		want      []string // outline
		wantCount int      // MessageCount
	}{
		{"entry id a number", rawPayload(acme, `{"id":`+secret+`,"changes":[`+hidden+`]}`, globex),
			[]string{wabaAcme + ": " + phoneAcme + " [wamid.acme]", "malformed", wabaGlobex + ": " + phoneGlobex + " [wamid.globex]"}, 2},
		{"entry changes a string", rawPayload(acme, `{"id":"`+secret+`","changes":"`+secret+`"}`, globex),
			[]string{wabaAcme + ": " + phoneAcme + " [wamid.acme]", "malformed", wabaGlobex + ": " + phoneGlobex + " [wamid.globex]"}, 2},
		{"entry changes an object", rawPayload(`{"id":"`+wabaAcme+`","changes":{"value":{}}}`, globex),
			[]string{"malformed", wabaGlobex + ": " + phoneGlobex + " [wamid.globex]"}, 1},
		{"entry not an object", rawPayload(secret, globex, `"`+secret+`"`),
			[]string{"malformed", wabaGlobex + ": " + phoneGlobex + " [wamid.globex]", "malformed"}, 1},
		{"every entry", rawPayload(`{"id":`+secret+`}`, `[]`), []string{"malformed", "malformed"}, 0},
		{"phone number id a number", rawPayload(inAcme(`{"value":{"metadata":{"phone_number_id":` + secret + `},"messages":[` + rawMessage("wamid.hidden") + `]}}`)),
			changeMalformed, 2},
		{"metadata not an object", rawPayload(inAcme(`{"value":{"metadata":"` + secret + `","messages":[` + rawMessage("wamid.hidden") + `]}}`)),
			changeMalformed, 2},
		{"value not an object", rawPayload(inAcme(`{"value":"` + secret + `"}`)), changeMalformed, 2},
		{"change not an object", rawPayload(inAcme(secret)), changeMalformed, 2},
		{"messages not a list", rawPayload(inAcme(`{"value":{"metadata":{"phone_number_id":"` + phoneAcme + `"},"messages":{}}}`)),
			changeMalformed, 2},
		{"statuses not a list", rawPayload(inAcme(`{"value":{"metadata":{"phone_number_id":"` + phoneAcme + `"},"statuses":` + secret + `,"messages":[` + rawMessage("wamid.hidden") + `]}}`)),
			changeMalformed, 2},
		{"a malformed change and a malformed message", rawPayload(rawEntry(wabaAcme,
			`{"value":{"metadata":{"phone_number_id":`+secret+`}}}`,
			rawChange(phoneAcme, `{"from":"1","id":"wamid.bad","timestamp":`+secret+`}`, rawMessage("wamid.1")))),
			[]string{wabaAcme + ": malformed, " + phoneAcme + " [wamid.1]"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := webhook.Parse(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			if got := outline(b); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %q\nwant  %q", got, tt.want)
			}
			if n := b.MessageCount(); n != tt.wantCount {
				t.Errorf("MessageCount = %d, want %d", n, tt.wantCount)
			}
			for _, m := range b.Messages() {
				if m.MessageID == "wamid.hidden" {
					t.Errorf("Parse kept message %+v of a malformed entry or change", m)
				}
			}
			if s := fmt.Sprintf("%+v", b); strings.Contains(s, secret) {
				t.Errorf("Parse kept a value of a malformed part: %s", s)
			}
		})
	}
}

// TestParse_ContactsOfTheWrongShapeOnlyLoseNames checks that a contact of the
// wrong JSON types spoils neither its change nor its messages: they are
// delivered without the names it cannot give.
func TestParse_ContactsOfTheWrongShapeOnlyLoseNames(t *testing.T) {
	const secret = "12345678901234567890123"
	msgs := `"messages":[{"from":"1","id":"wamid.1"},{"from":"2","id":"wamid.2"}]`
	tests := []struct {
		name string
		give string // value.contacts
		want []string
	}{
		{"good", `[{"profile":{"name":"One"},"wa_id":"1"},{"profile":{"name":"Two"},"wa_id":"2"}]`, []string{"One", "Two"}},
		{"a wa_id a number", `[{"profile":{"name":"One"},"wa_id":1},{"profile":{"name":"Two"},"wa_id":"2"}]`, []string{"", "Two"}},
		{"a name a number", `[{"profile":{"name":` + secret + `},"wa_id":"1"},{"profile":{"name":"Two"},"wa_id":"2"}]`, []string{"", "Two"}},
		{"a profile a string", `[{"profile":"` + secret + `","wa_id":"1"},{"profile":{"name":"Two"},"wa_id":"2"}]`, []string{"", "Two"}},
		{"a contact a number", `[` + secret + `,{"profile":{"name":"Two"},"wa_id":"2"}]`, []string{"", "Two"}},
		{"not a list", `{"profile":{"name":"One"},"wa_id":"1"}`, []string{"", ""}},
		{"a string", `"` + secret + `"`, []string{"", ""}},
		{"null", `null`, []string{"", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"object":"whatsapp_business_account","entry":[{"id":"` + wabaAcme + `","changes":[{"value":` +
				`{"metadata":{"phone_number_id":"` + phoneAcme + `"},"contacts":` + tt.give + `,` + msgs + `}}]}]}`
			b, err := webhook.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			if got := outline(b); !reflect.DeepEqual(got, []string{wabaAcme + ": " + phoneAcme + " [wamid.1 wamid.2]"}) {
				t.Errorf("Parse = %q, want both messages in a well-formed change", got)
			}
			var nicknames []string
			for _, m := range b.Messages() {
				nicknames = append(nicknames, m.Nickname)
			}
			if !reflect.DeepEqual(nicknames, tt.want) {
				t.Errorf("nicknames = %q, want %q", nicknames, tt.want)
			}
		})
	}
}

// TestParse_SkipsMessagesThatCanNeverBeDelivered checks that a poison
// message is skipped, with its reason, payload index, type and id length,
// while the messages around it are kept.
func TestParse_SkipsMessagesThatCanNeverBeDelivered(t *testing.T) {
	long := "wamid." + strings.Repeat("A", 600)
	tests := []struct {
		name string
		give string // one element of messages[]
		want webhook.Skipped
	}{
		{"no id", `{"from":"1","type":"text"}`, webhook.Skipped{Reason: webhook.SkipBadID, Type: "text"}},
		{"id with a space", `{"from":"1","id":"wamid.a b","type":"text"}`, webhook.Skipped{Reason: webhook.SkipBadID, Type: "text", IDLen: 9}},
		{"id with a newline", `{"from":"1","id":"wamid.a\nb"}`, webhook.Skipped{Reason: webhook.SkipBadID, IDLen: 9}},
		{"id too long", `{"from":"1","id":"` + long + `"}`, webhook.Skipped{Reason: webhook.SkipBadID, IDLen: len(long)}},
		{"no sender", `{"id":"wamid.a","type":"image"}`, webhook.Skipped{Reason: webhook.SkipNoSender, Type: "image", IDLen: 7}},
		{"timestamp not a string", `{"from":"1","id":"wamid.a","timestamp":17,"type":"text"}`,
			webhook.Skipped{Reason: webhook.SkipMalformed, Type: "text", IDLen: 7}},
		{"text not an object", `{"from":"1","id":"wamid.a","type":"text","text":"hi"}`,
			webhook.Skipped{Reason: webhook.SkipMalformed, Type: "text", IDLen: 7}},
		{"null", `null`, webhook.Skipped{Reason: webhook.SkipBadID}},
		{"a number", `17`, webhook.Skipped{Reason: webhook.SkipMalformed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The poison message is the payload's second, in its second entry.
			body := `{"object":"whatsapp_business_account","entry":[` +
				`{"id":"1","changes":[{"value":{"messages":[{"from":"1","id":"wamid.before"}]}}]},` +
				`{"id":"2","changes":[{"value":{"messages":[` + tt.give + `,{"from":"1","id":"wamid.after"}]}}]}]}`
			b, err := webhook.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, m := range b.Messages() {
				ids = append(ids, m.MessageID)
			}
			if !reflect.DeepEqual(ids, []string{"wamid.before", "wamid.after"}) {
				t.Errorf("messages = %v, want the two around the poison one", ids)
			}
			want := tt.want
			want.Index = 1
			if got := b.Skipped(); len(got) != 1 || got[0] != want {
				t.Errorf("skipped = %+v, want [%+v]", got, want)
			}
			if n := b.MessageCount(); n != 3 {
				t.Errorf("MessageCount = %d, want 3", n)
			}
		})
	}
}

// TestParse_MessageIDsAsTheDeduplicatorChecksThem checks that Parse keeps
// exactly the messages whose ids the deduplicator accepts, and skips the
// others as bad_id.
func TestParse_MessageIDsAsTheDeduplicatorChecksThem(t *testing.T) {
	tests := []struct {
		name string
		give string // as it appears in the JSON string
		want bool
	}{
		{"wamid", "wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA=", true},
		{"colon allowed in message ids", "wamid.a:b", true},
		{"non-ASCII letters", "wamid.\u00e9\u4e2d", true},
		{"512 bytes", "wamid." + strings.Repeat("A", 512-len("wamid.")), true},
		{"513 bytes", "wamid." + strings.Repeat("A", 513-len("wamid.")), false},
		{"empty", "", false},
		{"space", "wamid.a b", false},
		{"tab (JSON escape)", "wamid.a\\tb", false},
		{"DEL", "wamid.a\u007fb", false},
		{"no-break space", "wamid.a\u00a0b", false},
		{"line separator", "wamid.a\u2028b", false},
		{"C1 control", "wamid.a\u0085b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"1","id":"` + tt.give + `"}]}}]}]}`
			b, err := webhook.Parse([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			msgs, skipped := b.Messages(), b.Skipped()
			if got := len(msgs) == 1; got != tt.want {
				t.Fatalf("Parse kept the message = %v (skipped %+v), want %v", got, skipped, tt.want)
			}
			if !tt.want {
				if len(skipped) != 1 || skipped[0].Reason != webhook.SkipBadID {
					t.Errorf("skipped = %+v, want the message as bad_id", skipped)
				}
				return
			}
			if err := domain.ValidateMessageID(msgs[0].MessageID); err != nil {
				t.Errorf("the deduplicator refuses the id Parse kept: %v", err)
			}
		})
	}
}

// messageCounts counts the elements of each entry[].changes[].value.messages[]
// of body, whatever they hold: counts[i][j] for change j of entry i, -1 for
// a change whose messages cannot be counted, and counts[i] nil for an entry
// whose changes cannot be. Only an entry that is not an array fails.
func messageCounts(body []byte) ([][]int, error) {
	var p struct {
		Entry []json.RawMessage `json:"entry"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, err
	}
	counts := make([][]int, len(p.Entry))
	for i, raw := range p.Entry {
		var e struct {
			Changes []json.RawMessage `json:"changes"`
		}
		if json.Unmarshal(raw, &e) != nil {
			continue
		}
		counts[i] = make([]int, len(e.Changes))
		for j, raw := range e.Changes {
			var c struct {
				Value struct {
					Messages []json.RawMessage `json:"messages"`
				} `json:"value"`
			}
			counts[i][j] = -1
			if json.Unmarshal(raw, &c) == nil {
				counts[i][j] = len(c.Value.Messages)
			}
		}
	}
	return counts, nil
}

// FuzzParse checks that Parse never panics, that it fails only with
// ErrMalformed, and that what it accepts is usable and complete: every entry
// of the payload is in the batch, malformed or with every change; a
// malformed entry or change holds nothing; every message kept has an id the
// deduplicator can key on and a sender; every message skipped has a known
// reason and its own index; and kept plus skipped are the messages of each
// well-formed change.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"text-message.json", "batch-three-messages.json", "image-message.json", "status-delivered.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"1","id":"wamid.a","type":"interactive","interactive":{"list_reply":{"title":"x"}}}]}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":null}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"metadata":{"phone_number_id":"2"},"messages":[null,17,{"id":"wamid.a"},{"from":"1","id":"a b"},{"from":"1","id":"wamid.b","timestamp":1}]}}]}]}`))
	f.Add(payload(entry(wabaAcme, phoneAcme, textMessages("wamid.f", 3)...), entry(wabaGlobex, phoneGlobex, textMessage("z\xfe9"))))
	f.Add(rawPayload(`{"id":1,"changes":[]}`, `17`, rawEntry(wabaAcme, `{"value":{"metadata":{"phone_number_id":2}}}`, `[]`,
		`{"value":{"contacts":[{"wa_id":1}],"statuses":{}}}`, rawChange(phoneAcme, rawMessage("wamid.c"), `{"from":1}`))))
	known := map[webhook.SkipReason]bool{webhook.SkipMalformed: true, webhook.SkipBadID: true, webhook.SkipNoSender: true}
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		counts, err := messageCounts(body)
		if err != nil {
			t.Fatalf("Parse accepted a payload whose entries cannot be counted: %v", err)
		}
		if len(b.Entries) != len(counts) {
			t.Fatalf("Parse = %d entries, want the payload's %d", len(b.Entries), len(counts))
		}
		for i, e := range b.Entries {
			switch {
			case e.Malformed:
				if !reflect.DeepEqual(e, webhook.Entry{Malformed: true}) {
					t.Fatalf("entry %d is malformed but holds %+v", i, e)
				}
				continue
			case counts[i] == nil || len(e.Changes) != len(counts[i]):
				t.Fatalf("entry %d has %d changes, want the payload's %v", i, len(e.Changes), counts[i])
			}
			for j, c := range e.Changes {
				switch {
				case c.Malformed:
					if !reflect.DeepEqual(c, webhook.Change{Malformed: true}) {
						t.Fatalf("change %d of entry %d is malformed but holds %+v", j, i, c)
					}
				case len(c.Messages)+len(c.Skipped) != counts[i][j]:
					t.Fatalf("change %d of entry %d: kept %d + skipped %d, want the payload's %d messages",
						j, i, len(c.Messages), len(c.Skipped), counts[i][j])
				}
			}
		}
		msgs, skipped := b.Messages(), b.Skipped()
		total := b.MessageCount()
		if len(msgs)+len(skipped) != total {
			t.Fatalf("kept %d + skipped %d, want MessageCount %d", len(msgs), len(skipped), total)
		}
		if b.Statuses() < 0 {
			t.Fatalf("Statuses = %d", b.Statuses())
		}
		for _, m := range msgs {
			if err := domain.ValidateMessageID(m.MessageID); err != nil || m.From == "" || m.TenantID != "" {
				t.Fatalf("kept unusable message %+v (%v)", m, err)
			}
		}
		last := -1
		for _, s := range skipped {
			if !known[s.Reason] || s.Index <= last || s.Index >= total || s.IDLen < 0 {
				t.Fatalf("skipped %+v after index %d of %d messages", s, last, total)
			}
			last = s.Index
		}
	})
}

func BenchmarkParse(b *testing.B) {
	bodies := []struct {
		name string
		body []byte
	}{
		{"three messages", fixture(b, "batch-three-messages.json")},
		{"1000 messages", payload(entry(wabaAcme, phoneAcme, textMessages("wamid.HBgLMTIwMjU1NTAxNDIVAgASGBQ3RjE0QkM1MDk5RTJBNkQzOEIwMQA", 1000)...))},
	}
	for _, bb := range bodies {
		b.Run(bb.name, func(b *testing.B) {
			b.SetBytes(int64(len(bb.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := webhook.Parse(bb.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestParse_NicknamesOfFewAndManyContacts checks that each message gets its
// sender's profile name whether its change has few contacts (looked up by a
// scan) or many (indexed), in the strict pass and in the lenient one that a
// value of the wrong JSON type elsewhere in the payload brings about.
func TestParse_NicknamesOfFewAndManyContacts(t *testing.T) {
	for _, n := range []int{1, 8, 9, 40} {
		var contacts, messages []string
		for i := range n {
			contacts = append(contacts, fmt.Sprintf(`{"profile":{"name":"Name %d"},"wa_id":"%d"}`, i, 100+i))
			// Senders in reverse order, one without a contact.
			messages = append(messages, fmt.Sprintf(`{"from":"%d","id":"wamid.N%d","type":"text","text":{"body":"hi"}}`, 100+n-i, i))
		}
		change := `{"field":"messages","value":{"metadata":{"phone_number_id":"1"},"contacts":[` + strings.Join(contacts, ",") +
			`],"messages":[` + strings.Join(messages, ",") + `]}}`
		for pass, body := range map[string][]byte{
			"strict":  rawPayload(rawEntry("1", change)),
			"lenient": rawPayload(rawEntry("1", change), `{"id":7}`),
		} {
			b, err := webhook.Parse(body)
			if err != nil {
				t.Fatalf("%d contacts, %s: %v", n, pass, err)
			}
			msgs := b.Messages()
			if len(msgs) != n {
				t.Fatalf("%d contacts, %s: %d messages, want %d", n, pass, len(msgs), n)
			}
			for i, m := range msgs {
				want := fmt.Sprintf("Name %d", n-i)
				if i == 0 {
					want = "" // its sender has no contact
				}
				if m.Nickname != want {
					t.Errorf("%d contacts, %s: message %d from %s has nickname %q, want %q", n, pass, i, m.From, m.Nickname, want)
				}
			}
		}
	}
}
