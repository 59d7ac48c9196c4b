package memory

import "fmt"

// Len reports how many tokens the store holds, expired ones not yet
// reclaimed included.
func (s *TokenStore) Len() int { return s.tokens.len() }

// Len reports how many messages the store holds, expired ones not yet
// reclaimed included.
func (s *DedupeStore) Len() int { return s.marks.len() }

// Len reports how many tenants' locks l holds, expired ones not yet
// reclaimed included.
func (l *TokenLock) Len() int { return l.holders.len() }

// MaxEntries reports the bound of the store.
func (s *TokenStore) MaxEntries() int { return s.tokens.max }

// MaxEntries reports the bound of the store.
func (s *DedupeStore) MaxEntries() int { return s.marks.max }

// MaxEntries reports the bound of the store.
func (l *TokenLock) MaxEntries() int { return l.holders.max }

// len counts the entries held, expired or not, and checks that the write
// order links each of them once, and the expiry heap holds each of them
// once, in order, as the map holds them.
func (m *expiring[K, V]) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	linked := 0
	for it := m.order.next; it != &m.order; it = it.next {
		if m.items[it.key] != it || it.next.prev != it {
			panic("memory: write order out of step with the map")
		}
		linked++
	}
	if linked != len(m.items) {
		panic(fmt.Sprintf("memory: write order links %d items, the map holds %d", linked, len(m.items)))
	}
	if len(m.expiry) != len(m.items) {
		panic(fmt.Sprintf("memory: expiry heap holds %d items, the map %d", len(m.expiry), len(m.items)))
	}
	for i, it := range m.expiry {
		if it.index != i || m.items[it.key] != it {
			panic("memory: expiry heap out of step with the map")
		}
		if i > 0 && it.expiresAt.Before(m.expiry[(i-1)/2].expiresAt) {
			panic("memory: expiry heap out of order")
		}
	}
	return len(m.items)
}
