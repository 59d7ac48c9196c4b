package nearcache

import (
	"context"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// NewDedupeStore returns next with local, a bounded in-process record that
// must not fail, in front of it. doneTTL is how long the record remembers a
// message next reports committed.
//
// A claim is taken locally first: a message this process holds or has
// committed is answered from the record without asking next. (So while one
// caller of this process asks next about a message, another gets
// ClaimHeld: the message is in flight here.) Otherwise next decides; when
// next fails, the local claim stands and the error is returned with
// ClaimAcquired, for the fail-open layer above to report.
func NewDedupeStore(next, local ports.DedupeStore, doneTTL time.Duration) ports.DedupeStore {
	return &dedupeStore{next: next, local: local, doneTTL: doneTTL}
}

type dedupeStore struct {
	next, local ports.DedupeStore
	doneTTL     time.Duration
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	if state, err := s.local.Claim(ctx, tenantID, messageID, owner, ttl); err == nil && state != ports.ClaimAcquired {
		return state, nil
	}
	state, err := s.next.Claim(ctx, tenantID, messageID, owner, ttl)
	switch {
	case err != nil:
		return ports.ClaimAcquired, err
	case state == ports.ClaimCommitted:
		_, _ = s.local.Commit(ctx, tenantID, messageID, owner, s.doneTTL)
	case state == ports.ClaimHeld:
		_, _ = s.local.Release(ctx, tenantID, messageID, owner)
	}
	return state, nil
}

func (s *dedupeStore) Commit(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	_, _ = s.local.Commit(ctx, tenantID, messageID, owner, ttl)
	return s.next.Commit(ctx, tenantID, messageID, owner, ttl)
}

func (s *dedupeStore) Release(ctx context.Context, tenantID, messageID, owner string) (bool, error) {
	_, _ = s.local.Release(ctx, tenantID, messageID, owner)
	return s.next.Release(ctx, tenantID, messageID, owner)
}
