package camera

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

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
	for _, mode := range Modes() {
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

// TestReofferSameClientID: a new peer connection that offers with the
// client id of a live session (a reconnect, not an ICE restart).
func TestReofferSameClientID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give Mode
		want outcome
	}{
		{give: CSample, want: outcomeLiveSession},
		{give: JSSample, want: outcomeReplaced},
		{give: RestartCapable, want: outcomeReplaced},
	}
	for _, tt := range tests {
		t.Run(string(tt.give), func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{Mode: tt.give})
			v1 := newViewer(t, rl, "viewer-1")
			v1.offer(false)
			first := v1.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v1.waitPackets(minPackets)

			// A new peer connection reconnecting with the same client id.
			v2 := newViewer(t, rl, "viewer-1")
			v2.offer(false)
			if tt.want == outcomeLiveSession {
				cam.waitDecision(t, "viewer-1", tt.want)
				v2.noAnswer(quiet)
				n := v1.packets.Load()
				v1.waitPackets(n + minPackets) // the old session lives on
			} else {
				cam.waitDropped(t, "viewer-1")
				cam.waitDecision(t, "viewer-1", tt.want)
				second := v2.waitAnswer()
				if got, old := sdpAttr(second.SDP, "fingerprint"), sdpAttr(first.SDP, "fingerprint"); got == old {
					t.Errorf("replacing answer has the old fingerprint %q, want a new certificate", got)
				}
				v2.waitPackets(minPackets)
			}
			if got := cam.Stats().Sessions; got != 1 {
				t.Errorf("Stats().Sessions = %d, want 1", got)
			}
		})
	}
}

// TestICERestart: the viewer restarts ICE on its live peer connection
// (same client id, same DTLS fingerprint, new ice-ufrag). Only the
// restart-capable camera keeps its peer connection; the js-sample camera
// closes it and answers from a new one, as the real JS sample does
// (KVS-PROTOCOL.md 4.1), so the answer carries a new fingerprint.
func TestICERestart(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give Mode
		want outcome
	}{
		{give: CSample, want: outcomeLiveSession},
		{give: JSSample, want: outcomeReplaced},
		{give: RestartCapable, want: outcomeRestarted},
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
			switch tt.want {
			case outcomeLiveSession:
				// No answer; the viewer's ICE agent already moved to its new
				// credentials, so its connection is left to die.
				cam.waitDecision(t, "viewer-1", tt.want)
				v.noAnswer(quiet)
				return
			case outcomeReplaced:
				cam.waitDropped(t, "viewer-1") // the old peer connection is closed first
			}
			cam.waitDecision(t, "viewer-1", tt.want)
			second := v.waitAnswer()
			fp1, fp2 := sdpAttr(first.SDP, "fingerprint"), sdpAttr(second.SDP, "fingerprint")
			uf1, uf2 := sdpAttr(first.SDP, "ice-ufrag"), sdpAttr(second.SDP, "ice-ufrag")
			if fp1 == "" || uf1 == "" {
				t.Fatalf("first answer lacks a fingerprint or ice-ufrag:\n%s", first.SDP)
			}
			if uf2 == uf1 {
				t.Errorf("restart answer ice-ufrag = %q, want a new one", uf2)
			}
			if got := cam.Stats(); got.Sessions != 1 || got.AnswersSent != 2 || got.IgnoredOffers != 0 {
				t.Errorf("Stats() = %+v, want 1 session, 2 answers, 0 ignored", got)
			}
			if tt.want == outcomeReplaced {
				if fp2 == fp1 {
					t.Errorf("js-sample restart answer fingerprint = %q, the old connection's; want a new certificate", fp2)
				}
				return
			}
			if fp2 != fp1 {
				t.Errorf("restart answer fingerprint = %q, want the live session's %q", fp2, fp1)
			}
			n := v.packets.Load()
			v.waitPackets(n + minPackets)
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

// TestCSampleCleanup: with the default 5 s cleanup period, a c-sample
// camera drops the session of a viewer that left as soon as its peer
// connection reports closed (the state change wakes the cleanup pass), and
// then answers the same client id from a new peer connection.
func TestCSampleCleanup(t *testing.T) {
	t.Parallel()
	rl := newRelay(t)
	cam := startCamera(t, rl, Config{Mode: CSample})
	v1 := newViewer(t, rl, "viewer-1")
	v1.offer(false)
	first := v1.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	v1.waitPackets(minPackets)
	v1.close() // its DTLS close_notify closes the camera's peer connection

	cam.waitDropped(t, "viewer-1")
	if got := cam.Stats().Sessions; got != 0 {
		t.Errorf("Stats().Sessions = %d after cleanup, want 0", got)
	}
	v2 := newViewer(t, rl, "viewer-1")
	v2.offer(false)
	second := v2.waitAnswer()
	cam.waitDecision(t, "viewer-1", outcomeAnswered)
	if got, old := sdpAttr(second.SDP, "fingerprint"), sdpAttr(first.SDP, "fingerprint"); got == old {
		t.Errorf("answer after cleanup has the old fingerprint %q, want a new peer connection's", got)
	}
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

// TestHostIP: the camera's ICE candidates, in its answer and trickled, are
// on Config.HostIP only, even when the host has other addresses, and video
// flows over a pair whose camera side is that address.
func TestHostIP(t *testing.T) {
	t.Parallel()
	type hostCase struct {
		name string
		give netip.Addr // the camera's HostIP; zero for the default
		want netip.Addr
	}
	tests := []hostCase{{name: "default", want: netip.MustParseAddr("127.0.0.1")}}
	for _, v6 := range []bool{false, true} {
		if ip, ok := otherHostIP(v6); ok {
			tests = append(tests, hostCase{name: "interface " + ip.String(), give: ip, want: ip})
		} else {
			t.Logf("no up non-loopback interface with a global IPv6=%v address: that case is skipped", v6)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rl := newRelay(t)
			cam := startCamera(t, rl, Config{HostIP: tt.give})
			v := newViewerOn(t, rl, "viewer-1", tt.want)
			v.offer(false)
			answer := v.waitAnswer()
			cam.waitDecision(t, "viewer-1", outcomeAnswered)
			v.waitPackets(minPackets)

			pair, err := v.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
			if err != nil || pair == nil {
				t.Fatalf("selected pair = %v, %v", pair, err)
			}
			if pair.Remote.Address != tt.want.String() {
				t.Errorf("media flows from the camera's %s, want %s", pair.Remote.Address, tt.want)
			}
			v.mu.Lock()
			cands := append([]string(nil), v.cameraCands...)
			v.mu.Unlock()
			for _, line := range strings.Split(answer.SDP, "\n") {
				if c, ok := strings.CutPrefix(strings.TrimSpace(line), "a="); ok && strings.HasPrefix(c, "candidate:") {
					cands = append(cands, c)
				}
			}
			if len(cands) == 0 {
				t.Fatal("the camera sent no candidate")
			}
			for _, c := range cands {
				f := strings.Fields(c)
				if len(f) < 8 || f[4] != tt.want.String() || f[7] != "host" {
					t.Errorf("camera candidate %q, want a host candidate on %s", c, tt.want)
				}
			}
		})
	}
}

// otherHostIP returns an IPv4 (or, if v6, a global IPv6) address of an up,
// non-loopback interface.
func otherHostIP(v6 bool) (netip.Addr, bool) {
	ifs, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if ip = ip.Unmap(); ok && ip.Is6() == v6 && ip.IsGlobalUnicast() {
				return ip, true
			}
		}
	}
	return netip.Addr{}, false
}
