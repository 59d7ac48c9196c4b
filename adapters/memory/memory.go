// Package memory implements the store ports in process memory, with the same
// semantics as the Redis stores: entries expire after their TTL (a TTL under
// a millisecond is an error), claims are atomic and owned, and expired
// entries are reclaimed as the store is written. Each store holds at most
// [DefaultMaxEntries] entries, or the bound [WithMaxEntries] sets: a full
// store drops its least recently written entry to make room. It serves unit
// tests and single-instance local runs; it is not shared between processes.
package memory

import (
	"fmt"
	"sync"
	"time"
)

// DefaultMaxEntries is how many entries a store holds at most unless
// [WithMaxEntries] says otherwise.
const DefaultMaxEntries = 1_000_000

// reclaimBatch is how many entries each write looks at for expiry. Two, one
// more than a write adds, so that the sweep gets round the whole store
// however fast it grows. Reclaiming happens on writes, so an idle store
// holds no goroutine.
const reclaimBatch = 2

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

// WithMaxEntries bounds the store at n entries: a write of a new entry
// into a full store first drops the entry written least recently (an
// entry rewritten counts as written anew), expired or not. n less than 1
// means [DefaultMaxEntries].
//
// Dropping an entry before its TTL loses nothing that matters: a dropped
// dedupe record makes a message claimable again, so a redelivery of it is
// processed twice (a duplicate), but no message is ever answered held or
// committed that was not; a dropped token is fetched again; a dropped
// fetch lock lets a second owner fetch too.
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
	if o.maxEntries < 1 {
		o.maxEntries = DefaultMaxEntries
	}
	return o
}

// expiring is a bounded map whose entries expire, guarded by one mutex.
// Callers hold mu around every use of get, put and del, each O(1).
//
// Its entries are also linked in the order they were last written, the
// least recently written first. A put of a new key into a full map drops
// that first entry. Each put then moves a sweep on by reclaimBatch entries
// along that list, round and round, dropping those expired; a get drops
// the expired entry it finds. So an expired entry is dropped at the latest
// after twice as many puts as the map holds entries.
type expiring[K comparable, V any] struct {
	mu     sync.Mutex
	now    func() time.Time
	max    int
	maxTTL time.Duration
	items  map[K]*item[K, V]
	// order is the head of a ring of the items in write order: order.next
	// is the least recently written, order.prev the last.
	order item[K, V]
	// sweep is the next item the sweep looks at; &order when it is to
	// start over from the first.
	sweep *item[K, V]
}

// item is an entry of an expiring map, and a link of its write order.
type item[K comparable, V any] struct {
	key        K
	value      V
	expiresAt  time.Time
	prev, next *item[K, V]
}

func newExpiring[K comparable, V any](o options) *expiring[K, V] {
	m := &expiring[K, V]{now: o.now, max: o.maxEntries, maxTTL: o.maxTTL, items: make(map[K]*item[K, V])}
	m.order.prev, m.order.next = &m.order, &m.order
	m.sweep = &m.order
	return m
}

// get returns the live value under k, and drops it when it has expired.
func (m *expiring[K, V]) get(k K) (V, bool) {
	it, ok := m.items[k]
	if ok && m.now().Before(it.expiresAt) {
		return it.value, true
	}
	if ok {
		m.remove(it)
	}
	var zero V
	return zero, false
}

// put stores v under k for ttl, as the last written entry. A new key in a
// full map first drops the least recently written entry.
func (m *expiring[K, V]) put(k K, v V, ttl time.Duration) {
	now := m.now()
	if m.maxTTL > 0 {
		ttl = min(ttl, m.maxTTL)
	}
	it, ok := m.items[k]
	if ok {
		m.unlink(it)
	} else {
		if len(m.items) >= m.max {
			m.remove(m.order.next) // the least recently written
		}
		it = &item[K, V]{key: k}
		m.items[k] = it
	}
	it.value, it.expiresAt = v, now.Add(ttl)
	m.pushBack(it)
	m.reclaim(now)
}

func (m *expiring[K, V]) del(k K) {
	if it, ok := m.items[k]; ok {
		m.remove(it)
	}
}

// reclaim moves the sweep on by reclaimBatch items, dropping those expired
// at now.
func (m *expiring[K, V]) reclaim(now time.Time) {
	for range reclaimBatch {
		it := m.sweep
		if it == &m.order {
			if it = m.order.next; it == &m.order {
				return // empty
			}
		}
		m.sweep = it.next
		if !now.Before(it.expiresAt) {
			m.remove(it)
		}
	}
}

// remove drops it from the map and from the write order.
func (m *expiring[K, V]) remove(it *item[K, V]) {
	m.unlink(it)
	delete(m.items, it.key)
}

// unlink takes it out of the write order, moving the sweep past it.
func (m *expiring[K, V]) unlink(it *item[K, V]) {
	if m.sweep == it {
		m.sweep = it.next
	}
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
}

// pushBack links it last in the write order.
func (m *expiring[K, V]) pushBack(it *item[K, V]) {
	it.prev, it.next = m.order.prev, &m.order
	m.order.prev.next = it
	m.order.prev = it
}
