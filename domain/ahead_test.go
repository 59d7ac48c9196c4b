package domain_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/fakeclock"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// clockStore is a TokenStore in memory whose TTLs run on a fake clock.
type clockStore struct {
	clock *fakeclock.Clock
	mu    sync.Mutex
	toks  map[string]ports.CachedToken
	until map[string]time.Time
}

func newClockStore(clock *fakeclock.Clock) *clockStore {
	return &clockStore{clock: clock, toks: map[string]ports.CachedToken{}, until: map[string]time.Time{}}
}

func (s *clockStore) GetToken(_ context.Context, id string) (ports.CachedToken, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.toks[id]
	if !ok || !s.clock.Now().Before(s.until[id]) {
		return ports.CachedToken{}, false, nil
	}
	return tok, true, nil
}

func (s *clockStore) PutToken(_ context.Context, id string, tok ports.CachedToken, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.toks[id], s.until[id] = tok, s.clock.Now().Add(ttl)
	return nil
}

func (s *clockStore) DeleteToken(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.toks, id)
	return nil
}

func (s *clockStore) DeleteTokenIf(_ context.Context, id, accessToken string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.toks[id]; !ok || tok.AccessToken != accessToken {
		return false, nil
	}
	delete(s.toks, id)
	return true, nil
}

// ids returns the ids the store holds a token under, sorted.
func (s *clockStore) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.toks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// authStandIn issues tokens tok-1, tok-2, … valid for an hour. While fail
// is set it fails instead; while gate is set, each fetch waits for a value
// from it (or for its ctx to end).
type authStandIn struct {
	mu    sync.Mutex
	n     int
	fail  error
	gate  chan struct{}
	calls chan struct{} // receives a value as each fetch starts, if set
}

func (a *authStandIn) FetchToken(ctx context.Context, _ string) (ports.Token, error) {
	a.mu.Lock()
	gate, calls := a.gate, a.calls
	a.mu.Unlock()
	if calls != nil {
		calls <- struct{}{}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ports.Token{}, ctx.Err()
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail != nil {
		return ports.Token{}, a.fail
	}
	a.n++
	return ports.Token{AccessToken: fmt.Sprintf("tok-%d", a.n), ExpiresIn: time.Hour}, nil
}

func (a *authStandIn) set(f func(a *authStandIn)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f(a)
}

func (a *authStandIn) issued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

func mustToken(t *testing.T, c *domain.TokenCache, tenant, want string) {
	t.Helper()
	got, err := c.Token(boundedCtx(t), tenant)
	if err != nil || got != want {
		t.Fatalf("Token(%s) = %q, %v; want %q", tenant, got, err, want)
	}
}

// waitUntil polls cond until it holds, failing t after waitBound.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, waitBound)
		}
		time.Sleep(time.Millisecond)
	}
}

// With a one-hour token, the default five-minute margin and a minute of
// refresh ahead, the refresh point is at 55 minutes and the window opens
// at 54.
const (
	beforeWindow = 53*time.Minute + 59*time.Second
	inWindow     = 54*time.Minute + 30*time.Second
)

func TestRefreshAhead_HitInTheWindowRefreshesInTheBackground(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{RefreshAhead: time.Minute, Now: clock.Now})
	t.Cleanup(cache.Close)

	mustToken(t, cache, "t1", "tok-1")
	clock.Advance(beforeWindow)
	mustToken(t, cache, "t1", "tok-1")
	if got := cache.Stats().Refreshes; got != 0 {
		t.Fatalf("Refreshes = %d before the window, want 0", got)
	}

	gate, calls := make(chan struct{}), make(chan struct{}, 5)
	auth.set(func(a *authStandIn) { a.gate, a.calls = gate, calls })
	clock.Advance(inWindow - beforeWindow)
	// The auth service is held: a caller that waited for it would block.
	for range 5 {
		mustToken(t, cache, "t1", "tok-1")
	}
	<-calls // the refresh asks the auth service
	for range 5 {
		mustToken(t, cache, "t1", "tok-1")
	}
	if got := cache.Stats().Refreshes; got != 1 {
		t.Errorf("Refreshes = %d after 10 hits in the window, want 1: one refresh per slot at a time", got)
	}
	close(gate)
	waitUntil(t, "the refreshed token served", func() bool {
		tok, err := cache.Token(boundedCtx(t), "t1")
		return err == nil && tok == "tok-2"
	})
	if got := auth.issued(); got != 2 {
		t.Errorf("tokens issued = %d, want 2", got)
	}
	if s := cache.Stats(); s.Misses != 1 || s.RefreshErrors != 0 {
		t.Errorf("Stats = %+v, want 1 miss (the first call) and no refresh error", s)
	}
}

