package viewerclient

import (
	"context"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/stacktest"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// serviceTimeline reads a session's timeline from the service, as a
// backend would, up to sequence last at least.
func serviceTimeline(ctx context.Context, t *testing.T, st *stacktest.Stack, name string, last uint64) []*vspb.SessionEvent {
	t.Helper()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ws, err := st.API.WatchSession(stacktest.Backend(wctx), &vspb.WatchSessionRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*vspb.SessionEvent
	for len(evs) == 0 || evs[len(evs)-1].GetSequence() < last {
		m, err := ws.Recv()
		if err != nil {
			t.Fatalf("reading the timeline: %v", err)
		}
		evs = append(evs, m.GetEvent())
	}
	return evs
}

// Against the real service: a message sent into a connection that then
// dies (its path dead, or its socket killed) is resent on a fresh one and
// the service's timeline shows it exactly once; where the service already
// had it (the reply lost), the resend is acknowledged and not applied
// again.
func TestServiceAppliesAResentMessageOnce(t *testing.T) {
	tests := []struct {
		name  string
		mode  Mode
		fault pathFault
		kill  bool
	}{
		{name: "connect/dead path", mode: ModeConnect, fault: pathDead},
		{name: "connect/socket killed", mode: ModeConnect, kill: true},
		{name: "signal/reply lost", mode: ModeSignal, fault: pathDeaf},
		{name: "signal/socket killed", mode: ModeSignal, kill: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			st := stacktest.Start(t, stacktest.Options{})
			cs := st.Create(t, "resend", nil)
			d := newTestDialer(t, st.GRPCAddr)
			rec := &recorder{}
			c, err := New(Config{Dial: d.dial, Session: cs.GetSession().GetName(), Token: cs.GetSessionToken(), Mode: tt.mode, Net: loopback(t),
				IceServers: cs.GetSession().GetIceServers(), Logger: testLogger(t), ICETimeouts: fastICE,
				AckTimeout: time.Second, MediaInterval: 200 * time.Millisecond, OnRedial: rec.redial})
			if err != nil {
				t.Fatal(err)
			}
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				done <- c.Run(rctx)
			}()
			defer func() {
				stop()
				<-finished
			}()
			waitFor(ctx, t, c, "MEDIA_FLOWING", ofType(vspb.EventType_EVENT_TYPE_MEDIA_FLOWING))

			delivered := make(chan error, 1)
			if tt.kill {
				c.out.push(&outMsg{kind: kindStateReport, state: probeReport, done: delivered})
				d.killAll()
			} else {
				d.breakAll(tt.fault)
				c.out.push(&outMsg{kind: kindStateReport, state: probeReport, done: delivered})
			}
			select {
			case err := <-delivered:
				if err != nil {
					t.Fatalf("the report's outcome = %v, want delivered", err)
				}
			case <-ctx.Done():
				t.Fatalf("the report was never acknowledged (stats %+v)", c.Stats())
			}
			waitFor(ctx, t, c, "the report's event", isProbe)
			applied := 0
			for _, e := range serviceTimeline(ctx, t, st, cs.GetSession().GetName(), c.Stats().LastSequence) {
				if isProbe(e) {
					applied++
				}
			}
			if applied != 1 {
				t.Errorf("the service's timeline shows the report %d times, want 1", applied)
			}
			if err := rec.waitRedial(ctx); err != nil {
				t.Errorf("no re-dial for the dead connection: %v", err)
			}
			if s := c.Stats(); s.SequenceGaps != 0 {
				t.Errorf("%d timeline gaps, want 0", s.SequenceGaps)
			}
			// The fresh connection carries the rest: the leave is
			// acknowledged and the session ends.
			if err := c.Leave(ctx); err != nil {
				t.Fatalf("Leave: %v", err)
			}
			if err := resultOf(ctx, t, done); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		})
	}
}
