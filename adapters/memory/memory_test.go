package memory_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/internal/fakeclock"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/ports"
)

func TestTokenStoreContract(t *testing.T) {
	contract.TokenStore(t, func(*testing.T) ports.TokenStore { return memory.NewTokenStore() })
}

func TestDedupeStoreContract(t *testing.T) {
	contract.DedupeStore(t, func(*testing.T) ports.DedupeStore { return memory.NewDedupeStore() })
}

func TestTokenLockContract(t *testing.T) {
	contract.TokenLock(t, func(*testing.T) ports.TokenLock { return memory.NewTokenLock() })
}

// TestContractsWithABound runs the contract suites on stores bounded far
// above what one case writes, but low enough that they fill up.
func TestContractsWithABound(t *testing.T) {
	const bound = 1000
	t.Run("tokens", func(t *testing.T) {
		contract.TokenStore(t, func(*testing.T) ports.TokenStore { return memory.NewTokenStore(memory.WithMaxEntries(bound)) })
	})
	t.Run("dedupe", func(t *testing.T) {
		contract.DedupeStore(t, func(*testing.T) ports.DedupeStore { return memory.NewDedupeStore(memory.WithMaxEntries(bound)) })
	})
	t.Run("lock", func(t *testing.T) {
		contract.TokenLock(t, func(*testing.T) ports.TokenLock { return memory.NewTokenLock(memory.WithMaxEntries(bound)) })
	})
}

func TestTokenStoreExpiresExactlyAtTTL(t *testing.T) {
	tests := []struct {
		name      string
		give      time.Duration // how long after the put the token is read
		wantFound bool
	}{
		{name: "just put", give: 0, wantFound: true},
		{name: "a nanosecond before the TTL", give: time.Second - time.Nanosecond, wantFound: true},
		{name: "at the TTL", give: time.Second, wantFound: false},
		{name: "long after the TTL", give: time.Hour, wantFound: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			s := memory.NewTokenStore(memory.WithClock(clk.Now))
			tok := ports.CachedToken{AccessToken: "tok", ExpiresAt: clk.Now().Add(time.Hour)}
			if err := s.PutToken(t.Context(), "tenant", tok, time.Second); err != nil {
				t.Fatal(err)
			}
			clk.Advance(tt.give)
			got, found, err := s.GetToken(t.Context(), "tenant")
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound {
				t.Fatalf("GetToken %v after a put with TTL 1s: found = %v, want %v", tt.give, found, tt.wantFound)
			}
			if found && got != tok {
				t.Errorf("GetToken = %+v, want %+v", got, tok)
			}
		})
	}
}

func TestDedupeStoreExpiresExactlyAtTTL(t *testing.T) {
	const claimTTL, commitTTL = time.Minute, 24 * time.Hour
	tests := []struct {
		name   string
		commit bool          // whether the claim is committed
		give   time.Duration // how long after that the message is claimed again
		want   ports.ClaimState
	}{
		{name: "claim, just made", give: 0, want: ports.ClaimHeld},
		{name: "claim, a nanosecond before its TTL", give: claimTTL - time.Nanosecond, want: ports.ClaimHeld},
		{name: "claim, at its TTL", give: claimTTL, want: ports.ClaimAcquired},
		{name: "committed, past the claim TTL", commit: true, give: claimTTL, want: ports.ClaimCommitted},
		{name: "committed, a nanosecond before its TTL", commit: true, give: commitTTL - time.Nanosecond, want: ports.ClaimCommitted},
		{name: "committed, at its TTL", commit: true, give: commitTTL, want: ports.ClaimAcquired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			s := memory.NewDedupeStore(memory.WithClock(clk.Now))
			if st, err := s.Claim(t.Context(), "tenant", "msg", "a", claimTTL); err != nil || st != ports.ClaimAcquired {
				t.Fatalf("Claim = %v, %v; want ClaimAcquired", st, err)
			}
			if tt.commit {
				if owned, err := s.Commit(t.Context(), "tenant", "msg", "a", commitTTL); err != nil || !owned {
					t.Fatalf("Commit = %v, %v; want owned", owned, err)
				}
			}
			clk.Advance(tt.give)
			got, err := s.Claim(t.Context(), "tenant", "msg", "b", claimTTL)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Claim %v later = %d, want %d", tt.give, got, tt.want)
			}
		})
	}
}

