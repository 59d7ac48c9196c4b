package logsink_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/logsink"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

func TestSink_WritesOneJSONLinePerMessage(t *testing.T) {
	tests := []struct {
		name string
		give webhook.Message
		want logsink.Line
	}{
		{
			name: "text",
			give: webhook.Message{TenantID: "demo", MessageID: "wamid.A1", From: "12025550142", Nickname: "Dana Ortiz",
				Type: "text", Text: "Where is my parcel?\nThanks", Timestamp: time.Unix(1764137400, 0)},
			want: logsink.Line{Tenant: "demo", MessageID: "wamid.A1", From: "12025550142", Nickname: "Dana Ortiz",
				Type: "text", Text: "Where is my parcel?\nThanks", Timestamp: "2025-11-26T06:10:00Z"},
		},
		{
			name: "no nickname, text or time",
			give: webhook.Message{TenantID: "demo", MessageID: "wamid.A2", From: "12025550142", Type: "location"},
			want: logsink.Line{Tenant: "demo", MessageID: "wamid.A2", From: "12025550142", Type: "location"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := logsink.New(&out).Deliver(context.Background(), tt.give); err != nil {
				t.Fatal(err)
			}
			if strings.Count(out.String(), "\n") != 1 || !strings.HasSuffix(out.String(), "\n") {
				t.Fatalf("output %q is not exactly one line", out.String())
			}
			var got logsink.Line
			dec := json.NewDecoder(&out)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("line = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSink_ConcurrentLinesNeverInterleave(t *testing.T) {
	var out bytes.Buffer
	sink := logsink.New(&out)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := webhook.Message{TenantID: "demo", MessageID: fmt.Sprintf("wamid.%d", i), From: "1", Type: "text",
				Text: strings.Repeat("x", 1000)}
			if err := sink.Deliver(context.Background(), msg); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l logsink.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		seen[l.MessageID] = true
	}
	if len(seen) != 200 {
		t.Errorf("distinct lines = %d, want 200", len(seen))
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestSink_Errors(t *testing.T) {
	msg := webhook.Message{TenantID: "demo", MessageID: "wamid.A3", From: "1", Type: "text"}
	if err := logsink.New(failingWriter{}).Deliver(context.Background(), msg); err == nil {
		t.Error("Deliver succeeded on a failing writer")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := logsink.New(&out).Deliver(ctx, msg); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with a cancelled context = %v, want context.Canceled", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %q for a cancelled delivery", out.String())
	}
}
