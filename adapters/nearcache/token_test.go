package nearcache_test

import (
	"context"
	"fmt"
	"strings"
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

const (
	maxAge = 30 * time.Second
	margin = 5 * time.Minute
)

// tokens is a near cache in front of a mock store, on a fake clock. The mock
// fails the test on any call it was not told to expect, so a test that sets
// no GetToken expectation asserts that the copy answered.
type tokens struct {
	clk  *fakeclock.Clock
	next *mocks.MockTokenStore
	s    ports.TokenStore
	// stale records the ServedStale calls, as "tenant: error".
	stale *[]string
}

func newTokens(t *testing.T) tokens {
	t.Helper()
	clk := fakeclock.New()
	next := mocks.NewMockTokenStore(gomock.NewController(t))
	stale := new([]string)
	cfg := nearcache.TokenConfig{
		MaxAge:        maxAge,
		RefreshMargin: margin,
		Now:           clk.Now,
		ServedStale:   func(tenantID string, err error) { *stale = append(*stale, tenantID+": "+err.Error()) },
	}
	return tokens{clk: clk, next: next, s: nearcache.NewTokenStore(next, cfg), stale: stale}
}

// wantStale fails t unless ServedStale was called n times in all, each for
// the tenant and errRedis.
func (f tokens) wantStale(t *testing.T, n int) {
	t.Helper()
	if len(*f.stale) != n {
		t.Fatalf("ServedStale called %d times (%q), want %d", len(*f.stale), *f.stale, n)
	}
	for _, call := range *f.stale {
		if call != tenant+": "+errRedis.Error() {
			t.Errorf("ServedStale(%s), want (%s, %v)", call, tenant, errRedis)
		}
	}
}

// token returns a token that expires in after the clock's time.
func (f tokens) token(access string, in time.Duration) ports.CachedToken {
	return ports.CachedToken{AccessToken: access, ExpiresAt: f.clk.Now().Add(in)}
}

// put caches tok for ttl through the near cache; next accepts it.
func (f tokens) put(t *testing.T, tok ports.CachedToken, ttl time.Duration) {
	t.Helper()
	f.next.EXPECT().PutToken(gomock.Any(), tenant, tok, ttl).Return(nil)
	if err := f.s.PutToken(t.Context(), tenant, tok, ttl); err != nil {
		t.Fatalf("PutToken: %v", err)
	}
}

// wantGet fails t unless GetToken answers tok, found and no error.
func wantGet(t *testing.T, s ports.TokenStore, want ports.CachedToken) {
	t.Helper()
	got, found, err := s.GetToken(t.Context(), tenant)
	if err != nil || !found || got != want {
		t.Fatalf("GetToken = %+v, %v, %v; want %+v, true, nil", got, found, err, want)
	}
}

// wantMiss fails t unless GetToken answers a miss and no error.
func wantMiss(t *testing.T, s ports.TokenStore) {
	t.Helper()
	got, found, err := s.GetToken(t.Context(), tenant)
	if err != nil || found || got != (ports.CachedToken{}) {
		t.Fatalf("GetToken = %+v, %v, %v; want a miss", got, found, err)
	}
}

// expectGet makes next answer one GetToken with tok, found and err.
func (f tokens) expectGet(tok ports.CachedToken, found bool, err error) *gomock.Call {
	return f.next.EXPECT().GetToken(gomock.Any(), tenant).Return(tok, found, err)
}

func TestTokenStore_PutKeepsACopyThatAnswersLocally(t *testing.T) {
	f := newTokens(t)
	tok := f.token("token-a", time.Hour)
	start := f.clk.Now()
	f.put(t, tok, 55*time.Minute)

	for _, at := range []time.Duration{0, maxAge / 2, maxAge - time.Nanosecond} {
		f.clk.Advance(start.Add(at).Sub(f.clk.Now()))
		wantGet(t, f.s, tok)
	}
}

func TestTokenStore_ReadsNextAgainAfterMaxAge(t *testing.T) {
	f := newTokens(t)
	tokA := f.token("token-a", time.Hour)
	f.put(t, tokA, 55*time.Minute)

	f.clk.Advance(maxAge)
	tokB := f.token("token-b", time.Hour)
	f.expectGet(tokB, true, nil)
	wantGet(t, f.s, tokB)

	// The hit refreshed the copy: it answers for another MaxAge.
	f.clk.Advance(maxAge - time.Nanosecond)
	wantGet(t, f.s, tokB)

	f.clk.Advance(time.Nanosecond)
	f.expectGet(tokB, true, nil)
	wantGet(t, f.s, tokB)
}

func TestTokenStore_MissFromNextDropsTheCopy(t *testing.T) {
	f := newTokens(t)
	f.put(t, f.token("token-a", time.Hour), 55*time.Minute)

	f.clk.Advance(maxAge)
	f.expectGet(ports.CachedToken{}, false, nil).Times(2)
	wantMiss(t, f.s)
	// No copy is left: the next read asks next again, at once.
	wantMiss(t, f.s)

	// Nor does an outage bring the dropped copy back.
	f.expectGet(ports.CachedToken{}, false, errRedis)
	if _, found, err := f.s.GetToken(t.Context(), tenant); found || err != errRedis {
		t.Fatalf("GetToken with next failing and no copy = found %v, error %v; want a miss and %v", found, err, errRedis)
	}
}

// TestTokenStore_InvalidateReachesOtherReplicasWithinMaxAge runs two
// replicas, each with its own near cache, over one shared store.
func TestTokenStore_InvalidateReachesOtherReplicasWithinMaxAge(t *testing.T) {
	clk := fakeclock.New()
	shared := memory.NewTokenStore(memory.WithClock(clk.Now))
	cfg := nearcache.TokenConfig{MaxAge: maxAge, RefreshMargin: margin, Now: clk.Now}
	a, b := nearcache.NewTokenStore(shared, cfg), nearcache.NewTokenStore(shared, cfg)

	tok := ports.CachedToken{AccessToken: "token-a", ExpiresAt: clk.Now().Add(time.Hour)}
	if err := a.PutToken(t.Context(), tenant, tok, 55*time.Minute); err != nil {
		t.Fatal(err)
	}
	wantGet(t, b, tok)

	clk.Advance(time.Second)
	if err := a.DeleteToken(t.Context(), tenant); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, a)
	// b's copy is at most MaxAge stale.
	wantGet(t, b, tok)
	clk.Advance(maxAge - time.Second)
	wantMiss(t, b)
}

