package webhook

import (
	"encoding/json"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/internal/redact"
)

// Tenant is one tenant's webhook settings.
type Tenant struct {
	// VerifyToken is what Meta's subscription handshake must present. A
	// secret: never log it. Empty refuses every handshake.
	VerifyToken string
	// AppSecret is the Meta app secret this tenant's bodies are signed
	// with. A secret: never log it. Required: empty refuses every POST
	// (401).
	AppSecret []byte
	// WABAIDs are the WhatsApp Business Account ids the tenant owns: at
	// least one. An entry of a payload for another account is refused.
	WABAIDs []string
	// PhoneNumberIDs, when not empty, are the only phone number ids whose
	// messages the tenant takes: a change for another phone number is
	// refused. Empty takes every phone number of the tenant's accounts.
	PhoneNumberIDs []string
}

// plainTenant is a [Tenant] with its secrets masked, for fmt and
// encoding/json to format: a secret shows as "xxxxx" when it is set and as
// "" when it is not.
type plainTenant struct {
	VerifyToken, AppSecret  string
	WABAIDs, PhoneNumberIDs []string
}

func (t Tenant) redacted() plainTenant {
	return plainTenant{redact.Secret(t.VerifyToken), redact.Secret(string(t.AppSecret)), t.WABAIDs, t.PhoneNumberIDs}
}

// String formats t with its secrets masked, such as
// webhook.Tenant{VerifyToken: "xxxxx", AppSecret: "xxxxx", WABAIDs:
// [209988776655443], PhoneNumberIDs: []}.
func (t Tenant) String() string {
	p := t.redacted()
	return fmt.Sprintf("webhook.Tenant{VerifyToken: %q, AppSecret: %q, WABAIDs: %v, PhoneNumberIDs: %v}",
		p.VerifyToken, p.AppSecret, p.WABAIDs, p.PhoneNumberIDs)
}

// GoString formats t for %#v with its secrets masked as in [Tenant.String].
func (t Tenant) GoString() string { return redact.GoSyntax("webhook.Tenant", t.redacted()) }

// Format formats t for every verb with its secrets masked: %#v as
// [Tenant.GoString], any other verb as it formats [Tenant.String]. Without
// it, a verb such as %d would print the fields themselves.
func (t Tenant) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String, t.GoString) }

// MarshalJSON encodes t as encoding/json would, with its secrets masked as
// in [Tenant.String].
func (t Tenant) MarshalJSON() ([]byte, error) { return json.Marshal(t.redacted()) }

// tenant is a [Tenant] ready for lookups, and a copy: the caller may reuse
// the slices of the Tenant it was made from.
type tenant struct {
	verifyToken string
	appSecret   []byte
	wabaIDs     map[string]bool
	// phoneNumberIDs is nil when the tenant takes every phone number.
	phoneNumberIDs map[string]bool
}

func newTenant(t Tenant) *tenant {
	nt := &tenant{
		verifyToken: t.VerifyToken,
		appSecret:   slices.Clone(t.AppSecret),
		wabaIDs:     set(t.WABAIDs),
	}
	if len(t.PhoneNumberIDs) > 0 {
		nt.phoneNumberIDs = set(t.PhoneNumberIDs)
	}
	return nt
}

func set(ids []string) map[string]bool {
	s := make(map[string]bool, len(ids))
	for _, id := range ids {
		s[id] = true
	}
	return s
}

// admitted is what a tenant takes of a payload.
type admitted struct {
	// messages are the usable messages of the tenant's entries and
	// changes, in payload order.
	messages []Message
	// skipped counts the messages left out: those Parse skipped in the
	// tenant's changes, and every message of the others that Parse could
	// decode (a malformed entry's or change's are unknown).
	skipped int
	// statuses counts the receipts of the tenant's changes.
	statuses int
	// owned reports whether any entry is the tenant's: a well-formed one
	// for one of its accounts and, when it takes only some phone numbers,
	// with a well-formed change for one of them. So an entry for one of the
	// tenant's accounts whose changes are all malformed is owned when the
	// tenant takes every phone number (answered 200, nothing delivered),
	// and not when it takes only some: a malformed change's phone number is
	// unknown. A malformed entry is never owned: its account is unknown.
	owned bool
}

// admit keeps what of b is tenant t's, and counts and logs (sampled) what is
// not: each malformed entry (it cannot be shown to be the tenant's), each
// entry for another account, each malformed change of the tenant's entries,
// each change for a phone number t does not take, and each message skipped.
// Logs carry ids that pass an id syntax check, the lengths of the others,
// the positions of malformed entries and changes, and never a message's
// content.
func (h *Handler) admit(t *tenant, tenantID string, b Batch) admitted {
	var a admitted
	tf := h.tenantField(tenantID)
	for i, e := range b.Entries {
		if e.Malformed {
			h.metrics.refuse(SkipMalformed)
			h.warn.Warn("webhook entry refused: malformed", tf, zap.Int("entry_index", i))
			continue
		}
		if !t.wabaIDs[e.WABAID] {
			n := e.messageCount()
			h.metrics.refuse(SkipWABAID)
			h.metrics.skip(SkipWABAID, n)
			a.skipped += n
			h.warn.Warn("webhook entry refused: not the tenant's account", tf,
				numericIDField("waba_id", e.WABAID), zap.Int("messages", n))
			continue
		}
		if t.phoneNumberIDs == nil {
			a.owned = true
		}
		for j, c := range e.Changes {
			if c.Malformed {
				h.metrics.refuse(SkipMalformed)
				h.warn.Warn("webhook change refused: malformed", tf,
					numericIDField("waba_id", e.WABAID), zap.Int("entry_index", i), zap.Int("change_index", j))
				continue
			}
			if t.phoneNumberIDs != nil && !t.phoneNumberIDs[c.PhoneNumberID] {
				n := c.messageCount()
				h.metrics.refuse(SkipPhoneNumberID)
				h.metrics.skip(SkipPhoneNumberID, n)
				a.skipped += n
				h.warn.Warn("webhook change refused: not the tenant's phone number", tf,
					numericIDField("waba_id", e.WABAID), numericIDField("phone_number_id", c.PhoneNumberID),
					zap.Int("messages", n))
				continue
			}
			a.owned = true
			a.messages = append(a.messages, c.Messages...)
			a.statuses += c.Statuses
			a.skipped += len(c.Skipped)
			for _, s := range c.Skipped {
				h.metrics.skip(s.Reason, 1)
				h.warn.Warn("webhook message skipped: it can never be delivered", tf,
					zap.Int("index", s.Index), zap.String("reason", string(s.Reason)),
					typeField(s.Type), zap.Int("message_id_len", s.IDLen))
			}
		}
	}
	return a
}
