// Package failopen decorates the store ports so that they never fail: an
// error from the wrapped store is logged as one zap warning and answered with
// the safe default, so that message processing goes on while the store is
// down. Ping is not decorated: health checks need the truth.
//
// The safe defaults:
//   - GetToken: a miss (the token is fetched from the auth service);
//   - PutToken, DeleteToken: skipped;
//   - Claim: acquired (a duplicate may be processed; no message is lost);
//   - Commit, Release: skipped, answered as owned.
package failopen

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/ports"
)

// logMessage is the one message every fail-open warning carries.
const logMessage = "store failed; failing open"

// NewTokenStore returns a TokenStore that never fails: errors from next are
// logged once as warnings and answered as a cache miss or a skipped write.
// A nil log means no logging.
func NewTokenStore(next ports.TokenStore, log *zap.Logger) ports.TokenStore {
	return &tokenStore{next: next, log: orNop(log)}
}

type tokenStore struct {
	next ports.TokenStore
	log  *zap.Logger
}

func (s *tokenStore) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	tok, found, err := s.next.GetToken(ctx, tenantID)
	if err != nil {
		warn(s.log, "get_token", tenantID, err)
		return ports.CachedToken{}, false, nil
	}
	return tok, found, nil
}

func (s *tokenStore) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	if err := s.next.PutToken(ctx, tenantID, tok, ttl); err != nil {
		warn(s.log, "put_token", tenantID, err)
	}
	return nil
}

func (s *tokenStore) DeleteToken(ctx context.Context, tenantID string) error {
	if err := s.next.DeleteToken(ctx, tenantID); err != nil {
		warn(s.log, "delete_token", tenantID, err)
	}
	return nil
}

// NewDedupeStore returns a DedupeStore that never fails: errors from next
// are logged once as warnings; a failed claim is answered as acquired and a
// failed commit or release as done.
// A nil log means no logging.
func NewDedupeStore(next ports.DedupeStore, log *zap.Logger) ports.DedupeStore {
	return &dedupeStore{next: next, log: orNop(log)}
}

type dedupeStore struct {
	next ports.DedupeStore
	log  *zap.Logger
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	state, err := s.next.Claim(ctx, tenantID, messageID, owner, ttl)
	if err != nil {
		warn(s.log, "claim", tenantID, err, zap.String("message_id", messageID))
		return ports.ClaimAcquired, nil
	}
	return state, nil
}

func (s *dedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	owned, err := s.next.Commit(ctx, tenantID, messageID, owner, ttl)
	if err != nil {
		warn(s.log, "commit", tenantID, err, zap.String("message_id", messageID))
		return true, nil
	}
	return owned, nil
}

func (s *dedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	owned, err := s.next.Release(ctx, tenantID, messageID, owner)
	if err != nil {
		warn(s.log, "release", tenantID, err, zap.String("message_id", messageID))
		return true, nil
	}
	return owned, nil
}

func warn(log *zap.Logger, op, tenantID string, err error, extra ...zap.Field) {
	log.Warn(logMessage, append([]zap.Field{zap.String("op", op), zap.String("tenant", tenantID), zap.Error(err)}, extra...)...)
}

func orNop(log *zap.Logger) *zap.Logger {
	if log == nil {
		return zap.NewNop()
	}
	return log
}
