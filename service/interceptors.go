package service

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Interceptors holds the cross-cutting gRPC middleware: panic recovery,
// request logging (method, code, duration) and the gRPC server metrics.
// Create it with NewInterceptors and install Unary and Stream with
// grpc.ChainUnaryInterceptor / grpc.ChainStreamInterceptor.
type Interceptors struct {
	log      *slog.Logger
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// refusals paces the log lines of RESOURCE_EXHAUSTED refusals (a flood
	// must not flood the log too); suppressed counts those not logged.
	refusals   *rate.Limiter
	suppressed atomic.Int64
}

// NewInterceptors registers the gRPC server metrics on reg.
func NewInterceptors(log *slog.Logger, reg prometheus.Registerer) *Interceptors {
	i := &Interceptors{
		log:      log,
		refusals: rate.NewLimiter(5, 20),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total",
			Help: "RPCs completed on the server, by method and status code.",
		}, []string{"grpc_method", "grpc_code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "grpc_server_handling_seconds",
			Help:    "Duration of RPCs until completion (streams: until they end), by method.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 30, 300, 3600},
		}, []string{"grpc_method"}),
	}
	reg.MustRegister(i.handled, i.duration)
	return i
}

// Unary is the chain of unary interceptors, outermost first.
func (i *Interceptors) Unary() []grpc.UnaryServerInterceptor {
	return []grpc.UnaryServerInterceptor{i.observeUnary, checkUnary, i.recoverUnary}
}

// Stream is the stream interceptors: one, which observes the stream, checks
// its messages and turns a panic into INTERNAL (in that order, outermost
// first, as Unary's three). One and not a chain of three: a Connect
// stream's handler goroutine parks under these frames for the stream's
// life, and grpc-go's chain adds two frames per interceptor; in one the
// parked goroutine uses little enough of its stack for the runtime to
// halve it (docs/BENCHMARKS.md (c)).
func (i *Interceptors) Stream() []grpc.StreamServerInterceptor {
	return []grpc.StreamServerInterceptor{i.stream}
}

func (i *Interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := i.recoverStream(srv, &checkedStream{ss}, info, handler)
	i.observe(ss.Context(), info.FullMethod, start, err)
	return err
}

func (i *Interceptors) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	i.observe(ctx, info.FullMethod, start, err)
	return resp, err
}

// Tap wraps a grpc.InTapHandle (Server.Tap) so that the calls it refuses
// before they reach a handler are counted and logged like the others.
func (i *Interceptors) Tap(next tap.ServerInHandle) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		ctx, err := next(ctx, info)
		if err != nil {
			i.observe(ctx, info.FullMethodName, time.Now(), err)
		}
		return ctx, err
	}
}

func (i *Interceptors) observe(ctx context.Context, method string, start time.Time, err error) {
	d := time.Since(start)
	code := status.Code(err)
	i.handled.WithLabelValues(method, code.String()).Inc()
	i.duration.WithLabelValues(method).Observe(d.Seconds())
	level := slog.LevelInfo
	switch code {
	case codes.OK, codes.Canceled:
		if method == "/grpc.health.v1.Health/Check" {
			level = slog.LevelDebug // probes would drown the log
		}
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	default:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", d),
	}
	if code == codes.ResourceExhausted {
		if !i.refusals.Allow() {
			i.suppressed.Add(1) // counted in the metrics above all the same
			return
		}
		if n := i.suppressed.Swap(0); n > 0 {
			attrs = append(attrs, slog.Int64("refusals_not_logged", n))
		}
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", status.Convert(err).Message()))
	}
	i.log.LogAttrs(ctx, level, "rpc", attrs...)
}

// checkUnary refuses a request that did not decode (see Codec).
func checkUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := decodeError(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (i *Interceptors) recoverUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = i.panicked(ctx, info.FullMethod, p)
		}
	}()
	return handler(ctx, req)
}

func (i *Interceptors) recoverStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = i.panicked(ss.Context(), info.FullMethod, p)
		}
	}()
	return handler(srv, ss)
}

// panicked logs a handler panic with its stack and turns it into INTERNAL;
// the panic value stays in the log, never in the client's status.
func (i *Interceptors) panicked(ctx context.Context, method string, p any) error {
	i.log.ErrorContext(ctx, "rpc panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
	return withDetails(codes.Internal, "internal error", &errdetails.ErrorInfo{Domain: Domain, Reason: "INTERNAL"})
}
