package domain_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/ports"
)

// mapDedupeStore is a minimal [ports.DedupeStore] for the examples. It
// ignores TTLs; real stores live in the adapters.
type mapDedupeStore struct {
	mu     sync.Mutex
	owners map[string]string // key → owner, or "" once committed
}

func (s *mapDedupeStore) Claim(_ context.Context, tenantID, messageID, owner string, _ time.Duration) (ports.ClaimState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := tenantID + ":" + messageID
	switch held, ok := s.owners[key]; {
	case !ok:
		s.owners[key] = owner
		return ports.ClaimAcquired, nil
	case held == "":
		return ports.ClaimCommitted, nil
	}
	return ports.ClaimHeld, nil
}

func (s *mapDedupeStore) Commit(_ context.Context, tenantID, messageID, owner string, _ time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := tenantID + ":" + messageID
	if held, ok := s.owners[key]; !ok || held != owner {
		return false, nil
	}
	s.owners[key] = ""
	return true, nil
}

func (s *mapDedupeStore) Release(_ context.Context, tenantID, messageID, owner string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := tenantID + ":" + messageID
	if held, ok := s.owners[key]; !ok || held != owner {
		return false, nil
	}
	delete(s.owners, key)
	return true, nil
}

func ExampleDeduplicator() {
	dedupe := domain.NewDeduplicator(&mapDedupeStore{owners: map[string]string{}}, domain.DeduplicatorConfig{})
	ctx := context.Background()

	handle := func(messageID string, process func() error) {
		claim, err := dedupe.Claim(ctx, "tenant-1", messageID)
		if err != nil {
			fmt.Println("claim:", err)
			return
		}
		if claim.Status() != domain.ClaimNew {
			fmt.Printf("%s: skipped (%s)\n", messageID, claim.Status())
			return
		}
		defer claim.Release(ctx) // Frees the message if it was not committed.
		if err := process(); err != nil {
			fmt.Printf("%s: failed, released for a retry\n", messageID)
			return
		}
		if err := claim.Commit(ctx); err != nil {
			fmt.Println("commit:", err)
			return
		}
		fmt.Printf("%s: processed\n", messageID)
	}

	handle("wamid.A", func() error { return nil })
	handle("wamid.A", func() error { return nil }) // Meta delivers it again.
	handle("wamid.B", func() error { return fmt.Errorf("genesys unavailable") })
	handle("wamid.B", func() error { return nil }) // Meta's retry.
	// Output:
	// wamid.A: processed
	// wamid.A: skipped (done)
	// wamid.B: failed, released for a retry
	// wamid.B: processed
}

// mapTokenStore is a minimal [ports.TokenStore] for the examples. It ignores
// TTLs; real stores live in the adapters.
type mapTokenStore struct {
	mu     sync.Mutex
	tokens map[string]ports.CachedToken
}

func (s *mapTokenStore) GetToken(_ context.Context, tenantID string) (ports.CachedToken, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[tenantID]
	return tok, ok, nil
}

func (s *mapTokenStore) PutToken(_ context.Context, tenantID string, tok ports.CachedToken, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tenantID] = tok
	return nil
}

func (s *mapTokenStore) DeleteToken(_ context.Context, tenantID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tenantID)
	return nil
}

func (s *mapTokenStore) DeleteTokenIf(_ context.Context, tenantID, accessToken string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens[tenantID].AccessToken != accessToken {
		return false, nil
	}
	delete(s.tokens, tenantID)
	return true, nil
}

// countingFetcher stands in for the auth service: it issues numbered tokens.
type countingFetcher struct{ n int }

func (f *countingFetcher) FetchToken(_ context.Context, tenantID string) (ports.Token, error) {
	f.n++
	return ports.Token{AccessToken: fmt.Sprintf("%s-token-%d", tenantID, f.n), ExpiresIn: time.Hour}, nil
}

func ExampleTokenCache() {
	fetcher := &countingFetcher{}
	tokens := domain.NewTokenCache(&mapTokenStore{tokens: map[string]ports.CachedToken{}}, fetcher, domain.TokenCacheConfig{})
	ctx := context.Background()

	for range 3 {
		tok, err := tokens.Token(ctx, "tenant-1")
		if err != nil {
			fmt.Println("token:", err)
			return
		}
		fmt.Println(tok)
	}
	// Genesys answered 401 to it: drop the token, the next call fetches a
	// new one.
	if err := tokens.Reject(ctx, "tenant-1", "tenant-1-token-1"); err != nil {
		fmt.Println("reject:", err)
		return
	}
	tok, _ := tokens.Token(ctx, "tenant-1")
	fmt.Println(tok)
	fmt.Printf("%+v\n", tokens.Stats())
	// Output:
	// tenant-1-token-1
	// tenant-1-token-1
	// tenant-1-token-1
	// tenant-1-token-2
	// {Hits:2 Misses:2 Fetches:2 FetchErrors:0 Refreshes:0 RefreshErrors:0 StaleServed:0}
}
