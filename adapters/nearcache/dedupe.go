package nearcache

import (
	"context"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/ports"
)

// DedupeConfig tunes a near claim record.
type DedupeConfig struct {
	// MaxEntries bounds the record: past it, the oldest messages are
	// forgotten first. Zero means memory.DefaultMaxEntries.
	MaxEntries int
	// MaxAge caps how long the record remembers a message. Zero means as
	// long as the TTL it was claimed or committed with.
	MaxAge time.Duration
	// DoneTTL is how long the record remembers a message next reports
	// committed.
	DoneTTL time.Duration
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// NewDedupeStore returns next with a bounded in-process record of this
// process's claims in front of it.
//
// A claim is taken locally first: a message this process holds or has
// committed is answered from the record without asking next. (So while one
// caller of this process asks next about a message, another gets
// ClaimHeld: the message is in flight here.) Otherwise next decides. When
// next fails, its error is returned, and the local claim stands: a
// duplicate reaching this process while next is down is still caught.
func NewDedupeStore(next ports.DedupeStore, cfg DedupeConfig) ports.DedupeStore {
	opts := []memory.Option{memory.WithMaxEntries(cfg.MaxEntries), memory.WithMaxTTL(cfg.MaxAge)}
	if cfg.Now != nil {
		opts = append(opts, memory.WithClock(cfg.Now))
	}
	return &dedupeStore{next: next, local: memory.NewDedupeStore(opts...), doneTTL: cfg.DoneTTL}
}

// dedupeStore answers from local before next. local fails only on a TTL
// next would refuse too.
type dedupeStore struct {
	next    ports.DedupeStore
	local   *memory.DedupeStore
	doneTTL time.Duration
}

func (s *dedupeStore) Claim(ctx context.Context, tenantID, messageID, owner string, ttl time.Duration) (ports.ClaimState, error) {
	state, err := s.local.Claim(ctx, tenantID, messageID, owner, ttl)
	if err != nil || state != ports.ClaimAcquired {
		return state, err
	}
	state, err = s.next.Claim(ctx, tenantID, messageID, owner, ttl)
	switch {
	case err != nil:
		return 0, err
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
