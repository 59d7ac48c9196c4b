package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/wa2genesys/connectorcache/ports"
)

// Defaults for [TokenCacheConfig] fields left zero.
const (
	DefaultRefreshMargin = 300 * time.Second
	DefaultFetchTimeout  = 30 * time.Second
	DefaultLockTTL       = 5 * time.Second
)

// How often a process waiting for another's fetch looks for its token:
// doubling from lockPollMin up to lockPollMax.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 200 * time.Millisecond
)

// minCacheableLifetime is the shortest token lifetime worth caching: a token
// that lives less is handed out but not stored.
const minCacheableLifetime = 2 * time.Second

// TokenCacheConfig tunes a [TokenCache].
type TokenCacheConfig struct {
	// RefreshMargin is how long before its expiry a token stops being served
	// from the cache, capped at half the token's lifetime. Zero means
	// DefaultRefreshMargin.
	RefreshMargin time.Duration
	// FetchTimeout bounds one call to the auth service. Zero means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Lock, when set, serializes fetches for a tenant across processes
	// sharing the store: the process holding the lock fetches, the others
	// wait for its token to appear. Nil means fetches are serialized
	// within this process only.
	Lock ports.TokenLock
	// LockTTL is how long a fetch lock lives: a process that dies holding
	// it delays the others by at most this long. Zero means
	// DefaultLockTTL.
	LockTTL time.Duration
	// RefreshAhead is how long before a token's refresh point a hit starts
	// a refresh in the background: the caller gets the cached token at
	// once, and one refresh per tenant slot runs (across processes through
	// Lock). Zero disables it: the first caller after the refresh point
	// waits for the fetch.
	RefreshAhead time.Duration
	// StaleMinValidity: when a fetch fails, the last token this process
	// held for the tenant slot is returned instead of the error while it
	// has at least this long to live, and counted in TokenStats.StaleServed.
	// A token rejected with Reject is never served so. Zero disables it.
	StaleMinValidity time.Duration
	// PoolSize is how many tokens each tenant has, each cached, locked,
	// fetched and refreshed on its own, handed out in turn: Genesys limits
	// the requests per token. Zero means 1; at most MaxPoolSize.
	PoolSize int
	// PoolSizes overrides PoolSize for the tenants it names.
	PoolSizes map[string]int
	// StaleServed, when set, is called each time a token is served stale,
	// with the fetch's error: for a (sampled) warning.
	StaleServed func(tenantID string, err error)
	// RefreshFailed, when set, is called each time a refresh ahead fails:
	// no caller sees that error.
	RefreshFailed func(tenantID string, err error)
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// MaxPoolSize bounds [TokenCacheConfig.PoolSize].
const MaxPoolSize = 64

// TokenSlotID is the id a store keeps slot of tenantID's token pool under:
// tenantID itself for slot 0 (so that a pool of one is keyed as a lone
// token), tenantID:slot for the others. Tenant ids hold no colon.
func TokenSlotID(tenantID string, slot int) string {
	if slot == 0 {
		return tenantID
	}
	return tenantID + ":" + strconv.Itoa(slot)
}

// TokenCache hands out one access token per tenant, cached in a
// [ports.TokenStore] and fetched from a [ports.TokenFetcher] only on a miss.
// Concurrent misses for one tenant share one fetch. It is safe for
// concurrent use.
type TokenCache struct {
	store        ports.TokenStore
	fetcher      ports.TokenFetcher
	margin       time.Duration
	fetchTimeout time.Duration
	lock         ports.TokenLock
	lockTTL      time.Duration
	now          func() time.Time
	flights      singleflight.Group

	hits                         stripedCounter
	misses, fetches, fetchErrors atomic.Uint64
}

// TokenStats counts what a [TokenCache] did since it was made.
type TokenStats struct {
	// Hits and Misses count Token calls answered from the store or not.
	Hits, Misses uint64
	// Fetches counts calls to the auth service; FetchErrors those that failed.
	Fetches, FetchErrors uint64
	// Refreshes counts refreshes ahead started in the background;
	// RefreshErrors those that failed.
	Refreshes, RefreshErrors uint64
	// StaleServed counts tokens returned after a failed fetch.
	StaleServed uint64
}

// Stats returns the cache's counters.
func (c *TokenCache) Stats() TokenStats {
	return TokenStats{
		Hits:        c.hits.Load(),
		Misses:      c.misses.Load(),
		Fetches:     c.fetches.Load(),
		FetchErrors: c.fetchErrors.Load(),
	}
}

// NewTokenCache returns a TokenCache over store and fetcher.
func NewTokenCache(store ports.TokenStore, fetcher ports.TokenFetcher, cfg TokenCacheConfig) *TokenCache {
	c := &TokenCache{
		store:        store,
		fetcher:      fetcher,
		margin:       cfg.RefreshMargin,
		fetchTimeout: cfg.FetchTimeout,
		lock:         cfg.Lock,
		lockTTL:      cfg.LockTTL,
		now:          cfg.Now,
	}
	if c.lockTTL <= 0 {
		c.lockTTL = DefaultLockTTL
	}
	if c.margin <= 0 {
		c.margin = DefaultRefreshMargin
	}
	if c.fetchTimeout <= 0 {
		c.fetchTimeout = DefaultFetchTimeout
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Token returns the tenant's access token: the cached one while it is fresh,
// otherwise a fresh one from the auth service, which it caches.
//
// A caller whose ctx ends stops waiting, but a fetch other callers share goes
// on, bounded by the fetch timeout. Errors from the auth service are
// returned wrapped.
func (c *TokenCache) Token(ctx context.Context, tenantID string) (string, error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return "", err
	}
	tok, found, err := c.store.GetToken(ctx, tenantID)
	if err != nil {
		return "", fmt.Errorf("token for tenant %s: %w", tenantID, err)
	}
	if found {
		// The store's TTL, which ends before the token expires, vouches
		// for freshness: the hot path reads no clock.
		c.hits.Add(1)
		return tok.AccessToken, nil
	}
	c.misses.Add(1)

	flight := c.flights.DoChan(tenantID, func() (any, error) {
		return c.fetch(context.WithoutCancel(ctx), tenantID)
	})
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("token for tenant %s: %w", tenantID, ctx.Err())
	case res := <-flight:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	}
}

// fetch gets a token from the auth service and caches it, unless a token
// turns up in the store first: cached by a flight that ended while this one
// was being joined, or by another process holding the fetch lock.
func (c *TokenCache) fetch(ctx context.Context, tenantID string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()

	if tok, ok := c.cached(ctx, tenantID); ok {
		return tok, nil
	}
	if c.lock != nil {
		tok, found, unlock, err := c.awaitLock(ctx, tenantID)
		if err != nil || found {
			return tok, err
		}
		defer unlock()
	}

	c.fetches.Add(1)
	tok, err := c.fetcher.FetchToken(ctx, tenantID)
	if err == nil && tok.AccessToken == "" {
		err = errEmptyToken
	}
	if err != nil {
		c.fetchErrors.Add(1)
		return "", fmt.Errorf("fetch token for tenant %s: %w", tenantID, err)
	}
	ttl, ok := cacheTTL(tok.ExpiresIn, c.margin)
	if !ok {
		return tok.AccessToken, nil
	}
	cached := ports.CachedToken{AccessToken: tok.AccessToken, ExpiresAt: c.now().Add(tok.ExpiresIn)}
	if err := c.store.PutToken(ctx, tenantID, cached, ttl); err != nil {
		return "", fmt.Errorf("cache token for tenant %s: %w", tenantID, err)
	}
	return tok.AccessToken, nil
}

// cached returns the tenant's token if the store holds one. It is a second
// look, after a first that answered: an error now only means "fetch".
func (c *TokenCache) cached(ctx context.Context, tenantID string) (string, bool) {
	tok, found, err := c.store.GetToken(ctx, tenantID)
	if err != nil || !found {
		return "", false
	}
	return tok.AccessToken, true
}

// awaitLock takes the tenant's fetch lock, or waits until the process that
// holds it has cached a token (found) or lets go of it. Once it holds the
// lock, it looks in the store once more: the previous holder may have
// cached a token just before letting go. unlock releases the lock.
func (c *TokenCache) awaitLock(ctx context.Context, tenantID string) (tok string, found bool, unlock func(), err error) {
	owner := rand.Text()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for poll := lockPollMin; ; poll = min(2*poll, lockPollMax) {
		acquired, err := c.lock.LockToken(ctx, tenantID, owner, c.lockTTL)
		if err != nil {
			return "", false, nil, fmt.Errorf("lock token fetch for tenant %s: %w", tenantID, err)
		}
		if acquired {
			unlock = func() { _ = c.lock.UnlockToken(context.WithoutCancel(ctx), tenantID, owner) }
			if tok, ok := c.cached(ctx, tenantID); ok {
				unlock()
				return tok, true, nil, nil
			}
			return "", false, unlock, nil
		}
		wait.Reset(poll)
		select {
		case <-ctx.Done():
			return "", false, nil, fmt.Errorf("wait for another process's token fetch for tenant %s: %w", tenantID, ctx.Err())
		case <-wait.C:
		}
		if tok, ok := c.cached(ctx, tenantID); ok {
			return tok, true, nil, nil
		}
	}
}

var errEmptyToken = errors.New("auth service returned an empty access token")

// Invalidate drops the tenant's cached token, so that the next [TokenCache.Token]
// fetches a fresh one. Call it when Genesys answers 401.
func (c *TokenCache) Invalidate(ctx context.Context, tenantID string) error {
	if err := ValidateTenantID(tenantID); err != nil {
		return err
	}
	if err := c.store.DeleteToken(ctx, tenantID); err != nil {
		return fmt.Errorf("invalidate token for tenant %s: %w", tenantID, err)
	}
	return nil
}

// Reject drops the tenant's cached token if it is still token, the one
// Genesys just answered 401 to, so that the next [TokenCache.Token] fetches
// a fresh one. Many deliveries rejected with the same token (all in flight
// when it was revoked) cause one refetch, not one each: once the first has
// replaced it, the others find a different token cached and leave it.
func (c *TokenCache) Reject(ctx context.Context, tenantID, token string) error {
	if err := ValidateTenantID(tenantID); err != nil {
		return err
	}
	cached, found, err := c.store.GetToken(ctx, tenantID)
	if err != nil {
		return fmt.Errorf("reject token for tenant %s: %w", tenantID, err)
	}
	if !found || cached.AccessToken != token {
		return nil
	}
	if err := c.store.DeleteToken(ctx, tenantID); err != nil {
		return fmt.Errorf("reject token for tenant %s: %w", tenantID, err)
	}
	return nil
}

// cacheTTL returns how long a token that lives expiresIn may be cached:
// expiresIn − min(margin, expiresIn/2). ok is false for a token that lives
// under two seconds (or whose lifetime is unknown), which is not cached.
func cacheTTL(expiresIn, margin time.Duration) (ttl time.Duration, ok bool) {
	if expiresIn < minCacheableLifetime {
		return 0, false
	}
	return expiresIn - min(margin, expiresIn/2), true
}
