package domain_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// testNow is the fixed time the token tests run at.
var testNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// waitBound is a generous upper bound on how long a step that should be
// immediate may take before a test gives up on it.
const waitBound = 10 * time.Second

type tokenMocks struct {
	store   *mocks.MockTokenStore
	fetcher *mocks.MockTokenFetcher
}

func newTokenMocks(t *testing.T) tokenMocks {
	ctrl := gomock.NewController(t)
	return tokenMocks{store: mocks.NewMockTokenStore(ctrl), fetcher: mocks.NewMockTokenFetcher(ctrl)}
}

func TestTokenCacheTTL(t *testing.T) {
	tests := []struct {
		name       string
		giveExpiry time.Duration
		giveMargin time.Duration
		wantTTL    time.Duration
	}{
		{name: "one day, default margin", giveExpiry: 86400 * time.Second, giveMargin: 0, wantTTL: 86100 * time.Second},
		{name: "one day", giveExpiry: 86400 * time.Second, giveMargin: 300 * time.Second, wantTTL: 86100 * time.Second},
		{name: "Genesys maximum", giveExpiry: 172800 * time.Second, giveMargin: 300 * time.Second, wantTTL: 172500 * time.Second},
		{name: "twice the margin", giveExpiry: 600 * time.Second, giveMargin: 300 * time.Second, wantTTL: 300 * time.Second},
		{name: "twice the margin, default margin", giveExpiry: 600 * time.Second, giveMargin: 0, wantTTL: 300 * time.Second},
		{name: "just under twice the margin", giveExpiry: 599 * time.Second, giveMargin: 300 * time.Second, wantTTL: 299500 * time.Millisecond},
		{name: "equal to the margin", giveExpiry: 300 * time.Second, giveMargin: 300 * time.Second, wantTTL: 150 * time.Second},
		{name: "one second over the margin", giveExpiry: 301 * time.Second, giveMargin: 300 * time.Second, wantTTL: 150500 * time.Millisecond},
		{name: "ten seconds", giveExpiry: 10 * time.Second, giveMargin: 300 * time.Second, wantTTL: 5 * time.Second},
		{name: "two seconds", giveExpiry: 2 * time.Second, giveMargin: 300 * time.Second, wantTTL: time.Second},
		{name: "custom margin, one day", giveExpiry: 86400 * time.Second, giveMargin: 60 * time.Second, wantTTL: 86340 * time.Second},
		{name: "custom margin, 600s", giveExpiry: 600 * time.Second, giveMargin: 60 * time.Second, wantTTL: 540 * time.Second},
		{name: "custom margin, twice the margin", giveExpiry: 120 * time.Second, giveMargin: 60 * time.Second, wantTTL: 60 * time.Second},
		{name: "custom margin, under twice the margin", giveExpiry: 100 * time.Second, giveMargin: 60 * time.Second, wantTTL: 50 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenMocks(t)
			var (
				gotTok ports.CachedToken
				gotTTL time.Duration
			)
			gomock.InOrder(
				m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1),
				m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
					Return(ports.Token{AccessToken: "secret-token", ExpiresIn: tt.giveExpiry}, nil),
				m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
					DoAndReturn(func(_ context.Context, _ string, tok ports.CachedToken, ttl time.Duration) error {
						gotTok, gotTTL = tok, ttl
						return nil
					}),
			)
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
				RefreshMargin: tt.giveMargin,
				Now:           fixedClock(testNow),
			})

			tok, err := cache.Token(boundedCtx(t), "tenant-1")
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok != "secret-token" {
				t.Errorf("Token() = %q, want the fetched token", tok)
			}
			if gotTTL != tt.wantTTL {
				t.Errorf("PutToken ttl = %v, want %v", gotTTL, tt.wantTTL)
			}
			if gotTok.AccessToken != "secret-token" {
				t.Errorf("PutToken AccessToken = %q, want the fetched token", gotTok.AccessToken)
			}
			if want := testNow.Add(tt.giveExpiry); !gotTok.ExpiresAt.Equal(want) {
				t.Errorf("PutToken ExpiresAt = %v, want now + expires_in = %v", gotTok.ExpiresAt, want)
			}
		})
	}
}

