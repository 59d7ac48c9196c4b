package contract

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// concurrentLocks is how many owners race for one free lock.
const concurrentLocks = 200

// TokenLock runs the [ports.TokenLock] contract against locks made by
// newLock, which is called once per subtest.
func TokenLock(t *testing.T, newLock func(t *testing.T) ports.TokenLock) {
	t.Run("lock of a free lock is acquired", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		k.lock("a", longTTL, true)
	})

	t.Run("lock held by another owner is not acquired", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		k.lock("a", longTTL, true)
		k.lock("b", longTTL, false)
		k.lock("c", longTTL, false)
	})

	t.Run("the holder locking again acquires it, without extending its TTL", func(t *testing.T) {
		// The holder's second lock must reach the store before the first
		// TTL passed, or it takes a free lock anew: a slow run retries on
		// a fresh tenant.
		const holdTTL = 300 * time.Millisecond
		l := newLock(t)
		for attempt := 0; ; attempt++ {
			k := tenantLock{t, l, TenantID(t)}
			start := time.Now()
			k.lock("a", holdTTL, true)
			k.lock("a", longTTL, true)
			if !beforeTTL(start, holdTTL) {
				if attempt == 4 {
					t.Fatalf("the holder's second lock never came within the %v TTL of its first", holdTTL)
				}
				continue
			}
			// Locks by b poll until the first TTL passed: had the second
			// lock extended it, that would take an hour. The first one,
			// when the run was fast enough, must find the lock held.
			got := k.acquired("b", longTTL)
			if got && beforeTTL(start, holdTTL) {
				t.Fatalf("LockToken by another owner acquired the lock before its %v TTL passed", holdTTL)
			}
			eventually(t, "the lock expires after the TTL it was first taken with", func() bool {
				if !got {
					got = k.acquired("b", longTTL)
				}
				return got
			})
			k.lock("a", longTTL, false)
			return
		}
	})

	t.Run("unlock by the holder frees the lock", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		k.lock("a", longTTL, true)
		k.unlock("a")
		k.lock("b", longTTL, true)
		k.lock("a", longTTL, false)
	})

	t.Run("unlock by another owner changes nothing", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		k.lock("a", longTTL, true)
		k.unlock("b")
		k.lock("c", longTTL, false)
		k.lock("a", longTTL, true)
		k.unlock("a")
		k.lock("c", longTTL, true)
	})

	t.Run("unlock of a free lock is not an error and marks nothing", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		k.unlock("a")
		k.lock("b", longTTL, true)
		k.unlock("b")
		k.unlock("b")
		k.lock("a", longTTL, true)
	})

	t.Run("a lock expires after its TTL", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		start := time.Now()
		k.lock("a", shortTTL, true)
		// Locks by b poll until the TTL passed; the first one, when the run
		// was fast enough, must find the lock held.
		got := k.acquired("b", longTTL)
		if got && beforeTTL(start, shortTTL) {
			t.Fatalf("LockToken by another owner acquired the lock before its %v TTL passed", shortTTL)
		}
		eventually(t, "an expired lock is acquired by another owner", func() bool {
			if !got {
				got = k.acquired("b", longTTL)
			}
			return got
		})
		// a's lock is gone: its unlock must not free b's.
		k.unlock("a")
		k.lock("c", longTTL, false)
		k.lock("b", longTTL, true)
	})

	t.Run("a TTL under a millisecond is an error and takes nothing", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		for _, ttl := range badTTLs {
			if acquired, err := k.l.LockToken(t.Context(), k.tenant, "a", ttl); err == nil {
				t.Errorf("LockToken with ttl %v = acquired %v, want an error", ttl, acquired)
			}
		}
		k.lock("b", longTTL, true)
	})

	t.Run("locks are isolated per tenant", func(t *testing.T) {
		l := newLock(t)
		a := tenantLock{t, l, TenantID(t)}
		ab := tenantLock{t, l, a.tenant + "b"} // a's id is a prefix of ab's
		a.lock("owner-1", longTTL, true)
		ab.lock("owner-2", longTTL, true)
		a.lock("owner-3", longTTL, false)
		ab.lock("owner-3", longTTL, false)

		// owner-1 holds tenant a's lock, not tenant ab's, and the other
		// way round for owner-2.
		ab.unlock("owner-1")
		a.unlock("owner-2")
		a.lock("owner-3", longTTL, false)
		ab.lock("owner-3", longTTL, false)

		a.unlock("owner-1")
		a.lock("owner-3", longTTL, true)
		ab.lock("owner-3", longTTL, false)
		ab.lock("owner-2", longTTL, true)
	})

	t.Run("concurrent locks of one free lock: exactly one acquires", func(t *testing.T) {
		k := tenantLock{t, newLock(t), TenantID(t)}
		owner := func(i int) string { return fmt.Sprintf("owner-%d", i) }

		var (
			start    = make(chan struct{})
			wg       sync.WaitGroup
			acquired = make([]bool, concurrentLocks)
			errs     = make([]error, concurrentLocks)
		)
		for i := range concurrentLocks {
			wg.Go(func() {
				<-start
				acquired[i], errs[i] = k.l.LockToken(t.Context(), k.tenant, owner(i), longTTL)
			})
		}
		close(start)
		wg.Wait()

		var winners []string
		for i := range concurrentLocks {
			if errs[i] != nil {
				t.Fatalf("LockToken by %s: %v", owner(i), errs[i])
			}
			if acquired[i] {
				winners = append(winners, owner(i))
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%d concurrent locks: acquired by %d owners %q, want exactly 1", concurrentLocks, len(winners), winners)
		}
		winner := winners[0]

		// Every loser unlocking at once changes nothing: the winner holds it.
		for i := range concurrentLocks {
			if owner(i) == winner {
				continue
			}
			wg.Go(func() {
				errs[i] = k.l.UnlockToken(t.Context(), k.tenant, owner(i))
			})
		}
		wg.Wait()
		for i := range concurrentLocks {
			if errs[i] != nil {
				t.Fatalf("UnlockToken by %s: %v", owner(i), errs[i])
			}
		}
		k.lock("late", longTTL, false)
		k.lock(winner, longTTL, true)
		k.unlock(winner)
		k.lock("late", longTTL, true)
	})
}

// tenantLock is one tenant of a lock under test, with asserting helpers.
type tenantLock struct {
	t      *testing.T
	l      ports.TokenLock
	tenant string
}

func (k tenantLock) acquired(owner string, ttl time.Duration) bool {
	k.t.Helper()
	acquired, err := k.l.LockToken(k.t.Context(), k.tenant, owner, ttl)
	if err != nil {
		k.t.Fatalf("LockToken(%s, owner %s, ttl %v): %v", k.tenant, owner, ttl, err)
	}
	return acquired
}

func (k tenantLock) lock(owner string, ttl time.Duration, want bool) {
	k.t.Helper()
	if got := k.acquired(owner, ttl); got != want {
		k.t.Fatalf("LockToken(%s, owner %s, ttl %v) acquired = %v, want %v", k.tenant, owner, ttl, got, want)
	}
}

func (k tenantLock) unlock(owner string) {
	k.t.Helper()
	if err := k.l.UnlockToken(k.t.Context(), k.tenant, owner); err != nil {
		k.t.Fatalf("UnlockToken(%s, owner %s): %v", k.tenant, owner, err)
	}
}
