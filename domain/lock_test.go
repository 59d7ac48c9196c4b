package domain_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang/mock/gomock"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/mocks"
	"github.com/wa2genesys/connectorcache/ports"
)

// freshToken is a stored token that is fresh at testNow.
var freshToken = ports.CachedToken{AccessToken: "stored", ExpiresAt: testNow.Add(time.Hour)}

// TestTokenFlightRechecksStore: a caller missed, but by the time its fetch
// runs the store holds a token (cached by a flight that just ended, or by
// another process): that token is returned and the auth service is not
// called.
func TestTokenFlightRechecksStore(t *testing.T) {
	m := newTokenMocks(t)
	gomock.InOrder(
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(freshToken, true, nil),
	)
	// No FetchToken or PutToken expectation.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "stored" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "stored")
	}
	want := domain.TokenStats{Misses: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestTokenFlightRecheckTrustsTheStore: a token the store holds when the
// fetch starts is served without a fetch, on the store's word, as a hit
// is: the store's TTL decides freshness.
func TestTokenFlightRecheckTrustsTheStore(t *testing.T) {
	m := newTokenMocks(t)
	gomock.InOrder(
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{AccessToken: "cached-meanwhile"}, true, nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "cached-meanwhile" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "cached-meanwhile")
	}
	if got := cache.Stats().Fetches; got != 0 {
		t.Errorf("Stats().Fetches = %d, want 0", got)
	}
}

type lockMocks struct {
	tokenMocks
	lock *mocks.MockTokenLock
}

func newLockMocks(t *testing.T) lockMocks {
	ctrl := gomock.NewController(t)
	return lockMocks{
		tokenMocks: tokenMocks{store: mocks.NewMockTokenStore(ctrl), fetcher: mocks.NewMockTokenFetcher(ctrl)},
		lock:       mocks.NewMockTokenLock(ctrl),
	}
}

func TestTokenLockHolderFetchesAndUnlocks(t *testing.T) {
	tests := []struct {
		name    string
		giveTTL time.Duration
		wantTTL time.Duration
	}{
		{name: "default lock TTL", giveTTL: 0, wantTTL: domain.DefaultLockTTL},
		{name: "configured lock TTL", giveTTL: 2 * time.Second, wantTTL: 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newLockMocks(t)
			var lockOwner, unlockOwner string
			var unlockCtxErr error
			m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
			gomock.InOrder(
				m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), tt.wantTTL).
					DoAndReturn(func(_ context.Context, _, owner string, _ time.Duration) (bool, error) {
						lockOwner = owner
						return true, nil
					}),
				m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "fresh", ExpiresIn: time.Hour}, nil),
				m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(nil),
				m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).
					DoAndReturn(func(ctx context.Context, _, owner string) error {
						unlockOwner, unlockCtxErr = owner, ctx.Err()
						return nil
					}),
			)
			cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
				Lock:    m.lock,
				LockTTL: tt.giveTTL,
				Now:     fixedClock(testNow),
			})

			tok, err := cache.Token(boundedCtx(t), "tenant-1")
			if err != nil || tok != "fresh" {
				t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "fresh")
			}
			if lockOwner == "" {
				t.Error("LockToken owner is empty")
			}
			if unlockOwner != lockOwner {
				t.Errorf("UnlockToken owner = %q, want the lock's owner %q", unlockOwner, lockOwner)
			}
			if unlockCtxErr != nil {
				t.Errorf("UnlockToken context error = %v, want nil", unlockCtxErr)
			}
			want := domain.TokenStats{Misses: 1, Fetches: 1}
			if got := cache.Stats(); got != want {
				t.Errorf("Stats() = %+v, want %+v", got, want)
			}
		})
	}
	if domain.DefaultLockTTL <= 0 {
		t.Errorf("DefaultLockTTL = %v, want positive", domain.DefaultLockTTL)
	}
}

func TestTokenLockOwnersDiffer(t *testing.T) {
	m := newLockMocks(t)
	owners := map[string]bool{}
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).AnyTimes()
	m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).
		DoAndReturn(func(_ context.Context, _, owner string, _ time.Duration) (bool, error) {
			owners[owner] = true
			return true, nil
		}).Times(3)
	m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).Return(nil).Times(3)
	m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "short", ExpiresIn: time.Second}, nil).Times(3)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	for range 3 {
		if _, err := cache.Token(boundedCtx(t), "tenant-1"); err != nil {
			t.Fatalf("Token() error = %v", err)
		}
	}
	if len(owners) != 3 {
		t.Errorf("3 fetches used %d distinct lock owners, want 3", len(owners))
	}
}

