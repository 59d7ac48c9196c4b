package app_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// TestNew_RedisTLS connects over rediss:// to a TLS-only redis-server,
// trusting the test CA through redis.tls_ca_file.
func TestNew_RedisTLS(t *testing.T) {
	const password = "tls-pass-8812"
	pki := redistest.NewPKI(t)
	caFile := pki.CAFile
	srv := redistest.StartTLS(t, pki.CertFile, pki.KeyFile, caFile, "--requirepass", password)
	tlsURL := "rediss://:" + password + "@" + srv.Addr()

	tests := []struct {
		name   string
		giveCA string
		wantUp bool
	}{
		{name: "trusted CA", giveCA: caFile, wantUp: true},
		// The system roots do not know the test CA: the handshake fails,
		// and the module fails open.
		{name: "system roots", giveCA: "", wantUp: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			clearConfigEnv(t)
			t.Setenv("REDIS_URL", tlsURL)
			t.Setenv("REDIS_TLS_CA_FILE", tt.giveCA)
			cfg, err := app.LoadConfig("")
			if err != nil {
				t.Fatal(err)
			}
			log, logs := observed()
			mod := newModule(t, cfg, log, newFetcher("tls-token"))
			tenant := contract.TenantID(t)

			pingErr := mod.Ping(ctx)
			claim, err := mod.Dedupe.Claim(ctx, tenant, "wamid.tls")
			if err != nil || claim.Status() != domain.ClaimNew {
				t.Fatalf("Claim = %v, %v; want new either way", claim.Status(), err)
			}
			start := startupEntry(t, logs)

			if tt.wantUp {
				if pingErr != nil {
					t.Errorf("Ping = %v, want nil", pingErr)
				}
				if start.Level != zapcore.InfoLevel {
					t.Errorf("startup entry = %s, want info", logText(start))
				}
				if fo := mod.Stats().FailOpen; len(fo) != 0 {
					t.Errorf("Stats().FailOpen = %v, want none", fo)
				}
				key := redigo.DedupeKey(tenant, "wamid.tls")
				c, err := redis.DialURL(tlsURL, redis.DialTLSConfig(mustTLSConfig(t, caFile)))
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if n, _ := redis.Int(c.Do("EXISTS", key)); n != 1 {
					t.Errorf("EXISTS %s = %d, want 1", key, n)
				}
			} else {
				if pingErr == nil {
					t.Error("Ping = nil with an untrusted certificate, want an error")
				}
				if start.Level != zapcore.WarnLevel {
					t.Errorf("startup entry = %s, want warn", logText(start))
				}
				assertFailOpenWarning(t, logs, tenant)
			}
			assertNoSecrets(t, logs, password, "tls-token")
		})
	}
}

// mustTLSConfig returns a client TLS configuration trusting the CA in caFile.
func mustTLSConfig(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in the CA file")
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
}
