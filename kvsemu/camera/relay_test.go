package camera

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
)

// waitFor bounds every wait on the camera in these tests.
const waitFor = 10 * time.Second

// relay is a tiny stand-in for the KVS signaling service on a TLS loopback
// server: one master socket (/master, newest wins) and viewer sockets
// (/viewer?X-Amz-ClientId=id, newest per id wins). It forwards frames in the
// KVS shapes and checks the shape of every frame the master sends.
type relay struct {
	t   *testing.T
	srv *httptest.Server
	// connects receives one value per accepted master connection.
	connects chan struct{}
	// capitalKeys makes master-bound frames use "SenderClientId",
	// "MessageType", "MessagePayload".
	capitalKeys atomic.Bool

	// mu guards the fields below.
	mu      sync.Mutex
	closed  bool
	master  *websocket.Conn
	viewers map[string]*websocket.Conn
	wg      sync.WaitGroup
}

// newRelay starts a relay; it is closed when the test ends.
func newRelay(t *testing.T) *relay {
	t.Helper()
	rl := &relay{t: t, connects: make(chan struct{}, 16), viewers: make(map[string]*websocket.Conn)}
	mux := http.NewServeMux()
	mux.HandleFunc("/master", rl.serveMaster)
	mux.HandleFunc("/viewer", rl.serveViewer)
	rl.srv = httptest.NewUnstartedServer(mux)
	rl.srv.Listener = loopbackListener(t)
	rl.srv.StartTLS()
	t.Cleanup(rl.close)
	return rl
}

// loopbackListener listens on 127.0.0.1 only.
func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	return l
}

// close stops the server and waits for every socket handler.
func (rl *relay) close() {
	rl.srv.Close()
	rl.mu.Lock()
	rl.closed = true
	if rl.master != nil {
		_ = rl.master.CloseNow()
	}
	for _, c := range rl.viewers {
		_ = c.CloseNow()
	}
	rl.mu.Unlock()
	rl.wg.Wait()
}

// dial is the camera's Config.Dial: a fresh WSS master connection.
func (rl *relay) dial(ctx context.Context) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(rl.srv.URL, "https")+"/master",
		&websocket.DialOptions{HTTPClient: rl.srv.Client()})
	return c, err
}

// dialViewer opens a viewer socket for id.
func (rl *relay) dialViewer(ctx context.Context, id string) (*websocket.Conn, error) {
	c, _, err := websocket.Dial(ctx, "wss"+strings.TrimPrefix(rl.srv.URL, "https")+"/viewer?X-Amz-ClientId="+id,
		&websocket.DialOptions{HTTPClient: rl.srv.Client()})
	return c, err
}

// register records c as the newest socket and reports false if the relay
// is closing; the caller then returns at once.
func (rl *relay) register(set func()) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.closed {
		return false
	}
	set()
	rl.wg.Add(1)
	return true
}

func (rl *relay) serveMaster(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	var old *websocket.Conn
	if !rl.register(func() { old, rl.master = rl.master, c }) {
		_ = c.CloseNow()
		return
	}
	defer rl.wg.Done()
	defer func() { _ = c.CloseNow() }()
	if old != nil {
		_ = old.CloseNow()
	}
	rl.connects <- struct{}{}
	for {
		_, data, err := c.Read(context.WithoutCancel(r.Context()))
		if err != nil {
			return
		}
		to, typ, payload, ok := rl.checkMasterFrame(data)
		if !ok {
			continue
		}
		rl.mu.Lock()
		v := rl.viewers[to]
		rl.mu.Unlock()
		if v == nil {
			continue
		}
		out, _ := json.Marshal(map[string]string{"messageType": typ, "messagePayload": payload})
		_ = writeFrame(v, out)
	}
}

