package viewerclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/turn/v4"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
)

// fastICE makes a dead pair fail within about a second.
var fastICE = ICETimeouts{Disconnected: 300 * time.Millisecond, Failed: 700 * time.Millisecond, Keepalive: 100 * time.Millisecond}

// Two real pion peers: a client on a SwitchNet and a camera on 127.0.0.1.
// They connect and media flows; after Switch the pair dies (the client's
// ICE goes disconnected, then failed); an ICE restart on the same peer
// connections, signalled directly, reconnects from the new address and
// media flows again.
func TestSwitchNetICERestartBetweenTwoPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	n := newSwitchNet(t, "127.0.0.2")
	log := testLogger(t)

	capi, err := newAPI(apiOptions{net: n, log: log, ice: fastICE})
	if err != nil {
		t.Fatal(err)
	}
	client, err := capi.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	cam := newTestCamera(t)
	var wg sync.WaitGroup
	defer func() {
		// Stop the camera's clock and close both peers before waiting for
		// the goroutines that use them.
		cancel()
		if err := client.GracefulClose(); err != nil {
			t.Errorf("close client: %v", err)
		}
		cam.close(t)
		wg.Wait()
	}()

	if _, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	states := make(chan webrtc.ICEConnectionState, 64)
	client.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
		select {
		case states <- s:
		default:
		}
	})
	var packets atomic.Int64
	packet := make(chan struct{}, 1)
	client.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		wg.Go(func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				packets.Add(1)
				select {
				case packet <- struct{}{}:
				default:
				}
			}
		})
	})
	wg.Go(func() { cam.stream(ctx) })

	negotiate(t, client, cam.pc, false)
	waitICE(ctx, t, states, webrtc.ICEConnectionStateConnected)
	waitPackets(ctx, t, &packets, packet, 5)
	if got := localIP(t, client); got != "127.0.0.2" {
		t.Fatalf("selected pair's local address = %s, want 127.0.0.2", got)
	}

	if err := n.Switch("127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	waitICE(ctx, t, states, webrtc.ICEConnectionStateDisconnected)
	waitICE(ctx, t, states, webrtc.ICEConnectionStateFailed)

	before := packets.Load()
	negotiate(t, client, cam.pc, true)
	waitICE(ctx, t, states, webrtc.ICEConnectionStateConnected)
	if got := localIP(t, client); got != "127.0.0.3" {
		t.Fatalf("after the ICE restart the selected pair's local address = %s, want 127.0.0.3", got)
	}
	waitPackets(ctx, t, &packets, packet, before+5)
}

// The same over TURN (relay only), on UDP and on TCP to the TURN server:
// the client's allocation goes out from 127.0.0.2, dies with the switch,
// and the ICE restart allocates again from 127.0.0.3.
func TestSwitchNetRelayICERestart(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			n := newSwitchNet(t, "127.0.0.2")
			turnURL := startTURN(t, transport)
			capi, err := newAPI(apiOptions{net: n, log: testLogger(t), ice: fastICE, relayOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			client, err := capi.NewPeerConnection(webrtc.Configuration{
				ICEServers:         []webrtc.ICEServer{{URLs: []string{turnURL}, Username: "user", Credential: "pass"}},
				ICETransportPolicy: webrtc.ICETransportPolicyRelay,
			})
			if err != nil {
				t.Fatal(err)
			}
			cam := newTestCamera(t)
			defer func() {
				if err := client.GracefulClose(); err != nil {
					t.Errorf("close client: %v", err)
				}
				cam.close(t)
			}()
			if _, err := client.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
				webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
				t.Fatal(err)
			}
			states := make(chan webrtc.ICEConnectionState, 64)
			client.OnICEConnectionStateChange(func(s webrtc.ICEConnectionState) {
				select {
				case states <- s:
				default:
				}
			})

			negotiate(t, client, cam.pc, false)
			waitICE(ctx, t, states, webrtc.ICEConnectionStateConnected)
			if typ, related := relayed(t, client); typ != webrtc.ICECandidateTypeRelay || related != "127.0.0.2" {
				t.Fatalf("selected local candidate = %s related to %s, want relay related to 127.0.0.2", typ, related)
			}
			if err := n.Switch("127.0.0.3"); err != nil {
				t.Fatal(err)
			}
			waitICE(ctx, t, states, webrtc.ICEConnectionStateFailed)
			negotiate(t, client, cam.pc, true)
			waitICE(ctx, t, states, webrtc.ICEConnectionStateConnected)
			if typ, related := relayed(t, client); typ != webrtc.ICECandidateTypeRelay || related != "127.0.0.3" {
				t.Fatalf("after the restart the selected local candidate = %s related to %s, want relay related to 127.0.0.3", typ, related)
			}
		})
	}
}