func TestRefreshAhead_FailureIsRetriedLaterAndNeverReachesCallers(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	var (
		mu     sync.Mutex
		failed []string
	)
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{
		RefreshAhead: time.Minute,
		Now:          clock.Now,
		RefreshFailed: func(tenantID string, err error) {
			mu.Lock()
			defer mu.Unlock()
			failed = append(failed, tenantID+": "+err.Error())
		},
	})
	t.Cleanup(cache.Close)
	mustToken(t, cache, "t1", "tok-1")

	auth.set(func(a *authStandIn) { a.fail = errors.New("auth service: 503") })
	clock.Advance(inWindow)
	mustToken(t, cache, "t1", "tok-1")
	waitUntil(t, "the refresh failure reported", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failed) == 1
	})
	mu.Lock()
	if failed[0] != "t1: fetch token for tenant t1: auth service: 503" {
		t.Errorf("RefreshFailed calls = %q", failed)
	}
	mu.Unlock()
	if got := cache.Stats().RefreshErrors; got != 1 {
		t.Errorf("RefreshErrors = %d, want 1", got)
	}

	// Within the retry delay hits start no refresh.
	mustToken(t, cache, "t1", "tok-1")
	if got := cache.Stats().Refreshes; got != 1 {
		t.Errorf("Refreshes = %d right after a failed one, want 1", got)
	}
	auth.set(func(a *authStandIn) { a.fail = nil })
	clock.Advance(5 * time.Second)
	mustToken(t, cache, "t1", "tok-1")
	waitUntil(t, "the second refresh served", func() bool {
		tok, err := cache.Token(boundedCtx(t), "t1")
		return err == nil && tok == "tok-2"
	})
}

func TestRefreshAhead_SkippedWhileAnotherProcessHoldsTheLock(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	lock := mocks.NewMockTokenLock(gomock.NewController(t))
	store := newClockStore(clock)
	cache := domain.NewTokenCache(store, auth, domain.TokenCacheConfig{RefreshAhead: time.Minute, Lock: lock, Now: clock.Now})
	t.Cleanup(cache.Close)

	lock.EXPECT().LockToken(gomock.Any(), "t1", gomock.Any(), gomock.Any()).Return(true, nil)
	lock.EXPECT().UnlockToken(gomock.Any(), "t1", gomock.Any()).Return(nil)
	mustToken(t, cache, "t1", "tok-1")

	refused := make(chan struct{})
	lock.EXPECT().LockToken(gomock.Any(), "t1", gomock.Any(), gomock.Any()).DoAndReturn(
		func(context.Context, string, string, time.Duration) (bool, error) {
			close(refused)
			return false, nil
		})
	clock.Advance(inWindow)
	mustToken(t, cache, "t1", "tok-1")
	<-refused
	cache.Close() // waits for the refresh to end
	if got := auth.issued(); got != 1 {
		t.Errorf("tokens issued = %d, want 1: the lock holder refreshes", got)
	}
	if s := cache.Stats(); s.Refreshes != 0 || s.RefreshErrors != 0 {
		t.Errorf("Stats = %+v, want no refresh counted and no error: the lock holder refreshes", s)
	}
}

