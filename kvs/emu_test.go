package kvs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
)

// The tests in this file run the client against kvsemu, the independent
// implementation of the KVS protocol, with its simulated camera.

// startEmu starts an emulator and a Client configured for it.
func startEmu(t *testing.T) (*kvsemu.Emulator, *Client) {
	t.Helper()
	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(t.Context(), ecfg)
	if err != nil {
		t.Fatalf("kvsemu.Start: %v", err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	creds := emu.Credentials()
	awsCfg := aws.Config{
		Region:      emu.Region(),
		Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
	}
	cfg := DefaultConfig()
	cfg.Region = emu.Region()
	cfg.Endpoint = emu.Endpoint()
	cfg.CAPool = emu.CertPool()
	// Long enough to wait out the emulator's 3 connects/s per channel.
	cfg.Backoff = Backoff{Base: 100 * time.Millisecond, Max: time.Second, Attempts: 6}
	cfg.DialTimeout = 3 * time.Second
	c, err := New(awsCfg, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.closeIdleConnections)
	return emu, c
}

func calls(emu *kvsemu.Emulator, op string) int64 { return emu.Counters().Calls[op] }

// TestEmuLookupsCoalesce is acceptance point 2: 100 concurrent lookups for one
// channel make one GetSignalingChannelEndpoint and one GetIceServerConfig,
// and the ICE servers are fetched again once the cache passes Ttl - 30 s.
func TestEmuLookupsCoalesce(t *testing.T) {
	emu, c := startEmu(t)
	arn, err := emu.CreateChannel("porch", 45*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var clockMu sync.Mutex
	now := time.Now()
	c.now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }

	const n = 100
	start := make(chan struct{})
	var wg sync.WaitGroup
	servers := make([]IceServers, n)
	for i := range n {
		wg.Go(func() {
			<-start
			ch, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: arn})
			if err != nil {
				t.Errorf("ResolveChannel: %v", err)
				return
			}
			servers[i], err = c.IceServers(t.Context(), ch, fmt.Sprintf("viewer-%d", i))
			if err != nil {
				t.Errorf("IceServers: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	if got := calls(emu, kvsemu.OpGetSignalingChannelEndpoint); got != 1 {
		t.Errorf("GetSignalingChannelEndpoint calls for %d lookups = %d, want 1", n, got)
	}
	if got := calls(emu, kvsemu.OpGetIceServerConfig); got != 1 {
		t.Errorf("GetIceServerConfig calls for %d lookups = %d, want 1", n, got)
	}
	if got := calls(emu, kvsemu.OpDescribeSignalingChannel); got != 1 {
		t.Errorf("DescribeSignalingChannel calls = %d, want 1", got)
	}

	ch, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "porch"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.ARN != arn || ch.MessageTTL != 45*time.Second || ch.WSSEndpoint != emu.WSSEndpoint() || !strings.HasPrefix(ch.HTTPSEndpoint, "https://") {
		t.Errorf("ResolveChannel(name) = %+v, want ARN %s, MessageTTL 45s, WSS %s", ch, arn, emu.WSSEndpoint())
	}

	s := servers[0]
	udp, tcp := emu.TURNAddrs()
	if len(s.Servers) != 2 || s.Servers[0].Username == "" || s.Servers[0].Credential == "" ||
		strings.Join(s.Servers[0].URLs, " ") != "turn:"+udp+"?transport=udp turn:"+tcp+"?transport=tcp" ||
		strings.Join(s.Servers[1].URLs, " ") != "stun:stun.kinesisvideo.us-west-2.amazonaws.com:443" {
		t.Fatalf("IceServers = %v, want the emulator's TURN server, then the KVS STUN URL", s.Servers)
	}
	if ttl := s.Expires.Sub(now); ttl != 5*time.Minute {
		t.Errorf("Expires = fetch + %v, want fetch + 5m (the emulator's Ttl)", ttl)
	}

	for _, tt := range []struct {
		at        time.Duration // after the fetch
		wantCalls int64
	}{
		{at: 4*time.Minute + 29*time.Second, wantCalls: 1}, // Ttl - 31 s: cached
		{at: 4*time.Minute + 30*time.Second, wantCalls: 2}, // Ttl - 30 s: refetched
		{at: 4*time.Minute + 31*time.Second, wantCalls: 2}, // the new set is cached
	} {
		clockMu.Lock()
		now = s.Expires.Add(-5 * time.Minute).Add(tt.at)
		clockMu.Unlock()
		if _, err := c.IceServers(t.Context(), ch, "viewer-x"); err != nil {
			t.Fatal(err)
		}
		if got := calls(emu, kvsemu.OpGetIceServerConfig); got != tt.wantCalls {
			t.Errorf("GetIceServerConfig calls at fetch + %v = %d, want %d", tt.at, got, tt.wantCalls)
		}
	}
}

// TestEmuThrottled is acceptance point 3: a throttled API gets backoff, then
// succeeds once the throttle lifts; the number of attempts is bounded.
func TestEmuThrottled(t *testing.T) {
	tests := []struct {
		name      string
		op        string
		n         int
		wantErr   error
		wantCalls int64
	}{
		{name: "endpoint recovers", op: kvsemu.OpGetSignalingChannelEndpoint, n: 3, wantCalls: 4},
		{name: "endpoint gives up", op: kvsemu.OpGetSignalingChannelEndpoint, n: 100, wantErr: ErrThrottled, wantCalls: 6},
		{name: "describe recovers", op: kvsemu.OpDescribeSignalingChannel, n: 2, wantCalls: 3},
		{name: "ice recovers", op: kvsemu.OpGetIceServerConfig, n: 3, wantCalls: 4},
		{name: "ice gives up", op: kvsemu.OpGetIceServerConfig, n: 100, wantErr: ErrThrottled, wantCalls: 6},
		{name: "connect recovers", op: kvsemu.OpConnectAsViewer, n: 2, wantCalls: 2},
		{name: "connect gives up", op: kvsemu.OpConnectAsViewer, n: 100, wantErr: ErrThrottled, wantCalls: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			emu, c := startEmu(t)
			c.cfg.Backoff = Backoff{Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Attempts: 6}
			arn, err := emu.CreateChannel("throttled", 0)
			if err != nil {
				t.Fatal(err)
			}
			emu.Throttle(tt.op, tt.n)
			err = func() error {
				ch, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "throttled"})
				if err != nil {
					return err
				}
				if _, err := c.IceServers(t.Context(), ch, "v1"); err != nil {
					return err
				}
				cn, err := c.Dial(t.Context(), ch, "v1")
				if err != nil {
					return err
				}
				return cn.Close()
			}()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("lookups and dial error = %v, want %v", err, tt.wantErr)
			}
			got := calls(emu, tt.op)
			if tt.op == kvsemu.OpConnectAsViewer {
				got = emu.Counters().Connects["VIEWER_REFUSED"]
			}
			if got != tt.wantCalls {
				t.Errorf("%s attempts (refused for connects) = %d, want %d", tt.op, got, tt.wantCalls)
			}
			if tt.wantErr == nil {
				if got := emu.Counters().Connects["VIEWER"]; got != 1 {
					t.Errorf("viewer connects = %d, want 1", got)
				}
			}
			_ = arn
		})
	}
}

