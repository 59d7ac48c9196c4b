// Package failopen decorates the store ports so that they never fail: an
// error from the wrapped store is logged as one zap warning and answered with
// the safe default, so that message processing goes on while the store is
// down. Ping is not decorated: health checks need the truth.
//
// The safe defaults:
//   - GetToken: a miss (the token is fetched from the auth service);
//   - PutToken, DeleteToken: skipped;
//   - LockToken: acquired (this process fetches; others may too);
//   - UnlockToken: skipped;
//   - Claim: acquired (a duplicate may be processed; no message is lost);
//   - Commit, Release: skipped, answered as owned.
//
// Errors wrapping [ports.ErrUnavailable] (an open circuit breaker, which
// logs its own state changes) are counted but not logged, so that an outage
// costs one warning, not one per message.
package failopen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/ports"
)

// logMessage is the one message every fail-open warning carries.
const logMessage = "store failed; failing open"

// Events counts fail-open events by operation (get_token, put_token,
// delete_token, lock_token, unlock_token, claim, commit, release). The zero value is ready to use and
// it is safe for concurrent use; a nil *Events counts nothing.
type Events struct {
	counts sync.Map // op string → *atomic.Uint64
}

func (e *Events) add(op string) {
	if e == nil {
		return
	}
	n, ok := e.counts.Load(op)
	if !ok {
		n, _ = e.counts.LoadOrStore(op, new(atomic.Uint64))
	}
	n.(*atomic.Uint64).Add(1)
}

// Snapshot returns the counts so far, by operation.
func (e *Events) Snapshot() map[string]uint64 {
	out := make(map[string]uint64)
	if e == nil {
		return out
	}
	e.counts.Range(func(op, n any) bool {
		out[op.(string)] = n.(*atomic.Uint64).Load()
		return true
	})
	return out
}

// failer logs and counts a fail-open event.
type failer struct {
	log    *zap.Logger
	events *Events
}

func (f failer) fail(op, tenantID string, err error, extra ...zap.Field) {
	if errors.Is(err, context.Canceled) {
		return // the caller gave up: nothing to say about the store
	}
	f.events.add(op)
	if errors.Is(err, ports.ErrUnavailable) {
		return
	}
	f.log.Warn(logMessage, append([]zap.Field{zap.String("op", op), zap.String("tenant", tenantID), zap.Error(err)}, extra...)...)
}

// NewTokenStore returns a TokenStore that never fails: errors from next are
// logged as warnings, counted in events, and answered as a cache miss or a
// skipped write. A nil log means no logging; nil events, no counting.
func NewTokenStore(next ports.TokenStore, log *zap.Logger, events *Events) ports.TokenStore {
	return &tokenStore{next: next, failer: failer{log: orNop(log), events: events}}
}

type tokenStore struct {
	next ports.TokenStore
	failer
}

func (s *tokenStore) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	tok, found, err := s.next.GetToken(ctx, tenantID)
	if err != nil {
		s.fail("get_token", tenantID, err)
		return ports.CachedToken{}, false, nil
	}
	return tok, found, nil
}

func (s *tokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	if err := s.next.PutToken(ctx, tenantID, tok, ttl); err != nil {
		s.fail("put_token", tenantID, err)
	}
	return nil
}

func (s *tokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	if err := s.next.DeleteToken(ctx, tenantID); err != nil {
		s.fail("delete_token", tenantID, err)
	}
	return nil
}

// NewTokenLock returns a TokenLock that never fails: errors from next are
// logged as warnings, counted in events, and answered as acquired (the
// caller fetches the token itself) or a skipped unlock.
func NewTokenLock(next ports.TokenLock, log *zap.Logger, events *Events) ports.TokenLock {
	return &tokenLock{next: next, failer: failer{log: orNop(log), events: events}}
}

type tokenLock struct {
	next ports.TokenLock
	failer
}

func (l *tokenLock) LockToken(ctx context.Context, tenantID, owner string, ttl time.Duration) (bool, error) {
	acquired, err := l.next.LockToken(ctx, tenantID, owner, ttl)
	if err != nil {
		l.fail("lock_token", tenantID, err)
		return true, nil
	}
	return acquired, nil
}

func (l *tokenLock) UnlockToken(ctx context.Context, tenantID, owner string) error {
	if err := l.next.UnlockToken(ctx, tenantID, owner); err != nil {
		l.fail("unlock_token", tenantID, err)
	}
	return nil
}

// NewDedupeStore returns a DedupeStore that never fails: errors from next
// are logged as warnings and counted in events; a failed claim is answered
// as acquired and a failed commit or release as done. A nil log means no
// logging; nil events, no counting.
func NewDedupeStore(next ports.DedupeStore, log *zap.Logger, events *Events) ports.DedupeStore {
	return &dedupeStore{next: next, failer: failer{log: orNop(log), events: events}}
}

type dedupeStore struct {
	next ports.DedupeStore
	failer
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	state, err := s.next.Claim(ctx, tenantID, messageID, owner, ttl)
	if err != nil {
		s.fail("claim", tenantID, err, zap.String("message_id", messageID))
		return ports.ClaimAcquired, nil
	}
	return state, nil
}

func (s *dedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	owned, err := s.next.Commit(ctx, tenantID, messageID, owner, ttl)
	if err != nil {
		s.fail("commit", tenantID, err, zap.String("message_id", messageID))
		return true, nil
	}
	return owned, nil
}

func (s *dedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	owned, err := s.next.Release(ctx, tenantID, messageID, owner)
	if err != nil {
		s.fail("release", tenantID, err, zap.String("message_id", messageID))
		return true, nil
	}
	return owned, nil
}

func orNop(log *zap.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return log
}
