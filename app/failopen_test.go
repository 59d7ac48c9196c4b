package app_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/internal/storeop"
)

// within fails t when f takes longer than bound. bound is a generous upper
// limit on a timeout, never a speed requirement.
func within(t *testing.T, bound time.Duration, what string, f func()) {
	t.Helper()
	start := time.Now()
	f()
	if took := time.Since(start); took > bound {
		t.Errorf("%s took %v, want at most %v: the configured timeouts must bound it", what, took, bound)
	}
}

// TestFailOpen_UnreachableRedis drives the module, built by app.New from
// configuration, against a Redis that refuses connections and against one
// that accepts them and never answers: every call fails open within the
// configured timeouts, warnings are logged, and no secret reaches a log.
func TestFailOpen_UnreachableRedis(t *testing.T) {
	const (
		urlPassword = "hunter2"
		envPassword = "env-secret-pw-9731"
		token       = "secret-token-123"
		timeout     = 200 * time.Millisecond
	)
	// A store call costs at most dial + write + read; a Token miss makes
	// two. The bound adds a generous margin for a loaded machine.
	bound := 2*3*timeout + 2*time.Second

	tests := []struct {
		name         string
		giveAddr     func(testing.TB) string
		giveURL      string // %s is the address
		givePassword string
		wantMasked   bool
	}{
		{
			name:         "closed port",
			giveAddr:     redistest.ClosedAddr,
			giveURL:      "redis://user:" + urlPassword + "@%s",
			givePassword: envPassword,
			wantMasked:   true,
		},
		{
			name:         "hung during AUTH",
			giveAddr:     redistest.HungAddr,
			giveURL:      "redis://user:" + urlPassword + "@%s",
			givePassword: envPassword,
			wantMasked:   true,
		},
		{
			name:         "hung on commands",
			giveAddr:     redistest.HungAddr,
			giveURL:      "redis://%s/0",
			givePassword: "",
		},
		{
			name:         "hung, password only in the URL",
			giveAddr:     redistest.HungAddr,
			giveURL:      "redis://:" + urlPassword + "@%s",
			givePassword: "",
			wantMasked:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			addr := tt.giveAddr(t)
			clearConfigEnv(t)
			t.Setenv("STORE", "redis")
			t.Setenv("REDIS_URL", fmt.Sprintf(tt.giveURL, addr))
			t.Setenv("REDIS_PASSWORD", tt.givePassword)
			t.Setenv("REDIS_DIAL_TIMEOUT", timeout.String())
			t.Setenv("REDIS_READ_TIMEOUT", timeout.String())
			t.Setenv("REDIS_WRITE_TIMEOUT", timeout.String())
			cfg, err := app.LoadConfig("")
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			log, logs := observed()
			fetcher := newFetcher(token)

			var mod *app.Module
			within(t, bound, "New", func() {
				mod, err = app.New(ctx, cfg, log, fetcher)
			})
			if err != nil {
				t.Fatalf("New = %v, want success with Redis unreachable", err)
			}
			t.Cleanup(func() { _ = mod.Close() })

			start := startupEntry(t, logs)
			if start.Level != zapcore.WarnLevel {
				t.Errorf("startup entry level = %v, want warn: %s", start.Level, logText(start))
			}
			loggedURL := fmt.Sprint(start.ContextMap()["redis_url"])
			if !strings.Contains(loggedURL, addr) {
				t.Errorf("logged redis_url %q does not show the address %s", loggedURL, addr)
			}
			if tt.wantMasked && !strings.Contains(loggedURL, "xxxxx") {
				t.Errorf("logged redis_url %q does not show the password masked", loggedURL)
			}

			tenant := contract.TenantID(t)
			within(t, bound, "Token", func() {
				got, err := mod.Tokens.Token(ctx, tenant)
				if err != nil || got != token {
					t.Errorf("Token = %q, %v; want the fetcher's token and nil", got, err)
				}
			})
			if n := fetcher.calls.Load(); n != 1 {
				t.Errorf("fetcher calls = %d, want 1", n)
			}

			var claim *domain.Claim
			within(t, bound, "Claim", func() {
				claim, err = mod.Dedupe.Claim(ctx, tenant, "wamid.committed")
			})
			if err != nil || claim.Status() != domain.ClaimNew {
				t.Fatalf("Claim = %v, %v; want new, nil", claim.Status(), err)
			}
			within(t, bound, "Commit", func() {
				if err := claim.Commit(ctx); err != nil {
					t.Errorf("Commit = %v, want nil", err)
				}
			})

			// This process remembers its own claims: a duplicate reaching it
			// during the outage is still caught.
			within(t, bound, "Claim of the committed message", func() {
				claim, err = mod.Dedupe.Claim(ctx, tenant, "wamid.committed")
			})
			if err != nil || claim.Status() != domain.ClaimDone {
				t.Errorf("Claim of the committed message = %v, %v; want done, nil", claim.Status(), err)
			}

			within(t, bound, "Claim", func() {
				claim, err = mod.Dedupe.Claim(ctx, tenant, "wamid.released")
			})
			if err != nil || claim.Status() != domain.ClaimNew {
				t.Fatalf("Claim = %v, %v; want new, nil", claim.Status(), err)
			}
			within(t, bound, "Release", func() {
				if err := claim.Release(ctx); err != nil {
					t.Errorf("Release = %v, want nil", err)
				}
			})
			within(t, bound, "Claim of the released message", func() {
				claim, err = mod.Dedupe.Claim(ctx, tenant, "wamid.released")
			})
			if err != nil || claim.Status() != domain.ClaimNew {
				t.Errorf("Claim after Release = %v, %v; want new, nil", claim.Status(), err)
			}

			within(t, bound, "Invalidate", func() {
				if err := mod.Tokens.Invalidate(ctx, tenant); err != nil {
					t.Errorf("Invalidate = %v, want nil", err)
				}
			})
			within(t, bound, "Token after Invalidate", func() {
				got, err := mod.Tokens.Token(ctx, tenant)
				if err != nil || got != token {
					t.Errorf("Token = %q, %v; want the fetcher's token and nil", got, err)
				}
			})

			var pingErr error
			within(t, bound, "Ping", func() { pingErr = mod.Ping(ctx) })
			if pingErr == nil {
				t.Error("Ping = nil with Redis unreachable, want an error: health needs the truth")
			} else {
				for _, s := range []string{urlPassword, envPassword} {
					if strings.Contains(pingErr.Error(), s) {
						t.Errorf("Ping error %q holds the password", pingErr)
					}
				}
			}

			failOpen := mod.Stats().FailOpen
			for _, op := range []string{"get_token", "put_token", "claim"} {
				if failOpen[op] == 0 {
					t.Errorf("Stats().FailOpen[%s] = 0, want the failures counted; all: %v", op, failOpen)
				}
			}
			assertFailOpenWarning(t, logs, tenant)
			assertNoSecrets(t, logs, token, urlPassword, envPassword)
		})
	}
}

