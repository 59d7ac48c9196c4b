// Package ports declares the interfaces the domain needs from the outside
// world, and the small types they carry. It holds nothing else.
//
// The token and dedupe stores speak in tenant and message ids, never in keys:
// how a store lays them out is its own business. Every port is safe for
// concurrent use.
package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wa2genesys/connectorcache/internal/redact"
)

// ErrUnavailable is returned, wrapped, by a store that did not try the
// operation because its backend is known to be down (an open circuit
// breaker). It is a failure like any other, but one already reported.
var ErrUnavailable = errors.New("ports: store unavailable")

//go:generate go tool mockgen -source=ports.go -destination=../internal/mocks/ports.go -package=mocks

// Token is an OAuth access token as the auth service issued it.
type Token struct {
	// AccessToken is the bearer token. It is a secret: never log it.
	AccessToken string
	// ExpiresIn is the lifetime the auth service gave the token (OAuth's
	// expires_in). Zero means the service did not say.
	ExpiresIn time.Duration
}

// String formats t with its access token masked, such as
// ports.Token{AccessToken: "xxxxx", ExpiresIn: 1h0m0s}.
func (t Token) String() string {
	return fmt.Sprintf("ports.Token{AccessToken: %q, ExpiresIn: %v}", redact.Secret(t.AccessToken), t.ExpiresIn)
}

// GoString formats t for %#v with its access token masked.
func (t Token) GoString() string {
	return fmt.Sprintf("ports.Token{AccessToken:%q, ExpiresIn:%d}", redact.Secret(t.AccessToken), int64(t.ExpiresIn))
}

// Format formats t for every verb with its access token masked: %#v as
// [Token.GoString], any other verb as it formats [Token.String]. Without
// it, a verb such as %d would print the fields themselves.
func (t Token) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String, t.GoString) }

// MarshalJSON encodes t as encoding/json would, with its access token
// masked, such as {"AccessToken":"xxxxx","ExpiresIn":3600000000000}.
func (t Token) MarshalJSON() ([]byte, error) {
	type plain Token
	t.AccessToken = redact.Secret(t.AccessToken)
	return json.Marshal(plain(t))
}

// TokenFetcher obtains a fresh access token for a tenant from the auth
// service. Errors are returned as they happened; the caller decides.
type TokenFetcher interface {
	FetchToken(ctx context.Context, tenantID string) (Token, error)
}

// CachedToken is a token as a [TokenStore] holds it: the token, the
// absolute time it expires, and the time it stops being served.
type CachedToken struct {
	AccessToken string
	ExpiresAt   time.Time
	// RefreshAt is the token's refresh point: when the TTL it was cached
	// with ends and a fresh token is fetched. Zero for a token cached
	// without one (by an older version), which readers take to be
	// ExpiresAt less their refresh margin.
	RefreshAt time.Time
}

// String formats t with its access token masked, such as
// ports.CachedToken{AccessToken: "xxxxx", ExpiresAt: 2025-11-26T06:10:00Z,
// RefreshAt: 2025-11-26T06:05:00Z}.
func (t CachedToken) String() string {
	return fmt.Sprintf("ports.CachedToken{AccessToken: %q, ExpiresAt: %s, RefreshAt: %s}",
		redact.Secret(t.AccessToken), t.ExpiresAt.Format(time.RFC3339Nano), t.RefreshAt.Format(time.RFC3339Nano))
}

// GoString formats t for %#v with its access token masked.
func (t CachedToken) GoString() string {
	return fmt.Sprintf("ports.CachedToken{AccessToken:%q, ExpiresAt:%#v, RefreshAt:%#v}", redact.Secret(t.AccessToken), t.ExpiresAt, t.RefreshAt)
}

// Format formats t for every verb with its access token masked, as
// [Token.Format] does.
func (t CachedToken) Format(f fmt.State, verb rune) { redact.Format(f, verb, t.String, t.GoString) }

// MarshalJSON encodes t as encoding/json would, with its access token
// masked.
func (t CachedToken) MarshalJSON() ([]byte, error) {
	type plain CachedToken
	t.AccessToken = redact.Secret(t.AccessToken)
	return json.Marshal(plain(t))
}

// TokenStore caches one access token per tenant.
//
// The tenant id a store is given may also name one slot of a tenant's pool
// of tokens (see domain.TokenSlotID): the tenant id, a colon and the slot
// number. Tenant ids hold no colon, so stores may treat both alike.
type TokenStore interface {
	// GetToken returns the tenant's cached token. found is false on a miss,
	// which is not an error, and once the TTL the token was put with has
	// passed: callers trust a found token to be fresh.
	GetToken(ctx context.Context, tenantID string) (tok CachedToken, found bool, err error)
	// PutToken caches tok for the tenant for ttl, which is positive.
	PutToken(ctx context.Context, tenantID string, tok CachedToken, ttl time.Duration) error
	// DeleteToken removes the tenant's cached token. Deleting a token that
	// is not there is not an error.
	DeleteToken(ctx context.Context, tenantID string) error
	// DeleteTokenIf removes the tenant's cached token if its access token
	// is accessToken, in one atomic step: a token cached in its place
	// meanwhile is left alone. deleted says whether a token was removed.
	DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (deleted bool, err error)
}

// TokenLock serializes token fetches for a tenant across processes, so
// that a token expiring, or N replicas starting, costs the auth service one
// request per tenant, not one per process.
type TokenLock interface {
	// LockToken takes the tenant's fetch lock for owner for ttl, unless
	// another owner holds it; acquired says which. An owner that holds the
	// lock already (a retried call) has it, with the TTL it took it with.
	LockToken(ctx context.Context, tenantID, owner string, ttl time.Duration) (acquired bool, err error)
	// UnlockToken releases the lock if owner still holds it; a lock that
	// another owner holds, or nobody, is left as it is, without error.
	UnlockToken(ctx context.Context, tenantID, owner string) error
}

// ClaimState is what a [DedupeStore] found when asked to claim a message.
type ClaimState int

const (
	// ClaimAcquired means the message was free and is now held by the caller.
	ClaimAcquired ClaimState = iota + 1
	// ClaimHeld means another owner holds the message and has not committed it.
	ClaimHeld
	// ClaimCommitted means the message was processed and committed.
	ClaimCommitted
)

// String names the state, for logs and failure messages.
func (s ClaimState) String() string {
	if s > 0 && int(s) < len(claimStateNames) {
		return claimStateNames[s]
	}
	return "ClaimState(" + strconv.Itoa(int(s)) + ")"
}

var claimStateNames = [...]string{ClaimAcquired: "acquired", ClaimHeld: "held", ClaimCommitted: "committed"}

// DedupeStore records which messages are being processed or were processed,
// per tenant. Claims are owned: a message another owner holds, or one
// already committed, cannot be committed or released.
type DedupeStore interface {
	// Claim atomically takes the message for owner for ttl, unless another
	// owner holds it or it was committed; the answer says which. An owner
	// claiming a message it holds (a retried claim) acquires it again.
	Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ClaimState, error)
	// Commit marks the message processed for ttl, unless another owner
	// holds or committed it; owned is false then. Committing again (a
	// retried commit) is owned. A message
	// nobody holds (owner's claim expired, or was never recorded because
	// the store was down) is marked processed: it was.
	Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (owned bool, err error)
	// Release frees the message held by owner so that it can be claimed
	// again. owned is false when another owner holds it or it is
	// committed; a message nobody holds needs no release (owned is true).
	Release(ctx context.Context, tenantID, messageID, owner string) (owned bool, err error)
}
