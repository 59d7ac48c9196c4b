package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// TokenLock is a [ports.TokenLock] in process memory: it serializes token
// fetches between the callers of one process only.
//
// As on Redis, an owner locking a lock it holds (a retried call) has it,
// and its TTL is left as it was; an unlock by any other owner changes
// nothing. A full TokenLock (see [WithMaxEntries]) drops the lock taken
// least recently, held or not, to make room, which lets a second owner
// fetch too; nothing worse.
type TokenLock struct {
	holders *expiring[string, string] // tenant → owner
}

var _ ports.TokenLock = (*TokenLock)(nil)

// NewTokenLock returns a TokenLock with every tenant's lock free.
func NewTokenLock(opts ...Option) *TokenLock {
	o := newOptions(opts)
	return &TokenLock{holders: newExpiring[string, string](o)}
}

// LockToken implements [ports.TokenLock].
func (l *TokenLock) LockToken(_ context.Context, tenantID, owner string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, fmt.Errorf("memory: lock token for tenant %q: %w", tenantID, err)
	}
	l.holders.mu.Lock()
	defer l.holders.mu.Unlock()
	if holder, ok := l.holders.get(tenantID); ok {
		return holder == owner, nil
	}
	l.holders.put(tenantID, owner, ttl)
	return true, nil
}

// UnlockToken implements [ports.TokenLock].
func (l *TokenLock) UnlockToken(_ context.Context, tenantID, owner string) error {
	l.holders.mu.Lock()
	defer l.holders.mu.Unlock()
	if holder, ok := l.holders.get(tenantID); ok && holder == owner {
		l.holders.del(tenantID)
	}
	return nil
}