func TestTokenShortLivedIsReturnedNotCached(t *testing.T) {
	tests := []struct {
		name       string
		giveExpiry time.Duration
	}{
		{name: "1999ms", giveExpiry: 1999 * time.Millisecond},
		{name: "one second", giveExpiry: time.Second},
		{name: "one nanosecond", giveExpiry: time.Nanosecond},
		{name: "zero (unknown)", giveExpiry: 0},
		{name: "negative", giveExpiry: -5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenMocks(t)
			m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
			m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
				Return(ports.Token{AccessToken: "short-lived", ExpiresIn: tt.giveExpiry}, nil)
			// No PutToken expectation: caching the token fails the test.
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

			tok, err := cache.Token(boundedCtx(t), "tenant-1")
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok != "short-lived" {
				t.Errorf("Token() = %q, want the fetched token", tok)
			}
			want := domain.TokenStats{Misses: 1, Fetches: 1}
			if got := cache.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

// TestTokenTTLIsAlwaysPositive sweeps lifetimes and margins around the
// edges and checks that no TTL handed to the store is zero or negative, or
// longer than the token lives.
func TestTokenTTLIsAlwaysPositive(t *testing.T) {
	var expiries []time.Duration
	for ms := -1000; ms <= 5000; ms += 1 {
		expiries = append(expiries, time.Duration(ms)*time.Millisecond)
	}
	for s := 5; s <= 700; s++ {
		expiries = append(expiries, time.Duration(s)*time.Second)
	}
	expiries = append(expiries, 172800*time.Second, 1<<62)
	margins := []time.Duration{0, time.Nanosecond, time.Second, 60 * time.Second, 300 * time.Second, 24 * time.Hour}

	for _, margin := range margins {
		t.Run(fmt.Sprintf("margin %v", margin), func(t *testing.T) {
			m := newTokenMocks(t)
			var expiresIn time.Duration
			m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).AnyTimes()
			m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
				DoAndReturn(func(context.Context, string) (ports.Token, error) {
					return ports.Token{AccessToken: "tok", ExpiresIn: expiresIn}, nil
				}).AnyTimes()
			puts := 0
			m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
				DoAndReturn(func(_ context.Context, _ string, _ ports.CachedToken, ttl time.Duration) error {
					puts++
					if ttl <= 0 || ttl > expiresIn {
						t.Errorf("expires_in %v, margin %v: ttl %v, want 0 < ttl <= expires_in", expiresIn, margin, ttl)
					}
					if ttl < expiresIn/2 {
						t.Errorf("expires_in %v, margin %v: ttl %v, want at least half the lifetime", expiresIn, margin, ttl)
					}
					return nil
				}).AnyTimes()
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
				RefreshMargin: margin,
				Now:           fixedClock(testNow),
			})

			ctx := boundedCtx(t)
			wantPuts := 0
			for _, expiresIn = range expiries {
				if expiresIn >= 2*time.Second {
					wantPuts++
				}
				if _, err := cache.Token(ctx, "tenant-1"); err != nil {
					t.Fatalf("expires_in %v: Token() error = %v", expiresIn, err)
				}
			}
			if puts != wantPuts {
				t.Errorf("PutToken called %d times, want %d (once per lifetime of 2s or more)", puts, wantPuts)
			}
		})
	}
}

