package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/adapters/redigo"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/domain"
	"github.com/wa2genesys/connectorcache/internal/redistest"
)

// testPKI writes a fresh CA and a server certificate for 127.0.0.1, signed
// by it, to dir, and returns the files' paths.
func testPKI(t *testing.T, dir string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "connectorcache test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}

	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}

	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("server.pem", "CERTIFICATE", srvDER), write("server-key.pem", "EC PRIVATE KEY", keyDER)
}

// TestNew_RedisTLS connects over rediss:// to a TLS-only redis-server,
// trusting the test CA through redis.tls_ca_file.
func TestNew_RedisTLS(t *testing.T) {
	const password = "tls-pass-8812"
	dir := t.TempDir()
	caFile, certFile, keyFile := testPKI(t, dir)
	srv := redistest.StartTLS(t, certFile, keyFile, caFile, "--requirepass", password)
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
			tenant := tenantID(t)

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
