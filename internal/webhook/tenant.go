package webhook

import (
	"fmt"
	"io"
	"slices"

	"go.uber.org/zap"
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

// String formats t with its secrets masked, such as
// webhook.Tenant{VerifyToken: "xxxxx", AppSecret: "xxxxx", WABAIDs:
// [209988776655443], PhoneNumberIDs: []}: a secret shows as "xxxxx" when it
// is set and as "" when it is not.
func (t Tenant) String() string {
	return fmt.Sprintf("webhook.Tenant{VerifyToken: %q, AppSecret: %q, WABAIDs: %v, PhoneNumberIDs: %v}",
		masked(t.VerifyToken != ""), masked(len(t.AppSecret) > 0), t.WABAIDs, t.PhoneNumberIDs)
}

// GoString formats t for %#v with its secrets masked as in [Tenant.String].
func (t Tenant) GoString() string {
	return fmt.Sprintf("webhook.Tenant{VerifyToken:%q, AppSecret:%q, WABAIDs:%#v, PhoneNumberIDs:%#v}",
		masked(t.VerifyToken != ""), masked(len(t.AppSecret) > 0), t.WABAIDs, t.PhoneNumberIDs)
}

// Format formats t for every verb with its secrets masked: %#v as
// [Tenant.GoString], any other verb as it formats [Tenant.String]. Without
// it, a verb such as %d would print the fields themselves.
func (t Tenant) Format(f fmt.State, verb rune) { format(f, verb, t.String, t.GoString) }

// format writes to f for verb: %#v as goString formats, any other verb
// applied to what str formats.
func format(f fmt.State, verb rune, str, goString func() string) {
	if verb == 'v' && f.Flag('#') {
		_, _ = io.WriteString(f, goString())
		return
	}
	_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), str())
}

// masked is a secret as printed: "xxxxx" when it is set, "" when it is not.
func masked(set bool) string {
	if !set {
		return ""
	}
	return "xxxxx"
}

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
	// tenant's changes, and every message of the others.
	skipped int
	// statuses counts the receipts of the tenant's changes.
	statuses int
	// owned reports whether any entry is the tenant's: one for one of its
	// accounts and, when it takes only some phone numbers, with a change
	// for one of them.
	owned bool
}

// admit keeps what of b is tenant t's, and counts and logs (sampled) what is
// not: each entry for another account, each change for a phone number t does
// not take, and each message skipped. Logs carry ids that pass an id syntax
// check, the lengths of the others, and never a message's content.
func (h *Handler) admit(t *tenant, tenantID string, b Batch) admitted {
	var a admitted
	tf := h.tenantField(tenantID)
	for _, e := range b.Entries {
		if !t.wabaIDs[e.WABAID] {
			n := changesMessages(e.Changes)
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
		for _, c := range e.Changes {
			if t.phoneNumberIDs != nil && !t.phoneNumberIDs[c.PhoneNumberID] {
				n := len(c.Messages) + len(c.Skipped)
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

// changesMessages counts the messages of changes, usable or skipped.
func changesMessages(changes []Change) int {
	n := 0
	for _, c := range changes {
		n += len(c.Messages) + len(c.Skipped)
	}
	return n
}