func TestTokenHit(t *testing.T) {
	tests := []struct {
		name       string
		giveExpiry time.Time
	}{
		{name: "expires in an hour", giveExpiry: testNow.Add(time.Hour)},
		{name: "expires in a nanosecond", giveExpiry: testNow.Add(time.Nanosecond)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenMocks(t)
			m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").
				Return(ports.CachedToken{AccessToken: "cached-token", ExpiresAt: tt.giveExpiry}, true, nil)
			// No FetchToken or PutToken expectation: a hit must not call them.
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

			tok, err := cache.Token(boundedCtx(t), "tenant-1")
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok != "cached-token" {
				t.Errorf("Token() = %q, want %q", tok, "cached-token")
			}
			want := domain.TokenStats{Hits: 1}
			if got := cache.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

func TestTokenNotFoundIsFetched(t *testing.T) {
	tests := []struct {
		name       string
		giveCached ports.CachedToken
		giveFound  bool
	}{
		{name: "not found", giveCached: ports.CachedToken{}, giveFound: false},
		{name: "not found but filled in", giveCached: ports.CachedToken{AccessToken: "stale", ExpiresAt: testNow.Add(time.Hour)}, giveFound: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenMocks(t)
			gomock.InOrder(
				m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(tt.giveCached, tt.giveFound, nil).MinTimes(1),
				m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
					Return(ports.Token{AccessToken: "fresh", ExpiresIn: time.Hour}, nil),
				m.store.EXPECT().PutToken(gomock.Any(), "tenant-1",
					ports.CachedToken{AccessToken: "fresh", ExpiresAt: testNow.Add(time.Hour), RefreshAt: testNow.Add(time.Hour - 300*time.Second)},
					time.Hour-300*time.Second).Return(nil),
			)
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

			tok, err := cache.Token(boundedCtx(t), "tenant-1")
			if err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			if tok != "fresh" {
				t.Errorf("Token() = %q, want %q", tok, "fresh")
			}
			want := domain.TokenStats{Misses: 1, Fetches: 1}
			if got := cache.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
}

// TestTokenHitReadsNoClock: a token the store finds is served as it is, on
// the store's word: the store's TTL, which ends before the token's expiry,
// decides freshness, and the hot path reads no clock.
func TestTokenHitReadsNoClock(t *testing.T) {
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").
		Return(ports.CachedToken{AccessToken: "cached", ExpiresAt: testNow.Add(time.Hour)}, true, nil)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: func() time.Time {
		t.Error("the hit path read the clock")
		return testNow
	}})
	if tok, err := cache.Token(boundedCtx(t), "tenant-1"); err != nil || tok != "cached" {
		t.Fatalf("Token() = %q, %v; want cached", tok, err)
	}
}

// TestTokenExpiryFollowsTheStoresTTL caches a token in a store that honours
// TTLs on the injected clock: the token is served until its cache TTL
// (expires_in − margin) ends, then fetched again.
func TestTokenExpiryFollowsTheStoresTTL(t *testing.T) {
	m := newTokenMocks(t)
	var (
		mu          sync.Mutex
		now         = testNow
		stored      ports.CachedToken
		storedUntil time.Time
	)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return stored, now.Before(storedUntil), nil
		}).AnyTimes()
	m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _ string, tok ports.CachedToken, ttl time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			stored, storedUntil = tok, now.Add(ttl)
			return nil
		}).Times(2)
	gomock.InOrder(
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "first", ExpiresIn: time.Hour}, nil),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "second", ExpiresIn: time.Hour}, nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: clock})

	ttl := time.Hour - domain.DefaultRefreshMargin
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{
		{advance: 0, want: "first"},
		{advance: ttl - time.Nanosecond, want: "first"},
		{advance: time.Nanosecond, want: "second"},
	} {
		mu.Lock()
		now = now.Add(step.advance)
		at := now
		mu.Unlock()
		tok, err := cache.Token(boundedCtx(t), "tenant-1")
		if err != nil {
			t.Fatalf("at %v: Token() error = %v", at, err)
		}
		if tok != step.want {
			t.Errorf("at %v: Token() = %q, want %q", at, tok, step.want)
		}
	}
	want := domain.TokenStats{Hits: 1, Misses: 2, Fetches: 2}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestTokenFetchError(t *testing.T) {
	errAuth := errors.New("auth service: 503 service unavailable")
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{}, errAuth)
	// No PutToken expectation: nothing is cached after a failed fetch.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errAuth) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errAuth)
	}
	if err.Error() == errAuth.Error() {
		t.Errorf("Token() error = %q, want context around the fetcher's error", err)
	}
	if tok != "" {
		t.Errorf("Token() = %q, want empty", tok)
	}
	want := domain.TokenStats{Misses: 1, Fetches: 1, FetchErrors: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestTokenFetchErrorWithTokenIsNotUsed(t *testing.T) {
	errAuth := errors.New("auth service: bad gateway")
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		Return(ports.Token{AccessToken: "half-made-secret", ExpiresIn: time.Hour}, errAuth)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errAuth) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errAuth)
	}
	if tok != "" {
		t.Errorf("Token() = %q, want empty", tok)
	}
	if strings.Contains(err.Error(), "half-made-secret") {
		t.Errorf("Token() error %q contains the access token", err)
	}
}

