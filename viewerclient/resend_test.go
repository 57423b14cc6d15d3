package viewerclient

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// recorder keeps what the client's callbacks report.
type recorder struct {
	mu       sync.Mutex
	redials  []RedialReason
	networks []string
	redialed chan struct{} // closed and replaced on every re-dial
}

func (r *recorder) redial(reason RedialReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.redials = append(r.redials, reason)
	if r.redialed != nil {
		close(r.redialed)
	}
	r.redialed = make(chan struct{})
}

// waitRedial waits until the client has re-dialed at least once.
func (r *recorder) waitRedial(ctx context.Context) error {
	for {
		r.mu.Lock()
		n := len(r.redials)
		if r.redialed == nil {
			r.redialed = make(chan struct{})
		}
		ch := r.redialed
		r.mu.Unlock()
		if n > 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (r *recorder) network(desc string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.networks = append(r.networks, desc)
}

func (r *recorder) snapshot() (redials []RedialReason, networks []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.redials), slices.Clone(r.networks)
}

// startDialed runs a client that dials addr through a testDialer; adjust
// changes its config first.
func startDialed(t *testing.T, addr string, mode Mode, adjust func(*Config)) (*Client, <-chan error, *testDialer, *recorder) {
	t.Helper()
	d := newTestDialer(t, addr)
	rec := &recorder{}
	cfg := Config{Dial: d.dial, Session: fakeSession, Token: fakeToken, Mode: mode, Net: loopback(t), Logger: testLogger(t),
		ICETimeouts: fastICE, AckTimeout: time.Second, MediaInterval: time.Hour,
		OnRedial: rec.redial, OnNetworkChange: rec.network}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := New(cfg)
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
		if dials, sockets, closed := d.count(); closed != sockets {
			t.Errorf("after Run: %d dials, %d sockets, %d closed; want every socket closed", dials, sockets, closed)
		}
	})
	return c, done, d, rec
}

// A distinctive report: nothing else in these tests reports COMPLETED.
var probeReport = &vspb.ConnectionStateReport{
	IceState:  vspb.IceConnectionState_ICE_CONNECTION_STATE_COMPLETED,
	PeerState: vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTED,
}

func isProbe(e *vspb.SessionEvent) bool {
	return e.GetType() == vspb.EventType_EVENT_TYPE_CONNECTION_STATE &&
		e.GetConnectionState().GetIceState() == vspb.IceConnectionState_ICE_CONNECTION_STATE_COMPLETED
}