// checkMasterFrame checks a master frame against KVS-PROTOCOL.md 2.2 and
// returns its recipient, action and payload.
func (rl *relay) checkMasterFrame(data []byte) (to, action, payload string, ok bool) {
	var f struct {
		Action            string `json:"action"`
		MessagePayload    string `json:"messagePayload"`
		RecipientClientID string `json:"recipientClientId"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		rl.t.Errorf("master frame %s: %v", data, err)
		return "", "", "", false
	}
	for _, key := range []string{`"action":`, `"messagePayload":`, `"recipientClientId":`} {
		if !bytes.Contains(data, []byte(key)) {
			rl.t.Errorf("master frame %s lacks key %s", data, key)
		}
	}
	inner, err := base64.StdEncoding.DecodeString(f.MessagePayload)
	if err != nil {
		rl.t.Errorf("master frame payload %q is not padded base64: %v", f.MessagePayload, err)
		return "", "", "", false
	}
	var keys map[string]any
	if err := json.Unmarshal(inner, &keys); err != nil {
		rl.t.Errorf("master payload %s: %v", inner, err)
		return "", "", "", false
	}
	var want []string
	switch f.Action {
	case typeSDPAnswer:
		want = []string{"sdp", "type"}
		if keys["type"] != "answer" {
			rl.t.Errorf("answer payload type = %v, want answer", keys["type"])
		}
	case typeICECandidate:
		want = []string{"candidate", "sdpMLineIndex", "sdpMid"}
	default:
		rl.t.Errorf("master frame action = %q, want SDP_ANSWER or ICE_CANDIDATE", f.Action)
		return "", "", "", false
	}
	if len(keys) != len(want) {
		rl.t.Errorf("%s payload keys = %v, want %v", f.Action, keys, want)
	}
	for _, k := range want {
		if _, ok := keys[k]; !ok {
			rl.t.Errorf("%s payload %s lacks %q", f.Action, inner, k)
		}
	}
	if f.RecipientClientID == "" {
		rl.t.Errorf("master frame %s has empty recipientClientId", data)
		return "", "", "", false
	}
	return f.RecipientClientID, f.Action, f.MessagePayload, true
}

func (rl *relay) serveViewer(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("X-Amz-ClientId")
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	var old *websocket.Conn
	if !rl.register(func() { old, rl.viewers[id] = rl.viewers[id], c }) {
		_ = c.CloseNow()
		return
	}
	defer rl.wg.Done()
	defer func() { _ = c.CloseNow() }()
	if old != nil {
		_ = old.CloseNow()
	}
	for {
		_, data, err := c.Read(context.WithoutCancel(r.Context()))
		if err != nil {
			return
		}
		var f struct {
			Action         string `json:"action"`
			MessagePayload string `json:"messagePayload"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			rl.t.Errorf("viewer frame %s: %v", data, err)
			continue
		}
		rl.toMaster(rl.masterFrame(id, f.Action, f.MessagePayload))
	}
}

// masterFrame shapes a frame for the master like KVS does (2.3).
func (rl *relay) masterFrame(sender, typ, payload string) []byte {
	keys := [3]string{"senderClientId", "messageType", "messagePayload"}
	if rl.capitalKeys.Load() {
		keys = [3]string{"SenderClientId", "MessageType", "MessagePayload"}
	}
	out, _ := json.Marshal(map[string]string{keys[0]: sender, keys[1]: typ, keys[2]: payload})
	return out
}

// toMaster writes a raw text frame to the current master, if any.
func (rl *relay) toMaster(frame []byte) {
	rl.mu.Lock()
	m := rl.master
	rl.mu.Unlock()
	if m != nil {
		_ = writeFrame(m, frame)
	}
}

// toMasterBinary writes a binary frame to the current master.
func (rl *relay) toMasterBinary(frame []byte) {
	rl.mu.Lock()
	m := rl.master
	rl.mu.Unlock()
	if m != nil {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = m.Write(ctx, websocket.MessageBinary, frame)
	}
}

// dropMaster closes the master socket abruptly.
func (rl *relay) dropMaster() {
	rl.mu.Lock()
	m := rl.master
	rl.mu.Unlock()
	if m != nil {
		_ = m.CloseNow()
	}
}

// waitConnect waits for the next master connection.
func (rl *relay) waitConnect(t *testing.T) {
	t.Helper()
	select {
	case <-rl.connects:
	case <-time.After(waitFor):
		t.Fatal("camera did not connect to signaling")
	}
}

// gatedWriter passes writes to w until closed, then drops them, so that
// logs from pion goroutines that outlive a test do not reach t.Output.
type gatedWriter struct {
	w io.Writer
	// mu guards closed; writers hold it shared.
	mu     sync.RWMutex
	closed bool
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

// close waits for writes in progress and drops later ones.
func (g *gatedWriter) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

func writeFrame(c *websocket.Conn, frame []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, frame)
}

