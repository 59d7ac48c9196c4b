package memory

// Len reports how many tokens the store holds, expired ones not yet
// reclaimed included.
func (s *TokenStore) Len() int { return s.tokens.len() }

// Len reports how many messages the store holds, expired ones not yet
// reclaimed included.
func (s *DedupeStore) Len() int { return s.marks.len() }

// Len reports how many tenants' locks l holds, expired ones not yet
// reclaimed included.
func (l *TokenLock) Len() int { return l.holders.len() }

// len counts the entries held, expired or not.
func (m *expiring[K, V]) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.cur) + len(m.old)
}
