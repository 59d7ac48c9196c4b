package memory_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/ports"
)

// fastClock runs a thousand times faster than the wall clock, so that a
// benchmark's expired claims are swept during the run and the store stays
// the size a long-running process sees.
func fastClock() func() time.Time {
	start := time.Now()
	return func() time.Time { return start.Add(time.Since(start) * 1000) }
}

// BenchmarkMemoryClaim measures claiming a new message, the path every
// inbound message takes.
func BenchmarkMemoryClaim(b *testing.B) {
	s := memory.NewDedupeStore(memory.WithClock(fastClock()))
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			msg := "wamid." + strconv.FormatUint(next.Add(1), 10)
			st, err := s.Claim(b.Context(), "tenant", msg, "owner", 5*time.Minute)
			if err != nil || st != ports.ClaimAcquired {
				b.Errorf("Claim(%s) = %d, %v; want ClaimAcquired", msg, st, err)
				return
			}
		}
	})
}

// BenchmarkMemoryTokenGet measures a token cache hit.
func BenchmarkMemoryTokenGet(b *testing.B) {
	const tenants = 64
	s := memory.NewTokenStore()
	for i := range tenants {
		tok := ports.CachedToken{AccessToken: "token", ExpiresAt: time.Now().Add(time.Hour)}
		if err := s.PutToken(b.Context(), fmt.Sprintf("tenant-%d", i), tok, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		tenant := fmt.Sprintf("tenant-%d", next.Add(1)%tenants)
		for pb.Next() {
			if _, found, err := s.GetToken(b.Context(), tenant); err != nil || !found {
				b.Errorf("GetToken(%s) = found %v, %v; want a hit", tenant, found, err)
				return
			}
		}
	})
}
