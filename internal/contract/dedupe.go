package contract

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// concurrentClaims is how many goroutines race for one message.
const concurrentClaims = 200

// DedupeStore runs the [ports.DedupeStore] contract against stores made by
// newStore, which is called once per subtest.
func DedupeStore(t *testing.T, newStore func(t *testing.T) ports.DedupeStore) {
	const msg = "wamid.HBgLMTIzNDU2Nzg5MBUCABIYFjNFQjBDMEM"

	t.Run("claim of a free message is acquired", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
	})

	t.Run("claim of a message another owner holds is held", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.claim(msg, "b", longTTL, ports.ClaimHeld)
		d.claim(msg, "c", longTTL, ports.ClaimHeld)
	})

	t.Run("claim by the owner that holds the message is acquired again", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.claim(msg, "b", longTTL, ports.ClaimHeld)
	})
	t.Run("commit by the owner marks the message committed", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", longTTL, true)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
		d.claim(msg, "a", longTTL, ports.ClaimCommitted)
	})

	t.Run("commit by another owner is not owned and changes nothing", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "b", longTTL, false)
		d.claim(msg, "c", longTTL, ports.ClaimHeld)
		d.commit(msg, "a", longTTL, true)
		d.claim(msg, "c", longTTL, ports.ClaimCommitted)
	})

	t.Run("commit of a message nobody holds marks it committed", func(t *testing.T) {
		// The claim was never recorded (the store was down) or expired:
		// the message was processed all the same.
		d := dedupe{t, newStore(t), TenantID(t)}
		d.commit(msg, "a", longTTL, true)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
	})

	t.Run("a committed message cannot be committed by another owner", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", longTTL, true)
		d.commit(msg, "b", longTTL, false)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
	})

	t.Run("the owner committing again (a retried commit) still owns it", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", longTTL, true)
		d.commit(msg, "a", longTTL, true)
		d.release(msg, "a", false)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
	})

	t.Run("release by the owner frees the message", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.release(msg, "a", true)
		d.claim(msg, "b", longTTL, ports.ClaimAcquired)
	})

	t.Run("release by another owner is not owned and the message stays held", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.release(msg, "b", false)
		d.claim(msg, "c", longTTL, ports.ClaimHeld)
		d.release(msg, "a", true)
		d.claim(msg, "c", longTTL, ports.ClaimAcquired)
	})

	t.Run("release of a message nobody holds needs nothing and marks nothing", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.release(msg, "a", true)
		d.claim(msg, "b", longTTL, ports.ClaimAcquired)
	})

	t.Run("release twice: the second finds nothing to release", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.release(msg, "a", true)
		d.release(msg, "a", true)
		d.claim(msg, "b", longTTL, ports.ClaimAcquired)
	})

	t.Run("commit after release by another owner's claim is not owned", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.release(msg, "a", true)
		d.claim(msg, "b", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", longTTL, false)
		d.release(msg, "a", false)
		d.claim(msg, "c", longTTL, ports.ClaimHeld)
	})

	t.Run("release after commit is not owned and the message stays committed", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", longTTL, true)
		d.release(msg, "a", false)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
	})

	t.Run("a claim whose TTL passed can be claimed again", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		start := time.Now()
		d.claim(msg, "a", shortTTL, ports.ClaimAcquired)
		// Claims by b poll until the claim TTL passed; the first one, when
		// the run was fast enough, must find the message held.
		st := d.claimState(msg, "b", longTTL)
		if st != ports.ClaimHeld && beforeTTL(start, shortTTL) {
			t.Fatalf("Claim before the claim TTL passed = %s, want ClaimHeld", st)
		}
		eventually(t, "an expired claim is acquired by another owner", func() bool {
			if st == ports.ClaimHeld {
				st = d.claimState(msg, "b", longTTL)
			}
			switch st {
			case ports.ClaimAcquired:
				return true
			case ports.ClaimHeld:
				return false
			}
			t.Fatalf("Claim while waiting for the claim TTL = %s, want ClaimHeld then ClaimAcquired", st)
			return false
		})
		d.commit(msg, "a", longTTL, false)
		d.commit(msg, "b", longTTL, true)
	})

	t.Run("commit after the claim TTL passed, nobody holding it, marks it committed", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", shortTTL, ports.ClaimAcquired)
		d.claim("other", "a", shortTTL, ports.ClaimAcquired)
		time.Sleep(2 * shortTTL)
		d.commit(msg, "a", longTTL, true)
		d.release("other", "a", true)
		d.claim(msg, "b", longTTL, ports.ClaimCommitted)
		d.claim("other", "b", longTTL, ports.ClaimAcquired)
	})

	t.Run("commit replaces the claim TTL with its own", func(t *testing.T) {
		// The claim TTL must pass between the claim and the check, but not
		// between the claim and the commit: a slow run retries.
		const claimTTL = 300 * time.Millisecond
		d := dedupe{t, newStore(t), TenantID(t)}
		for attempt := 0; ; attempt++ {
			m := fmt.Sprintf("%s-%d", msg, attempt)
			d.claim(m, "a", claimTTL, ports.ClaimAcquired)
			owned, err := d.s.Commit(t.Context(), d.tenant, m, "a", longTTL)
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if !owned {
				if attempt == 4 {
					t.Fatal("Commit right after Claim was never owned")
				}
				continue
			}
			time.Sleep(2 * claimTTL)
			d.claim(m, "b", longTTL, ports.ClaimCommitted)
			return
		}
	})

	t.Run("committed mark expires after its TTL", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		d.claim(msg, "a", longTTL, ports.ClaimAcquired)
		d.commit(msg, "a", shortTTL, true)
		eventually(t, "a committed message is acquired once its TTL passed", func() bool {
			switch st := d.claimState(msg, "b", longTTL); st {
			case ports.ClaimAcquired:
				return true
			case ports.ClaimCommitted:
				return false
			default:
				t.Fatalf("Claim while waiting for the commit TTL = %s, want ClaimCommitted then ClaimAcquired", st)
				return false
			}
		})
	})

	t.Run("a TTL under a millisecond is an error and marks nothing", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		for _, ttl := range badTTLs {
			if st, err := d.s.Claim(t.Context(), d.tenant, msg, "a", ttl); err == nil {
				t.Errorf("Claim with ttl %v = %s, want an error", ttl, st)
			}
			if _, err := d.s.Commit(t.Context(), d.tenant, msg, "a", ttl); err == nil {
				t.Errorf("Commit with ttl %v: no error", ttl)
			}
		}
		d.claim(msg, "b", longTTL, ports.ClaimAcquired)
	})

	t.Run("messages are isolated per tenant and per message id", func(t *testing.T) {
		s := newStore(t)
		a := dedupe{t, s, TenantID(t)}
		ab := dedupe{t, s, a.tenant + "b"} // a's id is a prefix of ab's
		a.claim("m", "owner-1", longTTL, ports.ClaimAcquired)
		a.claim("mm", "owner-2", longTTL, ports.ClaimAcquired)
		a.claim("bm", "owner-2", longTTL, ports.ClaimAcquired)
		ab.claim("m", "owner-2", longTTL, ports.ClaimAcquired)

		a.commit("m", "owner-1", longTTL, true)
		a.claim("mm", "owner-3", longTTL, ports.ClaimHeld)
		ab.claim("m", "owner-3", longTTL, ports.ClaimHeld)

		// owner-2 holds message m at tenant ab, not at tenant a.
		a.commit("m", "owner-2", longTTL, false)
		a.release("m", "owner-2", false)
		// owner-1 committed message m at tenant a, not at tenant ab.
		ab.commit("m", "owner-1", longTTL, false)

		a.release("mm", "owner-2", true)
		a.claim("m", "owner-3", longTTL, ports.ClaimCommitted)
		a.claim("bm", "owner-3", longTTL, ports.ClaimHeld)
		ab.claim("m", "owner-3", longTTL, ports.ClaimHeld)
		a.claim("mm", "owner-3", longTTL, ports.ClaimAcquired)
	})

	t.Run("concurrent claims of one message: exactly one acquires", func(t *testing.T) {
		d := dedupe{t, newStore(t), TenantID(t)}
		owner := func(i int) string { return fmt.Sprintf("owner-%d", i) }

		var (
			start  = make(chan struct{})
			wg     sync.WaitGroup
			states = make([]ports.ClaimState, concurrentClaims)
			errs   = make([]error, concurrentClaims)
		)
		for i := range concurrentClaims {
			wg.Go(func() {
				<-start
				states[i], errs[i] = d.s.Claim(t.Context(), d.tenant, msg, owner(i), longTTL)
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		counts := map[ports.ClaimState]int{}
		for i, st := range states {
			if errs[i] != nil {
				t.Fatalf("Claim by %s: %v", owner(i), errs[i])
			}
			counts[st]++
			if st == ports.ClaimAcquired {
				winner = i
			}
		}
		if counts[ports.ClaimAcquired] != 1 || counts[ports.ClaimHeld] != concurrentClaims-1 {
			t.Fatalf("%d concurrent claims: %d acquired, %d held, %d committed; want 1 acquired, %d held",
				concurrentClaims, counts[ports.ClaimAcquired], counts[ports.ClaimHeld], counts[ports.ClaimCommitted], concurrentClaims-1)
		}

		owned := make([]bool, concurrentClaims)
		for i := range concurrentClaims {
			wg.Go(func() {
				owned[i], errs[i] = d.s.Commit(t.Context(), d.tenant, msg, owner(i), longTTL)
			})
		}
		wg.Wait()
		for i := range concurrentClaims {
			if errs[i] != nil {
				t.Fatalf("Commit by %s: %v", owner(i), errs[i])
			}
			if owned[i] != (i == winner) {
				t.Errorf("Commit by %s owned = %v, want %v (the claim went to %s)", owner(i), owned[i], i == winner, owner(winner))
			}
		}
		d.claim(msg, "late", longTTL, ports.ClaimCommitted)
	})
}

// dedupe is one tenant of a store under test, with asserting helpers.
type dedupe struct {
	t      *testing.T
	s      ports.DedupeStore
	tenant string
}

func (d dedupe) claimState(msg, owner string, ttl time.Duration) ports.ClaimState {
	d.t.Helper()
	st, err := d.s.Claim(d.t.Context(), d.tenant, msg, owner, ttl)
	if err != nil {
		d.t.Fatalf("Claim(%s, %s, owner %s): %v", d.tenant, msg, owner, err)
	}
	return st
}

func (d dedupe) claim(msg, owner string, ttl time.Duration, want ports.ClaimState) {
	d.t.Helper()
	if got := d.claimState(msg, owner, ttl); got != want {
		d.t.Fatalf("Claim(%s, %s, owner %s) = %s, want %s", d.tenant, msg, owner, got, want)
	}
}

func (d dedupe) commit(msg, owner string, ttl time.Duration, want bool) {
	d.t.Helper()
	owned, err := d.s.Commit(d.t.Context(), d.tenant, msg, owner, ttl)
	if err != nil {
		d.t.Fatalf("Commit(%s, %s, owner %s): %v", d.tenant, msg, owner, err)
	}
	if owned != want {
		d.t.Fatalf("Commit(%s, %s, owner %s) owned = %v, want %v", d.tenant, msg, owner, owned, want)
	}
}

func (d dedupe) release(msg, owner string, want bool) {
	d.t.Helper()
	owned, err := d.s.Release(d.t.Context(), d.tenant, msg, owner)
	if err != nil {
		d.t.Fatalf("Release(%s, %s, owner %s): %v", d.tenant, msg, owner, err)
	}
	if owned != want {
		d.t.Fatalf("Release(%s, %s, owner %s) owned = %v, want %v", d.tenant, msg, owner, owned, want)
	}
}
