package viewerclient

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/switchnet"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

var modes = []Mode{ModeConnect, ModeSignal}

// runClient starts Run in the background; the returned channel gets its
// result. The test's cleanup cancels it and waits.
func runClient(t *testing.T, cc *grpc.ClientConn, mode Mode, n *switchnet.SwitchNet) (*Client, <-chan error) {
	t.Helper()
	if n == nil {
		n = loopback(t)
	}
	c, err := New(Config{Conn: cc, Session: fakeSession, Token: fakeToken, Mode: mode, Net: n,
		Logger: testLogger(t), ICETimeouts: fastICE})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return c, done
}

func waitFor(ctx context.Context, t *testing.T, c *Client, what string, match func(*vspb.SessionEvent) bool) *vspb.SessionEvent {
	t.Helper()
	e, err := c.WaitEvent(ctx, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v (timeline: %v)", what, err, timeline(c))
	}
	return e
}

func ofType(typ vspb.EventType) func(*vspb.SessionEvent) bool {
	return func(e *vspb.SessionEvent) bool { return e.GetType() == typ }
}

func timeline(c *Client) []string {
	var out []string
	for _, e := range c.Events() {
		out = append(out, e.GetType().String())
	}
	return out
}

func waitRTP(ctx context.Context, t *testing.T, c *Client, n int64) {
	t.Helper()
	if err := c.WaitRTP(ctx, int(n)); err != nil {
		t.Fatalf("waiting for %d RTP packets: %v (have %d)", n, err, c.Stats().PacketsReceived)
	}
}

func resultOf(ctx context.Context, t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		t.Fatalf("Run did not return: %v", ctx.Err())
		return nil
	}
}

// The whole conversation against a service that replays with overlap: the
// client connects and receives media, follows a going-away and a dropped
// stream without gaps or duplicates in its timeline, follows an ICE
// restart after a network change to connect from the new address, and
// ends with Leave.
func TestRunFollowsTheService(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, cc := startFake(t, 3)
			n := newSwitchNet(t, "127.0.0.2")
			c, done := runClient(t, cc, mode, n)

			waitFor(ctx, t, c, "CONNECTED", func(e *vspb.SessionEvent) bool {
				return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED
			})
			waitRTP(ctx, t, c, 10)
			if host, _, _ := net.SplitHostPort(c.Stats().LocalAddress); host != "127.0.0.2" {
				t.Errorf("local address = %q, want 127.0.0.2:*", c.Stats().LocalAddress)
			}

			f.emit(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_GOING_AWAY,
				Detail: &vspb.SessionEvent_GoingAway{GoingAway: &vspb.GoingAway{Reason: "test"}}})
			waitFor(ctx, t, c, "the attach after going-away", func(e *vspb.SessionEvent) bool {
				return e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && c.Stats().Resumes == 1
			})
			c.DropStream()
			waitFor(ctx, t, c, "the attach after the dropped stream", func(e *vspb.SessionEvent) bool {
				return e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && c.Stats().Resumes == 2
			})

			if err := n.Switch("127.0.0.3"); err != nil {
				t.Fatal(err)
			}
			if err := c.NetworkChanged(ctx, "wifi->cellular"); err != nil {
				t.Fatalf("NetworkChanged: %v", err)
			}
			waitFor(ctx, t, c, "RECOVERED", ofType(vspb.EventType_EVENT_TYPE_RECOVERED))
			waitRTP(ctx, t, c, c.Stats().PacketsReceived+10)
			st := c.Stats()
			if host, _, _ := net.SplitHostPort(st.LocalAddress); host != "127.0.0.3" {
				t.Errorf("after the ICE restart the local address = %q, want 127.0.0.3:*", st.LocalAddress)
			}

			if err := c.Leave(ctx); err != nil {
				t.Fatalf("Leave: %v", err)
			}
			if err := resultOf(ctx, t, done); err != nil {
				t.Fatalf("Run = %v, want nil after CLOSED", err)
			}

			st = c.Stats()
			if st.SequenceGaps != 0 || st.DuplicateEvents == 0 {
				t.Errorf("gaps, duplicates = %d, %d; want 0 and some (the fake replays with overlap)", st.SequenceGaps, st.DuplicateEvents)
			}
			// Resumes: going-away, the dropped stream, and the re-dial the
			// network change causes.
			if st.OffersSent != 2 || st.ICERestarts != 1 || st.NewPeerConnections != 0 || st.Resumes != 3 || st.Redials != 1 || st.NetworkChanges != 1 {
				t.Errorf("offers, ICE restarts, new PCs, resumes, redials, network changes = %d, %d, %d, %d, %d, %d; want 2, 1, 0, 3, 1, 1",
					st.OffersSent, st.ICERestarts, st.NewPeerConnections, st.Resumes, st.Redials, st.NetworkChanges)
			}
			f.mu.Lock()
			unsequenced := f.unsequenced
			f.mu.Unlock()
			if unsequenced != 0 || st.AckedAppSequence == 0 || f.ackedSeq() < st.AckedAppSequence {
				t.Errorf("%d messages without app_sequence; acked %d (service: %d); want every message numbered and acknowledged",
					unsequenced, st.AckedAppSequence, f.ackedSeq())
			}
			evs := c.Events()
			for i, e := range evs {
				if e.GetSequence() != uint64(i)+1 {
					t.Fatalf("Events()[%d].Sequence = %d, want %d", i, e.GetSequence(), i+1)
				}
			}
			if last := evs[len(evs)-1]; last.GetType() != vspb.EventType_EVENT_TYPE_CLOSED {
				t.Errorf("last event = %v, want CLOSED", last.GetType())
			}
			got := f.received()
			if got[0] != "offer" || slices.Index(got, "candidate") < 0 || slices.Index(got, "network_changed") < 0 || got[len(got)-1] != "leave" {
				t.Errorf("the service received %v; want the offer first, candidates, network_changed, and leave last", got)
			}
			if f.badAuth != 0 {
				t.Errorf("%d calls without the session token", f.badAuth)
			}
		})
	}
}

