package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// DedupeStore is a [ports.DedupeStore] in process memory.
//
// A full DedupeStore (see [WithMaxEntries]) drops the record written least
// recently, a claim or a commit, to make room. That can only cause a
// duplicate, never lose a message: the message forgotten is claimable
// again, so a redelivery of it is processed a second time, while a message
// the store still answers held or committed for is one that was claimed or
// processed.
type DedupeStore struct {
	marks *expiring[messageKey, mark]
}

var _ ports.DedupeStore = (*DedupeStore)(nil)

type messageKey struct{ tenantID, messageID string }

// mark is a message's state: held by owner, or committed by owner.
type mark struct {
	owner     string
	committed bool
}

// NewDedupeStore returns an empty DedupeStore.
func NewDedupeStore(opts ...Option) *DedupeStore {
	o := newOptions(opts)
	return &DedupeStore{marks: newExpiring[messageKey, mark](o)}
}

// Claim implements [ports.DedupeStore].
func (s *DedupeStore) Claim(_ context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	if err := checkTTL(ttl); err != nil {
		return 0, fmt.Errorf("memory: claim %q/%q: %w", tenantID, messageID, err)
	}
	k := messageKey{tenantID, messageID}
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	if m, ok := s.marks.get(k); ok {
		switch {
		case m.committed:
			return ports.ClaimCommitted, nil
		case m.owner != owner:
			return ports.ClaimHeld, nil
		}
		// The owner claiming again (a retried claim) still holds it.
	}
	s.marks.put(k, mark{owner: owner}, ttl)
	return ports.ClaimAcquired, nil
}

// Commit implements [ports.DedupeStore].
func (s *DedupeStore) Commit(_ context.Context, tenantID, messageID, owner string, ttl time.Duration) (bool, error) {
	if err := checkTTL(ttl); err != nil {
		return false, fmt.Errorf("memory: commit %q/%q: %w", tenantID, messageID, err)
	}
	k := messageKey{tenantID, messageID}
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	if m, ok := s.marks.get(k); ok && m.owner != owner {
		return false, nil
	}
	s.marks.put(k, mark{owner: owner, committed: true}, ttl)
	return true, nil
}

// Release implements [ports.DedupeStore].
func (s *DedupeStore) Release(_ context.Context, tenantID, messageID, owner string) (bool, error) {
	k := messageKey{tenantID, messageID}
	s.marks.mu.Lock()
	defer s.marks.mu.Unlock()
	m, ok := s.marks.get(k)
	if !ok {
		return true, nil
	}
	if m.committed || m.owner != owner {
		return false, nil
	}
	s.marks.del(k)
	return true, nil
}