func TestTokenStore_OutageServesTheCopyUntilItsRefreshPoint(t *testing.T) {
	tests := []struct {
		name string
		// give makes the near cache hold a copy of tok.
		give func(t *testing.T, f tokens, tok ports.CachedToken)
		// want is how long after give the copy stops answering.
		want time.Duration
	}{
		{
			name: "copy put with a ttl",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) { f.put(t, tok, 10*time.Minute) },
			want: 10 * time.Minute,
		},
		{
			name: "copy read from next, kept until ExpiresAt - RefreshMargin",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: time.Hour - margin,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTokens(t)
			start := f.clk.Now()
			tok := f.token("token-a", time.Hour)
			tt.give(t, f, tok)

			f.next.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, errRedis).MinTimes(1)
			f.wantStale(t, 0)
			for _, at := range []time.Duration{maxAge, tt.want / 2, tt.want - time.Nanosecond} {
				f.clk.Advance(start.Add(at).Sub(f.clk.Now()))
				wantGet(t, f.s, tok)
			}
			// Each copy served in place of next's answer is reported.
			f.wantStale(t, 3)

			f.clk.Advance(time.Nanosecond)
			got, found, err := f.s.GetToken(t.Context(), tenant)
			if err != errRedis || found || got != (ports.CachedToken{}) {
				t.Fatalf("GetToken at the refresh point = %+v, %v, %v; want a miss and %v", got, found, err, errRedis)
			}
			f.wantStale(t, 3)
		})
	}
}

