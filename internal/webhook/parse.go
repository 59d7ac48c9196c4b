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

// Batch is what one webhook POST carries: its entries in payload order.
type Batch struct {
	Entries []Entry
}

// Entry is one entry[] of a payload: changes reported for one WhatsApp
// Business Account.
type Entry struct {
	// WABAID is the entry's id, the WhatsApp Business Account (WABA) the
	// changes are for. It is the sender's claim, unchecked.
	WABAID string
	// Changes are the entry's changes[], in payload order.
	Changes []Change
}

// Change is one entry[].changes[]: what one phone number received.
type Change struct {
	// PhoneNumberID is value.metadata.phone_number_id, the id of the phone
	// number the messages were sent to. It is the sender's claim, unchecked.
	PhoneNumberID string
	// Messages are the change's usable messages in payload order, without
	// a TenantID: the webhook URL names the tenant.
	Messages []Message
	// Skipped are the change's messages that can never be delivered, in
	// payload order.
	Skipped []Skipped
	// Statuses counts the receipts (sent, delivered, read, failed) in the
	// change. They reuse the wamid of the outbound message they report on,
	// so they are acknowledged and never treated as messages.
	Statuses int
}

// SkipReason says why a message is skipped. Its values are a fixed set, the
// values of the reason label of connector_webhook_skipped_messages_total.
type SkipReason string

// Why Parse skips a message.
const (
	// SkipMalformed is a message whose fields do not have the JSON types
	// WhatsApp sends, such as a number where a string belongs.
	SkipMalformed SkipReason = "malformed"
	// SkipBadID is a message whose id [domain.ValidateMessageID] refuses:
	// the deduplicator cannot key on it.
	SkipBadID SkipReason = "bad_id"
	// SkipNoSender is a message without a sender.
	SkipNoSender SkipReason = "no_sender"
)

// Why the handler skips a message of a tenant's webhook, besides the reasons
// Parse has.
const (
	// SkipWABAID is a message of an entry whose WABA id is not one of the
	// tenant's.
	SkipWABAID SkipReason = "waba_id"
	// SkipPhoneNumberID is a message of a change whose phone number id is
	// not one the tenant takes.
	SkipPhoneNumberID SkipReason = "phone_number_id"
)

// Skipped describes a message left out because it can never be delivered.
// It holds none of the message's content.
type Skipped struct {
	// Index is the message's position among all the payload's messages,
	// counted from 0 in payload order.
	Index int
	// Reason says why the message is skipped.
	Reason SkipReason
	// Type is the message's type as sent, unchecked; empty when it has
	// none.
	Type string
	// IDLen is the length of the message's id in bytes.
	IDLen int
}

// Messages returns the usable messages of every entry, in payload order.
func (b Batch) Messages() []Message {
	var msgs []Message
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			msgs = append(msgs, c.Messages...)
		}
	}
	return msgs
}

// Skipped returns the skipped messages of every entry, in payload order.
func (b Batch) Skipped() []Skipped {
	var skipped []Skipped
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			skipped = append(skipped, c.Skipped...)
		}
	}
	return skipped
}

// MessageCount returns how many messages the payload holds, usable or
// skipped.
func (b Batch) MessageCount() int {
	n := 0
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			n += len(c.Messages) + len(c.Skipped)
		}
	}
	return n
}

// Statuses returns how many receipts the payload holds.
func (b Batch) Statuses() int {
	n := 0
	for _, e := range b.Entries {
		for _, c := range e.Changes {
			n += c.Statuses
		}
	}
	return n
}

