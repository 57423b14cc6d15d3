package camera

import (
	"errors"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// minPackets is how many RTP packets prove that video flows (the clip sends
// about 15 a second: a frame of the 160x120 clip fits one packet).
const minPackets = 10

// quiet is how long a test waits to be sure no answer comes.
const quiet = 500 * time.Millisecond

func TestStreamsVideo(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{CSample, JSSample} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{Mode: mode})
			v := newViewer(t, rl, "viewer-1")
			v.offer(false)
			v.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v.waitPackets(minPackets)

			got := cam.Stats()
			if got.Offers != 1 || got.AnswersSent != 1 || got.IgnoredOffers != 0 || got.Sessions != 1 ||
				got.SignalingConnects != 1 {
				t.Errorf("Stats() = %+v, want 1 offer, 1 answer, 0 ignored, 1 session, 1 connect", got)
			}
			if got.PacketsSent == 0 {
				t.Errorf("Stats().PacketsSent = 0, want > 0")
			}
		})
	}
}

func TestReofferSameClientID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give Mode
		want outcome
	}{
		{give: CSample, want: outcomeLiveSession},
		{give: JSSample, want: outcomeReplaced},
	}
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{Mode: tt.give})
			v1 := newViewer(t, rl, "viewer-1")
			v1.offer(false)
			v1.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v1.waitPackets(minPackets)

			// A new peer connection reconnecting with the same client id.
			v2 := newViewer(t, rl, "viewer-1")
			v2.offer(false)
			cam.waitDecision(t, "viewer-1", tt.want)
			if tt.want == outcomeLiveSession {
				v2.noAnswer(quiet)
				n := v1.packets.Load()
				v1.waitPackets(n + minPackets) // the old session lives on
			} else {
				v2.waitAnswer()
				v2.waitPackets(minPackets)
			}
			if got := cam.Stats().Sessions; got != 1 {
				t.Errorf("Stats().Sessions = %d, want 1", got)
			}
		})
	}
}

func TestICERestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give Mode
		want outcome
	}{
		{give: CSample, want: outcomeLiveSession},
		{give: JSSample, want: outcomeRestarted},
	}
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{Mode: tt.give})
			v := newViewer(t, rl, "viewer-1")
			firstOffer := v.offer(false)
			first := v.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v.waitPackets(minPackets)

			restart := v.offer(true)
			if !isICERestart(firstOffer.SDP, restart.SDP) {
				t.Fatal("test setup: the viewer's restart offer does not keep its fingerprint with a new ice-ufrag")
			}
			cam.waitDecision(t, "viewer-1", tt.want)
			if tt.want == outcomeLiveSession {
				v.noAnswer(quiet)
				return
			}
			second := v.waitAnswer()
			if got, want := sdpAttr(second.SDP, "fingerprint"), sdpAttr(first.SDP, "fingerprint"); got != want {
				t.Errorf("restart answer fingerprint = %q, want the live session's %q", got, want)
			}
			if got, old := sdpAttr(second.SDP, "ice-ufrag"), sdpAttr(first.SDP, "ice-ufrag"); got == old {
				t.Errorf("restart answer ice-ufrag = %q, want a new one", got)
			}
			n := v.packets.Load()
			v.waitPackets(n + minPackets)
			if got := cam.Stats(); got.Sessions != 1 || got.AnswersSent != 2 {
				t.Errorf("Stats() = %+v, want 1 session and 2 answers", got)
			}
		})
	}
}

func TestFaultNoAnswer(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{})
	cam.SetFault(Fault{NoAnswer: true})
	v := newViewer(t, rl, "viewer-1")
	v.offer(false)
	cam.waitDecision(t, "viewer-1", outcomeFaultNoAnswer)
	v.noAnswer(quiet)
	if got := cam.Stats(); got.Offers != 1 || got.IgnoredOffers != 1 || got.AnswersSent != 0 {
		t.Errorf("Stats() = %+v, want 1 offer, 1 ignored, 0 answers", got)
	}

	// Clearing the fault restores answers (to a retry on a new peer
	// connection with the same client id).
	cam.SetFault(Fault{})
	v2 := newViewer(t, rl, "viewer-1")
	v2.offer(false)
	v2.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
}

func TestFaultAnswerDelay(t *testing.T) {
	t.Parallel()
	const delay = 700 * time.Millisecond
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{})
	cam.SetFault(Fault{AnswerDelay: delay})
	v := newViewer(t, rl, "viewer-1")
	sent := time.Now()
	v.offer(false)
	v.waitAnswer()
	if got := time.Since(sent); got < delay {
		t.Errorf("answer after %v, want >= %v", got, delay)
	}
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v.waitPackets(minPackets)
}

