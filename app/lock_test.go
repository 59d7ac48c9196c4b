package app_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/ports"
)

// slowFetcher is an auth service that takes a while to answer, as a real
// one does, so that every replica's miss overlaps the first fetch.
type slowFetcher struct {
	fakeFetcher
	delay time.Duration
}

func (f *slowFetcher) FetchToken(ctx context.Context, tenant string) (ports.Token, error) {
	time.Sleep(f.delay)
	return f.fakeFetcher.FetchToken(ctx, tenant)
}

// TestReplicasFetchOncePerTenant: three replicas sharing Redis, each looking
// up ten cold tenants a thousand times at once, call the auth service
// exactly once per tenant.
func TestReplicasFetchOncePerTenant(t *testing.T) {
	url := redistest.SharedURL(t)
	auth := &slowFetcher{fakeFetcher: fakeFetcher{token: "shared-token", expiresIn: time.Hour}, delay: 50 * time.Millisecond}
	const replicas, tenants, lookups = 3, 10, 1000

	var mods []*app.Module
	for range replicas {
		mods = append(mods, newModule(t, redisConfig(t, url), nil, auth))
	}
	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%d", contract.TenantID(t), i)
	}

	var wg sync.WaitGroup
	errs := make(chan error, replicas*tenants*lookups)
	for _, mod := range mods {
		for _, id := range ids {
			for range lookups / 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 10 {
						if tok, err := mod.Tokens.Token(context.Background(), id); err != nil || tok != "shared-token" {
							errs <- fmt.Errorf("Token(%s) = %q, %v", id, tok, err)
							return
						}
					}
				}()
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := auth.calls.Load(); got != tenants {
		t.Errorf("auth calls = %d, want exactly %d (one per tenant across %d replicas)", got, tenants, replicas)
	}
}

// TestFetchLockHolderDies: a lock left by a process that died mid-fetch
// expires, and another process fetches then.
func TestFetchLockHolderDies(t *testing.T) {
	url := redistest.SharedURL(t)
	tenant := contract.TenantID(t)
	cfg := redisConfig(t, url)
	cfg.Token.LockTTL = 300 * time.Millisecond
	auth := newFetcher("after-the-lock")
	mod := newModule(t, cfg, nil, auth)

	// The dead process's lock.
	rawDo(t, url, "SET", "genesys:token-lock:"+tenant, "dead-owner", "PX", "300")
	start := time.Now()
	tok, err := mod.Tokens.Token(context.Background(), tenant)
	if err != nil || tok != "after-the-lock" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("fetched after %v: the lock held by another process was not waited for", waited)
	}
	if got := auth.calls.Load(); got != 1 {
		t.Errorf("auth calls = %d, want 1", got)
	}
	if n := rawDo(t, url, "EXISTS", "genesys:token-lock:"+tenant); n != int64(0) {
		t.Errorf("the lock is still there after the fetch: EXISTS = %v", n)
	}
}