func relayed(t *testing.T, pc *webrtc.PeerConnection) (webrtc.ICECandidateType, string) {
	t.Helper()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no selected candidate pair: %v", err)
	}
	return pair.Local.Typ, pair.Local.RelatedAddress
}

// startTURN runs a pion TURN server on 127.0.0.1 (user "user", password
// "pass") for the test and returns its URL for transport.
func startTURN(t *testing.T, transport string) string {
	t.Helper()
	const realm = "test"
	relay := &turn.RelayAddressGeneratorStatic{RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}
	cfg := turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(username, realm string, _ net.Addr) ([]byte, bool) {
			return turn.GenerateAuthKey(username, realm, "pass"), username == "user"
		},
		LoggerFactory: pionLogs{log: testLogger(t).With("peer", "turn")},
	}
	var port int
	switch transport {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = c.LocalAddr().(*net.UDPAddr).Port
		cfg.PacketConnConfigs = []turn.PacketConnConfig{{PacketConn: c, RelayAddressGenerator: relay}}
	case "tcp":
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		cfg.ListenerConfigs = []turn.ListenerConfig{{Listener: l, RelayAddressGenerator: relay}}
	}
	srv, err := turn.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close TURN server: %v", err)
		}
	})
	return fmt.Sprintf("turn:127.0.0.1:%d?transport=%s", port, transport)
}

// negotiate runs one offer/answer between offerer and answerer, without
// trickle (each side waits for its gathering to complete).
func negotiate(t *testing.T, offerer, answerer *webrtc.PeerConnection, iceRestart bool) {
	t.Helper()
	var opts *webrtc.OfferOptions
	if iceRestart {
		opts = &webrtc.OfferOptions{ICERestart: true}
	}
	offer, err := offerer.CreateOffer(opts)
	if err != nil {
		t.Fatalf("CreateOffer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatalf("offerer SetLocalDescription: %v", err)
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatalf("answerer SetRemoteDescription: %v", err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatalf("CreateAnswer: %v", err)
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatalf("answerer SetLocalDescription: %v", err)
	}
	<-gathered
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatalf("offerer SetRemoteDescription: %v", err)
	}
}

func waitICE(ctx context.Context, t *testing.T, states <-chan webrtc.ICEConnectionState, want webrtc.ICEConnectionState) {
	t.Helper()
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-ctx.Done():
			t.Fatalf("ICE state %s never came: %v", want, ctx.Err())
		}
	}
}

func waitPackets(ctx context.Context, t *testing.T, got *atomic.Int64, tick <-chan struct{}, want int64) {
	t.Helper()
	for got.Load() < want {
		select {
		case <-tick:
		case <-ctx.Done():
			t.Fatalf("received %d RTP packets, want %d: %v", got.Load(), want, ctx.Err())
		}
	}
}

func localIP(t *testing.T, pc *webrtc.PeerConnection) string {
	t.Helper()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no selected candidate pair: %v", err)
	}
	return pair.Local.Address
}

// testCamera is a pion peer on 127.0.0.1 sending a VP8 track, standing for
// the emulator's camera.
type testCamera struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticSample
}

func newTestCamera(t *testing.T) *testCamera {
	t.Helper()
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: testLogger(t).With("peer", "camera")}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICETimeouts(fastICE.Disconnected, fastICE.Failed, fastICE.Keepalive)
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "video", "camera")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.AddTrack(track); err != nil {
		t.Fatal(err)
	}
	return &testCamera{pc: pc, track: track}
}

// stream writes a small frame every 20 ms until ctx ends (a media clock,
// not synchronisation).
func (c *testCamera) stream(ctx context.Context) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	frame := make([]byte, 200)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := c.track.WriteSample(media.Sample{Data: frame, Duration: 20 * time.Millisecond}); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return
		}
	}
}

func (c *testCamera) close(t *testing.T) {
	if err := c.pc.GracefulClose(); err != nil {
		t.Errorf("close camera: %v", err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tWriter sends log lines to t.Log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