func TestRefreshAhead_CloseStopsARefreshInProgress(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{RefreshAhead: time.Minute, Now: clock.Now})
	mustToken(t, cache, "t1", "tok-1")

	calls := make(chan struct{}, 1)
	auth.set(func(a *authStandIn) { a.gate, a.calls = make(chan struct{}), calls })
	clock.Advance(inWindow)
	mustToken(t, cache, "t1", "tok-1")
	<-calls
	cache.Close() // the held fetch's ctx ends: Close returns
	if s := cache.Stats(); s.RefreshErrors != 1 {
		t.Errorf("Stats = %+v, want the stopped refresh counted as failed", s)
	}
	clock.Advance(10 * time.Second)
	mustToken(t, cache, "t1", "tok-1")
	if got := cache.Stats().Refreshes; got != 1 {
		t.Errorf("Refreshes = %d after Close, want 1: none started after it", got)
	}
}

func TestServeStale(t *testing.T) {
	const staleMin = 30 * time.Second
	clock := fakeclock.New()
	auth := &authStandIn{}
	var (
		mu     sync.Mutex
		served []string
	)
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{
		StaleMinValidity: staleMin,
		Now:              clock.Now,
		StaleServed: func(tenantID string, err error) {
			mu.Lock()
			defer mu.Unlock()
			served = append(served, tenantID)
		},
	})
	mustToken(t, cache, "t1", "tok-1")
	errDown := errors.New("auth service: 503")
	auth.set(func(a *authStandIn) { a.fail = errDown })

	// Past the refresh point (55 min) the store misses; the fetch fails.
	clock.Advance(56 * time.Minute)
	mustToken(t, cache, "t1", "tok-1")
	if s := cache.Stats(); s.StaleServed != 1 || s.FetchErrors != 1 {
		t.Errorf("Stats = %+v, want 1 stale served after 1 fetch error", s)
	}
	// Within the retry delay the auth service is not asked again.
	mustToken(t, cache, "t1", "tok-1")
	if s := cache.Stats(); s.StaleServed != 2 || s.Fetches != 2 {
		t.Errorf("Stats = %+v, want 2 stale served, still 2 fetches", s)
	}
	// Until StaleMinValidity before expiry.
	clock.Advance(time.Hour - 56*time.Minute - staleMin - time.Second)
	mustToken(t, cache, "t1", "tok-1")
	clock.Advance(2 * time.Second)
	if tok, err := cache.Token(boundedCtx(t), "t1"); !errors.Is(err, errDown) {
		t.Errorf("Token with %v of validity left = %q, %v; want the fetch error", staleMin-time.Second, tok, err)
	}
	mu.Lock()
	// One per failed fetch: the serving in between asked no one.
	if len(served) != 2 || served[0] != "t1" || served[1] != "t1" {
		t.Errorf("StaleServed calls = %q, want 2 for t1", served)
	}
	mu.Unlock()
}

func TestServeStale_NeverARejectedToken(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{StaleMinValidity: 30 * time.Second, Now: clock.Now})
	mustToken(t, cache, "t1", "tok-1")
	if err := cache.Reject(boundedCtx(t), "t1", "tok-1"); err != nil {
		t.Fatal(err)
	}
	errDown := errors.New("auth service: timeout")
	auth.set(func(a *authStandIn) { a.fail = errDown })
	if tok, err := cache.Token(boundedCtx(t), "t1"); !errors.Is(err, errDown) {
		t.Errorf("Token after Reject with the auth service down = %q, %v; want the fetch error", tok, err)
	}
	if got := cache.Stats().StaleServed; got != 0 {
		t.Errorf("StaleServed = %d, want 0", got)
	}
}

