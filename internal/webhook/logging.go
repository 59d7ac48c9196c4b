package webhook

import (
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// warnEvery is how often each warning about a bad request is logged at
// most.
const warnEvery = 10 * time.Second

// Bounds on what a request carries that is logged as it is. Anything longer,
// or of other characters, is logged as its length.
const (
	// maxLoggedMessageIDLen caps the message ids logged. WhatsApp's are
	// around 60 bytes.
	maxLoggedMessageIDLen = 128
	// maxLoggedNumericIDLen caps the WABA and phone number ids logged:
	// digits only.
	maxLoggedNumericIDLen = 64
	// maxLoggedTypeLen caps the message types logged: lower-case letters
	// and '_' only (text, image, interactive, …).
	maxLoggedTypeLen = 32
)

// sampled returns logger with each message logged at most once per
// warnEvery.
func sampled(logger *zap.Logger) *zap.Logger {
	return logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewSamplerWithOptions(c, warnEvery, 1, 0)
	}))
}

// tenantField logs a tenant id as it is if it is a configured tenant's, and
// otherwise as its length, tenant_len: an id that only a request carries
// may hold anything, control, bidirectional and zero-width characters
// included, even when it passes domain.ValidateTenantID.
func (h *Handler) tenantField(id string) zap.Field {
	if _, ok := h.tenants[id]; !ok {
		return zap.Int("tenant_len", len(id))
	}
	return zap.String("tenant", id)
}

// messageIDField logs a message id as it is if it is 1 to
// maxLoggedMessageIDLen bytes of printable ASCII other than space, as
// WhatsApp's are, and otherwise as its length, message_id_len:
// domain.ValidateMessageID alone lets through bidirectional and zero-width
// characters.
func messageIDField(id string) zap.Field {
	if !isWord(id, maxLoggedMessageIDLen, func(c byte) bool { return '!' <= c && c <= '~' }) {
		return zap.Int("message_id_len", len(id))
	}
	return zap.String("message_id", id)
}

// numericIDField logs a WABA or phone number id under key if it is 1 to
// maxLoggedNumericIDLen digits, and otherwise as its length, key+"_len".
func numericIDField(key, id string) zap.Field {
	if !isWord(id, maxLoggedNumericIDLen, func(c byte) bool { return '0' <= c && c <= '9' }) {
		return zap.Int(key+"_len", len(id))
	}
	return zap.String(key, id)
}

// typeField logs a message type if it is 1 to maxLoggedTypeLen lower-case
// letters and '_', and otherwise as its length, type_len.
func typeField(typ string) zap.Field {
	if !isWord(typ, maxLoggedTypeLen, func(c byte) bool { return 'a' <= c && c <= 'z' || c == '_' }) {
		return zap.Int("type_len", len(typ))
	}
	return zap.String("type", typ)
}

// isWord reports whether s is 1 to maxLen bytes, each allowed.
func isWord(s string, maxLen int, allowed func(byte) bool) bool {
	if s == "" || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return false
		}
	}
	return true
}