func TestEmuErrors(t *testing.T) {
	emu, c := startEmu(t)
	arn, err := emu.CreateChannel("exists", 0)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	region := emu.Region()
	_, err = c.ResolveChannel(t.Context(), ChannelRef{Name: "missing"})
	var ae *APIError
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &ae) || ae.Code != "ResourceNotFoundException" || ae.HTTPStatus != 404 {
		t.Errorf("ResolveChannel(missing) = %v, want ErrNotFound from ResourceNotFoundException 404", err)
	}
	bad := Channel{ARN: strings.Replace(arn, "exists", "gone", 1), Region: region, WSSEndpoint: ch.WSSEndpoint, HTTPSEndpoint: ch.HTTPSEndpoint}
	if _, err := c.IceServers(t.Context(), bad, "v"); !errors.Is(err, ErrNotFound) {
		t.Errorf("IceServers(unknown channel) = %v, want ErrNotFound", err)
	}
	if _, err := c.Dial(t.Context(), bad, "v"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Dial(unknown channel) = %v, want ErrNotFound", err)
	}

	// Wrong credentials: each API says access denied.
	creds := credentials.NewStaticCredentialsProvider(emu.Credentials().AccessKeyID, "wrong-secret", "")
	wrong, err := New(aws.Config{Region: region, Credentials: creds}, c.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.closeIdleConnections()
	if _, err := wrong.ResolveChannel(t.Context(), ChannelRef{Name: "exists"}); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("ResolveChannel with a wrong secret = %v, want ErrAccessDenied", err)
	}
	if _, err := wrong.IceServers(t.Context(), ch, "v"); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("IceServers with a wrong secret = %v, want ErrAccessDenied", err)
	}
	if _, err := wrong.Dial(t.Context(), ch, "v"); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("Dial with a wrong secret = %v, want ErrAccessDenied", err)
	}
}

