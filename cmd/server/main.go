// Command server runs the Viewer Session Service: a gRPC service that runs
// the viewer side of Amazon Kinesis Video Streams WebRTC signaling on behalf
// of thin clients.
//
//	go run ./cmd/server -dev      # everything embedded, on loopback
//	go run ./cmd/server -h        # every flag (each also a VS_* variable)
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/metrics"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/service"
)

// version is stamped at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	code := 0
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "server:", err)
		code = 1
	}
	os.Exit(code)
}

// run serves until ctx ends (SIGTERM/SIGINT), then shuts down in order:
// health NOT_SERVING, stop accepting, GracefulStop and the sessions' drain
// (GOING_AWAY to every app) bounded by the drain timeout (then Stop), the
// web port, close dependencies, stop the HTTP server.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := LoadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	if cfg.PrintVersion {
		fmt.Fprintln(os.Stdout, "server", version)
		return nil
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	raiseFileLimit(log)
	setGCPercent(log, cfg, getenv)
	redis.SetLogger(redisLogger{log: log.With("component", "go-redis")})

	grpcLis, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("listen grpc: %w", err)
	}
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("listen http: %w", err)
	}
	var webLis net.Listener
	if cfg.WebAddr != "" {
		if webLis, err = net.Listen("tcp", cfg.WebAddr); err != nil {
			grpcLis.Close()
			httpLis.Close()
			return fmt.Errorf("listen web: %w", err)
		}
	}
	closeListeners := func() {
		grpcLis.Close()
		httpLis.Close()
		if webLis != nil {
			webLis.Close()
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tp, err := newTracerProvider(ctx, cfg)
	if err != nil {
		closeListeners()
		return err
	}
	mx := metrics.New(reg)
	d, err := build(ctx, cfg, log, reg, mx, observer(mx, tp))
	if err != nil {
		closeListeners()
		return err
	}
	if d.parts.Auth.Keys() == 0 {
		log.Warn("no API keys configured (-api-keys-file, VS_API_KEYS): backend RPCs will be refused")
	}

	tlsCfg, err := serverTLS(cfg, log)
	if err != nil {
		closeListeners()
		d.close(context.WithoutCancel(ctx), log)
		return err
	}
	mw := service.NewInterceptors(log, reg)
	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(service.Codec()),
		grpc.MaxConcurrentStreams(uint32(min(cfg.MaxConcurrentStreams, 1<<31))),
		grpc.ChainUnaryInterceptor(mw.Unary()...),
		grpc.ChainStreamInterceptor(mw.Stream()...),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    cfg.KeepaliveTime,
			Timeout: cfg.KeepaliveTimeout,
		}),
	}
	if tlsCfg != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gopts = append(gopts, tracingOptions(tp)...)
	svc := d.parts.Server
	gopts = append(gopts, grpc.InTapHandle(mw.Tap(svc.Tap)))
	gs := grpc.NewServer(gopts...)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	vspb.RegisterViewerSessionServiceServer(gs, svc)
	reflection.Register(gs)

	// The web port has a grpc.Server of its own (vanguard serves it through
	// ServeHTTP), with the same service, interceptors, health and
	// reflection: the native port keeps grpc-go's transport untouched.
	var web *webServer
	if webLis != nil {
		wgs := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodecV2(service.Codec()), grpc.ChainUnaryInterceptor(mw.Unary()...),
			grpc.ChainStreamInterceptor(mw.Stream()...)}, tracingOptions(tp)...)...)
		healthpb.RegisterHealthServer(wgs, hs)
		vspb.RegisterViewerSessionServiceServer(wgs, svc)
		reflection.Register(wgs)
		var extra http.Handler
		if cfg.Dev && d.emulator != nil && len(d.apiKeys) > 0 {
			// -dev's page mints sessions with the dev key (or the first
			// configured one): -dev only, never in production.
			extra = devWebMux(demoAssets(), devSessionHandler(svc, d.apiKeys[0]))
		}
		if web, err = newWebServer(cfg, webLis, wgs, tlsCfg, extra); err != nil {
			closeListeners()
			d.close(context.WithoutCancel(ctx), log)
			return err
		}
	}
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus(vspb.ViewerSessionService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)

	var ready atomic.Bool
	ready.Store(true)
	startupChecks(ctx, d.checks, log)
	mux := httpMux(reg, &ready, d.checks, cfg.Pprof)
	if cfg.Pprof {
		log.Info("serving Go profiles under /debug/pprof/ on the HTTP port", "http_addr", cfg.HTTPAddr)
	}
	if d.emulator != nil {
		mux.Handle("/dev/emulator/", emulatorProxy(d.emulator))
	}
	hsrv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       cfg.HTTPIdleTimeout,
	}
	if cfg.HTTPTLS {
		// The HTTP port asks for no client certificate: probes and
		// Prometheus present none.
		htc := tlsCfg.Clone()
		htc.ClientAuth, htc.ClientCAs = tls.NoClientCert, nil
		httpLis = tls.NewListener(httpLis, htc)
	}

	var wg sync.WaitGroup
	serveErr := make(chan error, 3)
	wg.Go(func() {
		if err := gs.Serve(grpcLis); err != nil {
			serveErr <- fmt.Errorf("serve grpc: %w", err)
		}
	})
	wg.Go(func() {
		if err := hsrv.Serve(httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- fmt.Errorf("serve http: %w", err)
		}
	})
	webAddr := ""
	if web != nil {
		webAddr = webLis.Addr().String()
		wg.Go(func() {
			if err := web.serve(); err != nil {
				serveErr <- err
			}
		})
	}
	log.Info("serving", "version", version, "grpc_addr", grpcLis.Addr().String(), "http_addr", httpLis.Addr().String(), "web_addr", webAddr,
		"store", storeKind(cfg), "dev", cfg.Dev, "tls", tlsCfg != nil, "mtls", cfg.TLSClientCA != "")
	if cfg.Dev {
		printDevBanner(stderr, d, grpcLis.Addr().String(), httpLis.Addr().String(), webAddr)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drain_timeout", cfg.DrainTimeout)
	case runErr = <-serveErr:
		log.Error("server failed; shutting down", "error", runErr)
	}

	// 1. Tell load balancers and probes first.
	ready.Store(false)
	hs.Shutdown()
	if web != nil {
		// Browsers reuse keep-alive connections, through a load balancer
		// too: close each after its current response, so the calls that
		// resume a session land on another replica (10.6 s to the
		// takeover with them kept, 110 ms without, measured).
		web.http.SetKeepAlivesEnabled(false)
	}
	// 2+3. Tell apps to move (GOING_AWAY ends their streams OK) and wait for
	// their sessions to be taken over elsewhere, stop accepting, let
	// in-flight RPCs finish: all within the drain timeout.
	// GracefulStop starts at once: clients get an HTTP/2 GOAWAY, so an app
	// told to reconnect cannot land here again over its old connection.
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	defer cancelDrain()
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	drained := make(chan struct{})
	go func() {
		d.manager.Drain(drainCtx)
		<-stopped
		close(drained)
	}()
	timer := time.NewTimer(cfg.DrainTimeout)
	select {
	case <-drained:
		timer.Stop()
	case <-timer.C:
		log.Warn("drain timeout reached; cutting remaining streams")
		gs.Stop()
		<-drained
	}
	// The web port stops after the sessions drained: its streams are served
	// through ServeHTTP, which GracefulStop would cut at once, before
	// browsers see GOING_AWAY.
	if web != nil {
		web.shutdown(drainCtx, log)
	}
	// 4. Close dependencies (sessions end, clientIds go into cooldown), then
	// the HTTP server (metrics stay scrapable until the end).
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	d.close(shutdownCtx, log)
	if tp != nil {
		if err := tp.Shutdown(shutdownCtx); err != nil {
			log.Warn("flush traces", "error", err)
		}
	}
	if err := hsrv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "error", err)
	}
	wg.Wait()
	log.Info("stopped")
	return runErr
}