// NEW_PEER_CONNECTION: the client closes its peer connection and offers
// from a new one, which gets media.
func TestRunNewPeerConnection(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, cc := startFake(t, 0)
			c, _ := runClient(t, cc, mode, nil)
			waitRTP(ctx, t, c, 5)
			f.renegotiate(vspb.Renegotiate_ACTION_NEW_PEER_CONNECTION)
			waitFor(ctx, t, c, "the second answer", func(e *vspb.SessionEvent) bool {
				return e.GetType() == vspb.EventType_EVENT_TYPE_ANSWER && c.Stats().NewPeerConnections == 1
			})
			waitFor(ctx, t, c, "CONNECTED again", func(e *vspb.SessionEvent) bool {
				return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED && e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED &&
					c.Stats().NewPeerConnections == 1
			})
			waitRTP(ctx, t, c, c.Stats().PacketsReceived+5)
			if st := c.Stats(); st.OffersSent != 2 || st.ICERestarts != 0 {
				t.Errorf("offers, ICE restarts = %d, %d; want 2, 0", st.OffersSent, st.ICERestarts)
			}
		})
	}
}

// A FAILED session ends Run with a *FailedError carrying the stream's
// status (Connect) or one rebuilt from the event (Signal).
func TestRunReturnsTheFailure(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, cc := startFake(t, 0)
			c, done := runClient(t, cc, mode, nil)
			waitFor(ctx, t, c, "the answer", ofType(vspb.EventType_EVENT_TYPE_ANSWER))
			f.mu.Lock()
			f.state = vspb.SessionState_SESSION_STATE_FAILED
			f.mu.Unlock()
			f.emit(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_FAILED, CloseReason: vspb.CloseReason_CLOSE_REASON_FAILED,
				Failure: &vspb.Failure{Reason: vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT, Message: "no answer"}})
			err := resultOf(ctx, t, done)
			var fe *FailedError
			if !errors.Is(err, ErrSessionFailed) || !errors.As(err, &fe) {
				t.Fatalf("Run = %v, want a *FailedError", err)
			}
			if fe.Reason() != vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT || status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("Run's failure = %v, %v; want ANSWER_TIMEOUT, DeadlineExceeded", fe.Reason(), status.Code(err))
			}
			wantMsg := map[Mode]string{ModeConnect: "stream says: no answer", ModeSignal: "no answer"}[mode]
			if got := status.Convert(err).Message(); got != wantMsg {
				t.Errorf("status message = %q, want %q (Connect keeps the stream's status, Signal rebuilds it)", got, wantMsg)
			}
			if err := c.WaitRTP(ctx, 1<<30); !errors.Is(err, ErrStopped) {
				t.Errorf("WaitRTP after Run = %v, want ErrStopped", err)
			}
		})
	}
}