// reclaimAfter is longer than any short TTL the reclaim tests give.
const reclaimAfter = time.Hour

// sweepWrites is how many writes reclaim every expired entry of a store
// holding n entries, at most: each write drops two expired entries, so n
// writes are enough; twice n leaves room.
func sweepWrites(n int) int { return 2 * n }

func TestTokenStoreReclaimsExpiredEntries(t *testing.T) {
	clk := fakeclock.New()
	s := memory.NewTokenStore(memory.WithClock(clk.Now))
	put := func(tenant string, ttl time.Duration) {
		t.Helper()
		if err := s.PutToken(t.Context(), tenant, ports.CachedToken{AccessToken: "tok"}, ttl); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		put(fmt.Sprintf("short-%d", i), time.Second)
	}
	for i := range 10 {
		put(fmt.Sprintf("long-%d", i), 24*time.Hour)
	}
	if got := s.Len(); got != 110 {
		t.Fatalf("Len after 110 puts = %d, want 110", got)
	}

	clk.Advance(reclaimAfter)
	for range sweepWrites(s.Len() + 1) {
		put("trigger", time.Second)
	}
	if got, want := s.Len(), 10+1; got != want {
		t.Errorf("Len after the sweep = %d, want %d (the live tokens and the one rewritten)", got, want)
	}
	for i := range 10 {
		if _, found, _ := s.GetToken(t.Context(), fmt.Sprintf("long-%d", i)); !found {
			t.Errorf("live token long-%d was reclaimed", i)
		}
	}
}

func TestDedupeStoreReclaimsExpiredEntries(t *testing.T) {
	clk := fakeclock.New()
	s := memory.NewDedupeStore(memory.WithClock(clk.Now))
	claim := func(msg string, ttl time.Duration) {
		t.Helper()
		if st, err := s.Claim(t.Context(), "tenant", msg, "owner", ttl); err != nil || st != ports.ClaimAcquired {
			t.Fatalf("Claim(%s) = %v, %v; want ClaimAcquired", msg, st, err)
		}
	}
	for i := range 100 {
		claim(fmt.Sprintf("expiring-claim-%d", i), time.Minute)
	}
	for i := range 50 {
		msg := fmt.Sprintf("expiring-commit-%d", i)
		claim(msg, time.Minute)
		if owned, err := s.Commit(t.Context(), "tenant", msg, "owner", time.Second); err != nil || !owned {
			t.Fatalf("Commit(%s) = %v, %v; want owned", msg, owned, err)
		}
	}
	for i := range 10 {
		msg := fmt.Sprintf("live-commit-%d", i)
		claim(msg, time.Minute)
		if owned, err := s.Commit(t.Context(), "tenant", msg, "owner", 24*time.Hour); err != nil || !owned {
			t.Fatalf("Commit(%s) = %v, %v; want owned", msg, owned, err)
		}
	}
	if got := s.Len(); got != 160 {
		t.Fatalf("Len after 160 messages = %d, want 160", got)
	}

	clk.Advance(reclaimAfter)
	for range sweepWrites(s.Len() + 1) {
		claim("trigger", time.Minute) // claimed again by its owner: rewritten
	}
	if got, want := s.Len(), 10+1; got != want {
		t.Errorf("Len after the sweep = %d, want %d (the live commits and the claim rewritten)", got, want)
	}
	for i := range 10 {
		if st, _ := s.Claim(t.Context(), "tenant", fmt.Sprintf("live-commit-%d", i), "other", time.Minute); st != ports.ClaimCommitted {
			t.Errorf("live commit %d: Claim = %d, want ClaimCommitted", i, st)
		}
	}
}