func TestTokenStore_PutKeepsTheCopyWhenNextFails(t *testing.T) {
	f := newTokens(t)
	tok := f.token("token-a", time.Hour)
	f.next.EXPECT().PutToken(gomock.Any(), tenant, tok, 55*time.Minute).Return(errRedis)
	if err := f.s.PutToken(t.Context(), tenant, tok, 55*time.Minute); err != errRedis {
		t.Fatalf("PutToken error = %v, want next's %v", err, errRedis)
	}
	wantGet(t, f.s, tok)

	f.wantStale(t, 0)

	// The copy carries the process through the outage, reported.
	f.clk.Advance(maxAge)
	f.expectGet(ports.CachedToken{}, false, errRedis)
	wantGet(t, f.s, tok)
	f.wantStale(t, 1)
}

func TestTokenStore_DeleteDropsTheCopyAtOnce(t *testing.T) {
	tests := []struct {
		name string
		give error // next's DeleteToken error
	}{
		{name: "next deletes", give: nil},
		{name: "next fails", give: errRedis},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTokens(t)
			f.put(t, f.token("token-a", time.Hour), 55*time.Minute)

			f.next.EXPECT().DeleteToken(gomock.Any(), tenant).Return(tt.give)
			if err := f.s.DeleteToken(t.Context(), tenant); err != tt.give {
				t.Fatalf("DeleteToken error = %v, want next's %v", err, tt.give)
			}
			f.expectGet(ports.CachedToken{}, false, nil)
			wantMiss(t, f.s)
		})
	}
}

func TestTokenStore_CopyLivesUntilMaxAgeOrItsRefreshPoint(t *testing.T) {
	tests := []struct {
		name string
		// give makes the near cache hold a copy of tok, which expires in
		// an hour, or none.
		give func(t *testing.T, f tokens, tok ports.CachedToken)
		// want is how long the copy answers; zero means there is none.
		want time.Duration
	}{
		{
			name: "put with a ttl past MaxAge",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) { f.put(t, tok, 2*maxAge) },
			want: maxAge,
		},
		{
			name: "put with a ttl under MaxAge",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) { f.put(t, tok, maxAge/3) },
			want: maxAge / 3,
		},
		{
			name: "read from next, refresh point past MaxAge",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: maxAge,
		},
		{
			name: "read from next, refresh point under MaxAge",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				tok.ExpiresAt = f.clk.Now().Add(margin + 10*time.Second)
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: 10 * time.Second,
		},
		{
			name: "read from next, at its refresh point",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				tok.ExpiresAt = f.clk.Now().Add(margin)
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: 0,
		},
		{
			name: "read from next, past its refresh point",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				tok.ExpiresAt = f.clk.Now().Add(margin - time.Second)
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: 0,
		},
		{
			name: "read from next, expired",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				tok.ExpiresAt = f.clk.Now().Add(-time.Minute)
				f.expectGet(tok, true, nil)
				wantGet(t, f.s, tok)
			},
			want: 0,
		},
		{
			name: "put with a ttl that already passed",
			give: func(t *testing.T, f tokens, tok ports.CachedToken) {
				f.next.EXPECT().PutToken(gomock.Any(), tenant, tok, time.Duration(0)).Return(nil)
				if err := f.s.PutToken(t.Context(), tenant, tok, 0); err != nil {
					t.Fatal(err)
				}
			},
			want: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTokens(t)
			start := f.clk.Now()
			tt.give(t, f, f.token("token-a", time.Hour))

			// Answers without next until want.
			if tt.want > 0 {
				f.clk.Advance(tt.want - time.Nanosecond)
				_, found, err := f.s.GetToken(t.Context(), tenant)
				if !found || err != nil {
					t.Fatalf("GetToken %v after = found %v, %v; want the local copy", f.clk.Now().Sub(start), found, err)
				}
				f.clk.Advance(time.Nanosecond)
			}
			// From then on, next is read.
			marker := ports.CachedToken{AccessToken: "from-next", ExpiresAt: f.clk.Now().Add(time.Hour)}
			f.expectGet(marker, true, nil)
			wantGet(t, f.s, marker)
		})
	}
}

