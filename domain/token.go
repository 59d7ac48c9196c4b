package domain

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
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
	// a refresh in the background, at most half the token's refresh margin
	// (see RefreshAheadAt): the caller gets the cached token at once, and
	// one refresh per tenant slot runs (across processes through Lock).
	// Zero disables it: the first caller after the refresh point waits for
	// the fetch.
	RefreshAhead time.Duration
	// StaleMinValidity: when a fetch past a token's refresh point fails,
	// the last token this process held for the tenant slot is returned
	// instead of the error while it has at least this long to live, and
	// counted in TokenStats.StaleServed. A token deleted from the store
	// before its refresh point (by Reject or Invalidate, in any process),
	// or rejected by this process, is never served so. Zero disables it.
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

// refreshRetry is how long a tenant slot whose fetch just failed goes
// without another attempt from this process while it has a token to serve
// stale, and how long after a failed refresh ahead the next one starts.
const refreshRetry = 2 * time.Second

// TokenCache hands out access tokens, one per tenant or a pool of them,
// cached in a [ports.TokenStore] and fetched from a [ports.TokenFetcher]
// only on a miss or, ahead of the refresh point, in the background.
// Concurrent misses for one token share one fetch. It is safe for
// concurrent use.
type TokenCache struct {
	store         ports.TokenStore
	fetcher       ports.TokenFetcher
	margin        time.Duration
	fetchTimeout  time.Duration
	lock          ports.TokenLock
	lockTTL       time.Duration
	ahead         time.Duration
	staleMin      time.Duration
	poolSize      int
	poolSizes     map[string]int
	staleServedFn func(tenantID string, err error)
	refreshFailed func(tenantID string, err error)
	now           func() time.Time
	flights       singleflight.Group

	// stateful is set when this process keeps state per tenant: a pool,
	// refresh ahead or serve stale; tenants then maps tenant ids to their
	// *tenant.
	stateful bool
	tenants  sync.Map
	// stop ends refreshes ahead in progress; refreshing counts them, and
	// closed, under closeMu, stops new ones from starting.
	stop       context.Context
	stopAll    context.CancelFunc
	refreshing sync.WaitGroup
	closeMu    sync.Mutex
	closed     bool

	hits                                  stripedCounter
	misses, fetches, fetchErrors          atomic.Uint64
	refreshes, refreshErrors, staleServed atomic.Uint64
}

// tenant is what this process keeps of a tenant: its token slots, handed
// out in turn.
type tenant struct {
	slots []slot
	next  atomic.Uint32
}

// slot is what this process knows of one of a tenant's tokens beyond the
// store.
type slot struct {
	// id is the slot's id in the store (see TokenSlotID).
	id string
	// last is the token last found in the store or fetched here: the one
	// served stale, and where Reject looks first. Nil once rejected.
	last atomic.Pointer[ports.CachedToken]
	// rejected is the access token last rejected here, never kept as last
	// again.
	rejected atomic.Pointer[string]
	// refreshing is set while a refresh ahead runs.
	refreshing atomic.Bool
	// retryAt, in Unix nanoseconds, is when a failed fetch may be tried
	// again; nextRefresh when a refresh ahead may start again.
	retryAt, nextRefresh atomic.Int64
}

// TokenStats counts what a [TokenCache] did since it was made.
type TokenStats struct {
	// Hits and Misses count Token calls answered from the store or not.
	Hits, Misses uint64
	// Fetches counts calls to the auth service; FetchErrors those that failed.
	Fetches, FetchErrors uint64
	// Refreshes counts refreshes ahead that asked the auth service, in the
	// background; RefreshErrors those that failed.
	Refreshes, RefreshErrors uint64
	// StaleServed counts tokens returned after a failed fetch.
	StaleServed uint64
}

// Stats returns the cache's counters.
func (c *TokenCache) Stats() TokenStats {
	return TokenStats{
		Hits:          c.hits.Load(),
		Misses:        c.misses.Load(),
		Fetches:       c.fetches.Load(),
		FetchErrors:   c.fetchErrors.Load(),
		Refreshes:     c.refreshes.Load(),
		RefreshErrors: c.refreshErrors.Load(),
		StaleServed:   c.staleServed.Load(),
	}
}

