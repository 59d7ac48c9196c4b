// Package webhook receives WhatsApp Cloud API webhooks: it checks Meta's
// signature, parses the payload into inbound messages, and hands each
// message the deduplicator has not seen to a deliverer.
package webhook

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wa2genesys/connectorcache/domain"
)

// ErrMalformed is returned, wrapped, for a payload that is not a WhatsApp
// Business Account webhook this package can handle.
var ErrMalformed = errors.New("webhook: malformed payload")

// objectWhatsApp is the object every WhatsApp Business Account webhook names.
const objectWhatsApp = "whatsapp_business_account"

// Batch is what one webhook POST carries.
type Batch struct {
	// Messages are the inbound messages in payload order, without a
	// TenantID: the webhook URL names the tenant.
	Messages []Message
	// Statuses counts the receipts (sent, delivered, read, failed) in the
	// payload. They reuse the wamid of the outbound message they report on,
	// so they are acknowledged and never treated as messages.
	Statuses int
}

type payload struct {
	Object string `json:"object"`
	Entry  []struct {
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Contacts []struct {
					Profile struct {
						Name string `json:"name"`
					} `json:"profile"`
					WaID string `json:"wa_id"`
				} `json:"contacts"`
				Messages []message         `json:"messages"`
				Statuses []json.RawMessage `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type message struct {
	From      string `json:"from"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Type      string `json:"type"`
	Text      *struct {
		Body string `json:"body"`
	} `json:"text"`
	Image    *media `json:"image"`
	Video    *media `json:"video"`
	Document *media `json:"document"`
	Button   *struct {
		Text string `json:"text"`
	} `json:"button"`
	Interactive *struct {
		ButtonReply *struct {
			Title string `json:"title"`
		} `json:"button_reply"`
		ListReply *struct {
			Title string `json:"title"`
		} `json:"list_reply"`
	} `json:"interactive"`
}

type media struct {
	Caption string `json:"caption"`
}

// text is the message's text: a text body, a media caption, or the title
// of the button or list entry the user picked. Empty for the rest.
func (m message) text() string {
	switch {
	case m.Text != nil:
		return m.Text.Body
	case m.Image != nil:
		return m.Image.Caption
	case m.Video != nil:
		return m.Video.Caption
	case m.Document != nil:
		return m.Document.Caption
	case m.Button != nil:
		return m.Button.Text
	case m.Interactive != nil && m.Interactive.ButtonReply != nil:
		return m.Interactive.ButtonReply.Title
	case m.Interactive != nil && m.Interactive.ListReply != nil:
		return m.Interactive.ListReply.Title
	}
	return ""
}

// Parse reads a webhook payload: every entry[].changes[].value.messages[],
// with the sender's profile name from the same value's contacts[]. A
// payload that is not JSON, not a whatsapp_business_account object, or has
// a message without a usable id or sender, is rejected whole with
// [ErrMalformed]: nothing in it should be processed. A message id is usable
// when [domain.ValidateMessageID] accepts it, so that the deduplicator never
// refuses a message Parse let through; the error then wraps
// [domain.ErrInvalidMessageID] as well.
func Parse(body []byte) (Batch, error) {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return Batch{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.Object != objectWhatsApp {
		return Batch{}, fmt.Errorf("%w: object %q, want %s", ErrMalformed, p.Object, objectWhatsApp)
	}
	var b Batch
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			v := c.Value
			b.Statuses += len(v.Statuses)
			names := make(map[string]string, len(v.Contacts))
			for _, ct := range v.Contacts {
				names[ct.WaID] = ct.Profile.Name
			}
			for _, m := range v.Messages {
				if err := domain.ValidateMessageID(m.ID); err != nil {
					return Batch{}, fmt.Errorf("%w: %w", ErrMalformed, err)
				}
				if m.From == "" {
					return Batch{}, fmt.Errorf("%w: message %s has no sender", ErrMalformed, m.ID)
				}
				b.Messages = append(b.Messages, Message{
					MessageID: m.ID,
					From:      m.From,
					Nickname:  names[m.From],
					Type:      m.Type,
					Text:      m.text(),
					Timestamp: unixTime(m.Timestamp),
				})
			}
		}
	}
	return b, nil
}

// unixTime reads WhatsApp's timestamp, seconds since the epoch as a string.
// A missing or unreadable one is the zero time.
func unixTime(s string) time.Time {
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}
	}
	return time.Unix(secs, 0)
}