func TestTokenStore_TenantsAreIsolated(t *testing.T) {
	f := newTokens(t)
	tok := f.token("token-a", time.Hour)
	f.put(t, tok, 55*time.Minute)

	f.next.EXPECT().GetToken(gomock.Any(), "tenant-2").Return(ports.CachedToken{}, false, nil)
	if _, found, err := f.s.GetToken(t.Context(), "tenant-2"); found || err != nil {
		t.Fatalf("GetToken(tenant-2) = found %v, %v; want a miss from next", found, err)
	}
	f.next.EXPECT().DeleteToken(gomock.Any(), "tenant-2").Return(nil)
	if err := f.s.DeleteToken(t.Context(), "tenant-2"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, f.s, tok)
}

func TestNewTokenStore_ZeroConfigMeansDefaults(t *testing.T) {
	t.Run("MaxAge", func(t *testing.T) {
		clk := fakeclock.New()
		next := mocks.NewMockTokenStore(gomock.NewController(t))
		s := nearcache.NewTokenStore(next, nearcache.TokenConfig{Now: clk.Now})
		tok := ports.CachedToken{AccessToken: "token-a", ExpiresAt: clk.Now().Add(time.Hour)}
		next.EXPECT().PutToken(gomock.Any(), tenant, tok, 55*time.Minute).Return(nil)
		if err := s.PutToken(t.Context(), tenant, tok, 55*time.Minute); err != nil {
			t.Fatal(err)
		}

		clk.Advance(nearcache.DefaultMaxAge - time.Nanosecond)
		wantGet(t, s, tok)
		clk.Advance(time.Nanosecond)
		next.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, nil)
		wantMiss(t, s)
	})
	t.Run("Now", func(t *testing.T) {
		next := mocks.NewMockTokenStore(gomock.NewController(t))
		s := nearcache.NewTokenStore(next, nearcache.TokenConfig{MaxAge: time.Hour})
		tok := ports.CachedToken{AccessToken: "token-a", ExpiresAt: time.Now().Add(2 * time.Hour)}
		next.EXPECT().PutToken(gomock.Any(), tenant, tok, time.Hour).Return(nil)
		if err := s.PutToken(t.Context(), tenant, tok, time.Hour); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, tok)
	})
	t.Run("RefreshMargin", func(t *testing.T) {
		// With no margin a token read from next is kept until it expires.
		clk := fakeclock.New()
		next := mocks.NewMockTokenStore(gomock.NewController(t))
		s := nearcache.NewTokenStore(next, nearcache.TokenConfig{MaxAge: time.Hour, Now: clk.Now})
		tok := ports.CachedToken{AccessToken: "token-a", ExpiresAt: clk.Now().Add(time.Minute)}
		next.EXPECT().GetToken(gomock.Any(), tenant).Return(tok, true, nil)
		wantGet(t, s, tok)
		clk.Advance(time.Minute - time.Nanosecond)
		wantGet(t, s, tok)
	})
}

// TestTokenStore_Contract runs the token store contract through a near
// cache over the memory store: a single replica answers as its store does.
func TestTokenStore_Contract(t *testing.T) {
	contract.TokenStore(t, func(*testing.T) ports.TokenStore {
		return nearcache.NewTokenStore(memory.NewTokenStore(), nearcache.TokenConfig{MaxAge: maxAge})
	})
}

