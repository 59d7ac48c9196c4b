package redigo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"

	"github.com/wa2genesys/connectorcache/ports"
)

// TokenKey is the key a tenant's token is cached under.
func TokenKey(tenantID string) string { return "genesys:token:" + tenantID }

// tokenLockKey is the key of a tenant's token fetch lock.
func tokenLockKey(tenantID string) string { return "genesys:token-lock:" + tenantID }

// DedupeKey is the key a tenant's message is recorded under.
func DedupeKey(tenantID, messageID string) string {
	return "genesys:dedupe:" + tenantID + ":" + messageID
}

// TokenStore is a [ports.TokenStore] on Redis. A token is stored as JSON
// holding the token and its absolute expiry, with the TTL it was given.
type TokenStore struct {
	c *Client
}

var (
	_ ports.TokenStore = (*TokenStore)(nil)
	_ ports.TokenLock  = (*TokenStore)(nil)
)

// NewTokenStore returns a TokenStore on c.
func NewTokenStore(c *Client) *TokenStore { return &TokenStore{c: c} }

type storedToken struct {
	AccessToken string `json:"access_token"`
	// ExpiresAt and RefreshAt are in Unix milliseconds; RefreshAt is left
	// out when zero, as older versions wrote it.
	ExpiresAt int64 `json:"expires_at"`
	RefreshAt int64 `json:"refresh_at,omitempty"`
}

// GetToken implements [ports.TokenStore].
func (s *TokenStore) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	key := TokenKey(tenantID)
	raw, found, err := s.c.Get(ctx, key)
	if err != nil || !found {
		return ports.CachedToken{}, false, err
	}
	var st storedToken
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.AccessToken == "" {
		// Never echo the value: it holds a token.
		return ports.CachedToken{}, false, fmt.Errorf("redis GET %q: %w", key, errMalformedToken)
	}
	tok := ports.CachedToken{AccessToken: st.AccessToken, ExpiresAt: time.UnixMilli(st.ExpiresAt)}
	if st.RefreshAt != 0 {
		tok.RefreshAt = time.UnixMilli(st.RefreshAt)
	}
	return tok, true, nil
}

var errMalformedToken = errors.New("stored value is not a token")

// PutToken implements [ports.TokenStore].
func (s *TokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	st := storedToken{AccessToken: tok.AccessToken, ExpiresAt: tok.ExpiresAt.UnixMilli()}
	if !tok.RefreshAt.IsZero() {
		st.RefreshAt = tok.RefreshAt.UnixMilli()
	}
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode token: %w", err)
	}
	return s.c.Set(ctx, TokenKey(tenantID), string(raw), ttl)
}

// DeleteToken implements [ports.TokenStore].
func (s *TokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	return s.c.Del(ctx, TokenKey(tenantID))
}

// DeleteTokenIf implements [ports.TokenStore] with one script, which
// compares the stored token's access_token with accessToken and deletes it
// if they match.
func (s *TokenStore) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	key := TokenKey(tenantID)
	n, err := redis.Int(s.c.eval(ctx, deleteTokenIfScript, key, accessToken))
	if err != nil {
		return false, fmt.Errorf("redis delete-if %q: %w", key, err)
	}
	return n == 1, nil
}

// deleteTokenIfScript deletes KEYS[1] if it holds a token whose
// access_token is ARGV[1]. A value that is not a token's JSON is left.
var deleteTokenIfScript = newScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local ok, t = pcall(cjson.decode, v)
if ok and type(t) == 'table' and t.access_token == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// LockToken implements [ports.TokenLock] with one SET … NX GET EX|PX …: an
// owner that finds itself holding the lock (a retried command whose reply
// was lost) has it.
func (s *TokenStore) LockToken(ctx context.Context, tenantID, owner string, ttl time.Duration) (bool, error) {
	old, stored, err := s.c.setNXGet(ctx, tokenLockKey(tenantID), owner, ttl)
	return stored || (err == nil && old == owner), err
}

// UnlockToken implements [ports.TokenLock]: it deletes the lock only while
// owner holds it.
func (s *TokenStore) UnlockToken(ctx context.Context, tenantID, owner string) error {
	key := tokenLockKey(tenantID)
	if _, err := s.c.eval(ctx, unlockScript, key, owner); err != nil {
		return fmt.Errorf("redis unlock %q: %w", key, err)
	}
	return nil
}

// unlockScript deletes KEYS[1] if it holds ARGV[1].
var unlockScript = newScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// DedupeStore is a [ports.DedupeStore] on Redis. A claimed message's key
// holds "claim:<owner>" for the claim TTL; a committed one holds
// "done:<owner>" for the dedupe TTL. Ownership checks run as Lua scripts,
// atomically. Naming the owner in both lets a command retried after its
// reply was lost (a dropped connection) recognize its own work.
type DedupeStore struct {
	c *Client
}

var _ ports.DedupeStore = (*DedupeStore)(nil)

// NewDedupeStore returns a DedupeStore on c.
func NewDedupeStore(c *Client) *DedupeStore { return &DedupeStore{c: c} }

const committedPrefix = "done"

func claimMark(owner string) string { return "claim:" + owner }

func doneMark(owner string) string { return committedPrefix + ":" + owner }

// commitScript marks a message done (ARGV[2]) for ARGV[3] ms unless another
// owner holds it or committed it.
var commitScript = newScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] and v ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1`)

// releaseScript deletes a message's key if ARGV[1] holds it; a key that is
// gone needs no release.
var releaseScript = newScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
if v ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`)

// Claim implements [ports.DedupeStore] with one SET … NX GET EX|PX ….
func (s *DedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	mark := claimMark(owner)
	old, stored, err := s.c.setNXGet(ctx, DedupeKey(tenantID, messageID), mark, ttl)
	switch {
	case err != nil:
		return 0, err
	case stored, old == mark: // old == mark: a retried SET whose first reply was lost
		return ports.ClaimAcquired, nil
	case strings.HasPrefix(old, committedPrefix):
		return ports.ClaimCommitted, nil
	}
	return ports.ClaimHeld, nil
}

// Commit implements [ports.DedupeStore].
func (s *DedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, fmt.Errorf("commit: ttl %v: must be at least 1ms", ttl)
	}
	key := DedupeKey(tenantID, messageID)
	n, err := redis.Int(s.c.eval(ctx, commitScript, key, claimMark(owner), doneMark(owner), strconv.FormatInt(ttl.Milliseconds(), 10)))
	if err != nil {
		return false, fmt.Errorf("redis commit %q: %w", key, err)
	}
	return n == 1, nil
}

// Release implements [ports.DedupeStore].
func (s *DedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	key := DedupeKey(tenantID, messageID)
	n, err := redis.Int(s.c.eval(ctx, releaseScript, key, claimMark(owner)))
	if err != nil {
		return false, fmt.Errorf("redis release %q: %w", key, err)
	}
	return n == 1, nil
}