// assertFailOpenWarning fails unless a warning about a failed store
// operation of tenant was logged.
func assertFailOpenWarning(t *testing.T, logs *observer.ObservedLogs, tenant string) {
	t.Helper()
	for _, e := range logs.FilterLevelExact(zapcore.WarnLevel).All() {
		fields := e.ContextMap()
		if fields["tenant"] == tenant && fields["op"] != nil && fields["error"] != nil {
			return
		}
	}
	t.Errorf("no fail-open warning with op, tenant %s and error was logged; logged: %v", tenant, logs.All())
}

// TestFailOpen_TokenCopyServedDuringAnOutageIsCounted stops Redis after a
// token was cached: the process's copy answers in place of Redis, and that
// answer is a fail-open event like any other, counted and logged.
func TestFailOpen_TokenCopyServedDuringAnOutageIsCounted(t *testing.T) {
	const token = "secret-token-123"
	ctx := context.Background()
	srv := redistest.Start(t)
	cfg := redisConfig(t, srv.URL())
	cfg.Token.LocalMaxAge = time.Millisecond // every Token reads Redis
	log, logs := observed()
	fetcher := newFetcher(token)
	mod := newModule(t, cfg, log, fetcher)
	tenant := contract.TenantID(t)

	if got, err := mod.Tokens.Token(ctx, tenant); err != nil || got != token {
		t.Fatalf("Token = %q, %v; want the fetcher's token", got, err)
	}
	srv.Stop()
	time.Sleep(10 * cfg.Token.LocalMaxAge) // the copy is due for a check

	if got, err := mod.Tokens.Token(ctx, tenant); err != nil || got != token {
		t.Fatalf("Token with Redis down = %q, %v; want the copy", got, err)
	}
	if n := fetcher.calls.Load(); n != 1 {
		t.Errorf("fetcher calls = %d, want 1: the copy answers", n)
	}
	if got := mod.Stats().FailOpen[storeop.GetToken]; got != 1 {
		t.Errorf("Stats().FailOpen[get_token] = %d, want 1: the copy served in place of Redis", got)
	}
	assertFailOpenWarning(t, logs, tenant)
	assertNoSecrets(t, logs, token)
}