// TestTokenLockWaiterTakesHoldersToken: another process holds the lock; this
// one polls the store until the holder's token appears, and never calls
// the auth service.
func TestTokenLockWaiterTakesHoldersToken(t *testing.T) {
	m := newLockMocks(t)
	gomock.InOrder(
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).Times(2),
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(false, nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil),
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(false, nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(freshToken, true, nil),
	)
	// No FetchToken, PutToken or UnlockToken expectation.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "stored" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "stored")
	}
	want := domain.TokenStats{Misses: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// TestTokenLockFreedWithoutToken: the holder let go of the lock without
// caching a token (its fetch failed); the waiter takes the lock and fetches.
func TestTokenLockFreedWithoutToken(t *testing.T) {
	m := newLockMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	gomock.InOrder(
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(false, nil),
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(true, nil),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{AccessToken: "fresh", ExpiresIn: time.Hour}, nil),
		m.store.EXPECT().PutToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(nil),
		m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).Return(nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "fresh" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "fresh")
	}
}

// TestTokenLockAcquiredAfterHolderCached: the previous holder cached its
// token just before letting go; the new holder finds it, lets go and does
// not fetch.
func TestTokenLockAcquiredAfterHolderCached(t *testing.T) {
	m := newLockMocks(t)
	gomock.InOrder(
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).Times(2),
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(true, nil),
		m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(freshToken, true, nil),
		m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).Return(nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	tok, err := cache.Token(boundedCtx(t), "tenant-1")
	if err != nil || tok != "stored" {
		t.Fatalf("Token() = %q, %v; want %q, nil", tok, err, "stored")
	}
}

func TestTokenLockError(t *testing.T) {
	errLock := errors.New("lock: connection refused")
	m := newLockMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(false, errLock)
	// No FetchToken or UnlockToken expectation: the domain returns the
	// error; failing open is the decorators' business.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	_, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errLock) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errLock)
	}
}

func TestTokenLockUnlockedAfterFetchError(t *testing.T) {
	errAuth := errors.New("auth service: 500")
	m := newLockMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	gomock.InOrder(
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(true, nil),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").Return(ports.Token{}, errAuth),
		m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).Return(nil),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{Lock: m.lock, Now: fixedClock(testNow)})

	_, err := cache.Token(boundedCtx(t), "tenant-1")
	if !errors.Is(err, errAuth) {
		t.Fatalf("Token() error = %v, want it to wrap %v", err, errAuth)
	}
}

// TestTokenLockUnlockedAfterFetchTimeout: the fetch outlives the fetch
// timeout; the lock is still released, on a context that is not done.
func TestTokenLockUnlockedAfterFetchTimeout(t *testing.T) {
	m := newLockMocks(t)
	unlockCtxErr := make(chan error, 1)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	gomock.InOrder(
		m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(true, nil),
		m.fetcher.EXPECT().FetchToken(gomock.Any(), "tenant-1").
			DoAndReturn(func(ctx context.Context, _ string) (ports.Token, error) {
				<-ctx.Done()
				return ports.Token{}, ctx.Err()
			}),
		m.lock.EXPECT().UnlockToken(gomock.Any(), "tenant-1", gomock.Any()).
			DoAndReturn(func(ctx context.Context, _, _ string) error {
				unlockCtxErr <- ctx.Err()
				return nil
			}),
	)
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
		Lock:         m.lock,
		FetchTimeout: 20 * time.Millisecond,
		Now:          fixedClock(testNow),
	})

	_, err := tokenWithin(t, cache, "tenant-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Token() error = %v, want context.DeadlineExceeded", err)
	}
	if err := <-unlockCtxErr; err != nil {
		t.Errorf("UnlockToken context error = %v, want nil", err)
	}
}

// TestTokenLockWaitBoundedByFetchTimeout: a holder that never caches a token
// nor lets go keeps a waiter no longer than the fetch timeout.
func TestTokenLockWaitBoundedByFetchTimeout(t *testing.T) {
	m := newLockMocks(t)
	m.store.EXPECT().GetToken(gomock.Any(), "tenant-1").Return(ports.CachedToken{}, false, nil).MinTimes(1)
	m.lock.EXPECT().LockToken(gomock.Any(), "tenant-1", gomock.Any(), gomock.Any()).Return(false, nil).MinTimes(1)
	// No FetchToken or UnlockToken expectation.
	cache := domain.NewTokenCache(m.store, m.fetcher, domain.TokenCacheConfig{
		Lock:         m.lock,
		FetchTimeout: 50 * time.Millisecond,
		Now:          fixedClock(testNow),
	})

	_, err := tokenWithin(t, cache, "tenant-1")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Token() error = %v, want context.DeadlineExceeded", err)
	}
	want := domain.TokenStats{Misses: 1}
	if got := cache.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}