func TestTokenEmptyAccessTokenIsAnError(t *testing.T) {
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{ExpiresIn: time.Hour}, nil)
	// No PutToken expectation: an empty token is not cached.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err == nil {
		t.Fatalf("Token() = %q, nil error; want an error for an empty access token", tok)
	}
	if tok != "" {
		t.Errorf("Token() = %q, want empty", tok)
	}
	want := domain.TokenStats{Misses: 1, Fetches: 1, FetchErrors: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestTokenGetTokenError(t *testing.T) {
	errStore := errors.New("store: connection refused")
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, errStore)
	// No FetchToken expectation: the domain returns the store error, it
	// does not degrade on its own.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errStore) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errStore)
	}
	if tok != "" {
		t.Errorf("Token() = %q, want empty", tok)
	}
	if got := cache.Stats(); got != (domain.TokenStats{}) {
		t.Errorf("Stats() = %+v, want zero", got)
	}
}

func TestTokenPutTokenError(t *testing.T) {
	errStore := errors.New("store: read-only replica")
	m := newTokenMocks(t)
	gomock.InOrder(
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
			Return(ports.Token{AccessToken: "put-fails-secret", ExpiresIn: time.Hour}, nil),
		m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(errStore),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	_, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errStore) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errStore)
	}
	if strings.Contains(err.Error(), "put-fails-secret") {
		t.Errorf("Token() error %q contains the access token", err)
	}
}

func TestInvalidate(t *testing.T) {
	m := newTokenMocks(t)
	m.store.EXPECT().DeleteToken(gomock.Any(), "tenant-1").Return(nil)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{})

	if err := cache.Invalidate(context.Background(), "tenant-1"); err != nil {
		t.Fatalf("Invalidate() error = %v", err)
	}
}

func TestInvalidateThenTokenFetches(t *testing.T) {
	m := newTokenMocks(t)
	gomock.InOrder(
		m.store.EXPECT().DeleteToken(gomock.Any(), "tenant-1").Return(nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "new", ExpiresIn: time.Hour}, nil),
		m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	if err := cache.Invalidate(context.Background(), "tenant-1"); err != nil {
		t.Fatalf("Invalidate() error = %v", err)
	}
	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "new" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "new")
	}
}

func TestInvalidateError(t *testing.T) {
	errStore := errors.New("store: timeout")
	m := newTokenMocks(t)
	m.store.EXPECT().DeleteToken(gomock.Any(), "tenant-1").Return(errStore)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{})

	err := cache.Invalidate(context.Background(), "tenant-1")
	if !errors.Is(err, errStore) {
		t.Fatalf("Invalidate() error = %v, want it to wrap %v", err, errStore)
	}
}

// waitFor polls cond until it holds, failing the test after waitBound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// settle gives goroutines that passed a counted step a moment to reach the
// next one (joining the shared fetch) before the test moves on.
func settle() { time.Sleep(20 * time.Millisecond) }

