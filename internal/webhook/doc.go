// Package webhook receives WhatsApp Cloud API webhooks for many tenants: it
// checks Meta's signature with the tenant's app secret, parses the payload
// into inbound messages, keeps only the messages of the WhatsApp Business
// Accounts (and phone numbers) the tenant owns, and hands each message the
// deduplicator has not seen to a deliverer.
//
// Everything before the signature check is bounded, because anyone can send
// it: how many bodies are read at once, how long one body may take
// (BodyTimeout, 10 seconds by default), and how large it may be (a
// Content-Length over the limit is refused before anything is read). Those
// bounds still let a client that trickles its bodies over many connections
// hold every slot: facing the internet, the handler belongs behind a
// reverse proxy that buffers request bodies before passing them on, or
// behind an allowlist of the addresses Meta sends webhooks from.
//
// Nothing a request carries is logged unless it is a configured tenant's id
// or passes an id syntax check; otherwise only its length is. Warnings about
// bad requests are sampled, so that a flood of them cannot flood the log.
package webhook
