package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/ports"
)

// foundStore answers every GetToken with the same token, as a warm near
// cache does, so that the benchmark measures the domain alone.
type foundStore struct{ ports.TokenStore }

var warmToken = ports.CachedToken{AccessToken: "token", ExpiresAt: time.Now().Add(time.Hour)}

func (foundStore) GetToken(context.Context, string) (ports.CachedToken, bool, error) {
	return warmToken, true, nil
}

// BenchmarkTokenCacheHit is the domain's share of a token hit: id
// validation, the store call, the hit counter; then with what refresh
// ahead and serve stale add to it (a clock read, the slot's state) and
// with a pool of four.
func BenchmarkTokenCacheHit(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  domain.TokenCacheConfig
	}{
		{"plain", domain.TokenCacheConfig{}},
		{"ahead+stale", domain.TokenCacheConfig{RefreshAhead: time.Minute, StaleMinValidity: 30 * time.Second}},
		{"ahead+stale+pool4", domain.TokenCacheConfig{RefreshAhead: time.Minute, StaleMinValidity: 30 * time.Second, PoolSize: 4}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cache := domain.NewTokenCache(foundStore{}, nil, bc.cfg)
			defer cache.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := cache.Token(ctx, "acme-eu"); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