// An app message sent into a stream whose path then dies is applied
// exactly once: the client gets no ack within AckTimeout, abandons the
// stream and its connection, dials a fresh one, resumes, and resends what
// was not acknowledged with the same number; the service applies a number
// once (a dead path: it never got the message; a deaf one: it got it and
// the ack was lost, so Connect learns it from the join and Signal's resend
// is a repeat). A killed socket re-dials at once.
func TestMessageIntoADyingStreamIsAppliedOnce(t *testing.T) {
	tests := []struct {
		name       string
		mode       Mode
		fault      pathFault
		kill       bool
		wantReason RedialReason
		maxRepeats int // a resend the service already had
	}{
		// Where the service may already have the message when the client
		// resends, a repeat is expected, and not applied: the reply is
		// lost and the resend races the new watch's replay (whose events
		// carry the ack), or a killed socket's last bytes are handled
		// after the rejoin read the acknowledged number.
		{name: "connect/dead path", mode: ModeConnect, fault: pathDead, wantReason: RedialAckTimeout},
		{name: "connect/ack lost", mode: ModeConnect, fault: pathDeaf, wantReason: RedialAckTimeout, maxRepeats: 1},
		{name: "connect/socket killed", mode: ModeConnect, kill: true, wantReason: RedialStreamError, maxRepeats: 1},
		{name: "signal/dead path", mode: ModeSignal, fault: pathDead, wantReason: RedialAckTimeout},
		{name: "signal/reply lost", mode: ModeSignal, fault: pathDeaf, wantReason: RedialAckTimeout, maxRepeats: 1},
		{name: "signal/socket killed", mode: ModeSignal, kill: true, wantReason: RedialStreamError, maxRepeats: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, _ := startFake(t, 0)
			c, done, d, rec := startDialed(t, f.addr, tt.mode, nil)
			waitRTP(ctx, t, c, 5)
			waitFor(ctx, t, c, "CONNECTED", func(e *vspb.SessionEvent) bool {
				return e.GetState() == vspb.SessionState_SESSION_STATE_CONNECTED
			})

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
			if err := rec.waitRedial(ctx); err != nil {
				t.Fatalf("no re-dial: %v", err)
			}

			// One re-dial for the fault; on a loaded machine a fresh
			// connection's join may also take longer than AckTimeout,
			// and another re-dial for that is right.
			redials, _ := rec.snapshot()
			if len(redials) == 0 || redials[0] != tt.wantReason || slices.ContainsFunc(redials[1:], func(r RedialReason) bool { return r != RedialAckTimeout }) {
				t.Errorf("re-dials %q, want %q (then only ack timeouts, if any)", redials, tt.wantReason)
			}
			if dials, _, closed := d.count(); dials != len(redials)+1 || closed < len(redials) {
				t.Errorf("%d dials, %d sockets closed for %d re-dials; want a fresh connection for each, the old ones closed", dials, closed, len(redials))
			}
			f.mu.Lock()
			applied, repeats := 0, f.repeats
			for _, e := range f.events {
				if isProbe(e) {
					applied++
				}
			}
			f.mu.Unlock()
			if applied != 1 || repeats > tt.maxRepeats {
				t.Errorf("the service applied the report %d times, saw %d repeats; want 1 and at most %d", applied, repeats, tt.maxRepeats)
			}
			// Resent messages kept their numbers: the service has every
			// number up to the client's last, no hole.
			if st := c.Stats(); f.ackedSeq() != st.AppSequence {
				t.Errorf("the service acknowledged up to %d, the client numbered up to %d; want no hole", f.ackedSeq(), st.AppSequence)
			}
			if st := c.Stats(); st.SequenceGaps != 0 || st.Redials != len(redials) {
				t.Errorf("gaps %d, redials %d; want 0, %d", st.SequenceGaps, st.Redials, len(redials))
			}

			// The fresh connection works: media reports reach the service,
			// and the session ends with Leave.
			if err := c.Leave(ctx); err != nil {
				t.Fatalf("Leave: %v", err)
			}
			if err := resultOf(ctx, t, done); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		})
	}
}

// A connection that never answers the join is abandoned after AckTimeout
// and dialed again, with a backoff; the next one works.
func TestUnansweredJoinRedials(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, _ := startFake(t, 0)
	f.joinGate, f.joinHeld = make(chan struct{}), make(chan struct{}, 4)
	c, _, d, rec := startDialed(t, f.addr, ModeConnect, nil)
	waitRTP(ctx, t, c, 5)
	d.killAll() // the next join is held by the fake: no answer
	select {
	case <-f.joinHeld:
	case <-ctx.Done():
		t.Fatal("the client did not join again")
	}
	// The held join times out; the client dials again and joins; let
	// that one through.
	for {
		redials, _ := rec.snapshot()
		if len(redials) >= 2 {
			break
		}
		select {
		case <-f.joinHeld:
		case <-ctx.Done():
			t.Fatalf("re-dials %q, want a second one after the unanswered join", redials)
		}
	}
	close(f.joinGate)
	waitFor(ctx, t, c, "the attach after the re-dials", func(e *vspb.SessionEvent) bool {
		return e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && c.Stats().Resumes >= 2
	})
	redials, _ := rec.snapshot()
	if redials[0] != RedialStreamError || redials[1] != RedialAckTimeout {
		t.Errorf("re-dials %q; want stream error (the killed socket), then ack timeout (the held join)", redials)
	}
	if dials, _, _ := d.count(); dials < 3 {
		t.Errorf("%d dials, want at least 3", dials)
	}
}
