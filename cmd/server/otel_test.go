package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/acme/viewersession/internal/switchnet"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// collector is an in-process OTLP/gRPC trace collector.
type collector struct {
	collectorpb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
	wake  chan struct{}
}

func (c *collector) Export(_ context.Context, req *collectorpb.ExportTraceServiceRequest) (*collectorpb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return &collectorpb.ExportTraceServiceResponse{}, nil
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{wake: make(chan struct{}, 1)}
	gs := grpc.NewServer()
	collectorpb.RegisterTraceServiceServer(gs, c)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return c, lis.Addr().String()
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// waitSpans waits until every name in want has a span for session id.
func (c *collector) waitSpans(t *testing.T, id string, want []string, within time.Duration) map[string]*tracepb.Span {
	t.Helper()
	deadline := time.After(within)
	for {
		got := map[string]*tracepb.Span{}
		c.mu.Lock()
		for _, s := range c.spans {
			if spanAttr(s, "vss.session.id") == id {
				got[s.GetName()] = s
			}
		}
		c.mu.Unlock()
		missing := false
		for _, n := range want {
			if got[n] == nil {
				missing = true
			}
		}
		if !missing {
			return got
		}
		select {
		case <-c.wake:
		case <-deadline:
			names := make([]string, 0, len(got))
			for n := range got {
				names = append(names, n)
			}
			t.Fatalf("spans for session %s after %v: %v, want %v", id, within, names, want)
		}
	}
}

// TestOTLPSessionSpans is the operators issue's tracing acceptance: with
// -otel-endpoint, a session's spans from CreateSession to CONNECTED reach an
// OTLP collector, each carrying the session id.
func TestOTLPSessionSpans(t *testing.T) {
	col, addr := startCollector(t)
	const key = "otel-test-key"
	p := startServerEnv(t, []string{"OTEL_BSP_SCHEDULE_DELAY=100"}, "-dev", "-api-keys", key, "-otel-endpoint", "http://"+addr)
	cc := dial(t, p.grpcAddr)
	waitServing(t, p, healthpb.NewHealthClient(cc))

	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+key)
	cs, err := vspb.NewViewerSessionServiceClient(cc).CreateSession(ctx, &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Name: "demo-camera"}, ViewerId: "otel"})
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimPrefix(cs.GetSession().GetName(), "sessions/")
	lo, err := switchnet.New("127.0.0.1") // loopback only, the machine's network unwatched
	if err != nil {
		t.Fatal(err)
	}
	app, err := viewerclient.New(viewerclient.Config{
		Conn: cc, Session: cs.GetSession().GetName(), Token: cs.GetSessionToken(),
		IceServers: cs.GetSession().GetIceServers(), Net: lo,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	if _, err := app.WaitEvent(wctx, func(e *vspb.SessionEvent) bool { return e.GetType() == vspb.EventType_EVENT_TYPE_MEDIA_FLOWING }); err != nil {
		t.Fatalf("no MEDIA_FLOWING: %v", err)
	}

	spans := col.waitSpans(t, id, []string{
		"viewersession.v1.ViewerSessionService/CreateSession",
		"session.attempt", "session.answer", "session.connect", "session.first_video",
	}, 20*time.Second)
	create := spans["viewersession.v1.ViewerSessionService/CreateSession"]
	connect := spans["session.connect"]
	if connect.GetEndTimeUnixNano() < create.GetStartTimeUnixNano() {
		t.Errorf("session.connect ended before CreateSession started")
	}
	if spanAttr(connect, "vss.outcome") != "connected" {
		t.Errorf("session.connect outcome = %q, want connected", spanAttr(connect, "vss.outcome"))
	}
	for name, s := range spans {
		t.Logf("%-55s %6.1f ms", name, float64(s.GetEndTimeUnixNano()-s.GetStartTimeUnixNano())/1e6)
	}
}
