// Package logsink delivers inbound messages as JSON lines on a writer. It
// needs no account anywhere, so the connector runs on a fresh machine with
// it: `make run` writes each delivered message as one line on standard
// output, while logs go to standard error.
package logsink

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// Sink writes each message it is given as one JSON line. It is safe for
// concurrent use: lines are never interleaved.
type Sink struct {
	mu sync.Mutex
	w  io.Writer
}

var _ webhook.Deliverer = (*Sink)(nil)

// New returns a Sink writing to w.
func New(w io.Writer) *Sink { return &Sink{w: w} }

// Line is the JSON form of one delivered message.
type Line struct {
	Tenant    string `json:"tenant"`
	MessageID string `json:"message_id"`
	From      string `json:"from"`
	Nickname  string `json:"nickname,omitempty"`
	Type      string `json:"type"`
	Text      string `json:"text,omitempty"`
	// Timestamp is RFC 3339 in UTC; empty when WhatsApp gave none.
	Timestamp string `json:"timestamp,omitempty"`
}

// Deliver writes msg as one line. An error means the line was not written
// whole, and the message should be offered again.
func (s *Sink) Deliver(ctx context.Context, msg webhook.Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	line := Line{
		Tenant:    msg.TenantID,
		MessageID: msg.MessageID,
		From:      msg.From,
		Nickname:  msg.Nickname,
		Type:      msg.Type,
		Text:      msg.Text,
	}
	if !msg.Timestamp.IsZero() {
		line.Timestamp = msg.Timestamp.UTC().Format(time.RFC3339)
	}
	b, err := json.Marshal(line)
	if err != nil {
		return fmt.Errorf("logsink: message %s: %w", msg.MessageID, err)
	}
	b = append(b, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("logsink: message %s: %w", msg.MessageID, err)
	}
	return nil
}
