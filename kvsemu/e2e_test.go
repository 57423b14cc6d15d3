package kvsemu

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/acme/viewersession/kvsemu/camera"
)

// pionViewer is a receive-only pion peer that signals through the
// emulator's WSS like a KVS viewer (JS SDK frames, trickle ICE).
type pionViewer struct {
	t       *testing.T
	id      string
	ws      *websocket.Conn
	pc      *webrtc.PeerConnection
	answers chan time.Time // receipt time of each applied answer
	packets atomic.Int64
	packet  chan struct{} // signalled, without blocking, per RTP packet
	wg      sync.WaitGroup

	// mu guards the fields below.
	mu        sync.Mutex
	remoteSet bool
	early     []webrtc.ICECandidateInit
}

// newPionViewer connects viewer id to the channel. With iceServers it may
// use TURN; relayOnly forces the relay.
func newPionViewer(t *testing.T, emu *Emulator, arn, id string, iceServers []webrtc.ICEServer, relayOnly bool) *pionViewer {
	t.Helper()
	ws := dial(t, emu, arn, id)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.LoggerFactory = pionLogs{emu.log}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	cfg := webrtc.Configuration{ICEServers: iceServers}
	if relayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m)).NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v := &pionViewer{t: t, id: id, ws: ws, pc: pc, answers: make(chan time.Time, 8), packet: make(chan struct{}, 1)}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			v.send("ICE_CANDIDATE", c.ToJSON())
		}
	})
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		v.wg.Go(func() {
			for {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				v.packets.Add(1)
				select {
				case v.packet <- struct{}{}:
				default:
				}
			}
		})
	})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	v.wg.Go(func() { v.read(ctx) })
	t.Cleanup(func() {
		cancel()
		if err := pc.GracefulClose(); err != nil {
			t.Errorf("close viewer pc: %v", err)
		}
		ws.CloseNow()
		v.wg.Wait()
	})
	return v
}

// send writes {"action","messagePayload"} with payload JSON-encoded.
func (v *pionViewer) send(action string, payload any) {
	inner, err := json.Marshal(payload)
	if err != nil {
		v.t.Errorf("marshal: %v", err)
		return
	}
	frame, _ := json.Marshal(map[string]string{"action": action, "messagePayload": base64.StdEncoding.EncodeToString(inner)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = v.ws.Write(ctx, websocket.MessageText, frame)
}

// offer creates, applies and sends an SDP offer.
func (v *pionViewer) offer() {
	v.t.Helper()
	o, err := v.pc.CreateOffer(nil)
	if err != nil {
		v.t.Fatalf("CreateOffer: %v", err)
	}
	if err := v.pc.SetLocalDescription(o); err != nil {
		v.t.Fatalf("SetLocalDescription: %v", err)
	}
	v.send("SDP_OFFER", map[string]string{"type": "offer", "sdp": o.SDP})
}

// read applies answers and candidates until the socket closes.
func (v *pionViewer) read(ctx context.Context) {
	for {
		_, data, err := v.ws.Read(ctx)
		if err != nil {
			return
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			v.t.Errorf("viewer %s got %s: %v", v.id, data, err)
			continue
		}
		inner, err := base64.StdEncoding.DecodeString(f.MessagePayload)
		if err != nil {
			continue
		}
		switch f.MessageType {
		case "SDP_ANSWER":
			var a webrtc.SessionDescription
			if err := json.Unmarshal(inner, &a); err != nil {
				v.t.Errorf("answer: %v", err)
				continue
			}
			if err := v.pc.SetRemoteDescription(a); err != nil {
				v.t.Errorf("SetRemoteDescription: %v", err)
				continue
			}
			v.mu.Lock()
			v.remoteSet = true
			early := v.early
			v.early = nil
			v.mu.Unlock()
			for _, c := range early {
				_ = v.pc.AddICECandidate(c)
			}
			v.answers <- time.Now()
		case "ICE_CANDIDATE":
			var c webrtc.ICECandidateInit
			if err := json.Unmarshal(inner, &c); err != nil {
				continue
			}
			v.mu.Lock()
			if !v.remoteSet {
				v.early = append(v.early, c)
				v.mu.Unlock()
				continue
			}
			v.mu.Unlock()
			_ = v.pc.AddICECandidate(c)
		}
	}
}

// waitAnswer returns when the answer was applied, failing after 15 s.
func (v *pionViewer) waitAnswer() time.Time {
	v.t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case at := <-v.answers:
		return at
	case <-timer.C:
		v.t.Fatalf("viewer %s got no SDP answer", v.id)
		return time.Time{}
	}
}

// waitPackets waits until more than n RTP packets arrived, for up to 20 s.
func (v *pionViewer) waitPackets(n int64) {
	v.t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for v.packets.Load() <= n {
		select {
		case <-v.packet:
		case <-timer.C:
			v.t.Fatalf("viewer %s got %d RTP packets, want > %d", v.id, v.packets.Load(), n)
		}
	}
}

// iceServers fetches the channel's TURN servers with a signed request.
func iceServers(t *testing.T, emu *Emulator, arn string) []webrtc.ICEServer {
	t.Helper()
	resp, body := signedPost(t, emu, "/v1/get-ice-server-config", map[string]string{"ChannelARN": arn}, emu.cfg.SecretAccessKey, emu.cfg.Now())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get-ice-server-config = %d %s", resp.StatusCode, body)
	}
	var l iceServerList
	if err := json.Unmarshal(body, &l); err != nil {
		t.Fatal(err)
	}
	var out []webrtc.ICEServer
	for _, s := range l.IceServerList {
		out = append(out, webrtc.ICEServer{URLs: s.Uris, Username: s.Username, Credential: s.Password})
	}
	return out
}

