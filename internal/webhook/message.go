package webhook

import (
	"context"
	"time"
)

// Message is one inbound WhatsApp message, normalized for delivery to a
// contact center.
type Message struct {
	TenantID string
	// MessageID is WhatsApp's message id (wamid.…), the dedupe key.
	MessageID string
	// From is the sender's WhatsApp id (wa_id), Nickname their profile name.
	From, Nickname string
	// Type is WhatsApp's message type: text, image, …
	Type string
	// Text is the message text, or a media message's caption.
	Text string
	// Timestamp is when WhatsApp received the message.
	Timestamp time.Time
}

// Deliverer hands an inbound message on, such as to Genesys Cloud's Open
// Messaging API. A nil error means the message was accepted; an error means
// it was not, and the message must be offered again later. It must be safe
// for concurrent use.
type Deliverer interface {
	Deliver(ctx context.Context, msg Message) error
}
