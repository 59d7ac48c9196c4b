package nearcache_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/adapters/nearcache"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/fakeclock"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// dedupe is a near record over a mock store, on a fake clock. The mock fails
// the test on any call it was not told to expect, so a test that sets no
// Claim expectation asserts that the local record answered.
type dedupe struct {
	clk  *fakeclock.Clock
	next *mocks.MockDedupeStore
	s    ports.DedupeStore
}

func newDedupe(t *testing.T) dedupe {
	t.Helper()
	clk := fakeclock.New()
	next := mocks.NewMockDedupeStore(gomock.NewController(t))
	return dedupe{clk: clk, next: next, s: nearcache.NewDedupeStore(next, nearcache.DedupeConfig{DoneTTL: doneTTL, Now: clk.Now})}
}

// expectClaim makes next answer one claim of messageID by who.
func (d dedupe) expectClaim(who string, state ports.ClaimState, err error) *gomock.Call {
	return d.next.EXPECT().Claim(gomock.Any(), tenant, messageID, who, claimTTL).Return(state, err)
}

// claim fails t unless a claim of messageID by who answers want and wantErr.
func (d dedupe) claim(t *testing.T, who string, want ports.ClaimState, wantErr error) {
	t.Helper()
	got, err := d.s.Claim(t.Context(), tenant, messageID, who, claimTTL)
	if got != want || err != wantErr {
		t.Fatalf("Claim by %s = %s, %v; want %s, %v", who, got, err, want, wantErr)
	}
}

func TestDedupeStore_ClaimOfAMessageFreeLocallyAsksNext(t *testing.T) {
	tests := []struct {
		name string
		give ports.ClaimState // next's answer
		// then checks what the local record kept.
		then func(t *testing.T, d dedupe)
	}{
		{
			name: "acquired: this process holds it",
			give: ports.ClaimAcquired,
			then: func(t *testing.T, d dedupe) {
				d.claim(t, owner2, ports.ClaimHeld, nil)
			},
		},
		{
			name: "held elsewhere: the local claim is released",
			give: ports.ClaimHeld,
			then: func(t *testing.T, d dedupe) {
				// Once next frees it, another owner here acquires it.
				d.expectClaim(owner2, ports.ClaimAcquired, nil)
				d.claim(t, owner2, ports.ClaimAcquired, nil)
			},
		},
		{
			name: "committed: the local record remembers it",
			give: ports.ClaimCommitted,
			then: func(t *testing.T, d dedupe) {
				d.claim(t, owner2, ports.ClaimCommitted, nil)
				d.claim(t, owner, ports.ClaimCommitted, nil)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDedupe(t)
			d.expectClaim(owner, tt.give, nil)
			d.claim(t, owner, tt.give, nil)
			tt.then(t, d)
		})
	}
}

func TestDedupeStore_CommittedAnswerIsRememberedForDoneTTL(t *testing.T) {
	d := newDedupe(t)
	d.expectClaim(owner, ports.ClaimCommitted, nil)
	d.claim(t, owner, ports.ClaimCommitted, nil)

	// Well past the claim TTL, still answered locally.
	d.clk.Advance(doneTTL - time.Nanosecond)
	d.claim(t, owner2, ports.ClaimCommitted, nil)

	d.clk.Advance(time.Nanosecond)
	d.expectClaim(owner2, ports.ClaimAcquired, nil)
	d.claim(t, owner2, ports.ClaimAcquired, nil)
}

func TestDedupeStore_HeldMessageIsAnsweredLocally(t *testing.T) {
	d := newDedupe(t)
	d.expectClaim(owner, ports.ClaimAcquired, nil)
	d.claim(t, owner, ports.ClaimAcquired, nil)

	// A duplicate delivered to this process, to any owner.
	d.claim(t, owner2, ports.ClaimHeld, nil)

	// A holder that died leaves a claim that expires with the claim TTL;
	// then next decides again.
	d.clk.Advance(claimTTL - time.Nanosecond)
	d.claim(t, owner2, ports.ClaimHeld, nil)
	d.clk.Advance(time.Nanosecond)
	d.expectClaim(owner2, ports.ClaimAcquired, nil)
	d.claim(t, owner2, ports.ClaimAcquired, nil)
}

