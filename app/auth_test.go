package app_test

import (
	"context"
	"testing"

	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// TestNew_LoneNameInTheURLIsThePassword loads redis.url and
// redis.password from the environment, as a deployment does, and connects
// to a redis-server that requires a password: a lone name in the URL's
// user info is that password, as redis-cli takes it, unless redis.password
// is set, which makes it the user.
func TestNew_LoneNameInTheURLIsThePassword(t *testing.T) {
	const (
		password = "Lone-Passw0rd-In-The-URL"
		wrong    = "Not-The-Passw0rd"
	)
	srv := redistest.Start(t, "--requirepass", password)
	tests := []struct {
		name         string
		giveURL      string
		givePassword string // redis.password
		wantUp       bool
	}{
		{name: "lone name, the password", giveURL: "redis://" + password + "@" + srv.Addr(), wantUp: true},
		{name: "lone name, a wrong password", giveURL: "redis://" + wrong + "@" + srv.Addr(), wantUp: false},
		{name: "empty name and the password", giveURL: "redis://:" + password + "@" + srv.Addr(), wantUp: true},
		{name: "default user named, redis.password set", giveURL: "redis://default@" + srv.Addr(), givePassword: password, wantUp: true},
		{name: "lone name replaced by redis.password", giveURL: "redis://" + wrong + "@" + srv.Addr(), givePassword: password, wantUp: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadWithEnv(t, map[string]string{
				"STORE":               app.StoreRedis,
				"REDIS_URL":           tt.giveURL,
				"REDIS_PASSWORD":      tt.givePassword,
				"REDIS_DIAL_TIMEOUT":  "5s",
				"REDIS_READ_TIMEOUT":  "5s",
				"REDIS_WRITE_TIMEOUT": "5s",
			})
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			log, logs := observed()
			mod := newModule(t, cfg, log, newFetcher("tok"))

			err = mod.Ping(context.Background())
			if tt.wantUp {
				if err != nil {
					t.Fatalf("Ping = %v, want nil", err)
				}
				switch claim, err := mod.Dedupe.Claim(context.Background(), contract.TenantID(t), "wamid.1"); {
				case err != nil:
					t.Errorf("Claim: %v", err)
				case claim.Status() != domain.ClaimNew:
					t.Errorf("Claim = %v, want new", claim.Status())
				}
				if fo := mod.Stats().FailOpen; len(fo) != 0 {
					t.Errorf("Stats().FailOpen = %v, want none", fo)
				}
			} else if err == nil {
				t.Error("Ping = nil, want an authentication error")
			}
			assertNoSecrets(t, logs, password, wrong)
		})
	}
}

// TestNew_MemoryStoreIsBounded checks that memory.max_entries reaches the
// memory store: with a bound of 1, a second message makes the store forget
// the first, which is then new again.
func TestNew_MemoryStoreIsBounded(t *testing.T) {
	tests := []struct {
		name       string
		giveMax    int
		wantStatus domain.ClaimStatus // of the first message, claimed again
	}{
		{name: "bound of 1", giveMax: 1, wantStatus: domain.ClaimNew},
		{name: "default bound", giveMax: 0, wantStatus: domain.ClaimDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig(t)
			cfg.Store = app.StoreMemory
			cfg.Memory.MaxEntries = tt.giveMax
			mod := newModule(t, cfg, nil, newFetcher("tok"))
			ctx := context.Background()
			for _, msg := range []string{"wamid.1", "wamid.2"} {
				claim, err := mod.Dedupe.Claim(ctx, "tenant", msg)
				if err != nil {
					t.Fatalf("Claim(%s): %v", msg, err)
				}
				if claim.Status() != domain.ClaimNew {
					t.Fatalf("Claim(%s) = %v, want new", msg, claim.Status())
				}
				if err := claim.Commit(ctx); err != nil {
					t.Fatalf("Commit(%s): %v", msg, err)
				}
			}
			claim, err := mod.Dedupe.Claim(ctx, "tenant", "wamid.1")
			if err != nil {
				t.Fatalf("Claim(wamid.1) again: %v", err)
			}
			if claim.Status() != tt.wantStatus {
				t.Errorf("Claim(wamid.1) again = %v, want %v", claim.Status(), tt.wantStatus)
			}
		})
	}
}