// TestCameraVideo is acceptance 3: a pion viewer connected with a presigned
// URL exchanges offer, answer and candidates with the simulated camera and
// receives video RTP, in every camera mode, directly and through TURN.
func TestCameraVideo(t *testing.T) {
	tests := []struct {
		name  string
		mode  camera.Mode
		relay bool
	}{
		{"c-sample", camera.CSample, false},
		{"js-sample", camera.JSSample, false},
		{"restart-capable", camera.RestartCapable, false},
		{"c-sample through TURN", camera.CSample, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu := startEmu(t, nil)
			arn := mustChannel(t, emu, "cam", 0)
			if err := emu.StartCamera(arn, tt.mode); err != nil {
				t.Fatalf("StartCamera() = %v", err)
			}
			var servers []webrtc.ICEServer
			if tt.relay {
				servers = iceServers(t, emu, arn)
			}
			v := newPionViewer(t, emu, arn, "viewer-1", servers, tt.relay)
			v.offer()
			v.waitAnswer()
			v.waitPackets(20)

			if tt.relay {
				pair, err := selectedPair(v.pc)
				if err != nil || pair.Local.Typ != webrtc.ICECandidateTypeRelay {
					t.Errorf("selected pair = %v (%v), want a relay candidate", pair, err)
				}
			}
			c := emu.Counters().Messages
			if c["viewer->master:SDP_OFFER"] != 1 || c["master->viewer:SDP_ANSWER"] != 1 ||
				c["viewer->master:ICE_CANDIDATE"] < 1 || c["master->viewer:ICE_CANDIDATE"] < 1 {
				t.Errorf("Counters().Messages = %v, want one offer, one answer, candidates both ways", c)
			}
			st, err := emu.CameraStats(arn)
			if err != nil || st.AnswersSent != 1 || st.PacketsSent == 0 {
				t.Errorf("CameraStats() = %+v, %v; want 1 answer and packets sent", st, err)
			}
		})
	}
}

func selectedPair(pc *webrtc.PeerConnection) (*webrtc.ICECandidatePair, error) {
	sctp := pc.SCTP()
	if sctp != nil {
		return sctp.Transport().ICETransport().GetSelectedCandidatePair()
	}
	for _, tr := range pc.GetTransceivers() {
		if r := tr.Receiver(); r != nil {
			return r.Transport().ICETransport().GetSelectedCandidatePair()
		}
	}
	return nil, nil
}

// TestCameraOwnHost: with CameraIP and TURNAddr on an interface address
// other than loopback, the camera's candidates and TURN's relays are on
// that address, and a viewer on 127.0.0.1 gets video from it, directly and
// through TURN.
func TestCameraOwnHost(t *testing.T) {
	ip, ok := hostIPv4()
	if !ok {
		t.Skip("no up non-loopback IPv4 interface address to give the camera")
	}
	emu := startEmu(t, func(c *Config) {
		c.CameraIP = ip
		c.TURNAddr = netip.AddrPortFrom(ip, 0).String()
	})
	arn := mustChannel(t, emu, "cam", 0)
	if err := emu.StartCamera(arn, camera.JSSample); err != nil {
		t.Fatalf("StartCamera() = %v", err)
	}
	if got := emu.CameraIP(); got != ip {
		t.Errorf("CameraIP() = %s, want %s", got, ip)
	}
	udp, tcp := emu.TURNAddrs()
	for _, a := range []string{udp, tcp} {
		if ap, err := netip.ParseAddrPort(a); err != nil || ap.Addr() != ip || ap.Port() == 0 {
			t.Errorf("TURNAddrs() has %q, want %s:<port>", a, ip)
		}
	}
	servers := iceServers(t, emu, arn)
	for _, u := range servers[0].URLs {
		if !strings.HasPrefix(u, "turn:"+ip.String()+":") {
			t.Errorf("GetIceServerConfig URI %q, want turn:%s:<port>", u, ip)
		}
	}

	for _, relay := range []bool{false, true} {
		t.Run(fmt.Sprintf("relay=%v", relay), func(t *testing.T) {
			var s []webrtc.ICEServer
			if relay {
				s = servers
			}
			v := newPionViewer(t, emu, arn, fmt.Sprintf("viewer-relay-%v", relay), s, relay)
			v.offer()
			v.waitAnswer()
			v.waitPackets(20)
			pair, err := selectedPair(v.pc)
			if err != nil || pair == nil {
				t.Fatalf("selected pair = %v, %v", pair, err)
			}
			if relay && (pair.Local.Typ != webrtc.ICECandidateTypeRelay || pair.Local.Address != ip.String()) {
				t.Errorf("viewer's side of the pair = %s, want a relay on %s", pair.Local, ip)
			}
			if pair.Remote.Address != ip.String() {
				t.Errorf("camera's side of the pair = %s, want %s", pair.Remote, ip)
			}
		})
	}
}

// TestStartValidates: a bad address in the Config fails Start and names
// every problem.
func TestStartValidates(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.CameraIP = netip.MustParseAddr("198.51.100.7") // TEST-NET-2: on no interface
	cfg.TURNAddr = "0.0.0.0:3478"
	emu, err := Start(t.Context(), cfg)
	if err == nil {
		emu.Close()
		t.Fatal("Start() = nil error, want one")
	}
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "CameraIP") ||
		!strings.Contains(err.Error(), "TURNAddr") {
		t.Errorf("Start() = %v, want ErrInvalidArgument naming CameraIP and TURNAddr", err)
	}
}

// hostIPv4 returns an IPv4 address of an up, non-loopback interface.
func hostIPv4() (netip.Addr, bool) {
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
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
					return ip.Unmap(), true
				}
			}
		}
	}
	return netip.Addr{}, false
}
