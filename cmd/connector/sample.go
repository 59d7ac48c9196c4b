package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// sample signs a webhook payload with the tenant's app secret and POSTs
// it to a running connector n times, printing each answer: with n = 2 the
// first is delivered and the second skipped as a duplicate.
func sample(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connector sample", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", defaultConfigPath(), "YAML config file (app secret, tenants, http.addr)")
	file := fs.String("file", "testdata/whatsapp/text-message.json", "webhook payload to send")
	base := fs.String("url", "", "connector base URL; default from http.addr")
	tenant := fs.String("tenant", "", "tenant id; default the first configured")
	n := fs.Int("n", 2, "how many times to send it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	body, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	if *base == "" {
		*base = localURL(cfg.HTTP.Addr)
	}
	if *tenant == "" {
		*tenant = cfg.Tenants[0].ID
	}
	ti := slices.IndexFunc(cfg.Tenants, func(t TenantConfig) bool { return t.ID == *tenant })
	if ti < 0 {
		return fmt.Errorf("tenant %q is not configured", *tenant)
	}
	secret, secretKey := cfg.appSecret(cfg.Tenants[ti]), "whatsapp.app_secret"
	if cfg.Tenants[ti].WhatsApp.AppSecret != "" {
		secretKey = "the tenant's whatsapp.app_secret"
	}
	target := strings.TrimSuffix(*base, "/") + "/webhook/" + url.PathEscape(*tenant)
	sig := webhook.Sign([]byte(secret), body)
	client := &http.Client{Timeout: 30 * time.Second}

	fmt.Fprintf(stdout, "POST %s  (%s, signed with %s)\n", target, *file, secretKey)
	failed := 0
	for i := 1; i <= *n; i++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(webhook.SignatureHeader, sig)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("is the connector running (make run)? %w", err)
		}
		answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		fmt.Fprintf(stdout, "#%d: %s %s\n", i, resp.Status, strings.TrimSpace(string(answer)))
		if resp.StatusCode != http.StatusOK {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d requests not answered 200", failed, *n)
	}
	return nil
}

// localURL is the URL at which this machine reaches a server listening on
// addr: ":8080" gives http://localhost:8080.
func localURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
