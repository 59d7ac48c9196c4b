package domain

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Errors returned for ids that cannot be used. Nothing is sent to a store for
// them. Match them with [errors.Is].
var (
	ErrInvalidTenantID  = errors.New("domain: invalid tenant id")
	ErrInvalidMessageID = errors.New("domain: invalid message id")
)

const (
	maxTenantIDLen  = 128
	maxMessageIDLen = 512
)

// ValidateTenantID returns an error wrapping [ErrInvalidTenantID] unless id
// is 1–128 bytes of UTF-8 without ':', white space or control characters:
// the ids the services accept. The colon is the key separator: without that rule,
// tenant "a:b" with message "c" and tenant "a" with message "b:c" would
// share a key.
func ValidateTenantID(id string) error {
	return validateID(id, maxTenantIDLen, &tenantASCII, ":", ErrInvalidTenantID)
}

// ValidateMessageID returns an error wrapping [ErrInvalidMessageID] unless
// id is 1–512 bytes of UTF-8 without white space or control characters: the
// ids the services accept.
func ValidateMessageID(id string) error {
	return validateID(id, maxMessageIDLen, &messageASCII, "", ErrInvalidMessageID)
}

// validateID checks id against its length bound, then byte by byte against
// allowed, the ASCII it may hold (the common case, decided without decoding
// runes), and otherwise rune by rune.
func validateID(id string, maxLen int, allowed *[256]bool, forbidden string, sentinel error) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", sentinel)
	case len(id) > maxLen:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", sentinel, len(id), maxLen)
	case allASCIIIn(id, allowed):
		return nil
	case !utf8.ValidString(id):
		return fmt.Errorf("%w: not valid UTF-8", sentinel)
	}
	for i, r := range id {
		if unicode.IsSpace(r) || unicode.IsControl(r) || strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("%w: character %q at byte %d not allowed", sentinel, r, i)
		}
	}
	return nil
}

// allASCIIIn reports whether every byte of id is marked in allowed. It runs
// on every call of the token hot path.
func allASCIIIn(id string, allowed *[256]bool) bool {
	for i := 0; i < len(id); i++ {
		if !allowed[id[i]] {
			return false
		}
	}
	return true
}

// The ASCII bytes ids may hold: printable, no space; no ':' in a tenant id.
var messageASCII, tenantASCII = func() (msg, tenant [256]bool) {
	for b := '!'; b <= '~'; b++ {
		msg[b], tenant[b] = true, b != ':'
	}
	return msg, tenant
}()
