package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
)

// Acceptance 2: three replicas serve one session as one. The subtests
// share one cluster (they leave no live session behind).
func TestAcrossReplicas(t *testing.T) {
	c := newCluster(t)
	a, b, cc := c.replicas[0], c.replicas[1], c.replicas[2]

	// Created on A, the app on B (its join and messages forwarded to A), a
	// backend watching on C: C sees every event, in order, exactly as the
	// app saw it.
	t.Run("one_timeline", func(t *testing.T) {
		arn := c.channel(t, "timeline")
		cs := create(t, a.api, arn, "alice")
		name := cs.GetSession().GetName()
		w := watchBackend(t, cc.api, name, 0)
		app := startApp(t, "alice", b.conn, cs, viewerclient.ModeConnect)
		app.wait(t, 30*time.Second, "CONNECTED", connected)
		app.rtp(t, 30, 20*time.Second)

		closed := closeSession(t, a.api, name) // A forwards the close to the owner, B
		if err := app.ended(t, 15*time.Second); err != nil {
			t.Fatalf("thin client Run = %v after CloseSession, want nil", err)
		}
		watched := w.wait(t, 15*time.Second)
		seen := app.c.Events()
		if err := contiguous(watched); err != nil {
			t.Errorf("C's timeline: %v", err)
		}
		if err := sameTimeline(seen, watched); err != nil {
			t.Errorf("C's timeline vs the app's on B: %v", err)
		}
		if last := watched[len(watched)-1]; last.GetSequence() != closed.GetLastSequence() || last.GetType() != vspb.EventType_EVENT_TYPE_CLOSED {
			t.Errorf("C's timeline ends with %v #%d, want CLOSED #%d", last.GetType(), last.GetSequence(), closed.GetLastSequence())
		}
		// A lives: the join on B is forwarded to it, nothing moves.
		if slices.ContainsFunc(seen, isType(vspb.EventType_EVENT_TYPE_OWNER_CHANGED)) {
			t.Errorf("OWNER_CHANGED: the join on B took the session over from a live A (timeline:%s)", summary(seen))
		}
		if st := app.c.Stats(); st.SequenceGaps != 0 {
			t.Errorf("the app saw %d sequence gaps", st.SequenceGaps)
		}
		t.Logf("summary: %d events identical on A->B (app) and C (backend watch), %d RTP packets; timeline:%s",
			len(watched), app.c.Stats().PacketsReceived, summary(watched))
	})

	// The channel limit counts the sessions of every replica.
	t.Run("channel_limit", func(t *testing.T) {
		arn := c.channel(t, "full")
		var names []string
		for i := range 10 {
			r := c.replicas[i%3]
			names = append(names, create(t, r.api, arn, fmt.Sprintf("v%d", i)).GetSession().GetName())
		}
		for _, r := range c.replicas {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			_, err := r.api.CreateSession(backend(ctx), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: arn}, ViewerId: "eleventh"})
			cancel()
			if status.Code(err) != codes.ResourceExhausted || reason(err) != "CHANNEL_FULL" {
				t.Errorf("11th CreateSession on %s = %v (reason %q), want RESOURCE_EXHAUSTED CHANNEL_FULL", r.id, err, reason(err))
			}
		}
		// A slot freed on one replica is free on the others.
		closeSession(t, b.api, names[0])
		names[0] = create(t, cc.api, arn, "eleventh").GetSession().GetName()
		for i, n := range names {
			closeSession(t, c.replicas[(i+1)%3].api, n)
		}
		t.Logf("summary: 10 sessions over A/B/C; the 11th refused CHANNEL_FULL on A, B and C; a slot freed on B reused on C")
	})

	// A browser-style app: its Signal calls go round-robin to A, B and C
	// while its WatchSession stays on C. It reaches CONNECTED.
	t.Run("signal_round_robin", func(t *testing.T) {
		arn := c.channel(t, "browser")
		cs := create(t, a.api, arn, "browser")
		served := &peerCounter{n: make(map[string]int)}
		rr, _ := balancedConn(t, "round_robin", false, c.replicas,
			grpc.WithChainUnaryInterceptor(served.unary(vspb.ViewerSessionService_Signal_FullMethodName)),
			grpc.WithChainStreamInterceptor(pinStream(vspb.ViewerSessionService_WatchSession_FullMethodName, cc.conn)))
		app := startApp(t, "browser", rr, cs, viewerclient.ModeSignal)
		app.wait(t, 30*time.Second, "CONNECTED", connected)
		app.rtp(t, 30, 20*time.Second)
		closed := closeSession(t, b.api, cs.GetSession().GetName())
		if err := app.ended(t, 15*time.Second); err != nil {
			t.Fatalf("thin client Run = %v after CloseSession, want nil", err)
		}
		all := fullTimeline(t, a.api, cs.GetSession().GetName())
		if err := sameTimeline(app.c.Events(), all); err != nil {
			t.Errorf("the app's timeline vs A's: %v", err)
		}
		if err := contiguous(all); err != nil || all[len(all)-1].GetSequence() != closed.GetLastSequence() {
			t.Errorf("timeline: %v, ends at %d, want %d", err, all[len(all)-1].GetSequence(), closed.GetLastSequence())
		}
		counts := served.snapshot()
		for _, r := range c.replicas {
			if counts[r.grpcAddr] == 0 {
				t.Errorf("no Signal call went to replica %s (calls by address: %v)", r.id, counts)
			}
		}
		t.Logf("summary: Signal calls by replica A=%d B=%d C=%d, WatchSession on C; %d events, %d RTP packets",
			counts[a.grpcAddr], counts[b.grpcAddr], counts[cc.grpcAddr], len(all), app.c.Stats().PacketsReceived)
	})
}

// reason is the google.rpc.ErrorInfo reason of a status error.
func reason(err error) string {
	st, _ := status.FromError(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// pinStream sends every stream of method over conn instead of the
// intercepted connection (the app's WatchSession stays on one replica).
func pinStream(method string, conn *grpc.ClientConn) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, m string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		if m == method {
			return conn.NewStream(ctx, desc, m, opts...)
		}
		return streamer(ctx, desc, cc, m, opts...)
	}
}

// peerCounter counts the unary calls of one method by server address.
type peerCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (p *peerCounter) unary(method string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, m string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if m != method {
			return invoker(ctx, m, req, reply, cc, opts...)
		}
		var pr peer.Peer
		err := invoker(ctx, m, req, reply, cc, append(opts, grpc.Peer(&pr))...)
		if pr.Addr != nil {
			p.mu.Lock()
			p.n[pr.Addr.String()]++
			p.mu.Unlock()
		}
		return err
	}
}

func (p *peerCounter) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.n))
	for k, v := range p.n {
		out[k] = v
	}
	return out
}