func storeKind(cfg Config) string {
	if cfg.RedisURL != "" {
		return "redis"
	}
	return "memory"
}

// httpMux serves /metrics (Prometheus text), /healthz (liveness: the process
// runs) and /readyz (readiness: 503 with the reasons once shutdown has begun
// or while a dependency in checks fails), and with withPprof Go's profiles
// under /debug/pprof/.
func httpMux(reg *prometheus.Registry, ready *atomic.Bool, checks []readinessCheck, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index) // heap, goroutine, allocs, ... by name
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", readyHandler(ready, checks))
	return mux
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText logs durations as Go duration strings ("20s"), not as
// raw nanoseconds (20000000000), in both formats.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// redisLogger sends go-redis's own log lines (pool and dial errors during
// an outage) through slog, so the JSON log stays JSON.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

// printDevBanner tells a new user what runs and what to try next.
func printDevBanner(w io.Writer, d *deps, grpcAddr, httpAddr, webAddr string) {
	if d.emulator == nil || d.devKey == "" {
		return // -kvs-endpoint or configured keys: nothing generated to show
	}
	web := "off (-web-addr)"
	if webAddr != "" {
		web = "http://" + webAddr + "/ (the demo viewer page; Connect and gRPC-Web for browsers)"
	}
	fmt.Fprintf(w, `
Viewer Session Service (dev mode): everything in memory, on loopback.
  gRPC            %[1]s
  browsers        %[6]s
  metrics/health  http://%[2]s/metrics
  KVS emulator    %[3]s (channel %[4]q with a simulated camera; faults at http://%[2]s/dev/emulator/)
  dev API key     %[5]s

Next, in another terminal:
  export KEY=%[5]s
  go run ./cmd/viewerctl watch -addr %[1]s -api-key "$KEY" -channel %[4]s -duration 10s
  go run ./cmd/viewerctl watch -addr %[1]s -dev-http http://%[2]s -api-key "$KEY" -channel %[4]s -fault no-answer -answer-timeout 5s -retry-delay 2s -duration 20s
  grpcurl -plaintext %[1]s list

`, grpcAddr, httpAddr, d.emulator.Endpoint(), DemoChannel, d.devKey, web)
}

// emulatorProxy serves the embedded emulator's admin API (faults,
// counters) under /dev/emulator/ on the HTTP port, so viewerctl -fault needs
// only the server's address. -dev only: the admin API is unauthenticated.
func emulatorProxy(emu *kvsemu.Emulator) http.Handler {
	target, _ := url.Parse(emu.AdminURL())
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme, r.Out.URL.Host = target.Scheme, target.Host
			r.Out.URL.Path = target.Path + strings.TrimPrefix(r.In.URL.Path, "/dev/emulator")
			r.Out.Host = target.Host
		},
		Transport: emu.HTTPClient().Transport,
	}
	return rp
}