func TestTokenConcurrentMissesShareOneFetch(t *testing.T) {
	const callers = 100
	m := newTokenMocks(t)
	release := make(chan struct{})
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(callers)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
			<-release
			return ports.Token{AccessToken: "shared", ExpiresIn: time.Hour}, nil
		}).Times(1)
	m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(nil).Times(1)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	var wg sync.WaitGroup
	toks := make([]string, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { toks[i], errs[i] = cache.Token(boundedCtx(t), "tenant-1") })
	}
	waitFor(t, "every caller to miss", func() bool { return cache.Stats().Misses == callers })
	settle()
	close(release)
	wg.Wait()

	for i := range callers {
		if errs[i] != nil || toks[i] != "shared" {
			t.Errorf("caller %d: Token() = %q, %v; want %q, nil", i, toks[i], errs[i], "shared")
		}
	}
	want := domain.TokenStats{Misses: callers, Fetches: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestTokenConcurrentFetchErrorIsShared(t *testing.T) {
	const callers = 20
	errAuth := errors.New("auth service: 500")
	m := newTokenMocks(t)
	release := make(chan struct{})
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(callers)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(context.Context, string) (ports.Token, error) {
			<-release
			return ports.Token{}, errAuth
		}).Times(1)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { _, errs[i] = cache.Token(boundedCtx(t), "tenant-1") })
	}
	waitFor(t, "every caller to miss", func() bool { return cache.Stats().Misses == callers })
	settle()
	close(release)
	wg.Wait()

	for i, err := range errs {
		if !errors.Is(err, errAuth) {
			t.Errorf("caller %d: Token() error = %v, want it to wrap %v", i, err, errAuth)
		}
	}
	want := domain.TokenStats{Misses: callers, Fetches: 1, FetchErrors: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestTokenTenantsFetchIndependently blocks each tenant's fetch until every
// tenant's fetch has started: it passes only when the fetches run side by
// side, one per tenant.
func TestTokenTenantsFetchIndependently(t *testing.T) {
	tenants := []string{"tenant-a", "tenant-b", "tenant-c"}
	m := newTokenMocks(t)
	var started sync.WaitGroup
	started.Add(len(tenants))
	allStarted := make(chan struct{})
	go func() { started.Wait(); close(allStarted) }()
	for _, tenant := range tenants {
		m.store.EXPECT().GetToken(gomock.Any(), tenant).Return(ports.CachedToken{}, false, nil).MinTimes(1)
		m.fetcher.EXPECT().FetchToken(gomock.Any(), tenant).
			DoAndReturn(func(ctx context.Context, tenantID string) (ports.Token, error) {
				started.Done()
				select {
				case <-allStarted:
					return ports.Token{AccessToken: "token-of-" + tenantID, ExpiresIn: time.Hour}, nil
				case <-ctx.Done():
					return ports.Token{}, ctx.Err()
				}
			})
		m.store.EXPECT().PutToken(gomock.Any(), tenant, gomock.Any(), gomock.Any()).Return(nil)
	}
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
		FetchTimeout: waitBound,
		Now:          fixedClock(testNow),
	})

	var wg sync.WaitGroup
	toks := make([]string, len(tenants))
	errs := make([]error, len(tenants))
	for i, tenant := range tenants {
		wg.Go(func() { toks[i], errs[i] = cache.Token(boundedCtx(t), tenant) })
	}
	wg.Wait()

	for i, tenant := range tenants {
		if want := "token-of-" + tenant; errs[i] != nil || toks[i] != want {
			t.Errorf("Token(%q) = %q, %v; want %q, nil", tenant, toks[i], errs[i], want)
		}
	}
	want := domain.TokenStats{Misses: 3, Fetches: 3}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestTokenCallerGivesUpFetchGoesOn cancels the caller that started the
