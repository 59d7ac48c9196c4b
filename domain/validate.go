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

// validateTenantID accepts 1–128 bytes of UTF-8 without ':', white space or
// control characters. The colon is the key separator: without that rule,
// tenant "a:b" with message "c" and tenant "a" with message "b:c" would
// share a key.
func validateTenantID(id string) error {
	return validateID(id, maxTenantIDLen, ":", ErrInvalidTenantID)
}

// validateMessageID accepts 1–512 bytes of UTF-8 without white space or
// control characters.
func validateMessageID(id string) error {
	return validateID(id, maxMessageIDLen, "", ErrInvalidMessageID)
}

func validateID(id string, maxLen int, forbidden string, sentinel error) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty", sentinel)
	case len(id) > maxLen:
		return fmt.Errorf("%w: %d bytes, at most %d allowed", sentinel, len(id), maxLen)
	case printableASCII(id, forbidden):
		return nil // the common case, decided without decoding runes
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

// printableASCII reports whether id is made of printable ASCII only (no
// space, no control character) and holds none of forbidden. It runs on
// every call of the token hot path, so it looks each byte up in a table.
func printableASCII(id, forbidden string) bool {
	for i := 0; i < len(id); i++ {
		if !printable[id[i]] {
			return false
		}
	}
	return forbidden == "" || !strings.ContainsAny(id, forbidden)
}

// printable marks the bytes '!' to '~'.
var printable = func() (t [256]bool) {
	for b := '!'; b <= '~'; b++ {
		t[b] = true
	}
	return t
}()