// viewer is a pion peer that signals through a Conn.
type viewer struct {
	t       *testing.T
	pc      *webrtc.PeerConnection
	cn      *Conn
	packets atomic.Int64
	packet  chan struct{} // signalled on each RTP packet
	answers chan struct{} // signalled when an answer was applied
	others  chan Event    // events other than answers and candidates
	cands   chan webrtc.ICECandidateInit
	wg      sync.WaitGroup
}

func newViewer(t *testing.T, cn *Conn, servers IceServers) *viewer {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	var ice []webrtc.ICEServer
	for _, s := range servers.Servers {
		for _, u := range s.URLs {
			if strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "transport=udp") { // loopback TURN only: no network here
				ice = append(ice, webrtc.ICEServer{URLs: []string{u}, Username: s.Username, Credential: s.Credential})
			}
		}
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{ICEServers: ice})
	if err != nil {
		t.Fatal(err)
	}
	v := &viewer{t: t, pc: pc, cn: cn, packet: make(chan struct{}, 1), answers: make(chan struct{}, 4),
		others: make(chan Event, 16), cands: make(chan webrtc.ICECandidateInit, 64)}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			select {
			case v.cands <- c.ToJSON():
			case <-ctx.Done():
			}
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
	v.wg.Go(func() { v.sendCandidates(ctx) })
	v.wg.Go(func() { v.handleEvents(ctx) })
	t.Cleanup(func() {
		cancel()
		_ = cn.Close()
		_ = pc.Close()
		v.wg.Wait()
	})
	return v
}

// sendCandidates trickles the viewer's candidates through the Conn.
func (v *viewer) sendCandidates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-v.cands:
			cand := Candidate{Candidate: c.Candidate, SDPMLineIndex: c.SDPMLineIndex}
			if c.SDPMid != nil {
				cand.SDPMid = *c.SDPMid
			}
			if err := ValidateCandidate(cand); err != nil {
				v.t.Errorf("ValidateCandidate(pion candidate %q): %v", c.Candidate, err)
			}
			if _, err := v.cn.SendCandidate(ctx, cand); err != nil && ctx.Err() == nil {
				v.t.Errorf("SendCandidate: %v", err)
			}
		}
	}
}

// handleEvents applies answers and candidates and passes the rest on.
func (v *viewer) handleEvents(ctx context.Context) {
	var early []webrtc.ICECandidateInit
	for ev := range v.cn.Events() {
		switch ev.Type {
		case EventAnswer:
			if err := v.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ev.SDP}); err != nil {
				v.t.Errorf("SetRemoteDescription(answer): %v", err)
				continue
			}
			for _, c := range early {
				_ = v.pc.AddICECandidate(c)
			}
			early = nil
			v.answers <- struct{}{}
		case EventCandidate:
			mid := ev.Candidate.SDPMid
			c := webrtc.ICECandidateInit{Candidate: ev.Candidate.Candidate, SDPMid: &mid, SDPMLineIndex: ev.Candidate.SDPMLineIndex}
			if v.pc.RemoteDescription() == nil {
				early = append(early, c)
				continue
			}
			if err := v.pc.AddICECandidate(c); err != nil {
				v.t.Logf("AddICECandidate: %v", err)
			}
		default:
			select {
			case v.others <- ev:
			case <-ctx.Done():
				return
			}
		}
	}
}