// Cancelling ctx stops Run without a leave; Leave afterwards is one Signal
// call.
func TestRunStopsOnCancelAndLeaveFallsBackToSignal(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, cc := startFake(t, 0)
	c, err := New(Config{Conn: cc, Session: fakeSession, Token: fakeToken, Net: loopback(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(rctx) }()
	waitFor(ctx, t, c, "the answer", ofType(vspb.EventType_EVENT_TYPE_ANSWER))
	stop()
	if err := resultOf(ctx, t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
	if got := f.received(); slices.Contains(got, "leave") {
		t.Fatalf("the service received %v; want no leave on cancel", got)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	if err := c.Leave(ctx); err != nil {
		t.Fatalf("Leave after Run: %v", err)
	}
	if got := f.received(); got[len(got)-1] != "leave" {
		t.Errorf("the service received %v; want leave last", got)
	}
}

// In Signal mode the CLOSED event that a leave causes can arrive before the
// leave's own reply: Leave still reports success, and Run returns nil.
func TestSignalLeaveRepliedAfterClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, cc := startFake(t, 0)
	hold := make(chan struct{})
	f.holdLeave = hold
	c, done := runClient(t, cc, ModeSignal, nil)
	waitFor(ctx, t, c, "the answer", ofType(vspb.EventType_EVENT_TYPE_ANSWER))
	left := make(chan error, 1)
	go func() { left <- c.Leave(ctx) }()
	waitFor(ctx, t, c, "CLOSED", ofType(vspb.EventType_EVENT_TYPE_CLOSED))
	close(hold)
	if err := <-left; err != nil {
		t.Errorf("Leave = %v, want nil (the service took it)", err)
	}
	if err := resultOf(ctx, t, done); err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}

// A Connect client whose session ends while its stream is down cannot join
// again (SESSION_CLOSED); it reads the end of the timeline from
// WatchSession and Run returns nil.
func TestConnectCatchesUpOnAClosedSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, cc := startFake(t, 0)
	f.joinGate, f.joinHeld = make(chan struct{}), make(chan struct{}, 1)
	c, done := runClient(t, cc, ModeConnect, nil)
	waitFor(ctx, t, c, "the answer", ofType(vspb.EventType_EVENT_TYPE_ANSWER))
	c.DropStream()
	select {
	case <-f.joinHeld: // the old stream is gone, the new join waits
	case <-ctx.Done():
		t.Fatal("the client did not rejoin")
	}
	f.mu.Lock()
	f.state = vspb.SessionState_SESSION_STATE_CLOSED
	f.emitLocked(&vspb.SessionEvent{Type: vspb.EventType_EVENT_TYPE_CLOSED, CloseReason: vspb.CloseReason_CLOSE_REASON_CLOSED_BY_BACKEND})
	f.mu.Unlock()
	close(f.joinGate)
	if err := resultOf(ctx, t, done); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	st := c.Stats()
	evs := c.Events()
	if last := evs[len(evs)-1]; last.GetType() != vspb.EventType_EVENT_TYPE_CLOSED || st.SequenceGaps != 0 {
		t.Errorf("last event %v, %d gaps; want CLOSED and none", last.GetType(), st.SequenceGaps)
	}
	f.mu.Lock()
	watches := f.watches
	f.mu.Unlock()
	if watches != 1 || st.Resumes != 2 {
		t.Errorf("WatchSession calls, resumes = %d, %d; want 1 (the catch-up), 2", watches, st.Resumes)
	}
}

// A message the service refuses ends a Connect stream with its error (and
// fails the Signal call); the client carries on: Connect resumes the
// stream, and Leave still ends the session.
func TestRefusedMessageDoesNotStopRun(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, cc := startFake(t, 0)
			f.refuse = "network_changed"
			c, done := runClient(t, cc, mode, nil)
			waitFor(ctx, t, c, "the answer", ofType(vspb.EventType_EVENT_TYPE_ANSWER))
			err := c.NetworkChanged(ctx, "refused")
			if mode == ModeSignal && status.Code(err) != codes.InvalidArgument {
				t.Errorf("NetworkChanged in Signal mode = %v, want InvalidArgument", err)
			}
			if mode == ModeConnect {
				if err != nil {
					t.Errorf("NetworkChanged in Connect mode = %v, want nil (handed to the stream)", err)
				}
				// Resumes: the re-dial the network change causes, then the
				// stream the refusal ended.
				waitFor(ctx, t, c, "the attach after the refused message", func(e *vspb.SessionEvent) bool {
					return e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && c.Stats().Resumes == 2
				})
			}
			if err := c.Leave(ctx); err != nil {
				t.Fatalf("Leave: %v", err)
			}
			if err := resultOf(ctx, t, done); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		})
	}
}
