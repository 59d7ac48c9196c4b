// Package seal encrypts the access tokens a [ports.TokenStore] holds, so
// that reading the store (a Redis dump, a replica, a MONITOR session) does
// not yield a bearer token. It is a decorator: the domain does not know it
// is there, and the store beneath keeps its own semantics.
//
// # Format
//
// The store beneath is given a [ports.CachedToken] whose AccessToken is
//
//	v1.<key id>.<base64url, unpadded, of nonce ‖ ciphertext ‖ tag>
//
// sealed with AES-256-GCM under the keyring's first key, with a random
// 12-byte nonce per write and the key name the store keeps the token under
// ([Config.KeyName]) as additional data: a value copied under another
// tenant's key does not open. The plaintext is the token's ExpiresAt and
// RefreshAt, in Unix milliseconds as two big-endian int64s, then the access
// token. The store beneath also gets ExpiresAt and RefreshAt in clear, for
// its own use; readers take the sealed ones.
//
// # Values that do not open
//
// A value that does not open is a cache miss, logged as a warning: one
// written before sealing was turned on (plain text), one sealed with a key
// no longer in the keyring, or one tampered with or moved under another
// key. The token is fetched again and sealed afresh; the value left behind
// expires with its TTL. DeleteTokenIf leaves such a value alone.
//
// # Rotation
//
// Every key in the keyring opens; the first also seals. To rotate, put the
// new key first and keep the old one after it until every token sealed
// with it has expired (at most the token lifetime: about 24 hours for
// Genesys Cloud), then drop it. A key should not seal more than 2^32 tokens,
// which bounds the chance of a nonce repeating; rotating keeps far below.
//
// Deploy a new key to every reader before any writer seals with it: a
// process whose keyring lacks it reads tokens sealed with it as misses.
package seal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/internal/redact"
	"github.com/wa2genesys/connectorcache/ports"
)

// version is the prefix of every sealed value, before the key id.
const version = "v1."

// keySize is the size of an AES-256 key, in bytes.
const keySize = 32

// maxIDLen is the longest key id.
const maxIDLen = 32

// timesSize is the size of the sealed times: ExpiresAt and RefreshAt.
const timesSize = 16

// openMessage is the one message a value that does not open is logged with.
const openMessage = "cached token does not open; treated as a miss"

// ErrBadKey is wrapped by every error [ParseKeys] returns.
var ErrBadKey = errors.New("seal: bad key")

// Keyring holds the keys that seal and open tokens: the first seals, all
// open. It is immutable and safe for concurrent use.
type Keyring struct {
	ids   []string
	first cipher.AEAD
	byID  map[string]cipher.AEAD
}

// ParseKeys returns the keyring of specs, each "<key id>:<key>": the id is
// 1 to 32 of A-Z, a-z, 0-9, '_' and '-'; the key is exactly 32 random
// bytes in base64 (standard or URL alphabet, padded or not). The first
// spec's key seals. An error names the spec by position (from 1) and, when
// it is valid, by id, and never holds any part of a key.
func ParseKeys(specs []string) (*Keyring, error) {
	if len(specs) == 0 {
		return nil, fmt.Errorf("%w: no keys given", ErrBadKey)
	}
	k := &Keyring{ids: make([]string, 0, len(specs)), byID: make(map[string]cipher.AEAD, len(specs))}
	for i, spec := range specs {
		pos := i + 1
		id, encoded, ok := strings.Cut(strings.TrimSpace(spec), ":")
		if !ok {
			return nil, fmt.Errorf("%w: key %d: want <key id>:<base64 key>, found no ':'", ErrBadKey, pos)
		}
		if !validID(id) {
			return nil, fmt.Errorf("%w: key %d: id must be 1 to %d of A-Z, a-z, 0-9, '_' and '-'", ErrBadKey, pos, maxIDLen)
		}
		if _, dup := k.byID[id]; dup {
			return nil, fmt.Errorf("%w: key %d (id %s): id used twice", ErrBadKey, pos, id)
		}
		raw, ok := decodeKey(encoded)
		if !ok {
			return nil, fmt.Errorf("%w: key %d (id %s): not base64", ErrBadKey, pos, id)
		}
		if len(raw) != keySize {
			n := len(raw)
			clear(raw)
			return nil, fmt.Errorf("%w: key %d (id %s): %d bytes, want %d", ErrBadKey, pos, id, n, keySize)
		}
		aead, err := newAEAD(raw)
		clear(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: key %d (id %s): %v", ErrBadKey, pos, id, err)
		}
		if k.first == nil {
			k.first = aead
		}
		k.ids = append(k.ids, id)
		k.byID[id] = aead
	}
	return k, nil
}

