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
	// Malformed reports that the entry's own fields do not have the JSON
	// types WhatsApp sends: it is not an object, its id is not a string, or
	// its changes are not an array. Nothing of a malformed entry is known,
	// so its WABAID is empty and it has no Changes.
	Malformed bool
	// WABAID is the entry's id, the WhatsApp Business Account (WABA) the
	// changes are for. It is the sender's claim, unchecked.
	WABAID string
	// Changes are the entry's changes[], in payload order, the malformed
	// ones included.
	Changes []Change
}

// Change is one entry[].changes[]: what one phone number received.
type Change struct {
	// Malformed reports that the change's fields outside its messages do
	// not have the JSON types WhatsApp sends: it or its value is not an
	// object, its value.metadata is not an object or its phone_number_id
	// not a string, or its messages or statuses are not an array. Nothing
	// of a malformed change is known, so its other fields are zero.
	Malformed bool
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
	// WhatsApp sends, such as a number where a string belongs. The handler
	// refuses a malformed [Entry] or [Change] under the same reason.
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
	// Index is the message's position among the messages of the payload's
	// well-formed entries and changes, counted from 0 in payload order.
	Index int
	// Reason says why the message is skipped.
	Reason SkipReason
	// Type is the message's type as sent, unchecked; empty when it has
	// none.
	Type string
	// IDLen is the length of the message's id in bytes.
	IDLen int
}

// MessageCount returns how many messages the payload holds, usable or
// skipped. It counts only what could be decoded: the messages of a
// malformed entry or change are unknown, and not counted.
func (b Batch) MessageCount() int {
	n := 0
	for _, e := range b.Entries {
		n += e.messageCount()
	}
	return n
}

// messageCount is how many messages e's changes hold, usable or skipped.
func (e Entry) messageCount() int {
	n := 0
	for _, c := range e.Changes {
		n += c.messageCount()
	}
	return n
}

// messageCount is how many messages c holds, usable or skipped.
func (c Change) messageCount() int { return len(c.Messages) + len(c.Skipped) }

// payload is a webhook body, its entries decoded as E.
type payload[E any] struct {
	Object string `json:"object"`
	Entry  []E    `json:"entry"`
}

// The two ways Parse decodes a payload: strict, the whole payload at once,
// and lenient, each entry, change and message on its own, in an [orError],
// so that a value of the wrong JSON type spoils only the part it is in.
type (
	strict  = payload[entry[change[message, contacts]]]
	lenient = payload[orError[entry[orError[change[orError[message], names]]]]]
)

// entry is one entry[], its changes decoded as C.
type entry[C any] struct {
	ID      string `json:"id"`
	Changes []C    `json:"changes"`
}

// change is one entry[].changes[], its messages decoded as M and its
// contacts as N.
type change[M any, N nicknames] struct {
	Value struct {
		Metadata struct {
			PhoneNumberID string `json:"phone_number_id"`
		} `json:"metadata"`
		Contacts N                 `json:"contacts"`
		Messages []M               `json:"messages"`
		Statuses []json.RawMessage `json:"statuses"`
	} `json:"value"`
}

// nicknames are value.contacts[] as decoded: the profile name of a sender,
// by its wa_id, "" when it has none.
type nicknames interface {
	nickname(waID string) string
	// indexed returns the same nicknames, fit to be looked up once per
	// message.
	indexed() nicknames
}

// maxScannedContacts is how many contacts are looked up by a scan; more are
// indexed in a map, so that a change's lookups take time in proportion to
// its messages and contacts, not to their product.
const maxScannedContacts = 8

// contact is one element of value.contacts[].
type contact struct {
	Profile struct {
		Name string `json:"name"`
	} `json:"profile"`
	WaID string `json:"wa_id"`
}

// contacts is value.contacts[] decoded with the rest of its payload.
type contacts []contact

func (cs contacts) indexed() nicknames {
	if len(cs) <= maxScannedContacts {
		return cs
	}
	n := make(names, len(cs))
	for _, c := range cs {
		n[c.WaID] = c.Profile.Name
	}
	return n
}

func (cs contacts) nickname(waID string) string {
	for _, c := range cs {
		if c.WaID == waID {
			return c.Profile.Name
		}
	}
	return ""
}

// names is value.contacts[] decoded on its own, for the lenient pass: it
// never fails to decode. A contact whose fields do not have the JSON types
// WhatsApp sends is left out, and so is every contact when contacts[] is
// not an array. A name is only cosmetic: a message whose sender has none is
// delivered without a nickname.
type names map[string]string

func (n *names) UnmarshalJSON(data []byte) error {
	var raws []json.RawMessage
	if json.Unmarshal(data, &raws) != nil {
		return nil
	}
	*n = make(names, len(raws))
	for _, raw := range raws {
		var c contact
		if json.Unmarshal(raw, &c) == nil {
			(*n)[c.WaID] = c.Profile.Name
		}
	}
	return nil
}

