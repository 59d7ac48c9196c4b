// Package memory implements the store ports in process memory, with the same
// semantics as the Redis stores: entries expire after their TTL (a TTL under
// a millisecond is an error), claims are atomic and owned, and expired
// entries are reclaimed as the store is written. Each store holds at most
// [DefaultMaxEntries] entries, or the bound [WithMaxEntries] sets: a full
// store makes room by dropping an expired entry if it holds one, and
// otherwise its least recently written entry. It serves unit tests and
// single-instance local runs; it is not shared between processes.
package memory

import (
	"container/heap"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxEntries is how many entries a store holds at most unless
// [WithMaxEntries] says otherwise.
const DefaultMaxEntries = 1_000_000

// reclaimBatch is how many expired entries each write drops at most. Two,
// one more than a write adds, so that expired entries cannot pile up
// however fast the store is written, while no one write does much work
// however many entries expire at once. Reclaiming happens on writes, so an
// idle store holds no goroutine.
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
// into a full store first drops the entry that expired first, if any has
// expired, and otherwise the entry written least recently (an entry
// rewritten counts as written anew). n less than 1 means
// [DefaultMaxEntries].
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
// Callers hold mu around every use of get, put and del, each O(log n) in
// the entries held.
//
// Its entries are linked in the order they were last written, the least
// recently written first, and kept in a heap by expiry time, the earliest
// first. Each put first drops up to reclaimBatch expired entries, the
// earliest expired first; a get drops the expired entry it finds. A put of a
// new key into a map still full then holds no expired entry, and drops the
// least recently written one.
type expiring[K comparable, V any] struct {
	mu     sync.Mutex
	now    func() time.Time
	max    int
	maxTTL time.Duration
	items  map[K]*item[K, V]
	// order is the head of a ring of the items in write order: order.next
	// is the least recently written, order.prev the last.
	order item[K, V]
	// expiry holds the items by expiry time: expiry[0] expires first.
	expiry byExpiry[K, V]
}

// item is an entry of an expiring map, a link of its write order, and an
// element of its expiry heap.
type item[K comparable, V any] struct {
	key        K
	value      V
	expiresAt  time.Time
	prev, next *item[K, V]
	// index is the item's position in the expiry heap.
	index int
}

func newExpiring[K comparable, V any](o options) *expiring[K, V] {
	m := &expiring[K, V]{now: o.now, max: o.maxEntries, maxTTL: o.maxTTL, items: make(map[K]*item[K, V])}
	m.order.prev, m.order.next = &m.order, &m.order
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

// put stores v under k for ttl, as the last written entry. It first drops
// up to reclaimBatch expired entries; a new key in a map still full then
// drops the least recently written entry.
func (m *expiring[K, V]) put(k K, v V, ttl time.Duration) {
	now := m.now()
	if m.maxTTL > 0 {
		ttl = min(ttl, m.maxTTL)
	}
	m.reclaim(now)
	expiresAt := now.Add(ttl)
	it, ok := m.items[k]
	switch {
	case ok:
		m.unlink(it)
	case len(m.items) >= m.max:
		// Nothing has expired, or reclaim would have dropped it: the least
		// recently written entry makes room, its item reused for k.
		it = m.order.next
		m.unlink(it)
		delete(m.items, it.key)
		it.key = k
		m.items[k] = it
	default:
		it = &item[K, V]{key: k, expiresAt: expiresAt}
		m.items[k] = it
		heap.Push(&m.expiry, it)
	}
	it.value, it.expiresAt = v, expiresAt
	heap.Fix(&m.expiry, it.index)
	m.pushBack(it)
}

func (m *expiring[K, V]) del(k K) {
	if it, ok := m.items[k]; ok {
		m.remove(it)
	}
}

// reclaim drops up to reclaimBatch entries expired at now, the earliest
// expired first.
func (m *expiring[K, V]) reclaim(now time.Time) {
	for range reclaimBatch {
		if len(m.expiry) == 0 || now.Before(m.expiry[0].expiresAt) {
			return
		}
		m.remove(m.expiry[0])
	}
}

// remove drops it from the map, the write order and the expiry heap.
func (m *expiring[K, V]) remove(it *item[K, V]) {
	m.unlink(it)
	heap.Remove(&m.expiry, it.index)
	delete(m.items, it.key)
}

// unlink takes it out of the write order.
func (m *expiring[K, V]) unlink(it *item[K, V]) {
	it.prev.next, it.next.prev = it.next, it.prev
	it.prev, it.next = nil, nil
}

// pushBack links it last in the write order.
func (m *expiring[K, V]) pushBack(it *item[K, V]) {
	it.prev, it.next = m.order.prev, &m.order
	m.order.prev.next = it
	m.order.prev = it
}

// byExpiry is the expiry heap of an expiring map, for container/heap: the
// item that expires first is at index 0. Each item keeps its index.
type byExpiry[K comparable, V any] []*item[K, V]

func (h byExpiry[K, V]) Len() int           { return len(h) }
func (h byExpiry[K, V]) Less(i, j int) bool { return h[i].expiresAt.Before(h[j].expiresAt) }

func (h byExpiry[K, V]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *byExpiry[K, V]) Push(x any) {
	it := x.(*item[K, V])
	it.index = len(*h)
	*h = append(*h, it)
}

func (h *byExpiry[K, V]) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
