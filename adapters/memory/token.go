package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/wa2genesys/connectorcache/ports"
)

// TokenStore is a [ports.TokenStore] in process memory. A full TokenStore
// (see [WithMaxEntries]) drops the token written least recently to make
// room: a miss, and the token is fetched again.
type TokenStore struct {
	tokens *expiring[string, ports.CachedToken]
}

var _ ports.TokenStore = (*TokenStore)(nil)

// NewTokenStore returns an empty TokenStore.
func NewTokenStore(opts ...Option) *TokenStore {
	o := newOptions(opts)
	return &TokenStore{tokens: newExpiring[string, ports.CachedToken](o)}
}

// GetToken implements [ports.TokenStore].
func (s *TokenStore) GetToken(_ context.Context, tenantID string) (ports.CachedToken, bool, error) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	tok, ok := s.tokens.get(tenantID)
	return tok, ok, nil
}

// PutToken implements [ports.TokenStore].
func (s *TokenStore) PutToken(_ context.Context, tenantID string, tok ports.CachedToken, ttl time.Duration) error {
	if err := checkTTL(ttl); err != nil {
		return fmt.Errorf("memory: put token for tenant %q: %w", tenantID, err)
	}
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	s.tokens.put(tenantID, tok, ttl)
	return nil
}

// DeleteTokenIf implements [ports.TokenStore].
func (s *TokenStore) DeleteTokenIf(_ context.Context, tenantID, accessToken string) (bool, error) {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	if tok, ok := s.tokens.get(tenantID); !ok || tok.AccessToken != accessToken {
		return false, nil
	}
	s.tokens.del(tenantID)
	return true, nil
}

// DeleteToken implements [ports.TokenStore].
func (s *TokenStore) DeleteToken(_ context.Context, tenantID string) error {
	s.tokens.mu.Lock()
	defer s.tokens.mu.Unlock()
	s.tokens.del(tenantID)
	return nil
}
