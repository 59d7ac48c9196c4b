// Package memory implements the store ports in process memory, with the same
// semantics as the Redis stores: entries expire after their TTL (a TTL under
// a millisecond is an error), claims are atomic and owned, and expired
// entries are reclaimed so that memory stays bounded. It serves unit tests
// and single-instance local runs; it is not shared between processes.
package memory

import (
	"fmt"
	"sync"
	"time"
)

// sweepInterval is how often a store reclaims expired entries. Reclaiming
// happens on writes, so an idle store holds no goroutine.
const sweepInterval = time.Minute

// checkTTL refuses a ttl under a millisecond, as Redis refuses it.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Millisecond {
		return fmt.Errorf("ttl %v: must be at least 1ms", ttl)
	}
	return nil
}

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

// WithMaxEntries bounds the store to n entries: past it, the oldest
// entries are dropped first, half the bound at a time. Zero or less means
// no bound.
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
//
// A bounded map keeps two generations: puts go to cur, and when cur holds
// half the bound it becomes old and the previous old is dropped whole. So
// the oldest entries go first, at a constant cost per put, and the map
// never holds more than the bound.
type expiring[K comparable, V any] struct {
	mu        sync.Mutex
	now       func() time.Time
	max       int
	maxTTL    time.Duration
	cur, old  map[K]entry[V] // old is nil when unbounded
	lastSweep time.Time
}

type entry[V any] struct {
	value     V
	expiresAt time.Time
}

func newExpiring[K comparable, V any](o options) *expiring[K, V] {
	m := &expiring[K, V]{now: o.now, max: o.maxEntries, maxTTL: o.maxTTL, cur: make(map[K]entry[V]), lastSweep: o.now()}
	if m.max > 0 {
		m.old = make(map[K]entry[V])
	}
	return m
}

// get returns the live value under k.
func (m *expiring[K, V]) get(k K) (V, bool) {
	e, ok := m.cur[k]
	if !ok {
		e, ok = m.old[k]
	}
	if !ok || !m.now().Before(e.expiresAt) {
		var zero V
		return zero, false
	}
	return e.value, true
}

// put stores v under k for ttl, drops the old generation when the current
// one is full, and reclaims expired entries when a sweep is due.
func (m *expiring[K, V]) put(k K, v V, ttl time.Duration) {
	now := m.now()
	if m.maxTTL > 0 {
		ttl = min(ttl, m.maxTTL)
	}
	m.cur[k] = entry[V]{value: v, expiresAt: now.Add(ttl)}
	if m.old != nil {
		delete(m.old, k)
		if len(m.cur) >= (m.max+1)/2 {
			m.old, m.cur = m.cur, make(map[K]entry[V], m.max/2)
		}
	}
	if now.Sub(m.lastSweep) < sweepInterval {
		return
	}
	m.lastSweep = now
	for _, gen := range []map[K]entry[V]{m.cur, m.old} {
		for key, e := range gen {
			if !now.Before(e.expiresAt) {
				delete(gen, key)
			}
		}
	}
}

func (m *expiring[K, V]) del(k K) {
	delete(m.cur, k)
	delete(m.old, k)
}