// fetch: it returns at once with its ctx error, while the fetch runs to the
// end on an uncancelled context and another caller gets the token.
func TestTokenCallerGivesUpFetchGoesOn(t *testing.T) {
	m := newTokenMocks(t)
	fetchStarted := make(chan struct{})
	release := make(chan struct{})
	fetchCtxErr := make(chan error, 1)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(2)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
			close(fetchStarted)
			<-release
			fetchCtxErr <- ctx.Err()
			return ports.Token{AccessToken: "shared", ExpiresIn: time.Hour}, nil
		}).Times(1)
	putCtxErr := make(chan error, 1)
	m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
		DoAndReturn(func(ctx context.Context, _ string, _ ports.CachedToken, _ time.Duration) error {
			putCtxErr <- ctx.Err()
			return nil
		}).Times(1)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	quitterCtx, quit := context.WithCancel(context.Background())
	defer quit()
	quitterErr := make(chan error, 1)
	go func() {
		_, err := cache.Token(quitterCtx, "tenant-1")
		quitterErr <- err
	}()
	select {
	case <-fetchStarted:
	case <-time.After(waitBound):
		t.Fatal("fetch did not start")
	}

	type result struct {
		tok string
		err error
	}
	waiter := make(chan result, 1)
	go func() {
		tok, err := cache.Token(boundedCtx(t), "tenant-1")
		waiter <- result{tok, err}
	}()
	waitFor(t, "the second caller to miss", func() bool { return cache.Stats().Misses == 2 })
	settle()

	quit()
	select {
	case err := <-quitterErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled caller: Token() error = %v, want context.Canceled", err)
		}
	case <-time.After(waitBound):
		t.Fatal("cancelled caller did not return while the fetch was blocked")
	}

	close(release)
	select {
	case res := <-waiter:
		if res.err != nil || res.tok != "shared" {
			t.Errorf("waiting caller: Token() = %q, %v; want %q, nil", res.tok, res.err, "shared")
		}
	case <-time.After(waitBound):
		t.Fatal("waiting caller did not get the token")
	}
	if err := <-fetchCtxErr; err != nil {
		t.Errorf("fetch context error when the fetch completed = %v, want nil", err)
	}
	if err := <-putCtxErr; err != nil {
		t.Errorf("PutToken context error = %v, want nil", err)
	}
	want := domain.TokenStats{Misses: 2, Fetches: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestTokenCallerDeadlineDoesNotBoundFetch gives the caller a short
// deadline: the caller gives up, but the fetch keeps the fetch timeout and
// the token it brings back is cached.
func TestTokenCallerDeadlineDoesNotBoundFetch(t *testing.T) {
	m := newTokenMocks(t)
	release := make(chan struct{})
	fetchDone := make(chan error, 1)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
			<-release
			fetchDone <- ctx.Err()
			return ports.Token{AccessToken: "late", ExpiresIn: time.Hour}, nil
		})
	stored := make(chan string, 1)
	m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _ string, tok ports.CachedToken, _ time.Duration) error {
			stored <- tok.AccessToken
			return nil
		})
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
		FetchTimeout: waitBound,
		Now:          fixedClock(testNow),
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := cache.Token(ctx, "tenant-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Token() error = %v, want context.DeadlineExceeded", err)
	}

	close(release)
	select {
	case err := <-fetchDone:
		if err != nil {
			t.Errorf("fetch context error = %v, want nil after the caller's deadline", err)
		}
	case <-time.After(waitBound):
		t.Fatal("fetch did not complete")
	}
	select {
	case tok := <-stored:
		if tok != "late" {
			t.Errorf("PutToken token = %q, want %q", tok, "late")
		}
	case <-time.After(waitBound):
		t.Fatal("token fetched after the caller gave up was not cached")
	}
}

func TestTokenFetchHasFetchTimeoutDeadline(t *testing.T) {
	tests := []struct {
		name         string
		giveTimeout  time.Duration
		wantDeadline time.Duration
	}{
		{name: "default", giveTimeout: 0, wantDeadline: domain.DefaultFetchTimeout},
		{name: "configured", giveTimeout: 7 * time.Second, wantDeadline: 7 * time.Second},
		{name: "an hour", giveTimeout: time.Hour, wantDeadline: time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTokenMocks(t)
			var (
				deadline    time.Time
				hasDeadline bool
			)
			m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
			m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
				DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
					deadline, hasDeadline = ctx.Deadline()
					return ports.Token{AccessToken: "tok", ExpiresIn: time.Hour}, nil
				})
			m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(nil)
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
				FetchTimeout: tt.giveTimeout,
				Now:          fixedClock(testNow),
			})

			// The caller's own deadline is waitBound: the fetch's deadline
			// must come from the fetch timeout, not from the caller.
			ctx := boundedCtx(t)
			before := time.Now()
			if _, err := cache.Token(ctx, "tenant-1"); err != nil {
				t.Fatalf("Token() error = %v", err)
			}
			after := time.Now()

			if !hasDeadline {
				t.Fatal("fetch context has no deadline")
			}
			if lo, hi := before.Add(tt.wantDeadline), after.Add(tt.wantDeadline); deadline.Before(lo) || deadline.After(hi) {
				t.Errorf("fetch deadline = %v, want between %v and %v (call time + %v)", deadline, lo, hi, tt.wantDeadline)
			}
		})
	}
}

