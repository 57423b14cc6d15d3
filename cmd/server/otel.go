package main

import (
	"context"
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/acme/viewersession/metrics"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/tracing"
)

// newTracerProvider exports spans over OTLP/gRPC to -otel-endpoint
// (http:// without TLS, https:// with it); nil when it is empty. The
// exporter connects lazily: an unreachable collector costs dropped spans,
// never a failed start or a slow RPC.
func newTracerProvider(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	if cfg.OTelEndpoint == "" {
		return nil, nil
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.OTelEndpoint))
	if err != nil {
		return nil, fmt.Errorf("-otel-endpoint: %w", err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("viewer-session-service"), semconv.ServiceVersion(version))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// observer is what the session manager reports to: the metrics, and with
// tracing on, the timeline's spans too.
func observer(mx *metrics.Metrics, tp *sdktrace.TracerProvider) sessionmgr.Observer {
	if tp == nil {
		return mx
	}
	return tracedObserver{Metrics: mx, tr: tracing.New(tp)}
}

type tracedObserver struct {
	*metrics.Metrics
	tr *tracing.Tracer
}

var _ sessionmgr.EventObserver = tracedObserver{}

func (o tracedObserver) SessionEvent(id sessionmgr.SessionID, channelARN string, e sessionmgr.Event) {
	o.tr.SessionEvent(id, channelARN, e)
}

// tracingOptions are the gRPC server options that make a span per RPC
// (otelgrpc) carrying the session id it is about.
func tracingOptions(tp *sdktrace.TracerProvider) []grpc.ServerOption {
	if tp == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			resp, err := h(ctx, req)
			tagSession(ctx, req)
			tagSession(ctx, resp)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, &taggingStream{ServerStream: ss})
		}),
	}
}

// taggingStream tags the RPC's span with the session its first message
// names (WatchSession's request, Connect's join).
type taggingStream struct {
	grpc.ServerStream
	tagged bool
}

func (s *taggingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil && !s.tagged {
		s.tagged = true
		tagSession(s.Context(), m)
		if c, ok := m.(*vspb.ConnectRequest); ok {
			tagSession(s.Context(), c.GetJoin())
		}
	}
	return err
}

// tagSession sets vss.session.id on ctx's span from a message's session
// name (a request's name, a response's session).
func tagSession(ctx context.Context, m any) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() || m == nil {
		return
	}
	var name string
	switch v := m.(type) {
	case interface{ GetSession() *vspb.Session }:
		name = v.GetSession().GetName()
	case interface{ GetName() string }:
		name = v.GetName()
	}
	if id, ok := strings.CutPrefix(name, "sessions/"); ok && id != "" {
		span.SetAttributes(tracing.KeySessionID.String(id))
	}
}
