package app_test

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/genesystest"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// slowLogin starts a login stand-in for tenants whose every answer takes
// delay and issues a token valid for lifetime, and returns a fetcher for
// those tenants.
func slowLogin(t *testing.T, tenants []string, delay, lifetime time.Duration) (*genesystest.Login, *genesys.TokenFetcher) {
	t.Helper()
	clients := map[string]string{}
	creds := map[string]genesys.Credentials{}
	login := genesystest.NewLogin(t, "unused", clients)
	for _, id := range tenants {
		clients["client-"+id] = "secret-" + id
		creds[id] = genesys.Credentials{LoginURL: login.URL, ClientID: "client-" + id, ClientSecret: "secret-" + id}
	}
	login.SetAnswer(func(n int64) (int, string, string) {
		time.Sleep(delay)
		return http.StatusOK, "application/json",
			fmt.Sprintf(`{"access_token":"tok-%d","token_type":"bearer","expires_in":%d}`, n, int(lifetime.Seconds()))
	})
	return login, genesys.NewTokenFetcher(creds, nil)
}

// TestRefreshAhead_NoCallerWaitsAcrossReplicas runs three modules on one
// Redis, each handing out a pool of two tokens for each of ten tenants,
// with a login that takes half a second, across the tokens' refresh
// point. After the cold start no Token call misses (no caller waits for
// the login), and the auth service is asked once per slot per refresh,
// whichever replica asks.
func TestRefreshAhead_NoCallerWaitsAcrossReplicas(t *testing.T) {
	const (
		tenants  = 10
		poolSize = 2
		replicas = 3
		login    = 500 * time.Millisecond
		// A token lives 16s; its refresh point is 10s after the login
		// and its refresh-ahead window opens at 7s (RefreshAhead is
		// capped at half the 6s margin).
		lifetime = 16 * time.Second
		margin   = 6 * time.Second
		ahead    = 4 * time.Second
		slots    = tenants * poolSize
	)
	var ids []string
	for i := range tenants {
		ids = append(ids, fmt.Sprintf("acme-%d", i))
	}
	auth, fetcher := slowLogin(t, ids, login, lifetime)
	cfg := redisConfig(t, redistest.Start(t).URL())
	cfg.Token.RefreshMargin = margin
	cfg.Token.RefreshAhead = ahead
	cfg.Token.PoolSize = poolSize
	var mods []*app.Module
	for range replicas {
		mods = append(mods, newModule(t, cfg, nil, fetcher))
	}

	// Cold start: every replica asks for every slot at once.
	start := time.Now()
	var wg sync.WaitGroup
	for _, mod := range mods {
		for _, id := range ids {
			for range poolSize {
				wg.Go(func() {
					if _, err := mod.Tokens.Token(t.Context(), id); err != nil {
						t.Errorf("cold Token(%s): %v", id, err)
					}
				})
			}
		}
	}
	wg.Wait()
	if got := auth.Calls(); got != slots {
		t.Fatalf("logins at the cold start = %d, want %d: one per slot across replicas", got, slots)
	}
	missesBefore := misses(mods)

	// Lookups from every replica until every slot was refreshed once,
	// well before the first refresh point (10.5s after start at the
	// earliest).
	var (
		mu        sync.Mutex
		latencies []time.Duration
		stop      = make(chan struct{})
	)
	for _, mod := range mods {
		for w := range 4 {
			wg.Go(func() {
				var mine []time.Duration
				defer func() {
					mu.Lock()
					defer mu.Unlock()
					latencies = append(latencies, mine...)
				}()
				for i := w; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					began := time.Now()
					if _, err := mod.Tokens.Token(t.Context(), ids[i%tenants]); err != nil {
						t.Errorf("Token: %v", err)
						return
					}
					mine = append(mine, time.Since(began))
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	bound := start.Add(10 * time.Second)
	for auth.Calls() < 2*slots && time.Now().Before(bound) {
		time.Sleep(20 * time.Millisecond)
	}
	// A moment more, for any duplicate refresh to show.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()

	if got := auth.Calls(); got != 2*slots {
		t.Errorf("logins = %d, want %d: one per slot at the cold start and one per slot for the refresh", got, 2*slots)
	}
	if got := misses(mods) - missesBefore; got != 0 {
		t.Errorf("Token misses after the cold start = %d, want 0: a miss waits for the login", got)
	}
	var refreshes uint64
	for _, mod := range mods {
		refreshes += mod.Stats().Tokens.Refreshes
	}
	if refreshes != slots {
		t.Errorf("refreshes ahead that asked the auth service = %d, want %d", refreshes, slots)
	}
	// No miss means no caller waited for the login; the latencies are
	// for the log only.
	slices.Sort(latencies)
	t.Logf("%d lookups; latency p50 %v, p99 %v, max %v (a login takes %v)", len(latencies),
		latencies[len(latencies)/2], latencies[len(latencies)*99/100], latencies[len(latencies)-1], login)
}

func misses(mods []*app.Module) uint64 {
	var n uint64
	for _, mod := range mods {
		n += mod.Stats().Tokens.Misses
	}
	return n
}
