package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const usage = `usage:
  connector [serve] [-config file]   serve the webhook, health, readiness and metrics
  connector sample [-config file] [-file payload.json] [-url base] [-tenant id] [-n 2]
                                     sign a payload and POST it to a running connector

The config file defaults to $CONNECTOR_CONFIG, else config.yaml; the
environment overrides any key in it.`

// run runs the connector command that args name until ctx ends. Delivered
// messages (delivery: log) and the sample's answers go to stdout; logs go
// to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "sample":
		return sample(ctx, args, stdout, stderr)
	}
	fmt.Fprintln(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func defaultConfigPath() string {
	if p := os.Getenv("CONNECTOR_CONFIG"); p != "" {
		return p
	}
	return "config.yaml"
}

// serve serves HTTP until ctx ends, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish within http.shutdown_timeout,
// and closes the store. Requests still running then have their connections
// closed, and the store stays open for up to http.shutdown_timeout more
// while their handlers return, so that none commits or releases a claim on
// a closed store.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("connector", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, usage) }
	configPath := fs.String("config", defaultConfigPath(), "YAML config file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Module.Log.Level, stderr)
	defer func() { _ = log.Sync() }()

	svc, err := newService(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if err := svc.mod.Close(); err != nil {
			log.Warn("closing the store failed", zap.Error(err))
		}
	}()

	ln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Addr, err)
	}
	handlers := newHandlerTracker(svc.handler)
	srv := &http.Server{
		Handler:           handlers,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	tenants := make([]string, 0, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		tenants = append(tenants, t.ID)
	}
	log.Info("connector listening", zap.String("addr", ln.Addr().String()), zap.String("store", cfg.Module.Store),
		zap.String("delivery", cfg.Delivery), zap.Strings("tenants", tenants))

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", zap.Duration("timeout", cfg.HTTP.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("in-flight requests cut short", zap.Error(err))
		_ = srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("server stopped with an error", zap.Error(err))
	}
	// Close does not wait for handlers: wait for them here, so that the
	// deferred close of the store comes after their commits and releases.
	waitCtx, cancelWait := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancelWait()
	if n := handlers.wait(waitCtx); n > 0 {
		log.Warn("handlers still running; closing the store under them", zap.Int("handlers", n))
	}
	log.Info("stopped")
	return nil
}

// newLogger returns a JSON logger at level writing to w.
func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.AddCaller())
}
