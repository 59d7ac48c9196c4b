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
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wa2genesys/connectorcache/app"
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

// Timeouts of the HTTP servers. The read timeout bounds a request's header
// and body together: [serverReadTimeout] sets it.
const (
	readHeaderTimeout = 10 * time.Second
	minReadTimeout    = 30 * time.Second
	idleTimeout       = 2 * time.Minute
)

// serverReadTimeout is the servers' read timeout: 30s, or the header
// timeout plus http.body_timeout when that is longer. The webhook sets its
// own read deadline on each body (http.body_timeout, answered 408); this
// keeps the server's from cutting in before it.
func serverReadTimeout(bodyTimeout time.Duration) time.Duration {
	return max(minReadTimeout, readHeaderTimeout+bodyTimeout)
}

// listener is one of the connector's HTTP servers: the webhook's, and the
// admin one when http.admin_addr is set.
type listener struct {
	name     string
	ln       net.Listener
	srv      *http.Server
	handlers *handlerTracker
}

// serve serves HTTP until ctx ends, then shuts down gracefully: it stops
// accepting on every listener, lets in-flight requests finish within
// http.shutdown_timeout, and closes the store. Requests still running then
// have their connections closed, and the store stays open for up to
// http.shutdown_timeout more while their handlers return, so that none
// commits or releases a claim on a closed store. A listener that fails
// while serving shuts the others down the same way, and serve returns its
// error.
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
	warnAtStart(cfg, log)

	svc, err := newService(ctx, cfg, log, stdout)
	if err != nil {
		return err
	}
	defer func() {
		if err := svc.mod.Close(); err != nil {
			log.Warn("closing the store failed", zap.Error(err))
		}
	}()

	listeners, err := listen(cfg, svc, log)
	if err != nil {
		return err
	}
	tenants := make([]string, 0, len(cfg.Tenants))
	for _, t := range cfg.Tenants {
		tenants = append(tenants, t.ID)
	}
	fields := []zap.Field{zap.String("addr", listeners[0].ln.Addr().String())}
	if len(listeners) > 1 {
		fields = append(fields, zap.String("admin_addr", listeners[1].ln.Addr().String()))
	}
	log.Info("connector listening", append(fields, zap.String("store", cfg.Module.Store),
		zap.String("delivery", cfg.Delivery), zap.Strings("tenants", tenants))...)

	served := make(chan error, len(listeners))
	for _, l := range listeners {
		go func() {
			if err := l.srv.Serve(l.ln); !errors.Is(err, http.ErrServerClosed) {
				served <- fmt.Errorf("serve %s on %s: %w", l.name, l.ln.Addr(), err)
				return
			}
			served <- nil
		}()
	}
	running := len(listeners)
	var serveErr error
	select {
	case serveErr = <-served:
		running--
		log.Error("listener failed", zap.Error(serveErr))
	case <-ctx.Done():
	}

	log.Info("shutting down", zap.Duration("timeout", cfg.HTTP.ShutdownTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Go(func() {
			if err := l.srv.Shutdown(shutdownCtx); err != nil {
				log.Warn("in-flight requests cut short", zap.String("listener", l.name), zap.Error(err))
				_ = l.srv.Close()
			}
		})
	}
	wg.Wait()
	for range running {
		if err := <-served; err != nil {
			log.Warn("server stopped with an error", zap.Error(err))
		}
	}
	// Close does not wait for handlers: wait for them here, so that the
	// deferred close of the store comes after their commits and releases.
	waitCtx, cancelWait := context.WithTimeout(context.Background(), cfg.HTTP.ShutdownTimeout)
	defer cancelWait()
	still := 0
	for _, l := range listeners {
		still += l.handlers.wait(waitCtx)
	}
	if still > 0 {
		log.Warn("handlers still running; closing the store under them", zap.Int("handlers", still))
	}
	log.Info("stopped")
	return serveErr
}

// listen opens the connector's listeners: the webhook's on http.addr
// first, then, when svc has admin routes, the admin one on
// http.admin_addr. On an error it closes the ones it opened.
func listen(cfg Config, svc *service, log *zap.Logger) ([]*listener, error) {
	var out []*listener
	open := func(name, key, addr string, handler http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s (%s): %w", addr, key, err)
		}
		handlers := newHandlerTracker(closeUnreadBodies(handler))
		out = append(out, &listener{name: name, ln: ln, handlers: handlers, srv: &http.Server{
			Handler:           handlers,
			ReadHeaderTimeout: readHeaderTimeout,
			ReadTimeout:       serverReadTimeout(cfg.HTTP.BodyTimeout),
			IdleTimeout:       idleTimeout,
			ErrorLog:          zap.NewStdLog(log.Named("http").With(zap.String("listener", name))),
		}})
		return nil
	}
	err := open("webhook", "http.addr", cfg.HTTP.Addr, svc.handler)
	if err == nil && svc.admin != nil {
		err = open("admin", "http.admin_addr", cfg.HTTP.AdminAddr, svc.admin)
	}
	if err != nil {
		for _, l := range out {
			_ = l.ln.Close()
		}
		return nil, err
	}
	return out, nil
}

// warnAtStart logs what an operator must know about cfg before trusting
// the connector with traffic.
func warnAtStart(cfg Config, log *zap.Logger) {
	if cfg.Dev {
		log.Warn("DEVELOPMENT MODE: app secrets and verify tokens are not checked (dev: true); never expose this connector")
	}
	if cfg.Module.Store == app.StoreMemory && cfg.Delivery == deliveryGenesys {
		log.Warn("memory store with Genesys delivery: run one process only; dedupe records and tokens are not shared between processes")
	}
}

// newLogger returns a JSON logger at level writing to w.
func newLogger(level zapcore.Level, w io.Writer) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core, zap.AddCaller())
}
