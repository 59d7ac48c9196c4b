package main

import (
	"context"
	"io"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/wa2genesys/connectorcache/adapters/genesys"
	"github.com/wa2genesys/connectorcache/adapters/logsink"
	"github.com/wa2genesys/connectorcache/app"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// service is the wired connector: the module, a deliverer, and the HTTP
// routes in front of them.
type service struct {
	// handler serves the webhook listener (http.addr): /webhook/, plus the
	// admin routes when admin is nil.
	handler http.Handler
	// admin serves /healthz, /readyz and /metrics on the admin listener
	// (http.admin_addr); nil when none is configured.
	admin http.Handler
	mod   *app.Module
}

// newService wires the connector that cfg describes. Delivered messages go
// to stdout with delivery: log. Close the returned service's module when
// done with it.
func newService(ctx context.Context, cfg Config, log *zap.Logger, stdout io.Writer) (*service, error) {
	var (
		creds     = map[string]genesys.Credentials{}
		endpoints = map[string]genesys.Endpoint{}
		tenants   = map[string]webhook.Tenant{}
	)
	for _, t := range cfg.Tenants {
		tenants[t.ID] = webhook.Tenant{
			VerifyToken:    t.VerifyToken,
			AppSecret:      []byte(cfg.appSecret(t)),
			WABAIDs:        t.WhatsApp.WABAIDs,
			PhoneNumberIDs: t.WhatsApp.PhoneNumberIDs,
		}
		if cfg.Delivery == deliveryGenesys {
			creds[t.ID] = genesys.Credentials{LoginURL: t.Genesys.LoginURL, ClientID: t.Genesys.ClientID, ClientSecret: t.Genesys.ClientSecret}
			endpoints[t.ID] = genesys.Endpoint{APIURL: t.Genesys.APIURL, IntegrationID: t.Genesys.IntegrationID}
		}
	}
	client := &http.Client{Timeout: cfg.Genesys.Timeout}
	mod, err := app.New(ctx, cfg.Module, log, genesys.NewTokenFetcher(creds, client))
	if err != nil {
		return nil, err
	}

	var deliverer webhook.Deliverer
	switch cfg.Delivery {
	case deliveryLog:
		deliverer = logsink.New(stdout)
	default:
		deliverer = genesys.NewDeliverer(endpoints, mod.Tokens, genesys.DelivererConfig{
			Client:        client,
			MaxRetryAfter: cfg.Genesys.MaxRetryAfter,
		})
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newModuleCollector(mod.Stats),
	)
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		_ = mod.Close()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("/webhook/", webhook.NewHandler(webhook.Config{
		Tenants:           tenants,
		Dedupe:            mod.Dedupe,
		Deliverer:         deliverer,
		Logger:            log,
		Metrics:           metrics,
		MaxInflightBodies: cfg.HTTP.MaxInflightBodies,
		BodyTimeout:       cfg.HTTP.BodyTimeout,
		RequestTimeout:    cfg.HTTP.RequestTimeout,
		MaxMessages:       cfg.Webhook.MaxMessages,
	}))
	svc := &service{handler: mux, mod: mod}
	admin := mux
	if cfg.HTTP.AdminAddr != "" {
		admin = http.NewServeMux()
		svc.admin = admin
	}
	admin.HandleFunc("GET /healthz", healthHandler)
	admin.Handle("GET /readyz", readyHandler(mod))
	admin.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return svc, nil
}
