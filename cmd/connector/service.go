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
	handler http.Handler
	mod     *app.Module
}

// newService wires the connector that cfg describes. Delivered messages go
// to stdout with delivery: log. Close the returned service's module when
// done with it.
func newService(ctx context.Context, cfg Config, log *zap.Logger, stdout io.Writer) (*service, error) {
	var (
		creds     = map[string]genesys.Credentials{}
		endpoints = map[string]genesys.Endpoint{}
		verify    = map[string]string{}
	)
	for _, t := range cfg.Tenants {
		verify[t.ID] = t.VerifyToken
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
		AppSecret:    []byte(cfg.AppSecret),
		VerifyTokens: verify,
		Dedupe:       mod.Dedupe,
		Deliverer:    deliverer,
		Logger:       log,
		Metrics:      metrics,
	}))
	mux.HandleFunc("GET /healthz", healthHandler)
	mux.Handle("GET /readyz", readyHandler(mod))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return &service{handler: mux, mod: mod}, nil
}
