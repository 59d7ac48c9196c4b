package memory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/internal/fakeclock"
)

func TestTokenLockExpiresExactlyAtTTL(t *testing.T) {
	const lockTTL = time.Second
	tests := []struct {
		name   string
		relock bool          // whether the holder locks again, with a longer TTL, halfway through lockTTL
		give   time.Duration // how long after the first lock another owner locks
		want   bool          // whether the other owner acquires it
	}{
		{name: "just locked", give: 0, want: false},
		{name: "a nanosecond before the TTL", give: lockTTL - time.Nanosecond, want: false},
		{name: "at the TTL", give: lockTTL, want: true},
		{name: "long after the TTL", give: time.Hour, want: true},
		{name: "locked again by the holder, a nanosecond before the first TTL", relock: true, give: lockTTL - time.Nanosecond, want: false},
		{name: "locked again by the holder, at the first TTL", relock: true, give: lockTTL, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			l := memory.NewTokenLock(memory.WithClock(clk.Now))
			if acquired, err := l.LockToken(t.Context(), "tenant", "a", lockTTL); err != nil || !acquired {
				t.Fatalf("LockToken of a free lock = %v, %v; want acquired", acquired, err)
			}
			elapsed := time.Duration(0)
			if tt.relock {
				elapsed = lockTTL / 2
				clk.Advance(elapsed)
				if acquired, err := l.LockToken(t.Context(), "tenant", "a", time.Hour); err != nil || !acquired {
					t.Fatalf("LockToken by the holder = %v, %v; want acquired", acquired, err)
				}
			}
			clk.Advance(tt.give - elapsed)
			got, err := l.LockToken(t.Context(), "tenant", "b", time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("LockToken by another owner %v after a lock with TTL %v: acquired = %v, want %v", tt.give, lockTTL, got, tt.want)
			}
		})
	}
}

func TestTokenLockRefusesATTLUnderAMillisecond(t *testing.T) {
	tests := []struct {
		name string
		give time.Duration
	}{
		{name: "zero", give: 0},
		{name: "negative", give: -time.Second},
		{name: "under a millisecond", give: time.Millisecond - time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := memory.NewTokenLock(memory.WithClock(fakeclock.New().Now))
			if acquired, err := l.LockToken(t.Context(), "tenant", "a", tt.give); err == nil || acquired {
				t.Fatalf("LockToken with ttl %v = %v, %v; want an error", tt.give, acquired, err)
			}
			if acquired, err := l.LockToken(t.Context(), "tenant", "b", time.Minute); err != nil || !acquired {
				t.Errorf("LockToken after a refused one = %v, %v; want the lock still free", acquired, err)
			}
		})
	}
}

// TestTokenLockKeepsNoFreeLock checks that locks unlocked, or expired and
// reclaimed, hold no memory.
func TestTokenLockKeepsNoFreeLock(t *testing.T) {
	clk := fakeclock.New()
	l := memory.NewTokenLock(memory.WithClock(clk.Now))
	lock := func(tenant string, ttl time.Duration) {
		t.Helper()
		if acquired, err := l.LockToken(t.Context(), tenant, "owner", ttl); err != nil || !acquired {
			t.Fatalf("LockToken(%s) = %v, %v; want acquired", tenant, acquired, err)
		}
	}
	for i := range 100 {
		lock(fmt.Sprintf("unlocked-%d", i), time.Hour)
	}
	for i := range 100 {
		if err := l.UnlockToken(t.Context(), fmt.Sprintf("unlocked-%d", i), "owner"); err != nil {
			t.Fatal(err)
		}
	}
	if got := l.Len(); got != 0 {
		t.Fatalf("Len after 100 locks and their unlocks = %d, want 0", got)
	}

	for i := range 100 {
		lock(fmt.Sprintf("expiring-%d", i), time.Second)
	}
	for i := range 10 {
		lock(fmt.Sprintf("held-%d", i), 24*time.Hour)
	}
	clk.Advance(reclaimAfter)
	for range sweepWrites(l.Len() + 1) {
		lock("trigger", time.Second)
		if err := l.UnlockToken(t.Context(), "trigger", "owner"); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := l.Len(), 10; got != want {
		t.Errorf("Len after the sweep = %d, want %d (the held locks)", got, want)
	}
	for i := range 10 {
		if acquired, _ := l.LockToken(t.Context(), fmt.Sprintf("held-%d", i), "other", time.Second); acquired {
			t.Errorf("held lock held-%d was reclaimed", i)
		}
	}
}