func TestFaultAnswerFromOffer(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{})
	cam.SetFault(Fault{AnswerFromOffer: 2})

	v1 := newViewer(t, rl, "viewer-1")
	v1.offer(false)
	cam.waitDecision(t, "viewer-1", outcomeFaultEarlyOffer)
	v1.noAnswer(quiet)

	// The viewer retries with a new peer connection and the same id.
	v2 := newViewer(t, rl, "viewer-1")
	v2.offer(false)
	v2.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v2.waitPackets(minPackets)
	if got := cam.Stats(); got.Offers != 2 || got.IgnoredOffers != 1 || got.AnswersSent != 1 {
		t.Errorf("Stats() = %+v, want 2 offers, 1 ignored, 1 answer", got)
	}
}

func TestInboundFrameShapes(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{})
	rl.toMaster(nil)
	rl.toMaster([]byte("  "))
	rl.toMaster([]byte(`{"message": "Endpoint request timed out", "connectionId":"Lx8Vc","requestId":"7d3c"}`))
	rl.toMaster([]byte(`not json`))
	rl.toMasterBinary([]byte(`{"messageType":"SDP_OFFER"}`))
	rl.toMaster([]byte(`{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"1697058567743",` +
		`"errorType":"InvalidArgumentException","statusCode":"400","success":false}}`))
	rl.toMaster([]byte(`{"messageType":"SOMETHING_NEW","messagePayload":"e30=","senderClientId":"x"}`))
	rl.toMaster([]byte(`{"messageType":"SDP_OFFER","messagePayload":"e30=","senderClientId":"x"}`))
	rl.toMaster([]byte(`{"messageType":"SDP_OFFER","messagePayload":"","senderClientId":"x"}`))
	rl.toMaster([]byte(`{"messageType":"RECONNECT_ICE_SERVER"}`))

	rl.capitalKeys.Store(true)
	v := newViewer(t, rl, "viewer-1")
	v.offer(false)
	v.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v.waitPackets(minPackets)
	if got := cam.Stats(); got.SignalingConnects != 1 || got.Offers != 1 {
		t.Errorf("Stats() = %+v, want 1 connect and 1 offer (the junk frames ignored)", got)
	}
}

func TestReconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		give func(rl *relay)
	}{
		{name: "socket drop", give: (*relay).dropMaster},
		{name: "GO_AWAY", give: func(rl *relay) { rl.toMaster([]byte(`{"messageType":"GO_AWAY"}`)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{ReconnectDelay: 10 * time.Millisecond})
			v1 := newViewer(t, rl, "viewer-1")
			v1.offer(false)
			v1.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v1.waitPackets(minPackets)

			tt.give(rl)
			rl.waitConnect(t)
			v2 := newViewer(t, rl, "viewer-2")
			v2.offer(false)
			v2.waitAnswer()
			cam.waitDecision(t, "viewer-2", outcomeAnswered)
			v2.waitPackets(minPackets)
			n := v1.packets.Load()
			v1.waitPackets(n + minPackets) // the first session survived
			if got := cam.Stats(); got.SignalingConnects != 2 || got.Sessions != 2 {
				t.Errorf("Stats() = %+v, want 2 connects and 2 sessions", got)
			}
		})
	}
}

func TestCSampleCleanup(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{
		Mode:          CSample,
		CleanupPeriod: 50 * time.Millisecond,
		SettingEngine: func(se *webrtc.SettingEngine) {
			se.SetICETimeouts(300*time.Millisecond, 5*time.Second, 100*time.Millisecond)
		},
	})
	v1 := newViewer(t, rl, "viewer-1")
	v1.offer(false)
	v1.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v1.waitPackets(minPackets)
	v1.close()

	// Once the camera's peer connection notices and the cleanup runs, the
	// same client id is answered again.
	select {
	case id := <-cam.dropped:
		if id != "viewer-1" {
			t.Fatalf("dropped session %q, want viewer-1", id)
		}
	case <-time.After(waitFor):
		t.Fatalf("session not cleaned up within %v of the viewer leaving", waitFor)
	}
	if got := cam.Stats().Sessions; got != 0 {
		t.Errorf("Stats().Sessions = %d after cleanup, want 0", got)
	}
	v2 := newViewer(t, rl, "viewer-1")
	v2.offer(false)
	v2.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v2.waitPackets(minPackets)
}

func TestMaxSessions(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{Mode: JSSample, MaxSessions: 1})
	v1 := newViewer(t, rl, "viewer-1")
	v1.offer(false)
	v1.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)

	v2 := newViewer(t, rl, "viewer-2")
	v2.offer(false)
	cam.waitDecision(t, "viewer-2", outcomeTooManySessions)
	v2.noAnswer(quiet)
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{})
	if err := cam.Run(t.Context()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}
