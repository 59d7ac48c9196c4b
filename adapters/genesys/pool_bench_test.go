package genesys_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/adapters/memory"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/genesystest"
)

// rateLimitedAPI stands in for a Genesys API host that takes limit requests
// per bearer token per window and answers 429, with Retry-After: 1, beyond
// that, as Genesys limits each client-credentials token. Windows are fixed,
// keyed by when a request arrives; a zero window never ends, so that each
// token gets limit requests in all. It is safe for concurrent use.
type rateLimitedAPI struct {
	*httptest.Server
	limit  int
	window time.Duration

	accepted, limited atomic.Int64

	mu     sync.Mutex
	counts map[string]windowCount // Authorization → its requests
}

// windowCount is how many requests a token made in a window.
type windowCount struct {
	window int64
	n      int
}

func newRateLimitedAPI(tb testing.TB, limit int, window time.Duration) *rateLimitedAPI {
	tb.Helper()
	s := &rateLimitedAPI{limit: limit, window: window, counts: map[string]windowCount{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// spend uses up token's requests for the current window.
func (s *rateLimitedAPI) spend(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var window int64
	if s.window > 0 {
		window = time.Now().UnixNano() / int64(s.window)
	}
	s.counts["Bearer "+token] = windowCount{window: window, n: s.limit}
}

func (s *rateLimitedAPI) serve(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	var window int64
	if s.window > 0 {
		window = time.Now().UnixNano() / int64(s.window)
	}
	auth := r.Header.Get("Authorization")
	s.mu.Lock()
	c := s.counts[auth]
	if c.window != window {
		c = windowCount{window: window}
	}
	c.n++
	s.counts[auth] = c
	s.mu.Unlock()
	if c.n > s.limit {
		s.limited.Add(1)
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	s.accepted.Add(1)
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"id":"c0ffee"}`)
}

// poolFixture is a deliverer for tenant acme over a real token cache with
// a pool of tokens, logging in at a login stand-in, posting to a
// rate-limited API stand-in.
type poolFixture struct {
	login  *genesystest.Login
	api    *rateLimitedAPI
	tokens *domain.TokenCache
	d      *genesys.Deliverer
}

func newPoolFixture(tb testing.TB, pool, limit int, window time.Duration, cfg genesys.DelivererConfig) *poolFixture {
	tb.Helper()
	f := &poolFixture{
		login: genesystest.NewLogin(tb, "tok", map[string]string{"id": "secret"}),
		api:   newRateLimitedAPI(tb, limit, window),
	}
	fetcher := genesys.NewTokenFetcher(map[string]genesys.Credentials{
		"acme": {LoginURL: f.login.URL, ClientID: "id", ClientSecret: "secret"},
	}, nil)
	f.tokens = domain.NewTokenCache(memory.NewTokenStore(), fetcher, domain.TokenCacheConfig{
		PoolSize: pool,
		Lock:     memory.NewTokenLock(),
	})
	f.d = genesys.NewDeliverer(map[string]genesys.Endpoint{
		"acme": {APIURL: f.api.URL, IntegrationID: integrationID},
	}, f.tokens, cfg)
	return f
}

// The stand-in's limit for BenchmarkDeliverPool: poolBenchLimit requests
// per token per poolBenchWindow, 500/s per token.
const (
	poolBenchLimit  = 50
	poolBenchWindow = 100 * time.Millisecond
)

// BenchmarkDeliverPool delivers one tenant's messages, from concurrent
// workers, through a pool of 1 to 4 tokens to a stand-in that takes
// poolBenchLimit requests per token per poolBenchWindow. Delivered
// messages per second should grow with the pool, about poolBenchLimit ×
// pool per window. A delivery whose 429 no other token of the pool can take
// fails at once (MaxRetryAfter is zero) and counts in rate_limited/op.
func BenchmarkDeliverPool(b *testing.B) {
	for pool := 1; pool <= 4; pool++ {
		b.Run(fmt.Sprintf("pool=%d", pool), func(b *testing.B) { benchmarkDeliverPool(b, pool) })
	}
}

func benchmarkDeliverPool(b *testing.B, pool int) {
	transport := &http.Transport{MaxIdleConnsPerHost: 64}
	b.Cleanup(transport.CloseIdleConnections)
	f := newPoolFixture(b, pool, poolBenchLimit, poolBenchWindow, genesys.DelivererConfig{
		Client: &http.Client{Transport: transport, Timeout: genesys.DefaultTimeout},
	})
	msg := textMessage()
	var delivered, rateLimited atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			err := f.d.Deliver(context.Background(), msg)
			var se *genesys.StatusError
			switch {
			case err == nil:
				delivered.Add(1)
			case errors.As(err, &se) && se.StatusCode == http.StatusTooManyRequests:
				rateLimited.Add(1)
			default:
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(delivered.Load())/elapsed.Seconds(), "delivered/s")
	b.ReportMetric(float64(rateLimited.Load())/float64(b.N), "rate_limited/op")
	b.ReportMetric(float64(f.login.Calls()), "logins")
}
