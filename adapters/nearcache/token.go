package nearcache

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/ports"
)

// DefaultMaxAge is the MaxAge used when [TokenConfig.MaxAge] is zero.
const DefaultMaxAge = 30 * time.Second

// TokenConfig tunes a token near cache.
type TokenConfig struct {
	// MaxAge is how long a local copy is served before the shared store is
	// read again. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// RefreshMargin is how long before its expiry a token read from the
	// shared store stops being served locally; it matches the token cache's
	// margin. Tokens the cache wrote itself carry their exact TTL instead.
	RefreshMargin time.Duration
	// RefreshAhead matches the token cache's setting: a local copy is not
	// served within it before the token's refresh point, so that a token
	// refreshed ahead by any process is read from the shared store at
	// once. Zero disables it.
	RefreshAhead time.Duration
	// ServedStale is called each time next failed and the local copy
	// answered instead, with next's error: a fail-open answer the layer
	// above does not see. Nil means nothing is called.
	ServedStale func(tenantID string, err error)
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
}

// entry is an immutable local copy of one tenant's token. Its times are
// offsets on the store's clock (see store.since).
type entry struct {
	tok ports.CachedToken
	// staleAt is when the copy stops being served, even during an outage.
	staleAt time.Duration
	// checkAt is when the shared store must be read again.
	checkAt time.Duration
}

type store struct {
	next   ports.TokenStore
	maxAge time.Duration
	margin time.Duration
	ahead  time.Duration
	stale  func(tenantID string, err error)
	now    func() time.Time
	// since is the time elapsed since the store was made. With the real
	// clock it reads only the monotonic clock, half the cost of
	// time.Now: it runs on every hit.
	since func() time.Duration

	// local maps tenant ids to entries. Readers load it without a lock;
	// writers copy it under mu and swap it.
	local atomic.Pointer[map[string]*entry]
	mu    sync.Mutex
	// version counts the puts and deletes made here, so that an answer
	// read from next before one of them is not kept over it.
	version atomic.Uint64
}

// NewTokenStore returns next with a near cache in front of it.
func NewTokenStore(next ports.TokenStore, cfg TokenConfig) ports.TokenStore {
	s := &store{next: next, maxAge: cfg.MaxAge, margin: cfg.RefreshMargin, ahead: cfg.RefreshAhead, stale: cfg.ServedStale, now: cfg.Now}
	if s.maxAge <= 0 {
		s.maxAge = DefaultMaxAge
	}
	if s.stale == nil {
		s.stale = func(string, error) {}
	}
	if s.now == nil {
		s.now = time.Now
		base := time.Now()
		s.since = func() time.Duration { return time.Since(base) }
	} else {
		base := s.now()
		s.since = func() time.Duration { return s.now().Sub(base) }
	}
	s.local.Store(&map[string]*entry{})
	return s
}

// GetToken answers from the local copy while it is fresh, otherwise from
// next; when next fails, from the local copy until its refresh point,
// reported to ServedStale, and without a copy with next's error.
func (s *store) GetToken(ctx context.Context, tenantID string) (ports.CachedToken, bool, error) {
	// Loaded first: a put or delete that starts after this line makes the
	// answer read below too old to keep.
	version := s.version.Load()
	e := (*s.local.Load())[tenantID]
	now := s.since()
	if e != nil && now < e.checkAt {
		return e.tok, true, nil
	}
	tok, found, err := s.next.GetToken(ctx, tenantID)
	switch {
	case err != nil && e != nil && now < e.staleAt:
		s.stale(tenantID, err)
		return e.tok, true, nil
	case err != nil:
		return ports.CachedToken{}, false, err
	case !found:
		s.setIfUnchanged(tenantID, nil, version)
		return ports.CachedToken{}, false, nil
	}
	// The copy goes stale at the token's refresh point, a wall-clock time.
	s.setIfUnchanged(tenantID, s.entry(tok, now+domain.RefreshPoint(tok, s.margin).Sub(s.now()), now), version)
	return tok, true, nil
}

// PutToken keeps a local copy for ttl, then writes to next. The local copy
// stays even when next fails: it is what carries the process through an
// outage.
func (s *store) PutToken(ctx context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	now := s.since()
	s.version.Add(1)
	s.set(tenantID, s.entry(tok, now+ttl, now))
	err := s.next.PutToken(ctx, tenantID, tok, ttl)
	s.version.Add(1) // a read overlapping the write may have seen the old value
	return err
}

// DeleteToken drops the local copy, then deletes from next.
func (s *store) DeleteToken(ctx context.Context, tenantID string) error {
	s.version.Add(1)
	s.set(tenantID, nil)
	err := s.next.DeleteToken(ctx, tenantID)
	s.version.Add(1) // a read overlapping the delete may have seen the old value
	return err
}

// DeleteTokenIf drops the local copy if it holds accessToken, then deletes
// from next if next holds it. The local copy goes even when next fails:
// accessToken was rejected.
func (s *store) DeleteTokenIf(ctx context.Context, tenantID, accessToken string) (bool, error) {
	s.version.Add(1)
	s.dropIf(tenantID, accessToken)
	deleted, err := s.next.DeleteTokenIf(ctx, tenantID, accessToken)
	s.version.Add(1) // a read overlapping the delete may have seen the old value
	return deleted, err
}

// dropIf drops the tenant's local copy if it holds accessToken.
func (s *store) dropIf(tenantID, accessToken string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := (*s.local.Load())[tenantID]; e != nil && e.tok.AccessToken == accessToken {
		s.setLocked(tenantID, nil)
	}
}

// entry returns the local copy of tok, or nil when it should not be kept.
// The copy is checked against the shared store after maxAge, and from the
// start of the refresh-ahead window on: staleAt is the refresh point.
func (s *store) entry(tok ports.CachedToken, staleAt, now time.Duration) *entry {
	if now >= staleAt {
		return nil
	}
	checkAt := min(staleAt, now+s.maxAge)
	if s.ahead > 0 {
		checkAt = min(checkAt, staleAt-domain.RefreshPoint(tok, s.margin).Sub(domain.RefreshAheadAt(tok, s.ahead, s.margin)))
	}
	return &entry{tok: tok, staleAt: staleAt, checkAt: checkAt}
}

// setIfUnchanged is set for an answer read from next while version was
// current: a put or delete made here since then is newer, and wins.
func (s *store) setIfUnchanged(tenantID string, e *entry, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version.Load() != version {
		return
	}
	s.setLocked(tenantID, e)
}

// set replaces the tenant's local copy; nil drops it.
func (s *store) set(tenantID string, e *entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLocked(tenantID, e)
}

func (s *store) setLocked(tenantID string, e *entry) {
	cur := *s.local.Load()
	if e == nil {
		if _, ok := cur[tenantID]; !ok {
			return
		}
	}
	next := maps.Clone(cur)
	if e == nil {
		delete(next, tenantID)
	} else {
		next[tenantID] = e
	}
	s.local.Store(&next)
}
