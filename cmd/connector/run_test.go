package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

func TestNewLogger_UsesTheConfiguredLevel(t *testing.T) {
	tests := []struct {
		give        zapcore.Level
		wantEnabled []zapcore.Level
		wantSilent  []zapcore.Level
	}{
		{give: zapcore.DebugLevel, wantEnabled: []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel}},
		{give: zapcore.InfoLevel, wantEnabled: []zapcore.Level{zapcore.InfoLevel, zapcore.WarnLevel}, wantSilent: []zapcore.Level{zapcore.DebugLevel}},
		{give: zapcore.WarnLevel, wantEnabled: []zapcore.Level{zapcore.WarnLevel, zapcore.ErrorLevel}, wantSilent: []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel}},
	}
	for _, tt := range tests {
		log := newLogger(tt.give, io.Discard)
		for _, l := range tt.wantEnabled {
			if !log.Core().Enabled(l) {
				t.Errorf("newLogger(%v) does not log at %v", tt.give, l)
			}
		}
		for _, l := range tt.wantSilent {
			if log.Core().Enabled(l) {
				t.Errorf("newLogger(%v) logs at %v", tt.give, l)
			}
		}
	}
}

// TestServe_AdminListenerServesMetricsApartFromTheWebhook starts the
// connector with http.admin_addr: /metrics, /readyz and /healthz are
// served there and not on http.addr, which serves only the webhook; a
// shutdown stops both.
func TestServe_AdminListenerServesMetricsApartFromTheWebhook(t *testing.T) {
	clearHostEnv(t)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("HTTP_ADMIN_ADDR", "127.0.0.1:0")
	t.Setenv("STORE", "memory")
	path := acmeConfig(t, "")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"-config", path}, io.Discard, pw)
		pw.Close()
	}()
	logs := &syncBuffer{}
	addr, admin := listenAddrs(t, pr, logs)
	if admin == "" || admin == addr {
		t.Fatalf("listening on %q, admin on %q; want two addresses\n%s", addr, admin, logs)
	}

	body := readFixture(t, "text-message.json")
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook/acme", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(e2eAppSecret), body))
	if status, got := do(t, req); status != http.StatusOK || !strings.Contains(got, `"delivered":1`) {
		t.Errorf("POST on the webhook address = %d %s, want 200, delivered", status, got)
	}

	handshake := "/webhook/acme?hub.mode=subscribe&hub.verify_token=" + e2eVerifyToken + "&hub.challenge=42"
	tests := []struct {
		addr, path string
		want       int
	}{
		{admin, "/metrics", http.StatusOK},
		{admin, "/readyz", http.StatusOK},
		{admin, "/healthz", http.StatusOK},
		{admin, handshake, http.StatusNotFound},
		{addr, "/metrics", http.StatusNotFound},
		{addr, "/readyz", http.StatusNotFound},
		{addr, "/healthz", http.StatusNotFound},
		{addr, handshake, http.StatusOK},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(http.MethodGet, "http://"+tt.addr+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if status, _ := do(t, req); status != tt.want {
			t.Errorf("GET %s on %s = %d, want %d", tt.path, tt.addr, status, tt.want)
		}
	}
	req, err = http.NewRequest(http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, metrics := do(t, req); !strings.Contains(metrics, `connector_webhook_requests_total{code="200",method="post"} 1`) {
		t.Errorf("admin /metrics lacks the webhook POST:\n%s", metrics)
	}

	cancel() // as SIGTERM does
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("serve did not return after the shutdown\n%s", logs)
	}
}

// do sends req and returns the answer's status and body.
func do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestServe_AdminAddrInUseFailsAtStart: an admin address that cannot be
// listened on stops the connector at start with an error naming the key.
func TestServe_AdminAddrInUseFailsAtStart(t *testing.T) {
	clearHostEnv(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("HTTP_ADMIN_ADDR", taken.Addr().String())
	t.Setenv("STORE", "memory")
	path := writeConfig(t, fmt.Sprintf(`
delivery: log
whatsapp: {app_secret: %s}
tenants: [{id: acme, verify_token: %s, whatsapp: {waba_ids: [%q]}}]
`, e2eAppSecret, e2eVerifyToken, e2eWABAID))

	err = run(context.Background(), []string{"-config", path}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "http.admin_addr") {
		t.Fatalf("run = %v, want an error naming http.admin_addr", err)
	}
}