// TestServeStale_NotARejectedTokenReadJustBefore: a hit that read the
// token from the store just before Reject deleted it does not make it the
// slot's last token again.
func TestServeStale_NotARejectedTokenReadJustBefore(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	store := newClockStore(clock)
	cache := domain.NewTokenCache(store, auth, domain.TokenCacheConfig{StaleMinValidity: 30 * time.Second, Now: clock.Now})
	mustToken(t, cache, "t1", "tok-1")
	tok, _, _ := store.GetToken(t.Context(), "t1")
	if err := cache.Reject(boundedCtx(t), "t1", "tok-1"); err != nil {
		t.Fatal(err)
	}
	// The late hit: the store answers the rejected token once more.
	if err := store.PutToken(t.Context(), "t1", tok, 55*time.Minute); err != nil {
		t.Fatal(err)
	}
	mustToken(t, cache, "t1", "tok-1")
	if err := store.DeleteToken(t.Context(), "t1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(56 * time.Minute)
	errDown := errors.New("auth service: 503")
	auth.set(func(a *authStandIn) { a.fail = errDown })
	if got, err := cache.Token(boundedCtx(t), "t1"); !errors.Is(err, errDown) {
		t.Errorf("Token = %q, %v; want the fetch error, not the rejected token", got, err)
	}
}

// TestServeStale_NotBeforeTheRefreshPoint: a token gone from the store
// before its refresh point was deleted, perhaps rejected by another
// process: it is not served stale.
func TestServeStale_NotBeforeTheRefreshPoint(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	store := newClockStore(clock)
	cache := domain.NewTokenCache(store, auth, domain.TokenCacheConfig{StaleMinValidity: 30 * time.Second, Now: clock.Now})
	mustToken(t, cache, "t1", "tok-1")
	if err := store.DeleteToken(t.Context(), "t1"); err != nil { // another replica's Reject
		t.Fatal(err)
	}
	errDown := errors.New("auth service: 503")
	auth.set(func(a *authStandIn) { a.fail = errDown })
	clock.Advance(10 * time.Minute)
	if got, err := cache.Token(boundedCtx(t), "t1"); !errors.Is(err, errDown) {
		t.Errorf("Token = %q, %v; want the fetch error, not a token deleted before its refresh point", got, err)
	}
}

func TestServeStale_Off(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{Now: clock.Now})
	mustToken(t, cache, "t1", "tok-1")
	errDown := errors.New("auth service: 503")
	auth.set(func(a *authStandIn) { a.fail = errDown })
	clock.Advance(56 * time.Minute)
	if _, err := cache.Token(boundedCtx(t), "t1"); !errors.Is(err, errDown) {
		t.Errorf("Token = %v, want the fetch error with StaleMinValidity zero", err)
	}
}

func TestPool_SlotsAreHandedOutInTurn(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	store := newClockStore(clock)
	cache := domain.NewTokenCache(store, auth, domain.TokenCacheConfig{
		PoolSize:  3,
		PoolSizes: map[string]int{"solo": 1},
		Now:       clock.Now,
	})
	seen := map[string]int{}
	for range 9 {
		tok, err := cache.Token(boundedCtx(t), "t1")
		if err != nil {
			t.Fatal(err)
		}
		seen[tok]++
	}
	if len(seen) != 3 || seen["tok-1"] != 3 || seen["tok-2"] != 3 || seen["tok-3"] != 3 {
		t.Errorf("tokens handed out = %v, want tok-1..3 three times each", seen)
	}
	mustToken(t, cache, "solo", "tok-4")
	mustToken(t, cache, "solo", "tok-4")
	if got, want := store.ids(), []string{"solo", "t1", "t1:1", "t1:2"}; !slices.Equal(got, want) {
		t.Errorf("store ids = %q, want %q", got, want)
	}

	// A rejected token goes from its slot only.
	if err := cache.Reject(boundedCtx(t), "t1", "tok-2"); err != nil {
		t.Fatal(err)
	}
	if got, want := store.ids(), []string{"solo", "t1", "t1:2"}; !slices.Equal(got, want) {
		t.Errorf("store ids after rejecting tok-2 = %q, want %q", got, want)
	}
	if err := cache.Invalidate(boundedCtx(t), "t1"); err != nil {
		t.Fatal(err)
	}
	if got, want := store.ids(), []string{"solo"}; !slices.Equal(got, want) {
		t.Errorf("store ids after Invalidate(t1) = %q, want %q", got, want)
	}
}