// viewer is a real pion viewer peer connection signaling through the relay.
type viewer struct {
	t  *testing.T
	id string
	ws *websocket.Conn
	pc *webrtc.PeerConnection
	// answers receives every SDP answer after it was applied.
	answers chan webrtc.SessionDescription
	packets atomic.Int64
	// packet is signalled (without blocking) on each RTP packet.
	packet chan struct{}
	wg     sync.WaitGroup

	// mu guards the fields below.
	mu        sync.Mutex
	remoteSet bool
	early     []webrtc.ICECandidateInit
	// cameraCands are the candidate lines the camera trickled.
	cameraCands []string
}

// newViewer connects a viewer socket for id and makes a receive-only video
// peer connection on 127.0.0.1; both are closed when the test ends.
func newViewer(t *testing.T, rl *relay, id string) *viewer {
	t.Helper()
	return newViewerOn(t, rl, id, netip.AddrFrom4([4]byte{127, 0, 0, 1}))
}

// newViewerOn is newViewer with host candidates on ip only.
func newViewerOn(t *testing.T, rl *relay, id string, ip netip.Addr) *viewer {
	t.Helper()
	ws, err := rl.dialViewer(t.Context(), id)
	if err != nil {
		t.Fatalf("dial viewer: %v", err)
	}
	network := webrtc.NetworkTypeUDP4
	if ip.Is6() {
		network = webrtc.NetworkTypeUDP6
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(ip.IsLoopback())
	se.SetIPFilter(func(got net.IP) bool {
		a, ok := netip.AddrFromSlice(got)
		return ok && a.Unmap() == ip
	})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{network})
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(m)).
		NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{t: t, id: id, ws: ws, pc: pc, answers: make(chan webrtc.SessionDescription, 4),
		packet: make(chan struct{}, 1)}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			v.send(typeICECandidate, c.ToJSON())
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
	v.wg.Go(v.read)
	t.Cleanup(v.close)
	return v
}

// close closes the peer connection and the socket and waits for the
// viewer's goroutines.
func (v *viewer) close() {
	if err := v.pc.GracefulClose(); err != nil {
		v.t.Errorf("close viewer pc: %v", err)
	}
	_ = v.ws.CloseNow()
	v.wg.Wait()
}

// send writes a viewer frame: {"action","messagePayload"}.
func (v *viewer) send(action string, payload any) {
	inner, err := json.Marshal(payload)
	if err != nil {
		v.t.Errorf("marshal: %v", err)
		return
	}
	out, _ := json.Marshal(map[string]string{
		"action": action, "messagePayload": base64.StdEncoding.EncodeToString(inner)})
	_ = writeFrame(v.ws, out)
}

// offer sends an SDP offer (an ICE restart if restart) and returns it.
func (v *viewer) offer(restart bool) webrtc.SessionDescription {
	v.t.Helper()
	o, err := v.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		v.t.Fatalf("create offer: %v", err)
	}
	v.mu.Lock()
	v.remoteSet = false
	v.mu.Unlock()
	if err := v.pc.SetLocalDescription(o); err != nil {
		v.t.Fatalf("set local description: %v", err)
	}
	v.send(typeSDPOffer, map[string]string{"type": "offer", "sdp": o.SDP})
	return o
}