func TestTokenFetchTimeout(t *testing.T) {
	m := newTokenMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
			<-ctx.Done() // An auth service that never answers.
			return ports.Token{}, ctx.Err()
		})
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
		FetchTimeout: 20 * time.Millisecond,
		Now:          fixedClock(testNow),
	})

	_, err := tokenWithin(t, cache, "tenant-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Token() error = %v, want context.DeadlineExceeded", err)
	}
	want := domain.TokenStats{Misses: 1, Fetches: 1, FetchErrors: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestTokenStatsAccumulate(t *testing.T) {
	m := newTokenMocks(t)
	errAuth := errors.New("auth down")
	var (
		mu     sync.Mutex
		stored ports.CachedToken
	)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").
		DoAndReturn(func(context.Context, string) (ports.CachedToken, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return stored, stored.AccessToken != "", nil
		}).AnyTimes()
	m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _ string, tok ports.CachedToken, _ time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			stored = tok
			return nil
		}).Times(1)
	gomock.InOrder(
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{}, errAuth),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "tok", ExpiresIn: time.Hour}, nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	if _, err := cache.Token(boundedCtx(t), "tenant-1"); !errors.Is(err, errAuth) {
		t.Fatalf("first Token() error = %v, want %v", err, errAuth)
	}
	for i := range 4 {
		if tok, err := cache.Token(boundedCtx(t), "tenant-1"); err != nil || tok != "tok" {
			t.Fatalf("Token() #%d = %q, %v; want %q, nil", i+2, tok, err, "tok")
		}
	}
	want := domain.TokenStats{Hits: 3, Misses: 2, Fetches: 2, FetchErrors: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// tokenWithin calls Token with a context that never ends, so that only the
// cache's own timeouts can end the call, and fails the test when the call
// takes longer than waitBound.
func tokenWithin(t *testing.T, cache *domain.TokenCache, tenantID string) (string, error) {
	t.Helper()
	type result struct {
		tok string
		err error
	}
	done := make(chan result, 1)
	go func() {
		tok, err := cache.Token(context.Background(), tenantID)
		done <- result{tok, err}
	}()
	select {
	case res := <-done:
		return res.tok, res.err
	case <-time.After(waitBound):
		t.Fatalf("Token(%q) did not return within %v", tenantID, waitBound)
		return "", nil
	}
}

// boundedCtx returns a context that ends after waitBound, so that a test
// whose fetch never completes (a mock failing inside the shared fetch)
// fails instead of hanging.
func boundedCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// TestTokenRejectDropsOnlyTheRejectedToken: Reject is one compare-and-delete
// in the store, never a read then a delete, so that a token cached in the
// rejected one's place meanwhile stays.
func TestTokenRejectDropsOnlyTheRejectedToken(t *testing.T) {
	for _, deleted := range []bool{true, false} {
		t.Run(fmt.Sprintf("deleted=%v", deleted), func(t *testing.T) {
			m := newTokenMocks(t)
			m.store.EXPECT().DeleteTokenIf(gomock.Any(), "tenant-1", "revoked").Return(deleted, nil)
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{})
			if err := cache.Reject(boundedCtx(t), "tenant-1", "revoked"); err != nil {
				t.Fatalf("Reject() = %v", err)
			}
		})
	}
}

func TestTokenRejectValidatesAndWrapsErrors(t *testing.T) {
	m := newTokenMocks(t)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{})
	if err := cache.Reject(boundedCtx(t), "a:b", "x"); !errors.Is(err, domain.ErrInvalidTenantID) {
		t.Errorf("Reject(invalid tenant) = %v, want ErrInvalidTenantID", err)
	}
	errStore := errors.New("store down")
	m.store.EXPECT().DeleteTokenIf(gomock.Any(), "tenant-1", "x").Return(false, errStore)
	if err := cache.Reject(boundedCtx(t), "tenant-1", "x"); !errors.Is(err, errStore) {
		t.Errorf("Reject() = %v, want it to wrap the store's error", err)
	}
}