func TestTokenExcept(t *testing.T) {
	clock := fakeclock.New()
	auth := &authStandIn{}
	cache := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{
		PoolSize:  3,
		PoolSizes: map[string]int{"solo": 1},
		Now:       clock.Now,
	})
	mustToken(t, cache, "t1", "tok-1") // slot 0
	for _, tt := range []struct {
		except []string
		wantOK bool
	}{
		{[]string{"tok-1"}, true},
		{[]string{"tok-1", "tok-2"}, true},
		{[]string{"tok-1", "tok-2", "tok-3"}, false},
	} {
		tok, ok, err := cache.TokenExcept(boundedCtx(t), "t1", tt.except)
		if err != nil || ok != tt.wantOK || (ok && slices.Contains(tt.except, tok)) || (!ok && tok != "") {
			t.Errorf("TokenExcept(%q) = %q, %v, %v; want ok %v and a token not among them", tt.except, tok, ok, err, tt.wantOK)
		}
	}
	mustToken(t, cache, "solo", "tok-4")
	if tok, ok, err := cache.TokenExcept(boundedCtx(t), "solo", []string{"tok-4"}); ok || err != nil {
		t.Errorf("TokenExcept on a pool of one = %q, %v, %v; want none", tok, ok, err)
	}

	// A slot whose token cannot be had is passed over.
	fresh := domain.NewTokenCache(newClockStore(clock), auth, domain.TokenCacheConfig{PoolSize: 2, Now: clock.Now})
	first, err := fresh.Token(boundedCtx(t), "t2")
	if err != nil {
		t.Fatal(err)
	}
	errDown := errors.New("auth service: 503")
	auth.set(func(a *authStandIn) { a.fail = errDown })
	if tok, ok, err := fresh.TokenExcept(boundedCtx(t), "t2", nil); !ok || err != nil || tok != first {
		t.Errorf("TokenExcept with slot 1 cold and the auth service down = %q, %v, %v; want slot 0's %q", tok, ok, err, first)
	}
	if _, ok, err := fresh.TokenExcept(boundedCtx(t), "t2", []string{first}); ok || !errors.Is(err, errDown) {
		t.Errorf("TokenExcept(slot 0's token) = %v, %v; want none and the fetch error", ok, err)
	}
}

func TestTokenSlotID(t *testing.T) {
	for _, tt := range []struct {
		slot int
		want string
	}{{0, "acme"}, {1, "acme:1"}, {12, "acme:12"}} {
		if got := domain.TokenSlotID("acme", tt.slot); got != tt.want {
			t.Errorf("TokenSlotID(acme, %d) = %q, want %q", tt.slot, got, tt.want)
		}
	}
}

func TestRefreshAheadAt(t *testing.T) {
	const margin = 5 * time.Minute
	expires := testNow.Add(time.Hour)
	tests := []struct {
		name  string
		give  ports.CachedToken
		ahead time.Duration
		want  time.Time
	}{
		{"ahead before the refresh point", ports.CachedToken{ExpiresAt: expires, RefreshAt: expires.Add(-margin)}, time.Minute, expires.Add(-margin - time.Minute)},
		{"capped at half the token's margin", ports.CachedToken{ExpiresAt: expires, RefreshAt: expires.Add(-margin)}, time.Hour, expires.Add(-margin - margin/2)},
		{"short-lived token, margin halved", ports.CachedToken{ExpiresAt: testNow.Add(8 * time.Second), RefreshAt: testNow.Add(4 * time.Second)}, time.Minute, testNow.Add(2 * time.Second)},
		{"no refresh point: the margin before expiry", ports.CachedToken{ExpiresAt: expires}, time.Minute, expires.Add(-margin - time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := domain.RefreshAheadAt(tt.give, tt.ahead, margin); !got.Equal(tt.want) {
				t.Errorf("RefreshAheadAt = %v, want %v", got, tt.want)
			}
		})
	}
}