// payload is a webhook body, its messages decoded as M: [message] in one
// pass, or [messageOrError] one message at a time.
type payload[M any] struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Value struct {
				Metadata struct {
					PhoneNumberID string `json:"phone_number_id"`
				} `json:"metadata"`
				Contacts []struct {
					Profile struct {
						Name string `json:"name"`
					} `json:"profile"`
					WaID string `json:"wa_id"`
				} `json:"contacts"`
				Messages []M               `json:"messages"`
				Statuses []json.RawMessage `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// messageOrError is one element of value.messages[], decoded on its own, so
// that a message whose fields have the wrong JSON types spoils only itself.
type messageOrError struct {
	message
	// err is what decoding the message found wrong.
	err error
}

func (m *messageOrError) UnmarshalJSON(data []byte) error {
	m.err = json.Unmarshal(data, &m.message)
	return nil
}

// decoded is one element of value.messages[] as decoded, and what was wrong
// with it.
type decoded interface {
	decoded() (message, error)
}

func (m messageOrError) decoded() (message, error) { return m.message, m.err }

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

func (m message) decoded() (message, error) { return m, nil }

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

// Parse reads a webhook payload: every entry[] with its id, each of its
// changes[] with value.metadata.phone_number_id, and the messages of
// value.messages[], with the sender's profile name from the same value's
// contacts[].
//
// Only a payload that is not JSON, is not a whatsapp_business_account
// object, or whose entries and changes do not have the JSON types WhatsApp
// sends, is rejected whole, with [ErrMalformed]; the error names where in
// the payload it went wrong, never what the payload holds. A message that
// can never be delivered is skipped instead, so that it does not hold back
// the rest: one whose fields have the wrong JSON types ([SkipMalformed]),
// whose id [domain.ValidateMessageID] refuses ([SkipBadID]: the
// deduplicator could not key on it), or that has no sender
// ([SkipNoSender]). Every message of the payload is either in Messages or
// in Skipped of its change.
func Parse(body []byte) (Batch, error) {
	// One pass decodes the payload unless a value has the wrong JSON type;
	// then a second decodes each message on its own, so that such a value
	// in a message spoils only that message.
	var p payload[message]
	err := json.Unmarshal(body, &p)
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		var each payload[messageOrError]
		if err := json.Unmarshal(body, &each); err != nil {
			return Batch{}, fmt.Errorf("%w: %s", ErrMalformed, describe(err))
		}
		return batch(each)
	}
	if err != nil {
		return Batch{}, fmt.Errorf("%w: %s", ErrMalformed, describe(err))
	}
	return batch(p)
}

// batch makes the Batch of a decoded payload.
func batch[M decoded](p payload[M]) (Batch, error) {
	if p.Object != objectWhatsApp {
		return Batch{}, fmt.Errorf("%w: object is not %s", ErrMalformed, objectWhatsApp)
	}
	b := Batch{Entries: make([]Entry, 0, len(p.Entry))}
	index := 0
	for _, e := range p.Entry {
		entry := Entry{WABAID: e.ID, Changes: make([]Change, 0, len(e.Changes))}
		for _, c := range e.Changes {
			v := c.Value
			change := Change{PhoneNumberID: v.Metadata.PhoneNumberID, Statuses: len(v.Statuses)}
			var names map[string]string
			if len(v.Messages) > 0 {
				names = make(map[string]string, len(v.Contacts))
				for _, ct := range v.Contacts {
					names[ct.WaID] = ct.Profile.Name
				}
			}
			for _, d := range v.Messages {
				m, err := d.decoded()
				msg, reason := m.parse(err, names)
				if reason != "" {
					change.Skipped = append(change.Skipped, Skipped{Index: index, Reason: reason, Type: msg.Type, IDLen: len(msg.MessageID)})
				} else {
					change.Messages = append(change.Messages, msg)
				}
				index++
			}
			entry.Changes = append(entry.Changes, change)
		}
		b.Entries = append(b.Entries, entry)
	}
	return b, nil
}

// parse makes m a Message, its sender's name looked up in names; err is what
// decoding m found wrong. A message that can never be delivered comes back
// with the reason it is skipped, and with its id and type as far as they
// were read.
func (m message) parse(err error, names map[string]string) (Message, SkipReason) {
	msg := Message{MessageID: m.ID, Type: m.Type}
	switch {
	case err != nil:
		return msg, SkipMalformed
	case domain.ValidateMessageID(m.ID) != nil:
		return msg, SkipBadID
	case m.From == "":
		return msg, SkipNoSender
	}
	return Message{
		MessageID: m.ID,
		From:      m.From,
		Nickname:  names[m.From],
		Type:      m.Type,
		Text:      m.text(),
		Timestamp: unixTime(m.Timestamp),
	}, ""
}

// describe says where err, from decoding a payload, found it malformed,
// without quoting the payload: a JSON syntax error's offset, or the path of
// the field of the wrong JSON type.
func describe(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return "invalid JSON at byte " + strconv.FormatInt(syntax.Offset, 10)
	case errors.As(err, &typ) && typ.Field != "":
		return "wrong JSON type at " + typ.Field
	case errors.As(err, &typ):
		return "not a JSON object"
	}
	return "invalid JSON"
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