// IDs returns the key ids in keyring order, the sealing key's first. They
// are not secret: log them to tell which keys a process holds.
func (k *Keyring) IDs() []string { return append([]string(nil), k.ids...) }

// String formats k as its key ids, the sealing key's first, such as
// seal.Keyring{IDs: ["k2" "k1"]}: never any part of a key.
func (k *Keyring) String() string {
	if k == nil {
		return "<nil>"
	}
	return fmt.Sprintf("seal.Keyring{IDs: %q}", k.ids)
}

// GoString formats k for %#v as its key ids, as [Keyring.String] does.
func (k *Keyring) GoString() string {
	if k == nil {
		return "(*seal.Keyring)(nil)"
	}
	return fmt.Sprintf("&seal.Keyring{IDs:%#v}", k.ids)
}

// Format formats k for every verb as its key ids: %#v as
// [Keyring.GoString], any other verb as it formats [Keyring.String].
// Without it, a verb such as %d would print the ciphers' key schedules.
func (k *Keyring) Format(f fmt.State, verb rune) { redact.Format(f, verb, k.String, k.GoString) }

// MarshalJSON encodes k as its key ids, such as {"IDs":["k2","k1"]}.
func (k *Keyring) MarshalJSON() ([]byte, error) {
	if k == nil {
		return []byte("null"), nil
	}
	return json.Marshal(struct{ IDs []string }{k.ids})
}

// validID reports whether id is 1 to maxIDLen of A-Z, a-z, 0-9, '_' and
// '-'. No valid id holds '.', which ends it in a sealed value.
func validID(id string) bool {
	if id == "" || len(id) > maxIDLen {
		return false
	}
	for i := range len(id) {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// keyEncodings are the base64 encodings a key may be written in, tried in
// order.
var keyEncodings = []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding}

// decodeKey decodes s in the first of keyEncodings that takes it.
func decodeKey(s string) ([]byte, bool) {
	for _, enc := range keyEncodings {
		if raw, err := enc.DecodeString(s); err == nil {
			return raw, true
		}
	}
	return nil, false
}

// newAEAD returns AES-256-GCM under key, with a random nonce prepended to
// each ciphertext.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// Config configures a sealing [ports.TokenStore].
type Config struct {
	// KeyName returns the name the store beneath keeps the tenant's token
	// under, such as redigo.TokenKey. It is sealed in as additional data,
	// so that a value copied under another name does not open. Required:
	// [NewTokenStore] panics when it is nil.
	KeyName func(tenantID string) string
	// Log receives one warning per value that does not open. Nil means no
	// logging. It is not sampled here: pass a sampled logger.
	Log *zap.Logger
}

// NewTokenStore returns next with its access tokens sealed under keys. It
// panics when keys or cfg.KeyName is nil. Errors from next are returned
// unchanged; a value that does not open is a miss.
func NewTokenStore(next ports.TokenStore, keys *Keyring, cfg Config) ports.TokenStore {
	if keys == nil || cfg.KeyName == nil {
		panic("seal: NewTokenStore needs a keyring and Config.KeyName")
	}
	log := cfg.Log
	if log == nil {
		log = zap.NewNop()
	}
	return &tokenStore{next: next, keys: keys, keyName: cfg.KeyName, log: log}
}

type tokenStore struct {
	next    ports.TokenStore
	keys    *Keyring
	keyName func(tenantID string) string
	log     *zap.Logger
}

// GetToken reads next's value and opens it. A value that does not open is
// logged and answered as a miss.
func (s *tokenStore) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	raw, found, err := s.next.GetToken(ctx, tenantID)
	if err != nil || !found {
		return ports.CachedToken{}, false, err
	}
	tok, reason := s.open(tenantID, raw.AccessToken)
	if reason != "" {
		s.log.Warn(openMessage, zap.String("tenant", tenantID), zap.String("reason", reason))
		return ports.CachedToken{}, false, nil
	}
	return tok, true, nil
}