func TestTokenStore_ConcurrentUse(t *testing.T) {
	const (
		tenants = 4
		workers = 8
		rounds  = 500
	)
	shared := memory.NewTokenStore()
	// One replica answers from its copies, the other reads next on nearly
	// every call.
	replicas := []ports.TokenStore{
		nearcache.NewTokenStore(shared, nearcache.TokenConfig{MaxAge: time.Hour}),
		nearcache.NewTokenStore(shared, nearcache.TokenConfig{MaxAge: time.Nanosecond}),
	}
	tenantID := func(i int) string { return fmt.Sprintf("tenant-%d", i%tenants) }

	var wg sync.WaitGroup
	for w := range workers {
		s := replicas[w%len(replicas)]
		wg.Go(func() {
			ctx := context.Background()
			for i := range rounds {
				id := tenantID(w + i)
				switch i % 4 {
				case 0:
					tok := ports.CachedToken{AccessToken: fmt.Sprintf("%s/worker-%d/%d", id, w, i), ExpiresAt: time.Now().Add(time.Hour)}
					if err := s.PutToken(ctx, id, tok, time.Hour); err != nil {
						t.Errorf("PutToken: %v", err)
						return
					}
				case 3:
					if err := s.DeleteToken(ctx, id); err != nil {
						t.Errorf("DeleteToken: %v", err)
						return
					}
				default:
					tok, found, err := s.GetToken(ctx, id)
					if err != nil {
						t.Errorf("GetToken: %v", err)
						return
					}
					if found && !strings.HasPrefix(tok.AccessToken, id+"/") {
						t.Errorf("GetToken(%s) = %q, another tenant's token", id, tok.AccessToken)
						return
					}
				}
			}
		})
	}
	wg.Wait()

	// Quiet again, each replica answers what was put last.
	for i, s := range replicas {
		tok := ports.CachedToken{AccessToken: fmt.Sprintf("final-%d", i), ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.PutToken(t.Context(), tenant, tok, time.Hour); err != nil {
			t.Fatal(err)
		}
		wantGet(t, s, tok)
	}
}

// BenchmarkNearCacheHit measures a token read answered by a warm local copy,
// the path of every message once its tenant's token is cached.
func BenchmarkNearCacheHit(b *testing.B) {
	s := nearcache.NewTokenStore(memory.NewTokenStore(), nearcache.TokenConfig{MaxAge: time.Hour, RefreshMargin: margin})
	tok := ports.CachedToken{AccessToken: "token-a", ExpiresAt: time.Now().Add(2 * time.Hour)}
	if err := s.PutToken(b.Context(), tenant, tok, time.Hour); err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			got, found, err := s.GetToken(ctx, tenant)
			if err != nil || !found || got.AccessToken != tok.AccessToken {
				b.Errorf("GetToken = %q, %v, %v; want the local copy", got.AccessToken, found, err)
				return
			}
		}
	})
}

// TestTokenStore_DeleteDuringAReadDropsTheCopy deletes the token while a
// read of next that started before the delete is still in flight: the
// answer that read brings back must not become the local copy again.
func TestTokenStore_DeleteDuringAReadDropsTheCopy(t *testing.T) {
	f := newTokens(t)
	old := f.token("token-old", time.Hour)

	reading := make(chan struct{})
	finish := make(chan struct{})
	f.next.EXPECT().GetToken(gomock.Any(), tenant).DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
		close(reading)
		<-finish
		return old, true, nil // read before the delete reached next
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if got, found, err := f.s.GetToken(context.Background(), tenant); got != old || !found || err != nil {
			t.Errorf("GetToken in flight = %+v, %v, %v; want the token next read", got, found, err)
		}
	}()
	<-reading

	f.next.EXPECT().DeleteToken(gomock.Any(), tenant).Return(nil)
	if err := f.s.DeleteToken(t.Context(), tenant); err != nil {
		t.Fatal(err)
	}
	close(finish)
	<-done

	// The token was invalidated (Genesys answered 401): the next read must
	// ask next, not serve the old token from a copy.
	f.next.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, nil)
	wantMiss(t, f.s)
}