// TestStoresStayBounded writes a steady stream of short-lived entries under
// distinct keys, as a long-running process does, and checks that the stores
// hold a small fraction of them at any time.
func TestStoresStayBounded(t *testing.T) {
	const (
		writes = 10_000
		every  = 10 * time.Second // between writes
		ttl    = time.Second
		bound  = writes / 10
	)
	// Each test makes a store on the clock now and returns a function that
	// writes the i-th entry, and the store's Len.
	tests := []struct {
		name     string
		newStore func(now func() time.Time) (write func(t *testing.T, i int), length func() int)
	}{
		{
			name: "tokens",
			newStore: func(now func() time.Time) (func(*testing.T, int), func() int) {
				s := memory.NewTokenStore(memory.WithClock(now))
				return func(t *testing.T, i int) {
					if err := s.PutToken(t.Context(), fmt.Sprintf("tenant-%d", i), ports.CachedToken{AccessToken: "tok"}, ttl); err != nil {
						t.Fatal(err)
					}
				}, s.Len
			},
		},
		{
			name: "committed messages",
			newStore: func(now func() time.Time) (func(*testing.T, int), func() int) {
				s := memory.NewDedupeStore(memory.WithClock(now))
				return func(t *testing.T, i int) {
					msg := fmt.Sprintf("msg-%d", i)
					if _, err := s.Claim(t.Context(), "tenant", msg, "owner", time.Minute); err != nil {
						t.Fatal(err)
					}
					if _, err := s.Commit(t.Context(), "tenant", msg, "owner", ttl); err != nil {
						t.Fatal(err)
					}
				}, s.Len
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			write, length := tt.newStore(clk.Now)
			peak := 0
			for i := range writes {
				clk.Advance(every)
				write(t, i)
				peak = max(peak, length())
			}
			if peak > bound {
				t.Errorf("after %d writes of %v entries %v apart, the store peaked at %d entries, want at most %d", writes, ttl, every, peak, bound)
			}
		})
	}
}