// read applies answers and candidates from the socket until it closes.
func (v *viewer) read() {
	for {
		_, data, err := v.ws.Read(context.Background())
		if err != nil {
			return
		}
		var f struct {
			MessageType    string `json:"messageType"`
			MessagePayload string `json:"messagePayload"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			v.t.Errorf("viewer got %s: %v", data, err)
			continue
		}
		inner, err := base64.StdEncoding.DecodeString(f.MessagePayload)
		if err != nil {
			v.t.Errorf("viewer payload: %v", err)
			continue
		}
		switch f.MessageType {
		case typeSDPAnswer:
			var a webrtc.SessionDescription
			if err := json.Unmarshal(inner, &a); err != nil {
				v.t.Errorf("answer: %v", err)
				continue
			}
			if err := v.pc.SetRemoteDescription(a); err != nil {
				// A js-sample camera closes the peer connection an ICE
				// restart was offered on; its DTLS close_notify may close
				// ours before the answer from its new one arrives.
				if v.pc.ConnectionState() != webrtc.PeerConnectionStateClosed {
					v.t.Errorf("viewer set remote description: %v", err)
				}
				v.answers <- a
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
			v.answers <- a
		case typeICECandidate:
			var c webrtc.ICECandidateInit
			if err := json.Unmarshal(inner, &c); err != nil {
				v.t.Errorf("candidate: %v", err)
				continue
			}
			v.mu.Lock()
			v.cameraCands = append(v.cameraCands, c.Candidate)
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

// waitAnswer waits for the next SDP answer.
func (v *viewer) waitAnswer() webrtc.SessionDescription {
	v.t.Helper()
	select {
	case a := <-v.answers:
		return a
	case <-time.After(waitFor):
		v.t.Fatalf("viewer %s got no answer within %v", v.id, waitFor)
		return webrtc.SessionDescription{}
	}
}

// noAnswer asserts that no answer arrives within window.
func (v *viewer) noAnswer(window time.Duration) {
	v.t.Helper()
	select {
	case a := <-v.answers:
		v.t.Fatalf("viewer %s got an answer, want none: %.60q", v.id, a.SDP)
	case <-time.After(window):
	}
}

// waitPackets waits until the viewer has received more than n RTP packets.
func (v *viewer) waitPackets(n int64) {
	v.t.Helper()
	deadline := time.After(waitFor)
	for v.packets.Load() <= n {
		select {
		case <-v.packet:
		case <-deadline:
			v.t.Fatalf("viewer %s got %d RTP packets, want > %d", v.id, v.packets.Load(), n)
		}
	}
}

// decision is one offerDone hook call.
type decision struct {
	clientID string
	outcome  outcome
}

// drop is one sessionDropped hook call.
type drop struct {
	clientID string
	state    webrtc.PeerConnectionState
}

// testCamera is a running Camera plus a feed of its offer decisions.
type testCamera struct {
	*Camera
	decisions chan decision
	// dropped receives each removed session.
	dropped chan drop
}

// startCamera runs a camera against rl until the test ends. cfg.Dial and
// cfg.Logger are filled in when zero.
func startCamera(t *testing.T, rl *relay, cfg Config) *testCamera {
	t.Helper()
	if cfg.Dial == nil {
		cfg.Dial = rl.dial
	}
	out := &gatedWriter{w: t.Output()}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tc := &testCamera{Camera: c, decisions: make(chan decision, 64), dropped: make(chan drop, 64)}
	c.hooks.sessionDropped = func(id string, st webrtc.PeerConnectionState) {
		select {
		case tc.dropped <- drop{id, st}:
		default:
		}
	}
	c.hooks.offerDone = func(id string, o outcome) {
		select {
		case tc.decisions <- decision{id, o}:
		default:
			t.Errorf("decision feed full, dropping %s %v", id, o)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(waitFor):
			t.Errorf("Run did not return within %v of cancel", waitFor)
		}
		// pion ends a few goroutines of closed peer connections (such as
		// its undeclared-SSRC readers) a little later, and they may log.
		out.close()
	})
	rl.waitConnect(t)
	return tc
}

// waitDecision waits for the camera's next offer decision and checks it.
func (tc *testCamera) waitDecision(t *testing.T, id string, want outcome) {
	t.Helper()
	select {
	case d := <-tc.decisions:
		if d.clientID != id || d.outcome != want {
			t.Fatalf("offer decision = %s %v, want %s %v", d.clientID, d.outcome, id, want)
		}
	case <-time.After(waitFor):
		t.Fatalf("no offer decision within %v, want %s %v", waitFor, id, want)
	}
}

// waitDropped waits for the camera to remove a session and checks that it
// was id's and that its peer connection is closed.
func (tc *testCamera) waitDropped(t *testing.T, id string) {
	t.Helper()
	select {
	case d := <-tc.dropped:
		if d.clientID != id || d.state != webrtc.PeerConnectionStateClosed {
			t.Fatalf("dropped session %s (peer connection %s), want %s closed", d.clientID, d.state, id)
		}
	case <-time.After(waitFor):
		t.Fatalf("session %s not removed within %v", id, waitFor)
	}
}