// NewTokenCache returns a TokenCache over store and fetcher.
func NewTokenCache(store ports.TokenStore, fetcher ports.TokenFetcher, cfg TokenCacheConfig) *TokenCache {
	c := &TokenCache{
		store:         store,
		fetcher:       fetcher,
		margin:        cfg.RefreshMargin,
		fetchTimeout:  cfg.FetchTimeout,
		lock:          cfg.Lock,
		lockTTL:       cfg.LockTTL,
		ahead:         max(cfg.RefreshAhead, 0),
		staleMin:      max(cfg.StaleMinValidity, 0),
		poolSize:      clampPool(cfg.PoolSize),
		staleServedFn: cfg.StaleServed,
		refreshFailed: cfg.RefreshFailed,
		now:           cfg.Now,
	}
	if len(cfg.PoolSizes) > 0 {
		c.poolSizes = make(map[string]int, len(cfg.PoolSizes))
		for id, n := range cfg.PoolSizes {
			c.poolSizes[id] = clampPool(n)
		}
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
	if c.staleServedFn == nil {
		c.staleServedFn = func(string, error) {}
	}
	if c.refreshFailed == nil {
		c.refreshFailed = func(string, error) {}
	}
	c.stateful = c.poolSize > 1 || c.poolSizes != nil || c.ahead > 0 || c.staleMin > 0
	c.stop, c.stopAll = context.WithCancel(context.Background())
	return c
}

func clampPool(n int) int { return min(max(n, 1), MaxPoolSize) }

// Close stops the refreshes ahead in progress and waits for them to end.
// Token still answers afterwards, but starts no refresh ahead.
func (c *TokenCache) Close() {
	c.closeMu.Lock()
	c.closed = true
	c.closeMu.Unlock()
	c.stopAll()
	c.refreshing.Wait()
}

// startRefresh runs refresh in a goroutine unless the cache is closed.
func (c *TokenCache) startRefresh(refresh func()) bool {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closed {
		return false
	}
	c.refreshing.Add(1)
	go func() {
		defer c.refreshing.Done()
		refresh()
	}()
	return true
}

// Token returns one of the tenant's access tokens, the tenant's slots in
// turn: the cached one while it is fresh, otherwise a fresh one from the
// auth service, which it caches. A hit within RefreshAhead of the token's
// refresh point starts a refresh in the background. When the fetch fails,
// the slot's last token is returned while it has StaleMinValidity to live.
//
// A caller whose ctx ends stops waiting, but a fetch other callers share goes
// on, bounded by the fetch timeout. Errors from the auth service are
// returned wrapped.
func (c *TokenCache) Token(ctx context.Context, tenantID string) (string, error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return "", err
	}
	if !c.stateful {
		return c.slotToken(ctx, tenantID, tenantID, nil)
	}
	sl := c.tenant(tenantID).pick()
	return c.slotToken(ctx, tenantID, sl.id, sl)
}

// TokenExcept returns a token of another of the tenant's pool slots than
// those holding the tokens in except, the slots after the last handed out
// in turn; ok is false when every slot holds one of them (a pool of one
// always does). A slot whose token cannot be had is passed over; its
// error is returned when no other slot answers. A deliverer answered 429
// (a per-token rate limit) moves on with it.
func (c *TokenCache) TokenExcept(ctx context.Context, tenantID string, except []string) (tok string, ok bool, err error) {
	if err := ValidateTenantID(tenantID); err != nil {
		return "", false, err
	}
	if !c.stateful {
		return "", false, nil
	}
	t := c.tenant(tenantID)
	if len(t.slots) == 1 {
		return "", false, nil
	}
	first := t.next.Add(1) - 1
	var errs []error
	for i := range uint32(len(t.slots)) {
		sl := &t.slots[(first+i)%uint32(len(t.slots))]
		tok, err := c.slotToken(ctx, tenantID, sl.id, sl)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !slices.Contains(except, tok):
			return tok, true, nil
		}
	}
	return "", false, errors.Join(errs...)
}

