// Package memory implements the store ports in process memory, with the same
// semantics as the Redis stores: entries expire after their TTL, claims are
// atomic and owned, and expired entries are reclaimed so that memory stays
// bounded. It serves unit tests and single-instance local runs; it is not
// shared between processes.
package memory

import (
	"slices"
	"sync"
	"time"
)

// sweepInterval is how often a store reclaims expired entries. Reclaiming
// happens on writes, so an idle store holds no goroutine.
const sweepInterval = time.Minute

// Option configures a store.
type Option func(*options)

type options struct {
	now        func() time.Time
	maxEntries int
	maxTTL     time.Duration
}

// WithClock makes the store read the time from now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// WithMaxEntries bounds the store to n entries: past it, the entries
// closest to expiry are dropped first. Zero or less means no bound.
func WithMaxEntries(n int) Option {
	return func(o *options) { o.maxEntries = n }
}

// WithMaxTTL caps every TTL the store is given at d. Zero or less means no
// cap.
func WithMaxTTL(d time.Duration) Option {
	return func(o *options) { o.maxTTL = d }
}

func newOptions(opts []Option) options {
	o := options{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// expiring is a map whose entries expire, guarded by one mutex. Callers hold
// mu around every use of get, put and del.
type expiring[K comparable, V any] struct {
	mu        sync.Mutex
	now       func() time.Time
	max       int
	maxTTL    time.Duration
	entries   map[K]entry[V]
	lastSweep time.Time
}

type entry[V any] struct {
	value     V
	expiresAt time.Time
}

func newExpiring[K comparable, V any](o options) *expiring[K, V] {
	return &expiring[K, V]{now: o.now, max: o.maxEntries, maxTTL: o.maxTTL, entries: make(map[K]entry[V]), lastSweep: o.now()}
}

// get returns the live value under k.
func (m *expiring[K, V]) get(k K) (V, bool) {
	e, ok := m.entries[k]
	if !ok || !m.now().Before(e.expiresAt) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put stores v under k for ttl and reclaims expired entries when a sweep is
// due or the store is over its bound.
func (m *expiring[K, V]) put(k K, v V, ttl time.Duration) {
	now := m.now()
	if m.maxTTL > 0 {
		ttl = min(ttl, m.maxTTL)
	}
	m.entries[k] = entry[V]{value: v, expiresAt: now.Add(ttl)}
	full := m.max > 0 && len(m.entries) > m.max
	if !full && now.Sub(m.lastSweep) < sweepInterval {
		return
	}
	m.lastSweep = now
	for key, e := range m.entries {
		if !now.Before(e.expiresAt) {
			delete(m.entries, key)
		}
	}
	if m.max > 0 && len(m.entries) > m.max {
		m.evict(len(m.entries) - m.max*9/10)
	}
}

// evict drops the n entries closest to expiry. Dropping a tenth of the bound
// at once keeps the sort off most puts.
func (m *expiring[K, V]) evict(n int) {
	type keyed struct {
		k  K
		at time.Time
	}
	all := make([]keyed, 0, len(m.entries))
	for k, e := range m.entries {
		all = append(all, keyed{k, e.expiresAt})
	}
	slices.SortFunc(all, func(a, b keyed) int { return a.at.Compare(b.at) })
	for _, e := range all[:n] {
		delete(m.entries, e.k)
	}
}

func (m *expiring[K, V]) del(k K) { delete(m.entries, k) }

// len counts the entries held, expired or not.
func (m *expiring[K, V]) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