func TestTokenStoreConcurrentUse(t *testing.T) {
	const workers, rounds = 16, 300
	s := memory.NewTokenStore()
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				tenant := fmt.Sprintf("tenant-%d", (w+i)%4)
				tok := ports.CachedToken{AccessToken: fmt.Sprintf("%s/worker-%d/%d", tenant, w, i), ExpiresAt: time.Now().Add(time.Hour)}
				if err := s.PutToken(t.Context(), tenant, tok, time.Hour); err != nil {
					errs <- err
					return
				}
				got, found, err := s.GetToken(t.Context(), tenant)
				switch {
				case err != nil:
					errs <- err
					return
				case found && !strings.HasPrefix(got.AccessToken, tenant+"/"):
					errs <- fmt.Errorf("GetToken(%s) = %q, a token of another tenant", tenant, got.AccessToken)
					return
				}
				if i%10 == 0 {
					if err := s.DeleteToken(t.Context(), tenant); err != nil {
						errs <- err
						return
					}
				}
				_ = s.Len()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDedupeStoreConcurrentUse has workers claim overlapping messages and
// settle the ones they win: even messages are committed, odd ones released
// on their first win (a failed processing) and committed on a later one.
func TestDedupeStoreConcurrentUse(t *testing.T) {
	const workers, messages = 16, 100
	s := memory.NewDedupeStore()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		holder  = make(map[int]string) // message → the worker holding it
		wins    = make(map[int]int)    // message → how often it was acquired
		commits = make(map[int]int)    // message → how often it was committed
		errs    = make(chan error, workers*messages)
	)
	for w := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("worker-%d", w)
			for i := range messages {
				m := (i + w*7) % messages
				msg := fmt.Sprintf("msg-%d", m)
				st, err := s.Claim(t.Context(), "tenant", msg, owner, time.Hour)
				if err != nil {
					errs <- err
					return
				}
				_ = s.Len()
				if st != ports.ClaimAcquired {
					continue
				}
				mu.Lock()
				if h := holder[m]; h != "" {
					errs <- fmt.Errorf("%s acquired by %s while %s held it", msg, owner, h)
				}
				holder[m] = owner
				wins[m]++
				release := m%2 == 1 && wins[m] == 1
				if !release {
					commits[m]++
				}
				mu.Unlock()

				// Until it is settled, every other claim must find it held.
				time.Sleep(time.Microsecond)
				mu.Lock()
				holder[m] = ""
				mu.Unlock()

				var owned bool
				if release {
					owned, err = s.Release(t.Context(), "tenant", msg, owner)
				} else {
					owned, err = s.Commit(t.Context(), "tenant", msg, owner, time.Hour)
				}
				if err != nil || !owned {
					errs <- fmt.Errorf("settling %s by its owner %s = %v, %v; want owned", msg, owner, owned, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for m := range messages {
		msg := fmt.Sprintf("msg-%d", m)
		if commits[m] > 1 || m%2 == 0 && commits[m] != 1 {
			t.Errorf("%s committed %d times, want once (or, if odd, at most once)", msg, commits[m])
		}
		want := ports.ClaimCommitted
		if commits[m] == 0 {
			want = ports.ClaimAcquired
		}
		if st, err := s.Claim(t.Context(), "tenant", msg, "final", time.Hour); err != nil || st != want {
			t.Errorf("final Claim(%s) = %d, %v; want %d", msg, st, err, want)
		}
	}
}

func TestWithMaxEntriesDropsTheOldestEntries(t *testing.T) {
	const bound, puts = 100, 1000
	clk := fakeclock.New()
	s := memory.NewTokenStore(memory.WithClock(clk.Now), memory.WithMaxEntries(bound))
	// Tenant i's token lives i+1 minutes: the later a token, the longer it lives.
	for i := range puts {
		tok := ports.CachedToken{AccessToken: fmt.Sprint(i)}
		if err := s.PutToken(t.Context(), fmt.Sprintf("tenant-%d", i), tok, time.Duration(i+1)*time.Minute); err != nil {
			t.Fatal(err)
		}
		if n := s.Len(); n > bound {
			t.Fatalf("Len after %d puts = %d, want at most %d", i+1, n, bound)
		}
	}
	if _, found, _ := s.GetToken(t.Context(), fmt.Sprintf("tenant-%d", puts-1)); !found {
		t.Error("the token furthest from expiry was dropped")
	}
	if _, found, _ := s.GetToken(t.Context(), "tenant-0"); found {
		t.Error("the token closest to expiry was kept")
	}
}

func TestWithMaxEntriesDefault(t *testing.T) {
	tests := []struct {
		name string
		give []memory.Option
		want int
	}{
		{name: "no option", want: memory.DefaultMaxEntries},
		{name: "zero", give: []memory.Option{memory.WithMaxEntries(0)}, want: memory.DefaultMaxEntries},
		{name: "negative", give: []memory.Option{memory.WithMaxEntries(-1)}, want: memory.DefaultMaxEntries},
		{name: "one", give: []memory.Option{memory.WithMaxEntries(1)}, want: 1},
		{name: "above the default", give: []memory.Option{memory.WithMaxEntries(2 * memory.DefaultMaxEntries)}, want: 2 * memory.DefaultMaxEntries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []int{
				memory.NewTokenStore(tt.give...).MaxEntries(),
				memory.NewDedupeStore(tt.give...).MaxEntries(),
				memory.NewTokenLock(tt.give...).MaxEntries(),
			}
			for _, n := range got {
				if n != tt.want {
					t.Errorf("MaxEntries of the token store, dedupe store, lock = %v, want %d each", got, tt.want)
					break
				}
			}
		})
	}
}

// boundedStore is one store kind under a test of its bound: write puts
// key i for a long TTL, holds reports whether key i is there without
// writing it when it is, and length is the store's Len.
type boundedStore struct {
	write  func(t *testing.T, i int)
	holds  func(t *testing.T, i int) bool
	length func() int
}

// boundedStores makes each store kind with opts.
var boundedStores = []struct {
	name     string
	newStore func(opts ...memory.Option) boundedStore
}{
	{
		name: "tokens",
		newStore: func(opts ...memory.Option) boundedStore {
			s := memory.NewTokenStore(opts...)
			return boundedStore{
				write: func(t *testing.T, i int) {
					if err := s.PutToken(t.Context(), strconv.Itoa(i), ports.CachedToken{AccessToken: "tok"}, time.Hour); err != nil {
						t.Fatal(err)
					}
				},
				holds: func(t *testing.T, i int) bool {
					_, found, err := s.GetToken(t.Context(), strconv.Itoa(i))
					if err != nil {
						t.Fatal(err)
					}
					return found
				},
				length: s.Len,
			}
		},
	},
	{
		name: "dedupe",
		newStore: func(opts ...memory.Option) boundedStore {
			s := memory.NewDedupeStore(opts...)
			return boundedStore{
				write: func(t *testing.T, i int) {
					if st, err := s.Claim(t.Context(), "tenant", strconv.Itoa(i), "owner", time.Hour); err != nil || st != ports.ClaimAcquired {
						t.Fatalf("Claim(%d) = %v, %v; want ClaimAcquired", i, st, err)
					}
				},
				holds: func(t *testing.T, i int) bool {
					// Held: nothing written. Acquired: the message was
					// forgotten, and is claimed now.
					st, err := s.Claim(t.Context(), "tenant", strconv.Itoa(i), "other", time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					return st == ports.ClaimHeld
				},
				length: s.Len,
			}
		},
	},
	{
		name: "lock",
		newStore: func(opts ...memory.Option) boundedStore {
			l := memory.NewTokenLock(opts...)
			return boundedStore{
				write: func(t *testing.T, i int) {
					if acquired, err := l.LockToken(t.Context(), strconv.Itoa(i), "owner", time.Hour); err != nil || !acquired {
						t.Fatalf("LockToken(%d) = %v, %v; want acquired", i, acquired, err)
					}
				},
				holds: func(t *testing.T, i int) bool {
					acquired, err := l.LockToken(t.Context(), strconv.Itoa(i), "other", time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					return !acquired
				},
				length: l.Len,
			}
		},
	},
}

// TestWithMaxEntriesBoundsEveryStore writes more live entries than the
// bound: the store never holds more, and keeps the latest.
func TestWithMaxEntriesBoundsEveryStore(t *testing.T) {
	const bound, writes = 10, 100
	for _, tt := range boundedStores {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.newStore(memory.WithMaxEntries(bound))
			for i := range writes {
				s.write(t, i)
				if n := s.length(); n > bound {
					t.Fatalf("Len after %d writes = %d, want at most %d", i+1, n, bound)
				}
			}
			if n := s.length(); n != bound {
				t.Errorf("Len after %d writes = %d, want %d", writes, n, bound)
			}
			for i := writes - bound; i < writes; i++ {
				if !s.holds(t, i) {
					t.Errorf("entry %d, among the last %d written, was dropped", i, bound)
				}
			}
			// Last: for the dedupe store and the lock, finding an entry
			// gone writes it.
			if s.holds(t, writes-bound-1) {
				t.Errorf("entry %d, written before the last %d, was kept", writes-bound-1, bound)
			}
		})
	}
}

// TestWithMaxEntriesDropsTheLeastRecentlyWritten checks that a rewritten
// entry counts as new: with a bound of 3, after a, b, c, then a again, d
// drops b.
func TestWithMaxEntriesDropsTheLeastRecentlyWritten(t *testing.T) {
	t.Run("tokens", func(t *testing.T) {
		s := memory.NewTokenStore(memory.WithMaxEntries(3))
		for _, tenant := range []string{"a", "b", "c", "a", "d"} {
			if err := s.PutToken(t.Context(), tenant, ports.CachedToken{AccessToken: "tok-" + tenant}, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
		for tenant, want := range map[string]bool{"a": true, "b": false, "c": true, "d": true} {
			if _, found, _ := s.GetToken(t.Context(), tenant); found != want {
				t.Errorf("GetToken(%s) found = %v, want %v", tenant, found, want)
			}
		}
	})
	t.Run("dedupe", func(t *testing.T) {
		s := memory.NewDedupeStore(memory.WithMaxEntries(3))
		for _, msg := range []string{"a", "b", "c"} {
			if st, err := s.Claim(t.Context(), "tenant", msg, "owner", time.Hour); err != nil || st != ports.ClaimAcquired {
				t.Fatalf("Claim(%s) = %v, %v; want ClaimAcquired", msg, st, err)
			}
		}
		if owned, err := s.Commit(t.Context(), "tenant", "a", "owner", time.Hour); err != nil || !owned {
			t.Fatalf("Commit(a) = %v, %v; want owned", owned, err)
		}
		if st, err := s.Claim(t.Context(), "tenant", "d", "owner", time.Hour); err != nil || st != ports.ClaimAcquired {
			t.Fatalf("Claim(d) = %v, %v; want ClaimAcquired", st, err)
		}
		// Asked in this order, no answer drops another of them.
		for _, tc := range []struct {
			msg  string
			want ports.ClaimState
		}{{"a", ports.ClaimCommitted}, {"c", ports.ClaimHeld}, {"d", ports.ClaimHeld}, {"b", ports.ClaimAcquired}} {
			if st, err := s.Claim(t.Context(), "tenant", tc.msg, "other", time.Hour); err != nil || st != tc.want {
				t.Errorf("Claim(%s) by another owner = %v, %v; want %v", tc.msg, st, err, tc.want)
			}
		}
	})
}

// TestWithMaxEntriesDropsExpiredEntriesFirst fills a store of bound 3 with
// a, b and c, of which c, the most recently written, expires; the next new
// entry drops c and keeps a, the least recently written, which is live.
func TestWithMaxEntriesDropsExpiredEntriesFirst(t *testing.T) {
	type store struct {
		write func(t *testing.T, key string, ttl time.Duration)
		holds func(t *testing.T, key string) bool // writes nothing when it holds key
		len   func() int
	}
	tests := []struct {
		name     string
		newStore func(opts ...memory.Option) store
	}{
		{"tokens", func(opts ...memory.Option) store {
			s := memory.NewTokenStore(opts...)
			return store{
				write: func(t *testing.T, key string, ttl time.Duration) {
					if err := s.PutToken(t.Context(), key, ports.CachedToken{AccessToken: "tok-" + key}, ttl); err != nil {
						t.Fatal(err)
					}
				},
				holds: func(t *testing.T, key string) bool {
					_, found, err := s.GetToken(t.Context(), key)
					if err != nil {
						t.Fatal(err)
					}
					return found
				},
				len: s.Len,
			}
		}},
		{"dedupe", func(opts ...memory.Option) store {
			s := memory.NewDedupeStore(opts...)
			return store{
				write: func(t *testing.T, key string, ttl time.Duration) {
					if st, err := s.Claim(t.Context(), "tenant", key, "owner", ttl); err != nil || st != ports.ClaimAcquired {
						t.Fatalf("Claim(%s) = %v, %v; want ClaimAcquired", key, st, err)
					}
				},
				holds: func(t *testing.T, key string) bool {
					st, err := s.Claim(t.Context(), "tenant", key, "other", time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					return st == ports.ClaimHeld
				},
				len: s.Len,
			}
		}},
		{"lock", func(opts ...memory.Option) store {
			l := memory.NewTokenLock(opts...)
			return store{
				write: func(t *testing.T, key string, ttl time.Duration) {
					if acquired, err := l.LockToken(t.Context(), key, "owner", ttl); err != nil || !acquired {
						t.Fatalf("LockToken(%s) = %v, %v; want acquired", key, acquired, err)
					}
				},
				holds: func(t *testing.T, key string) bool {
					acquired, err := l.LockToken(t.Context(), key, "other", time.Hour)
					if err != nil {
						t.Fatal(err)
					}
					return !acquired
				},
				len: l.Len,
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			s := tt.newStore(memory.WithClock(clk.Now), memory.WithMaxEntries(3))
			s.write(t, "a", time.Hour)
			s.write(t, "b", time.Hour)
			s.write(t, "c", time.Minute)
			clk.Advance(2 * time.Minute)
			s.write(t, "d", time.Hour)
			if n := s.len(); n != 3 {
				t.Errorf("Len = %d, want 3", n)
			}
			for _, key := range []string{"a", "b", "d"} {
				if !s.holds(t, key) {
					t.Errorf("live entry %s was dropped", key)
				}
			}
			// Last: finding c gone writes it for the dedupe store and the
			// lock.
			if s.holds(t, "c") {
				t.Error("expired entry c was kept")
			}
		})
	}
}

// TestDedupeStoreDropsOnlyToDuplicate checks what a full dedupe store does
// to the messages it drops: each is claimable again (a redelivery is a
// duplicate), and its owner can still settle it as a store that never
// heard of it lets it.
func TestDedupeStoreDropsOnlyToDuplicate(t *testing.T) {
	s := memory.NewDedupeStore(memory.WithMaxEntries(2))
	mustClaim := func(msg, owner string, want ports.ClaimState) {
		t.Helper()
		if st, err := s.Claim(t.Context(), "tenant", msg, owner, time.Hour); err != nil || st != want {
			t.Fatalf("Claim(%s) by %s = %v, %v; want %v", msg, owner, st, err, want)
		}
	}
	mustClaim("processed", "a", ports.ClaimAcquired)
	if owned, err := s.Commit(t.Context(), "tenant", "processed", "a", time.Hour); err != nil || !owned {
		t.Fatalf("Commit(processed) = %v, %v; want owned", owned, err)
	}
	mustClaim("in-flight", "a", ports.ClaimAcquired)
	mustClaim("x", "b", ports.ClaimAcquired) // drops processed
	mustClaim("y", "b", ports.ClaimAcquired) // drops in-flight

	// The processed message, redelivered, is processed again: a duplicate.
	mustClaim("processed", "c", ports.ClaimAcquired)
	// The message in flight is settled by its owner as if never recorded:
	// its commit marks it processed.
	if owned, err := s.Commit(t.Context(), "tenant", "in-flight", "a", time.Hour); err != nil || !owned {
		t.Errorf("Commit(in-flight) by its owner after the drop = %v, %v; want owned", owned, err)
	}
	mustClaim("in-flight", "c", ports.ClaimCommitted)
}

// TestDedupeStoreStaysBoundedOverAMillionMessages claims a million distinct
// messages with a bound of a thousand: the store never holds more than the
// bound.
func TestDedupeStoreStaysBoundedOverAMillionMessages(t *testing.T) {
	const bound, messages = 1000, 1_000_000
	s := memory.NewDedupeStore(memory.WithMaxEntries(bound))
	for i := range messages {
		if _, err := s.Claim(t.Context(), "tenant", strconv.Itoa(i), "owner", time.Hour); err != nil {
			t.Fatal(err)
		}
		if i%(bound/2) == 0 {
			if n := s.Len(); n > bound {
				t.Fatalf("Len after %d claims = %d, want at most %d", i+1, n, bound)
			}
		}
	}
	if n := s.Len(); n != bound {
		t.Errorf("Len after %d claims = %d, want %d", messages, n, bound)
	}
}

func TestWithMaxTTLCapsTheTTL(t *testing.T) {
	const maxTTL = time.Minute
	tests := []struct {
		name      string
		give      time.Duration // TTL asked for
		after     time.Duration // when the token is read
		wantFound bool
	}{
		{name: "long TTL, before the cap", give: time.Hour, after: maxTTL - time.Nanosecond, wantFound: true},
		{name: "long TTL, at the cap", give: time.Hour, after: maxTTL, wantFound: false},
		{name: "short TTL is kept", give: time.Second, after: time.Second, wantFound: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := fakeclock.New()
			s := memory.NewTokenStore(memory.WithClock(clk.Now), memory.WithMaxTTL(maxTTL))
			if err := s.PutToken(t.Context(), "tenant", ports.CachedToken{AccessToken: "tok"}, tt.give); err != nil {
				t.Fatal(err)
			}
			clk.Advance(tt.after)
			if _, found, _ := s.GetToken(t.Context(), "tenant"); found != tt.wantFound {
				t.Errorf("GetToken %v after a put with TTL %v: found = %v, want %v", tt.after, tt.give, found, tt.wantFound)
			}
		})
	}
}