func TestDedupeStore_NextFailing(t *testing.T) {
	t.Run("claim stands locally and the error is returned", func(t *testing.T) {
		d := newDedupe(t)
		d.expectClaim(owner, 0, errRedis)
		d.claim(t, owner, 0, errRedis)
		d.claim(t, owner2, ports.ClaimHeld, nil)
	})
	t.Run("commit is remembered locally", func(t *testing.T) {
		d := newDedupe(t)
		d.expectClaim(owner, 0, errRedis)
		d.claim(t, owner, 0, errRedis)

		d.next.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, doneTTL).Return(false, errRedis)
		if owned, err := d.s.Commit(t.Context(), tenant, messageID, owner, doneTTL); owned || err != errRedis {
			t.Fatalf("Commit = %v, %v; want next's false, %v", owned, err, errRedis)
		}
		d.claim(t, owner2, ports.ClaimCommitted, nil)
		d.claim(t, owner, ports.ClaimCommitted, nil)
	})
	t.Run("release frees the message locally", func(t *testing.T) {
		d := newDedupe(t)
		d.expectClaim(owner, 0, errRedis)
		d.claim(t, owner, 0, errRedis)

		d.next.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(false, errRedis)
		if owned, err := d.s.Release(t.Context(), tenant, messageID, owner); owned || err != errRedis {
			t.Fatalf("Release = %v, %v; want next's false, %v", owned, err, errRedis)
		}
		// Meta's retry is processed: next is asked again.
		d.expectClaim(owner2, ports.ClaimAcquired, nil)
		d.claim(t, owner2, ports.ClaimAcquired, nil)
	})
}

func TestDedupeStore_SettlingReturnsNextsAnswerUnchanged(t *testing.T) {
	type answer struct {
		owned bool
		err   error
	}
	answers := []answer{{true, nil}, {false, nil}, {false, errRedis}, {true, errRedis}}

	for _, give := range answers {
		t.Run(fmt.Sprintf("Commit/%v,%v", give.owned, give.err), func(t *testing.T) {
			d := newDedupe(t)
			d.expectClaim(owner, ports.ClaimAcquired, nil)
			d.claim(t, owner, ports.ClaimAcquired, nil)

			d.next.EXPECT().Commit(gomock.Any(), tenant, messageID, owner, doneTTL).Return(give.owned, give.err)
			owned, err := d.s.Commit(t.Context(), tenant, messageID, owner, doneTTL)
			if owned != give.owned || err != give.err {
				t.Fatalf("Commit = %v, %v; want next's %v, %v", owned, err, give.owned, give.err)
			}
			// Whatever next said, the local record has it committed.
			d.claim(t, owner2, ports.ClaimCommitted, nil)
		})
		t.Run(fmt.Sprintf("Release/%v,%v", give.owned, give.err), func(t *testing.T) {
			d := newDedupe(t)
			d.expectClaim(owner, ports.ClaimAcquired, nil)
			d.claim(t, owner, ports.ClaimAcquired, nil)

			d.next.EXPECT().Release(gomock.Any(), tenant, messageID, owner).Return(give.owned, give.err)
			owned, err := d.s.Release(t.Context(), tenant, messageID, owner)
			if owned != give.owned || err != give.err {
				t.Fatalf("Release = %v, %v; want next's %v, %v", owned, err, give.owned, give.err)
			}
			// The local record has it free: next decides.
			d.expectClaim(owner2, ports.ClaimHeld, nil)
			d.claim(t, owner2, ports.ClaimHeld, nil)
		})
	}
}

