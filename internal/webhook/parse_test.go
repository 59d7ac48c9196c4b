package webhook_test

import (
	"errors"
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
	tests := []struct {
		give string
		want webhook.Batch
	}{
		{"text-message.json", webhook.Batch{Messages: []webhook.Message{
			dana(wamidText, "text", "Hello, my parcel #2231 still has not arrived.", 1764137400),
		}}},
		{"batch-three-messages.json", webhook.Batch{Messages: []webhook.Message{
			dana(wamidText, "text", "Hello, my parcel #2231 still has not arrived.", 1764137400),
			dana(wamidSecond, "text", "It was due last Friday.", 1764137415),
			{MessageID: wamidThird, From: "447700900456", Nickname: "Priya Raman", Type: "text",
				Text: "Can I pick up my order in store instead?", Timestamp: time.Unix(1764137422, 0)},
		}}},
		{"image-message.json", webhook.Batch{Messages: []webhook.Message{
			dana(wamidImage, "image", "The parcel that did arrive was crushed", 1764137533),
		}}},
		{"status-delivered.json", webhook.Batch{Statuses: 1}},
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
			if !reflect.DeepEqual(got.Messages, tt.want) {
				t.Errorf("Parse = %+v\nwant  %+v", got.Messages, tt.want)
			}
		})
	}
}

func TestParse_Malformed(t *testing.T) {
	const head = `{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[`
	const tail = `]}}]}]}`
	tests := []struct {
		name string
		give string
	}{
		{"empty", ``},
		{"not JSON", `hello`},
		{"truncated", `{"object":"whatsapp_business_account","entry":[`},
		{"trailing data", `{"object":"whatsapp_business_account"} {}`},
		{"array", `[]`},
		{"other object", `{"object":"page","entry":[]}`},
		{"no object", `{"entry":[]}`},
		{"entry not a list", `{"object":"whatsapp_business_account","entry":{}}`},
		{"message without id", head + `{"from":"1","type":"text"}` + tail},
		{"message id with a space", head + `{"from":"1","id":"wamid.a b"}` + tail},
		{"message id with a newline", head + `{"from":"1","id":"wamid.a\nb"}` + tail},
		{"message id too long", head + `{"from":"1","id":"wamid.` + strings.Repeat("A", 600) + `"}` + tail},
		{"message without sender", head + `{"id":"wamid.a"}` + tail},
		{"timestamp not a string", head + `{"from":"1","id":"wamid.a","timestamp":17}` + tail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.Parse([]byte(tt.give))
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Errorf("Parse error = %v, want ErrMalformed", err)
			}
			if len(got.Messages) != 0 {
				t.Errorf("Parse returned %d messages with its error", len(got.Messages))
			}
		})
	}
}

// TestParse_MessageIDsAsTheDeduplicatorChecksThem checks that Parse accepts
// exactly the message ids the deduplicator accepts, and that a refused id is
// reported with the deduplicator's sentinel as well as ErrMalformed.
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
			if got := err == nil; got != tt.want {
				t.Fatalf("Parse accepted = %v (%v), want %v", got, err, tt.want)
			}
			if !tt.want {
				if !errors.Is(err, webhook.ErrMalformed) || !errors.Is(err, domain.ErrInvalidMessageID) {
					t.Errorf("Parse error = %v, want ErrMalformed and domain.ErrInvalidMessageID", err)
				}
				return
			}
			if len(b.Messages) != 1 {
				t.Fatalf("Parse = %+v, want one message", b)
			}
			if err := domain.ValidateMessageID(b.Messages[0].MessageID); err != nil {
				t.Errorf("the deduplicator refuses the id Parse accepted: %v", err)
			}
		})
	}
}

// FuzzParse checks that Parse never panics, and that what it accepts is
// usable: every message has an id the deduplicator can key on and a sender.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"text-message.json", "batch-three-messages.json", "image-message.json", "status-delivered.json"} {
		f.Add(fixture(f, name))
	}
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{"messages":[{"from":"1","id":"wamid.a","type":"interactive","interactive":{"list_reply":{"title":"x"}}}]}}]}]}`))
	f.Add([]byte(`{"object":"whatsapp_business_account","entry":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := webhook.Parse(body)
		if err != nil {
			if !errors.Is(err, webhook.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if b.Statuses < 0 {
			t.Fatalf("Statuses = %d", b.Statuses)
		}
		for _, m := range b.Messages {
			if err := domain.ValidateMessageID(m.MessageID); err != nil || m.From == "" || m.TenantID != "" {
				t.Fatalf("accepted unusable message %+v (%v)", m, err)
			}
		}
	})
}