// offer makes an offer (an ICE restart if asked), sends it and returns what
// ValidateOffer read from it.
func (v *viewer) offer(restart bool) OfferInfo {
	v.t.Helper()
	o, err := v.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		v.t.Fatal(err)
	}
	if err := v.pc.SetLocalDescription(o); err != nil {
		v.t.Fatal(err)
	}
	info, err := ValidateOffer(o.SDP)
	if err != nil {
		v.t.Fatalf("ValidateOffer(pion offer): %v", err)
	}
	if _, err := v.cn.SendOffer(v.t.Context(), o.SDP); err != nil {
		v.t.Fatalf("SendOffer: %v", err)
	}
	return info
}

func (v *viewer) waitAnswer() {
	v.t.Helper()
	select {
	case <-v.answers:
	case <-time.After(15 * time.Second):
		v.t.Fatal("no SDP answer within 15s")
	}
}

// waitPackets waits until n more RTP packets arrived.
func (v *viewer) waitPackets(n int64) {
	v.t.Helper()
	target := v.packets.Load() + n
	deadline := time.After(20 * time.Second)
	for v.packets.Load() < target {
		select {
		case <-v.packet:
		case <-deadline:
			v.t.Fatalf("got %d RTP packets, want %d within 20s (ICE %v)", v.packets.Load(), target, v.pc.ICEConnectionState())
		}
	}
}

func (v *viewer) event(want EventType) Event {
	v.t.Helper()
	select {
	case ev := <-v.others:
		if ev.Type != want {
			v.t.Fatalf("event = %v (%v), want %v", ev.Type, ev.Err, want)
		}
		return ev
	case <-time.After(15 * time.Second):
		v.t.Fatalf("no %v event within 15s", want)
		return Event{}
	}
}

// offersDelivered counts viewer offers from clientID the emulator handed to
// the camera.
func offersDelivered(emu *kvsemu.Emulator, arn, clientID string) int {
	n := 0
	for _, m := range emu.Messages(arn) {
		if m.From == "viewer" && m.ClientID == clientID && m.Type == "SDP_OFFER" && m.Delivered {
			n++
		}
	}
	return n
}