func TestDedupeStore_SettlingByAnotherOwnerLeavesTheLocalClaim(t *testing.T) {
	d := newDedupe(t)
	d.expectClaim(owner, ports.ClaimAcquired, nil)
	d.claim(t, owner, ports.ClaimAcquired, nil)

	d.next.EXPECT().Release(gomock.Any(), tenant, messageID, owner2).Return(false, nil)
	if owned, err := d.s.Release(t.Context(), tenant, messageID, owner2); owned || err != nil {
		t.Fatalf("Release by %s = %v, %v; want false, nil", owner2, owned, err)
	}
	d.next.EXPECT().Commit(gomock.Any(), tenant, messageID, owner2, doneTTL).Return(false, nil)
	if owned, err := d.s.Commit(t.Context(), tenant, messageID, owner2, doneTTL); owned || err != nil {
		t.Fatalf("Commit by %s = %v, %v; want false, nil", owner2, owned, err)
	}
	d.claim(t, "owner-3", ports.ClaimHeld, nil)
}

func TestDedupeStore_MessagesAreIsolated(t *testing.T) {
	d := newDedupe(t)
	d.expectClaim(owner, ports.ClaimCommitted, nil)
	d.claim(t, owner, ports.ClaimCommitted, nil)

	d.next.EXPECT().Claim(gomock.Any(), "tenant-2", messageID, owner, claimTTL).Return(ports.ClaimAcquired, nil)
	d.next.EXPECT().Claim(gomock.Any(), tenant, "wamid.other", owner, claimTTL).Return(ports.ClaimAcquired, nil)
	for _, k := range [][2]string{{"tenant-2", messageID}, {tenant, "wamid.other"}} {
		if got, err := d.s.Claim(t.Context(), k[0], k[1], owner, claimTTL); got != ports.ClaimAcquired || err != nil {
			t.Errorf("Claim(%s, %s) = %s, %v; want ClaimAcquired from next", k[0], k[1], got, err)
		}
	}
}

// TestDedupeStore_Contract runs the dedupe store contract through a near
// record over the memory store: a single replica answers as its store does.
func TestDedupeStore_Contract(t *testing.T) {
	contract.DedupeStore(t, func(*testing.T) ports.DedupeStore {
		return nearcache.NewDedupeStore(memory.NewDedupeStore(), nearcache.DedupeConfig{DoneTTL: doneTTL})
	})
}

// TestDedupeStore_ConcurrentClaimsAcrossReplicas claims one message from
// many goroutines on two replicas sharing one store: exactly one acquires.
func TestDedupeStore_ConcurrentClaimsAcrossReplicas(t *testing.T) {
	const claims = 200
	shared := memory.NewDedupeStore()
	replicas := []ports.DedupeStore{
		nearcache.NewDedupeStore(shared, nearcache.DedupeConfig{DoneTTL: doneTTL}),
		nearcache.NewDedupeStore(shared, nearcache.DedupeConfig{DoneTTL: doneTTL}),
	}

	var (
		start  = make(chan struct{})
		wg     sync.WaitGroup
		states = make([]ports.ClaimState, claims)
		errs   = make([]error, claims)
	)
	for i := range claims {
		wg.Go(func() {
			<-start
			states[i], errs[i] = replicas[i%2].Claim(t.Context(), tenant, messageID, fmt.Sprintf("owner-%d", i), claimTTL)
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, st := range states {
		if errs[i] != nil {
			t.Fatalf("Claim %d: %v", i, errs[i])
		}
		switch st {
		case ports.ClaimAcquired:
			if winner >= 0 {
				t.Fatalf("claims %d and %d both acquired the message", winner, i)
			}
			winner = i
		case ports.ClaimHeld:
		default:
			t.Fatalf("Claim %d = %s, want ClaimAcquired or ClaimHeld", i, st)
		}
	}
	if winner < 0 {
		t.Fatal("no claim acquired the message")
	}

	w := replicas[winner%2]
	if owned, err := w.Commit(t.Context(), tenant, messageID, fmt.Sprintf("owner-%d", winner), doneTTL); !owned || err != nil {
		t.Fatalf("Commit by the winner = %v, %v; want true, nil", owned, err)
	}
	for i, r := range replicas {
		if got, err := r.Claim(t.Context(), tenant, messageID, "late", claimTTL); got != ports.ClaimCommitted || err != nil {
			t.Errorf("late Claim on replica %d = %s, %v; want ClaimCommitted", i, got, err)
		}
	}
}