// slotToken is Token for one slot, stored under id; sl is nil while no
// state is kept, and then nothing below uses it.
func (c *TokenCache) slotToken(ctx context.Context, tenantID, id string, sl *slot) (string, error) {
	tok, found, err := c.store.GetToken(ctx, id)
	if err != nil {
		return "", fmt.Errorf("token for tenant %s: %w", tenantID, err)
	}
	if found {
		// The store's TTL, which ends before the token expires, vouches
		// for freshness: unless refresh ahead needs it, the hot path
		// reads no clock.
		c.hits.Add(1)
		if sl != nil {
			c.sawHit(tenantID, sl, tok)
		}
		return tok.AccessToken, nil
	}
	c.misses.Add(1)
	if tok, ok := c.staleWhileRetrying(sl); ok {
		c.staleServed.Add(1)
		return tok, nil
	}

	flight := c.flights.DoChan(id, func() (any, error) {
		return c.fetch(context.WithoutCancel(ctx), tenantID, id, sl)
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

// tenant returns what this process keeps of the tenant, made on first use.
func (c *TokenCache) tenant(tenantID string) *tenant {
	if t, ok := c.tenants.Load(tenantID); ok {
		return t.(*tenant)
	}
	n := c.poolSize
	if size, ok := c.poolSizes[tenantID]; ok {
		n = size
	}
	t := &tenant{slots: make([]slot, n)}
	for i := range t.slots {
		t.slots[i].id = TokenSlotID(tenantID, i)
	}
	actual, _ := c.tenants.LoadOrStore(tenantID, t)
	return actual.(*tenant)
}

// pick returns the slot to use next.
func (t *tenant) pick() *slot {
	if len(t.slots) == 1 {
		return &t.slots[0]
	}
	return &t.slots[(t.next.Add(1)-1)%uint32(len(t.slots))]
}

// slotIDs returns the ids of the tenant's token slots, and the slots when
// this process keeps state.
func (c *TokenCache) slotIDs(tenantID string) ([]string, []slot) {
	if !c.stateful {
		return []string{tenantID}, nil
	}
	t := c.tenant(tenantID)
	ids := make([]string, len(t.slots))
	for i := range t.slots {
		ids[i] = t.slots[i].id
	}
	return ids, t.slots
}

// sawHit records a token found in the store as the slot's last, and starts
// a refresh ahead when the token is within RefreshAhead of its refresh
// point.
func (c *TokenCache) sawHit(tenantID string, st *slot, tok ports.CachedToken) {
	if last := st.last.Load(); last == nil || last.AccessToken != tok.AccessToken {
		// A token rejected here, read from the store just before Reject
		// deleted it, is not kept.
		if rejected := st.rejected.Load(); rejected == nil || *rejected != tok.AccessToken {
			seen := tok
			st.last.Store(&seen)
		}
	}
	if c.ahead == 0 {
		return
	}
	now := c.now()
	if now.Before(RefreshAheadAt(tok, c.ahead, c.margin)) || now.UnixNano() < st.nextRefresh.Load() {
		return
	}
	if !st.refreshing.CompareAndSwap(false, true) {
		return
	}
	started := c.startRefresh(func() {
		defer st.refreshing.Store(false)
		err := c.refresh(tenantID, st, tok)
		// Whatever came of it (another process refreshing, a token too
		// short-lived to cache, a failure), the next one waits.
		st.nextRefresh.Store(c.now().Add(refreshRetry).UnixNano())
		if err != nil {
			c.refreshErrors.Add(1)
			if c.stop.Err() == nil {
				c.refreshFailed(tenantID, err)
			}
		}
	})
	if !started {
		st.refreshing.Store(false)
	}
}

// refresh replaces seen, the slot's token about to reach its refresh
// point, with a fresh one, unless another process holds the slot's fetch
// lock (it is refreshing or fetching) or has replaced seen already. Only
// a refresh that asks the auth service is counted.
func (c *TokenCache) refresh(tenantID string, st *slot, seen ports.CachedToken) error {
	id := st.id
	ctx, cancel := context.WithTimeout(c.stop, c.fetchTimeout)
	defer cancel()
	if c.lock != nil {
		owner := rand.Text()
		acquired, err := c.lock.LockToken(ctx, id, owner, c.lockTTL)
		if err != nil {
			return fmt.Errorf("refresh token for tenant %s: lock: %w", tenantID, err)
		}
		if !acquired {
			return nil
		}
		defer func() { _ = c.lock.UnlockToken(context.WithoutCancel(ctx), id, owner) }()
		cur, found, err := c.store.GetToken(ctx, id)
		if err == nil && found && cur.AccessToken != seen.AccessToken {
			return nil
		}
	}
	c.refreshes.Add(1)
	_, err := c.fetchAndCache(ctx, tenantID, id, st)
	return err
}

// RefreshPoint is when tok stops being served from the cache: its
// RefreshAt, or for a token cached without one, margin before its expiry.
func RefreshPoint(tok ports.CachedToken, margin time.Duration) time.Time {
	if tok.RefreshAt.IsZero() {
		return tok.ExpiresAt.Add(-margin)
	}
	return tok.RefreshAt
}

// RefreshAheadAt is when a hit on tok starts a refresh ahead: ahead before
// its refresh point ([RefreshPoint]), but at most half the time from the
// refresh point to expiry, so that a fresh token is never due for a
// refresh at once.
func RefreshAheadAt(tok ports.CachedToken, ahead, margin time.Duration) time.Time {
	refreshAt := RefreshPoint(tok, margin)
	return refreshAt.Add(-min(ahead, tok.ExpiresAt.Sub(refreshAt)/2))
}

// staleWhileRetrying returns the slot's last token while a failed fetch
// waits to be tried again and the token has StaleMinValidity to live: a
// down auth service is not asked on every miss.
func (c *TokenCache) staleWhileRetrying(st *slot) (string, bool) {
	if c.staleMin == 0 || c.now().UnixNano() >= st.retryAt.Load() {
		return "", false
	}
	return c.stale(st)
}

// stale returns st's last token if it has StaleMinValidity to live.
//
// Only past its refresh point: a miss before it means the token was
// deleted from the store (rejected or invalidated, maybe by another
// process), and such a token is not served.
func (c *TokenCache) stale(st *slot) (string, bool) {
	last := st.last.Load()
	if last == nil {
		return "", false
	}
	now := c.now()
	if now.Before(RefreshPoint(*last, c.margin)) || last.ExpiresAt.Sub(now) < c.staleMin {
		return "", false
	}
	return last.AccessToken, true
}

// fetch gets a token from the auth service and caches it, unless a token
// turns up in the store first: cached by a flight that ended while this one
// was being joined, or by another process holding the fetch lock. When
// that fails, the slot's last token is served stale if it may be.
func (c *TokenCache) fetch(ctx context.Context, tenantID, id string, st *slot) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.fetchTimeout)
	defer cancel()
	tok, err := c.lockAndFetch(ctx, tenantID, id, st)
	if err == nil || c.staleMin == 0 {
		return tok, err
	}
	stale, ok := c.stale(st)
	if !ok {
		return "", err
	}
	st.retryAt.Store(c.now().Add(refreshRetry).UnixNano())
	c.staleServed.Add(1)
	c.staleServedFn(tenantID, err)
	return stale, nil
}

// lockAndFetch gets the slot's token: from the store if it turned up
// there, or from the auth service under the fetch lock.
func (c *TokenCache) lockAndFetch(ctx context.Context, tenantID, id string, st *slot) (string, error) {
	if tok, ok := c.cached(ctx, id); ok {
		return tok, nil
	}
	if c.lock != nil {
		tok, found, unlock, err := c.awaitLock(ctx, tenantID, id)
		if err != nil || found {
			return tok, err
		}
		defer unlock()
	}
	tok, err := c.fetchAndCache(ctx, tenantID, id, st)
	return tok.AccessToken, err
}

// fetchAndCache gets a token for slot id from the auth service and caches
// it, and remembers it in st for serving stale; a token too short-lived to
// cache is returned all the same.
func (c *TokenCache) fetchAndCache(ctx context.Context, tenantID, id string, st *slot) (ports.CachedToken, error) {
	c.fetches.Add(1)
	tok, err := c.fetcher.FetchToken(ctx, tenantID)
	if err == nil && tok.AccessToken == "" {
		err = errEmptyToken
	}
	if err != nil {
		c.fetchErrors.Add(1)
		return ports.CachedToken{}, fmt.Errorf("fetch token for tenant %s: %w", tenantID, err)
	}
	now := c.now()
	cached := ports.CachedToken{AccessToken: tok.AccessToken, ExpiresAt: now.Add(tok.ExpiresIn)}
	ttl, ok := cacheTTL(tok.ExpiresIn, c.margin)
	if !ok {
		return cached, nil
	}
	cached.RefreshAt = now.Add(ttl)
	if err := c.store.PutToken(ctx, id, cached, ttl); err != nil {
		return ports.CachedToken{}, fmt.Errorf("cache token for tenant %s: %w", tenantID, err)
	}
	if st != nil {
		st.last.Store(&cached)
		st.retryAt.Store(0)
	}
	return cached, nil
}

// cached returns the slot's token if the store holds one. It is a second
// look, after a first that answered: an error now only means "fetch".
func (c *TokenCache) cached(ctx context.Context, id string) (string, bool) {
	tok, found, err := c.store.GetToken(ctx, id)
	if err != nil || !found {
		return "", false
	}
	return tok.AccessToken, true
}

// awaitLock takes the slot's fetch lock, or waits until the process that
// holds it has cached a token (found) or lets go of it. Once it holds the
// lock, it looks in the store once more: the previous holder may have
// cached a token just before letting go. unlock releases the lock.
func (c *TokenCache) awaitLock(ctx context.Context, tenantID, id string) (tok string, found bool, unlock func(), err error) {
	owner := rand.Text()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for poll := lockPollMin; ; poll = min(2*poll, lockPollMax) {
		acquired, err := c.lock.LockToken(ctx, id, owner, c.lockTTL)
		if err != nil {
			return "", false, nil, fmt.Errorf("lock token fetch for tenant %s: %w", tenantID, err)
		}
		if acquired {
			unlock = func() { _ = c.lock.UnlockToken(context.WithoutCancel(ctx), id, owner) }
			if tok, ok := c.cached(ctx, id); ok {
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
		if tok, ok := c.cached(ctx, id); ok {
			return tok, true, nil, nil
		}
	}
}

var errEmptyToken = errors.New("auth service returned an empty access token")

// Invalidate drops the tenant's cached tokens, every slot of its pool, so
// that the next [TokenCache.Token] fetches a fresh one. None of them is
// served stale afterwards.
func (c *TokenCache) Invalidate(ctx context.Context, tenantID string) error {
	if err := ValidateTenantID(tenantID); err != nil {
		return err
	}
	ids, slots := c.slotIDs(tenantID)
	for i, id := range ids {
		if slots != nil {
			slots[i].last.Store(nil)
		}
		if err := c.store.DeleteToken(ctx, id); err != nil {
			return fmt.Errorf("invalidate token for tenant %s: %w", tenantID, err)
		}
	}
	return nil
}

// Reject drops token, which Genesys just answered 401 to, from the
// tenant's slot that still holds it, so that the next [TokenCache.Token]
// for that slot fetches a fresh one; the other slots keep theirs. Many
// deliveries rejected with the same token (all in flight when it was
// revoked) cause one refetch, not one each: the store deletes a token only
// while it is the one named, so a token fetched in its place stays. A
// rejected token is never served stale.
func (c *TokenCache) Reject(ctx context.Context, tenantID, token string) error {
	if err := ValidateTenantID(tenantID); err != nil {
		return err
	}
	ids, slots := c.slotIDs(tenantID)
	// The slot this process last saw the token in is the one to drop it
	// from; without one, every slot is tried.
	match := -1
	for i := range slots {
		slots[i].rejected.Store(&token)
		if last := slots[i].last.Load(); match < 0 && last != nil && last.AccessToken == token {
			slots[i].last.CompareAndSwap(last, nil)
			match = i
		}
	}
	if match >= 0 {
		ids = ids[match : match+1]
	}
	for _, id := range ids {
		deleted, err := c.store.DeleteTokenIf(ctx, id, token)
		if err != nil {
			return fmt.Errorf("reject token for tenant %s: %w", tenantID, err)
		}
		if deleted {
			return nil
		}
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
