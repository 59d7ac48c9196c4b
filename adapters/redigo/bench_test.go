package redigo_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// benchClient returns a client on tr: on the pool, with an idle connection
// for each of the benchmark's goroutines.
func benchClient(b *testing.B, tr transport) *redigo.Client {
	o := options(redistest.SharedURL(b), tr)
	o.MaxIdle = 64
	o.TestIdleAfter = time.Minute // as configured in production: no PING per command
	return newClient(b, o)
}

// BenchmarkRedisClaim measures claiming a new message, the round trip every
// inbound message makes, on each transport. Claims expire after a minute,
// so that the server does not fill up.
func BenchmarkRedisClaim(b *testing.B) {
	for _, tr := range transports {
		b.Run(string(tr), func(b *testing.B) {
			s := redigo.NewDedupeStore(benchClient(b, tr))
			tenant := contract.TenantID(b)
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					msg := "wamid." + strconv.FormatUint(next.Add(1), 10)
					st, err := s.Claim(b.Context(), tenant, msg, "owner", time.Minute)
					if err != nil || st != ports.ClaimAcquired {
						b.Errorf("Claim(%s) = %d, %v; want ClaimAcquired", msg, st, err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRedisTokenGet measures a token cache hit on each transport.
func BenchmarkRedisTokenGet(b *testing.B) {
	const tenants = 16
	for _, tr := range transports {
		b.Run(string(tr), func(b *testing.B) {
			s := redigo.NewTokenStore(benchClient(b, tr))
			base := contract.TenantID(b)
			for i := range tenants {
				tok := ports.CachedToken{AccessToken: "token", ExpiresAt: time.Now().Add(time.Hour)}
				if err := s.PutToken(b.Context(), fmt.Sprintf("%s-%d", base, i), tok, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Uint64
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				tenant := fmt.Sprintf("%s-%d", base, next.Add(1)%tenants)
				for pb.Next() {
					if _, found, err := s.GetToken(b.Context(), tenant); err != nil || !found {
						b.Errorf("GetToken(%s) = found %v, %v; want a hit", tenant, found, err)
						return
					}
				}
			})
		})
	}
}
