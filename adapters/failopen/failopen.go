// Package failopen decorates the store ports so that they never fail: an
// error from the wrapped store is logged as one zap warning and answered with
// the safe default, so that message processing goes on while the store is
// down. Ping is not decorated: health checks need the truth.
//
// The safe defaults:
//   - GetToken: a miss (the token is fetched from the auth service);
//   - PutToken, DeleteToken, DeleteTokenIf: skipped;
//   - LockToken: acquired (this process fetches; others may too);
//   - UnlockToken: skipped;
//   - Claim: acquired (a duplicate may be processed; no message is lost);
//   - Commit, Release: skipped, answered as owned.
//
// Errors wrapping [ports.ErrUnavailable] (an open circuit breaker, which
// logs its own state changes) are counted but not logged, so that an outage
// costs one warning, not one per message. A caller's cancellation is
// neither: it says nothing about the store.
package failopen

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/internal/storeop"
	"github.com/wa2genesys/connectorcache/ports"
)

// logMessage is the one message every fail-open warning carries.
const logMessage = "store failed; failing open"

// Events counts fail-open events by operation (the names of package
// storeop). The zero value is ready to use and it is safe for concurrent
// use; a nil *Events counts nothing.
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

// Reporter logs and counts fail-open events. It is safe for concurrent use.
type Reporter struct {
	log    *zap.Logger
	events *Events
}

// NewReporter returns a Reporter that logs warnings to log and counts in
// events. A nil log means no logging; nil events, no counting.
func NewReporter(log *zap.Logger, events *Events) *Reporter {
	if log == nil {
		log = zap.NewNop()
	}
	return &Reporter{log: log, events: events}
}

// Report records that op on the tenant's data failed with err and was
// answered with a safe default. The decorators report their own events;
// a layer that answers for a failed store itself, such as a near cache
// serving its copy, reports through this.
func (r *Reporter) Report(op, tenantID string, err error) { r.report(op, tenantID, "", err) }

// failed reports err, when there is one, and says whether there was.
func (r *Reporter) failed(op, tenantID, messageID string, err error) bool {
	if err == nil {
		return false
	}
	r.report(op, tenantID, messageID, err)
	return true
}

func (r *Reporter) report(op, tenantID, messageID string, err error) {
	if errors.Is(err, context.Canceled) {
		return // the caller gave up: nothing to say about the store
	}
	r.events.add(op)
	if errors.Is(err, ports.ErrUnavailable) {
		return
	}
	fields := []zap.Field{zap.String("op", op), zap.String("tenant", tenantID), zap.Error(err)}
	if messageID != "" {
		fields = append(fields, zap.String("message_id", messageID))
	}
	r.log.Warn(logMessage, fields...)
}

// orSafe answers v, or safe when the call failed with err, which it
// reports.
func orSafe[T any](r *Reporter, op, tenantID, messageID string, v T, err error, safe T) (T, error) {
	if r.failed(op, tenantID, messageID, err) {
		return safe, nil
	}
	return v, nil
}

// NewTokenStore returns a TokenStore that never fails: errors from next are
// logged to log as warnings, counted in events, and answered as a cache miss
// or a skipped write. A nil log means no logging; nil events, no counting.
func NewTokenStore(next ports.TokenStore, log *zap.Logger, events *Events) ports.TokenStore {
	return &tokenStore{next: next, r: NewReporter(log, events)}
}

type tokenStore struct {
	next ports.TokenStore
	r    *Reporter
}

func (s *tokenStore) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	tok, found, err := s.next.GetToken(ctx, tenantID)
	if s.r.failed(storeop.GetToken, tenantID, "", err) {
		return ports.CachedToken{}, false, nil
	}
	return tok, found, nil
}

func (s *tokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	s.r.failed(storeop.PutToken, tenantID, "", s.next.PutToken(ctx, tenantID, tok, ttl))
	return nil
}

func (s *tokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	s.r.failed(storeop.DeleteToken, tenantID, "", s.next.DeleteToken(ctx, tenantID))
	return nil
}

func (s *tokenStore) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	deleted, err := s.next.DeleteTokenIf(ctx, tenantID, accessToken)
	return orSafe(s.r, storeop.DeleteTokenIf, tenantID, "", deleted, err, false)
}

// NewTokenLock returns a TokenLock that never fails: errors from next are
// logged and counted as by [NewTokenStore], and answered as acquired (the
// caller fetches the token itself) or a skipped unlock.
func NewTokenLock(next ports.TokenLock, log *zap.Logger, events *Events) ports.TokenLock {
	return &tokenLock{next: next, r: NewReporter(log, events)}
}

type tokenLock struct {
	next ports.TokenLock
	r    *Reporter
}

func (l *tokenLock) LockToken(ctx context.Context, tenantID, owner string, ttl time.Duration) (bool, error) {
	acquired, err := l.next.LockToken(ctx, tenantID, owner, ttl)
	return orSafe(l.r, storeop.LockToken, tenantID, "", acquired, err, true)
}

func (l *tokenLock) UnlockToken(ctx context.Context, tenantID, owner string) error {
	l.r.failed(storeop.UnlockToken, tenantID, "", l.next.UnlockToken(ctx, tenantID, owner))
	return nil
}

// NewDedupeStore returns a DedupeStore that never fails: errors from next
// are logged and counted as by [NewTokenStore]; a failed claim is answered
// as acquired and a failed commit or release as done.
func NewDedupeStore(next ports.DedupeStore, log *zap.Logger, events *Events) ports.DedupeStore {
	return &dedupeStore{next: next, r: NewReporter(log, events)}
}

type dedupeStore struct {
	next ports.DedupeStore
	r    *Reporter
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	state, err := s.next.Claim(ctx, tenantID, messageID, owner, ttl)
	return orSafe(s.r, storeop.Claim, tenantID, messageID, state, err, ports.ClaimAcquired)
}

func (s *dedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	owned, err := s.next.Commit(ctx, tenantID, messageID, owner, ttl)
	return orSafe(s.r, storeop.Commit, tenantID, messageID, owned, err, true)
}

func (s *dedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	owned, err := s.next.Release(ctx, tenantID, messageID, owner)
	return orSafe(s.r, storeop.Release, tenantID, messageID, owned, err, true)
}