// PutToken seals tok and puts it to next, with its times also in clear.
func (s *tokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	sealed := ports.CachedToken{AccessToken: s.seal(tenantID, tok), ExpiresAt: tok.ExpiresAt, RefreshAt: tok.RefreshAt}
	return s.next.PutToken(ctx, tenantID, sealed, ttl)
}

// DeleteToken deletes from next.
func (s *tokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	return s.next.DeleteToken(ctx, tenantID)
}

// DeleteTokenIf opens next's value and, if it holds accessToken, deletes
// it from next if next still holds that sealed value: a token sealed in
// its place meanwhile has another nonce, and is left. A value that does
// not open is left too.
func (s *tokenStore) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	raw, found, err := s.next.GetToken(ctx, tenantID)
	if err != nil || !found {
		return false, err
	}
	if tok, reason := s.open(tenantID, raw.AccessToken); reason != "" || tok.AccessToken != accessToken {
		return false, nil
	}
	return s.next.DeleteTokenIf(ctx, tenantID, raw.AccessToken)
}

// seal returns tok's sealed text for the tenant.
func (s *tokenStore) seal(tenantID string, tok ports.CachedToken) string {
	aead := s.keys.first
	plain := make([]byte, 0, timesSize+len(tok.AccessToken))
	plain = binary.BigEndian.AppendUint64(plain, uint64(tok.ExpiresAt.UnixMilli()))
	plain = binary.BigEndian.AppendUint64(plain, uint64(tok.RefreshAt.UnixMilli()))
	plain = append(plain, tok.AccessToken...)
	ct := aead.Seal(nil, nil, plain, []byte(s.keyName(tenantID)))
	clear(plain)

	id := s.keys.ids[0]
	var b strings.Builder
	b.Grow(len(version) + len(id) + 1 + base64.RawURLEncoding.EncodedLen(len(ct)))
	b.WriteString(version)
	b.WriteString(id)
	b.WriteByte('.')
	b.WriteString(base64.RawURLEncoding.EncodeToString(ct))
	return b.String()
}

// open returns the token sealed in text for the tenant, or a short fixed
// reason why text does not open. A reason never holds any part of text but
// a valid key id.
func (s *tokenStore) open(tenantID, text string) (ports.CachedToken, string) {
	rest, ok := strings.CutPrefix(text, version)
	if !ok {
		if versioned(text) {
			return ports.CachedToken{}, "unknown version"
		}
		return ports.CachedToken{}, "not sealed"
	}
	id, body, ok := strings.Cut(rest, ".")
	if !ok || !validID(id) {
		return ports.CachedToken{}, "malformed"
	}
	aead, ok := s.keys.byID[id]
	if !ok {
		return ports.CachedToken{}, "unknown key id " + id
	}
	ct, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(ct) < aead.Overhead() {
		return ports.CachedToken{}, "malformed"
	}
	plain, err := aead.Open(ct[:0], nil, ct, []byte(s.keyName(tenantID)))
	if err != nil {
		return ports.CachedToken{}, "does not authenticate"
	}
	if len(plain) < timesSize {
		return ports.CachedToken{}, "malformed"
	}
	tok := ports.CachedToken{
		ExpiresAt:   time.UnixMilli(int64(binary.BigEndian.Uint64(plain[0:8]))),
		RefreshAt:   time.UnixMilli(int64(binary.BigEndian.Uint64(plain[8:16]))),
		AccessToken: string(plain[timesSize:]),
	}
	clear(plain)
	return tok, ""
}

// versioned reports whether text starts as a sealed value of some version
// does: 'v', digits, '.'.
func versioned(text string) bool {
	rest, ok := strings.CutPrefix(text, "v")
	if !ok {
		return false
	}
	digits, _, ok := strings.Cut(rest, ".")
	return ok && digits != "" && strings.Trim(digits, "0123456789") == ""
}