func (n names) nickname(waID string) string { return n[waID] }

func (n names) indexed() nicknames { return n }

// orError is a T decoded on its own, and what decoding it found wrong.
// Decoding an orError never fails: its error is kept for the caller.
type orError[T any] struct {
	v   T
	err error
}

func (o *orError[T]) UnmarshalJSON(data []byte) error {
	o.err = json.Unmarshal(data, &o.v)
	return nil
}

// decoder is a T as decoded, and what was wrong with it: an [orError], or a
// T decoded with the rest of its payload, never wrong.
type decoder[T any] interface {
	decoded() (T, error)
}

func (o orError[T]) decoded() (T, error)              { return o.v, o.err }
func (e entry[C]) decoded() (entry[C], error)         { return e, nil }
func (c change[M, N]) decoded() (change[M, N], error) { return c, nil }
func (m message) decoded() (message, error)           { return m, nil }

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

// Parse reads a webhook payload: every entry[] with its id, each of its
// changes[] with value.metadata.phone_number_id, and the messages of
// value.messages[], with the sender's profile name from the same value's
// contacts[].
//
// Only a payload that is not JSON, is not a JSON object, is not a
// whatsapp_business_account object, or whose entry is not an array, is
// rejected whole, with [ErrMalformed]; the error names where in the payload
// it went wrong, never what the payload holds. Any other part of the wrong
// JSON type spoils only itself, so that it does not hold back the rest:
//   - an entry that is not an object, whose id is not a string, or whose
//     changes are not an array, is kept only as an entry marked
//     [Entry.Malformed], without its id or changes;
//   - a change that is not an object, whose value or value.metadata is not
//     an object, whose value.metadata.phone_number_id (which tenants are
//     bound by) is not a string, or whose value.messages or value.statuses
//     are not an array, is kept only as a change marked [Change.Malformed],
//     without its phone number id, messages or statuses;
//   - a contact of the wrong shape only loses its profile name, and all
//     contacts do when contacts[] is not an array: their messages are kept,
//     without a nickname;
//   - a message that can never be delivered is skipped: one whose fields
//     have the wrong JSON types ([SkipMalformed]), whose id
//     [domain.ValidateMessageID] refuses ([SkipBadID]: the deduplicator
//     could not key on it), or that has no sender ([SkipNoSender]).
//
// Every message of a well-formed change is either in Messages or in Skipped
// of its change; the messages of a malformed entry or change are unknown.
func Parse(body []byte) (Batch, error) {
	// One pass decodes the payload unless a value has the wrong JSON type;
	// then a second decodes each entry, change and message on its own, so
	// that such a value spoils only the part it is in.
	var p strict
	err := json.Unmarshal(body, &p)
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		var each lenient
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

// batch makes the Batch of a decoded payload. An entry or change decoded
// with an error is kept as malformed, with nothing of what was decoded.
func batch[E decoder[entry[C]], C decoder[change[M, N]], M decoder[message], N nicknames](p payload[E]) (Batch, error) {
	if p.Object != objectWhatsApp {
		return Batch{}, fmt.Errorf("%w: object is not %s", ErrMalformed, objectWhatsApp)
	}
	b := Batch{Entries: make([]Entry, 0, len(p.Entry))}
	index := 0
	for _, de := range p.Entry {
		e, err := de.decoded()
		if err != nil {
			b.Entries = append(b.Entries, Entry{Malformed: true})
			continue
		}
		be := Entry{WABAID: e.ID, Changes: make([]Change, 0, len(e.Changes))}
		for _, dc := range e.Changes {
			c, err := dc.decoded()
			if err != nil {
				be.Changes = append(be.Changes, Change{Malformed: true})
				continue
			}
			v := c.Value
			bc := Change{PhoneNumberID: v.Metadata.PhoneNumberID, Statuses: len(v.Statuses)}
			var contacts nicknames
			if len(v.Messages) > 0 {
				contacts = v.Contacts.indexed()
			}
			for _, dm := range v.Messages {
				m, err := dm.decoded()
				msg, reason := m.parse(err, contacts)
				if reason != "" {
					bc.Skipped = append(bc.Skipped, Skipped{Index: index, Reason: reason, Type: msg.Type, IDLen: len(msg.MessageID)})
				} else {
					bc.Messages = append(bc.Messages, msg)
				}
				index++
			}
			be.Changes = append(be.Changes, bc)
		}
		b.Entries = append(b.Entries, be)
	}
	return b, nil
}

// parse makes m a Message, its sender's name looked up in contacts; err is
// what decoding m found wrong. A message that can never be delivered comes
// back with the reason it is skipped, and with its id and type as far as
// they were read.
func (m message) parse(err error, contacts nicknames) (Message, SkipReason) {
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
		Nickname:  contacts.nickname(m.From),
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