// TestEmuViewerSession is acceptance point 4: a viewer signals through the
// client, the camera answers and a pion peer receives its video; GO_AWAY
// reconnects the socket and a later ICE-restart offer still reaches the
// camera (and, with a restart-capable camera, the only kind that
// renegotiates on the same connection, is answered and media flows again);
// RECONNECT_ICE_SERVER reports fresh ICE servers; a dropped socket comes back.
func TestEmuViewerSession(t *testing.T) {
	emu, c := startEmu(t)
	arn, err := emu.CreateChannel("garage", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.StartCamera(arn, camera.RestartCapable); err != nil {
		t.Fatal(err)
	}
	ch, err := c.ResolveChannel(t.Context(), ChannelRef{Name: "garage"})
	if err != nil {
		t.Fatal(err)
	}
	const id = "viewer-garage-1"
	servers, err := c.IceServers(t.Context(), ch, id)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := c.Dial(t.Context(), ch, id)
	if err != nil {
		t.Fatal(err)
	}
	v := newViewer(t, cn, servers)

	first := v.offer(false)
	v.waitAnswer()
	v.waitPackets(10)

	// GO_AWAY: the client leaves the socket and comes back with the same id.
	if err := emu.SendGoAway(arn, id); err != nil {
		t.Fatal(err)
	}
	if ev := v.event(EventReconnected); !errors.Is(ev.Err, errGoAway) {
		t.Errorf("Reconnected.Err = %v, want GO_AWAY", ev.Err)
	}

	// A later ICE restart goes out on the new socket and reaches the camera.
	restart := v.offer(true)
	if !IsICERestart(first, restart) {
		t.Errorf("IsICERestart(%+v, %+v) = false for pion's ICE-restart offer", first, restart)
	}
	v.waitAnswer()
	if got := offersDelivered(emu, arn, id); got != 2 {
		t.Errorf("offers delivered to the camera = %d, want 2", got)
	}
	if got := emu.Counters().Connects["VIEWER"]; got != 2 {
		t.Errorf("viewer connects after GO_AWAY = %d, want 2", got)
	}
	v.waitPackets(10)

	// RECONNECT_ICE_SERVER: fresh ICE servers, reported.
	before := calls(emu, kvsemu.OpGetIceServerConfig)
	if err := emu.SendReconnectICEServer(arn, id); err != nil {
		t.Fatal(err)
	}
	ev := v.event(EventIceServersRefreshed)
	if ev.Err != nil || ev.IceServers == nil || len(ev.IceServers.Servers) != 2 || ev.IceServers.Servers[0].Credential == "" {
		t.Fatalf("IceServersRefreshed = %+v, want a fresh set", ev)
	}
	if got := calls(emu, kvsemu.OpGetIceServerConfig); got != before+1 {
		t.Errorf("GetIceServerConfig calls after RECONNECT_ICE_SERVER = %d, want %d", got, before+1)
	}

	// A dropped socket (no close frame) is reopened too.
	if err := emu.DropViewer(arn, id); err != nil {
		t.Fatal(err)
	}
	if ev := v.event(EventReconnected); ev.Err == nil || errors.Is(ev.Err, errGoAway) {
		t.Errorf("Reconnected.Err = %v, want the socket error", ev.Err)
	}
	if _, err := cn.SendCandidate(t.Context(), Candidate{Candidate: "candidate:9 1 udp 1 127.0.0.1 9 typ host", SDPMid: "0"}); err != nil {
		t.Errorf("SendCandidate after the drop: %v", err)
	}
	v.waitPackets(5) // media never depended on signaling

	if err := cn.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := v.event(EventClosed); !errors.Is(ev.Err, ErrClosed) {
		t.Errorf("Closed.Err = %v, want ErrClosed", ev.Err)
	}
}

// TestEmuCSampleIgnoresRestart checks the other camera: a c-sample master
// ignores the ICE-restart offer from the live clientId, but the offer still
// reaches it over the reconnected socket.
func TestEmuCSampleIgnoresRestart(t *testing.T) {
	emu, c := startEmu(t)
	arn, err := emu.CreateChannel("shed", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.StartCamera(arn, camera.CSample); err != nil {
		t.Fatal(err)
	}
	ch, err := c.ResolveChannel(t.Context(), ChannelRef{ARN: arn})
	if err != nil {
		t.Fatal(err)
	}
	const id = "viewer-shed-1"
	servers, err := c.IceServers(t.Context(), ch, id)
	if err != nil {
		t.Fatal(err)
	}
	cn, err := c.Dial(t.Context(), ch, id)
	if err != nil {
		t.Fatal(err)
	}
	v := newViewer(t, cn, servers)
	v.offer(false)
	v.waitAnswer()
	v.waitPackets(5)
	if err := emu.SendGoAway(arn, id); err != nil {
		t.Fatal(err)
	}
	v.event(EventReconnected)
	v.offer(true)
	// Polling the camera's counters (another component's state), with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		stats, err := emu.CameraStats(arn)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Offers == 2 {
			if stats.IgnoredOffers != 1 || stats.AnswersSent != 1 {
				t.Errorf("camera stats = %+v, want the restart offer ignored (1 ignored, 1 answer)", stats)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("camera stats = %+v, want 2 offers within 10s", stats)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := offersDelivered(emu, arn, id); got != 2 {
		t.Errorf("offers delivered = %d, want 2", got)
	}
}
