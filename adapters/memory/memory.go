// Package memory implements the store ports in process memory, with the same
// semantics as the Redis stores: entries expire after their TTL, claims are
// atomic and owned, and expired entries are reclaimed so that memory stays
// bounded. It serves unit tests and single-instance local runs; it is not
// shared between processes.
package memory

import (
	"sync"
	"time"
)

// sweepInterval is how often a store reclaims expired entries. Reclaiming
// happens on writes, so an idle store holds no goroutine.
const sweepInterval = time.Minute

// Option configures a store.
type Option func(*options)

type options struct {
	now func() time.Time
}

// WithClock makes the store read the time from now instead of time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
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
	entries   map[K]entry[V]
	lastSweep time.Time
}

type entry[V any] struct {
	value     V
	expiresAt time.Time
}

func newExpiring[K comparable, V any](now func() time.Time) *expiring[K, V] {
	return &expiring[K, V]{now: now, entries: make(map[K]entry[V]), lastSweep: now()}
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

// put stores v under k for ttl and reclaims expired entries when a sweep is due.
func (m *expiring[K, V]) put(k K, v V, ttl time.Duration) {
	now := m.now()
	m.entries[k] = entry[V]{value: v, expiresAt: now.Add(ttl)}
	if now.Sub(m.lastSweep) < sweepInterval {
		return
	}
	m.lastSweep = now
	for key, e := range m.entries {
		if !now.Before(e.expiresAt) {
			delete(m.entries, key)
		}
	}
}

func (m *expiring[K, V]) del(k K) { delete(m.entries, k) }

// len counts the entries held, expired or not.
func (m *expiring[K, V]) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.entries)
}
