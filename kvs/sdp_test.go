package kvs

import (
	"errors"
	"strings"
	"testing"

	"github.com/pion/webrtc/v4"
)

// newOfferer returns a pion peer connection with one video transceiver.
func newOfferer(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	return pc
}

func offer(t *testing.T, pc *webrtc.PeerConnection, restart bool) OfferInfo {
	t.Helper()
	o, err := pc.CreateOffer(&webrtc.OfferOptions{ICERestart: restart})
	if err != nil {
		t.Fatal(err)
	}
	if pc.SignalingState() == webrtc.SignalingStateStable {
		if err := pc.SetLocalDescription(o); err != nil {
			t.Fatal(err)
		}
	}
	info, err := ValidateOffer(o.SDP)
	if err != nil {
		t.Fatalf("ValidateOffer(pion offer) error: %v", err)
	}
	return info
}

func TestValidateOfferAndICERestart(t *testing.T) {
	pc := newOfferer(t)
	first := offer(t, pc, false)
	if first.ICEUfrag == "" || first.ICEPwd == "" || !strings.HasPrefix(first.Fingerprint, "sha-256 ") {
		t.Fatalf("ValidateOffer = %+v, want ufrag, pwd and a sha-256 fingerprint", first)
	}
	again := offer(t, pc, false)
	restart := offer(t, pc, true)
	other := offer(t, newOfferer(t), false)
	tests := []struct {
		name       string
		prev, next OfferInfo
		want       bool
	}{
		{"duplicate offer", first, again, false},
		{"ice restart", first, restart, true},
		{"new peer connection", first, other, false},
		{"same offer", first, first, false},
		{"no fingerprint", OfferInfo{ICEUfrag: "a"}, OfferInfo{ICEUfrag: "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsICERestart(tt.prev, tt.next); got != tt.want {
				t.Errorf("IsICERestart(%+v, %+v) = %v, want %v", tt.prev, tt.next, got, tt.want)
			}
		})
	}
}

func TestValidateOfferRejects(t *testing.T) {
	const media = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
	const fp = "a=fingerprint:sha-256 AB:CD\r\n"
	tests := []struct {
		name string
		give string
		want string // part of the error; "" = valid
	}{
		{"valid, media-level attributes", media + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:uf\r\na=ice-pwd:pwpwpwpwpwpwpwpwpwpwpwpw\r\n" + fp, ""},
		{"valid, session-level attributes", media + "a=ice-ufrag:uf\r\na=ice-pwd:pw\r\n" + fp + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", ""},
		{"empty", "", "empty"},
		{"garbage", "hello", "parse"},
		{"no media", media + "a=ice-ufrag:uf\r\na=ice-pwd:pw\r\n" + fp, "no media"},
		{"no ice", media + fp + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "a=ice-ufrag, a=ice-pwd"},
		{"no fingerprint", media + "a=ice-ufrag:uf\r\na=ice-pwd:pw\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "a=fingerprint"},
		{"too big", media + "a=ice-ufrag:uf\r\na=ice-pwd:pw\r\n" + fp + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + strings.Repeat("a=x:"+strings.Repeat("y", 90)+"\r\n", 80), "payload"},
		{"far too big", strings.Repeat("x", 20000), "cannot fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ValidateOffer(tt.give)
			if tt.want == "" {
				if err != nil {
					t.Errorf("ValidateOffer error = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ValidateOffer error = %v, want ErrInvalidArgument mentioning %q", err, tt.want)
			}
		})
	}
}

func TestValidateCandidate(t *testing.T) {
	zero := uint16(0)
	const host = "candidate:1966762133 1 udp 2130706431 127.0.0.1 50000 typ host"
	tests := []struct {
		name string
		give Candidate
		ok   bool
	}{
		{"host with mid", Candidate{Candidate: host, SDPMid: "0"}, true},
		{"host with index", Candidate{Candidate: host, SDPMLineIndex: &zero}, true},
		{"without prefix", Candidate{Candidate: strings.TrimPrefix(host, "candidate:"), SDPMid: "0"}, true},
		{"srflx", Candidate{Candidate: "candidate:842163049 1 udp 1677729535 203.0.113.7 61000 typ srflx raddr 10.0.0.2 rport 61000 generation 0 ufrag abcd network-cost 999", SDPMid: "0"}, true},
		{"mdns host", Candidate{Candidate: "candidate:1 1 udp 2122260223 5a0c1e6f-d6a4-4a8a-9a4c-2a7e1f2e3b4c.local 54321 typ host", SDPMid: "0"}, true},
		{"tcp", Candidate{Candidate: "candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active", SDPMid: "0"}, true},
		{"empty", Candidate{SDPMid: "0"}, false},
		{"no placement", Candidate{Candidate: host}, false},
		{"garbage", Candidate{Candidate: "candidate:x", SDPMid: "0"}, false},
		{"too long", Candidate{Candidate: host + " " + strings.Repeat("k v ", 300), SDPMid: "0"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateCandidate(tt.give)
			if tt.ok != (err == nil) {
				t.Errorf("ValidateCandidate(%.60q) = %v, want ok %v", tt.give.Candidate, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ValidateCandidate error = %v, want ErrInvalidArgument", err)
			}
		})
	}
}