// TestTokenStore_PutDuringAReadKeepsTheNewCopy puts a new token while a
// read of next that started before the put is still in flight: the older
// answer that read brings back must not replace the new copy.
func TestTokenStore_PutDuringAReadKeepsTheNewCopy(t *testing.T) {
	f := newTokens(t)
	old := f.token("token-old", time.Hour)
	fresh := f.token("token-new", 2*time.Hour)

	reading := make(chan struct{})
	finish := make(chan struct{})
	f.next.EXPECT().GetToken(gomock.Any(), tenant).DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
		close(reading)
		<-finish
		return old, true, nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if got, found, err := f.s.GetToken(context.Background(), tenant); got != old || !found || err != nil {
			t.Errorf("GetToken in flight = %+v, %v, %v; want the token next read", got, found, err)
		}
	}()
	<-reading
	f.put(t, fresh, 55*time.Minute)
	close(finish)
	<-done

	wantGet(t, f.s, fresh)
}

// TestTokenStore_NoLocalCopyWithinTheRefreshAheadWindow: from the opening
// of the token cache's refresh-ahead window on, every read goes to the
// shared store, where a token refreshed by another replica shows at once;
// once it does, its copy answers locally again.
func TestTokenStore_NoLocalCopyWithinTheRefreshAheadWindow(t *testing.T) {
	const ahead = time.Minute
	clk := fakeclock.New()
	next := mocks.NewMockTokenStore(gomock.NewController(t))
	s := nearcache.NewTokenStore(next, nearcache.TokenConfig{MaxAge: maxAge, RefreshMargin: margin, RefreshAhead: ahead, Now: clk.Now})
	f := tokens{clk: clk, next: next, s: s}

	// A token read from the store, refresh point 55 min from now: the
	// window opens at 54 min.
	old := ports.CachedToken{AccessToken: "token-old", ExpiresAt: clk.Now().Add(time.Hour), RefreshAt: clk.Now().Add(55 * time.Minute)}
	clk.Advance(54*time.Minute - maxAge/2)
	f.expectGet(old, true, nil)
	wantGet(t, s, old)
	clk.Advance(maxAge/2 - time.Nanosecond)
	wantGet(t, s, old) // the copy answers until the window opens

	clk.Advance(time.Nanosecond)
	f.expectGet(old, true, nil).Times(2)
	wantGet(t, s, old)
	wantGet(t, s, old)

	fresh := ports.CachedToken{AccessToken: "token-fresh", ExpiresAt: clk.Now().Add(time.Hour), RefreshAt: clk.Now().Add(55 * time.Minute)}
	f.expectGet(fresh, true, nil)
	wantGet(t, s, fresh)
	wantGet(t, s, fresh) // the fresh token's copy answers locally
}

// TestTokenStore_DeleteTokenIfDropsOnlyThatCopy: a copy of the rejected
// token goes at once, even when next fails; a copy of another token stays.
func TestTokenStore_DeleteTokenIfDropsOnlyThatCopy(t *testing.T) {
	f := newTokens(t)
	tok := f.token("token-a", time.Hour)
	f.put(t, tok, 55*time.Minute)

	f.next.EXPECT().DeleteTokenIf(gomock.Any(), tenant, "token-other").Return(false, nil)
	if deleted, err := f.s.DeleteTokenIf(t.Context(), tenant, "token-other"); err != nil || deleted {
		t.Fatalf("DeleteTokenIf(another token) = %v, %v; want false, nil", deleted, err)
	}
	wantGet(t, f.s, tok)

	f.next.EXPECT().DeleteTokenIf(gomock.Any(), tenant, "token-a").Return(false, errRedis)
	if _, err := f.s.DeleteTokenIf(t.Context(), tenant, "token-a"); err != errRedis {
		t.Fatalf("DeleteTokenIf with next failing = %v, want next's error", err)
	}
	f.expectGet(ports.CachedToken{}, false, nil)
	wantMiss(t, f.s)
}
