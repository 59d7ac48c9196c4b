package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// Defaults for [DeduplicatorConfig] fields left zero.
const (
	DefaultDedupeTTL = 24 * time.Hour
	DefaultClaimTTL  = 5 * time.Minute
)

// ErrClaimLost is returned by [Claim.Commit] and [Claim.Release] when the
// claim expired (processing outlasted the claim TTL) and another worker
// claimed or committed the message since: it may have been processed twice.
var ErrClaimLost = errors.New("domain: claim no longer owned")

// DeduplicatorConfig tunes a [Deduplicator].
type DeduplicatorConfig struct {
	// TTL is how long a committed message is remembered. Zero means
	// DefaultDedupeTTL.
	TTL time.Duration
	// ClaimTTL is how long a claim holds a message before it expires, so
	// that a message whose worker died is processed on a retry. Zero means
	// DefaultClaimTTL.
	ClaimTTL time.Duration
}

// Deduplicator lets each message through once per tenant. A message is
// claimed before it is processed, then committed when processing succeeded
// or released when it failed, so that the sender's retry goes through. It is
// safe for concurrent use.
type Deduplicator struct {
	store    ports.DedupeStore
	ttl      time.Duration
	claimTTL time.Duration

	counts              [ClaimDone + 1]atomic.Uint64 // indexed by ClaimStatus
	committed, released atomic.Uint64
}

// DedupeStats counts what a [Deduplicator] did since it was made.
type DedupeStats struct {
	// New, InFlight and Done count claims by the status they got.
	New, InFlight, Done uint64
	// Committed and Released count claims settled by their owner.
	Committed, Released uint64
}

// Stats returns the deduplicator's counters.
func (d *Deduplicator) Stats() DedupeStats {
	return DedupeStats{
		New:       d.counts[ClaimNew].Load(),
		InFlight:  d.counts[ClaimInFlight].Load(),
		Done:      d.counts[ClaimDone].Load(),
		Committed: d.committed.Load(),
		Released:  d.released.Load(),
	}
}

// NewDeduplicator returns a Deduplicator over store.
func NewDeduplicator(store ports.DedupeStore, cfg DeduplicatorConfig) *Deduplicator {
	d := &Deduplicator{store: store, ttl: cfg.TTL, claimTTL: cfg.ClaimTTL}
	if d.ttl <= 0 {
		d.ttl = DefaultDedupeTTL
	}
	if d.claimTTL <= 0 {
		d.claimTTL = DefaultClaimTTL
	}
	return d
}

// ClaimStatus says what [Deduplicator.Claim] found.
type ClaimStatus int

const (
	// ClaimNew: the message is new and now claimed by the caller, who
	// processes it, then commits or releases the claim.
	ClaimNew ClaimStatus = iota + 1
	// ClaimInFlight: another worker holds the message and has not
	// committed it. Do not process it, and do not acknowledge it as
	// processed either: the holder may yet fail (and release, or die and
	// let its claim expire), so ask the sender to retry later.
	ClaimInFlight
	// ClaimDone: the message was processed already. Skip it.
	ClaimDone
)

func (s ClaimStatus) String() string {
	switch s {
	case ClaimNew:
		return "new"
	case ClaimInFlight:
		return "in-flight"
	case ClaimDone:
		return "done"
	}
	return fmt.Sprintf("ClaimStatus(%d)", int(s))
}

// Claim atomically claims a message for the caller. The answer's Status
// says whether to process the message.
func (d *Deduplicator) Claim(ctx context.Context, tenantID, messageID string) (*Claim, error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return nil, err
	}
	if err := ValidateMessageID(messageID); err != nil {
		return nil, err
	}
	owner := rand.Text()
	state, err := d.store.Claim(ctx, tenantID, messageID, owner, d.claimTTL)
	if err != nil {
		return nil, fmt.Errorf("claim message %q of tenant %q: %w", messageID, tenantID, err)
	}
	c := &Claim{d: d, tenantID: tenantID, messageID: messageID, owner: owner}
	switch state {
	case ports.ClaimAcquired:
		c.status = ClaimNew
	case ports.ClaimHeld:
		c.status = ClaimInFlight
		c.settled.Store(true)
	case ports.ClaimCommitted:
		c.status = ClaimDone
		c.settled.Store(true)
	default:
		return nil, fmt.Errorf("claim message %q of tenant %q: store answered unknown state %d", messageID, tenantID, state)
	}
	d.counts[c.status].Add(1)
	return c, nil
}

// Claim is one caller's claim on a message. Commit and Release act once, and
// only on a claim whose Status is ClaimNew; other calls do nothing and
// return nil, so `defer claim.Release(ctx)` after a Commit is safe.
type Claim struct {
	d                   *Deduplicator
	tenantID, messageID string
	owner               string
	status              ClaimStatus
	settled             atomic.Bool
}

// Status says whether the message is the caller's to process.
func (c *Claim) Status() ClaimStatus { return c.status }

// Commit records the message as processed for the deduplicator's TTL. It
// returns [ErrClaimLost] when the claim expired and another worker took the
// message meanwhile.
func (c *Claim) Commit(ctx context.Context) error {
	if !c.settled.CompareAndSwap(false, true) {
		return nil
	}
	owned, err := c.d.store.Commit(ctx, c.tenantID, c.messageID, c.owner, c.d.ttl)
	if err = c.settle("commit", owned, err); err == nil {
		c.d.committed.Add(1)
	}
	return err
}

// Release frees the message, so that a retry of it is processed. It returns
// [ErrClaimLost] when the claim expired and another worker took the message
// meanwhile.
func (c *Claim) Release(ctx context.Context) error {
	if !c.settled.CompareAndSwap(false, true) {
		return nil
	}
	owned, err := c.d.store.Release(ctx, c.tenantID, c.messageID, c.owner)
	if err = c.settle("release", owned, err); err == nil {
		c.d.released.Add(1)
	}
	return err
}

func (c *Claim) settle(op string, owned bool, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("%s message %q of tenant %q: %w", op, c.messageID, c.tenantID, err)
	case !owned:
		return fmt.Errorf("%s message %q of tenant %q: %w", op, c.messageID, c.tenantID, ErrClaimLost)
	}
	return nil
}
