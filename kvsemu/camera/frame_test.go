package camera

import (
	"encoding/base64"
	"errors"
	"testing"

	"github.com/pion/webrtc/v4"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseFrame(t *testing.T) {
	tests := []struct {
		name   string
		give   string
		want   inFrame
		wantOK bool
	}{
		{
			name:   "lower case (C#1424)",
			give:   `{"messagePayload":"eyJ9","messageType":"ICE_CANDIDATE","senderClientId":"e21d42cb"}`,
			want:   inFrame{SenderClientID: "e21d42cb", MessageType: "ICE_CANDIDATE", MessagePayload: "eyJ9"},
			wantOK: true,
		},
		{
			name:   "capitalised keys",
			give:   `{"SenderClientId":"v1","MessageType":"SDP_OFFER","MessagePayload":"eyJ9"}`,
			want:   inFrame{SenderClientID: "v1", MessageType: "SDP_OFFER", MessagePayload: "eyJ9"},
			wantOK: true,
		},
		{
			name:   "unknown fields and lower-case type",
			give:   `{"messageType":"go_away","extra":{"a":1},"IceServerList":[]}`,
			want:   inFrame{MessageType: "GO_AWAY"},
			wantOK: true,
		},
		{
			name:   "foreign frame",
			give:   `{"message": "Endpoint request timed out", "connectionId": "Lx8V", "requestId": "7d3c"}`,
			want:   inFrame{},
			wantOK: true,
		},
		{name: "empty", give: ``},
		{name: "blank", give: " \n"},
		{name: "not json", give: `hello`},
		{name: "payload not a string", give: `{"messageType":"SDP_OFFER","messagePayload":12}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseFrame([]byte(tt.give))
			if ok != tt.wantOK || got.SenderClientID != tt.want.SenderClientID ||
				got.MessageType != tt.want.MessageType || got.MessagePayload != tt.want.MessagePayload {
				t.Errorf("parseFrame(%s) = %+v, %v, want %+v, %v", tt.give, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestParseFrameStatusResponse(t *testing.T) {
	give := `{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"1697058567743",` +
		`"errorType":"InvalidArgumentException","statusCode":"400","success":false}}`
	got, ok := parseFrame([]byte(give))
	if !ok || got.MessageType != typeStatusResponse || got.StatusResponse == nil ||
		got.StatusResponse.ErrorType != "InvalidArgumentException" || string(got.StatusResponse.StatusCode) != `"400"` {
		t.Errorf("parseFrame(%s) = %+v, %v, want a STATUS_RESPONSE with InvalidArgumentException and \"400\"", give, got, ok)
	}
}

func TestDecodeOffer(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    string
		wantErr error
	}{
		{name: "padded", give: b64(`{"type":"offer","sdp":"v=0\r\n"}`), want: "v=0\r\n"},
		{name: "unpadded", give: base64.RawStdEncoding.EncodeToString([]byte(`{"sdp":"v=0\r\n","type":"offer"}`)), want: "v=0\r\n"},
		{name: "no type", give: b64(`{"sdp":"v=0"}`), want: "v=0"},
		{name: "JS fixture", give: "eyJzZHAiOiJvZmZlcj0gdHJ1ZVxudmlkZW89IHRydWUiLCJ0eXBlIjoib2ZmZXIifQ==", want: "offer= true\nvideo= true"},
		{name: "answer type", give: b64(`{"type":"answer","sdp":"v=0"}`), wantErr: errBadPayload},
		{name: "empty sdp", give: b64(`{"type":"offer"}`), wantErr: errBadPayload},
		{name: "not base64", give: "%%%", wantErr: errBadPayload},
		{name: "not json", give: b64(`v=0`), wantErr: errBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeOffer(tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("decodeOffer(%q) error = %v, want %v", tt.give, err, tt.wantErr)
			}
			if err == nil && (got.SDP != tt.want || got.Type != webrtc.SDPTypeOffer) {
				t.Errorf("decodeOffer(%q) = %+v, want offer %q", tt.give, got, tt.want)
			}
		})
	}
}

func TestDecodeCandidate(t *testing.T) {
	tests := []struct {
		name    string
		give    string
		want    string
		wantOK  bool
		wantErr error
	}{
		{
			name:   "full",
			give:   b64(`{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`),
			want:   "candidate:1 1 udp 1 127.0.0.1 5000 typ host",
			wantOK: true,
		},
		{name: "end of candidates", give: b64(`{"candidate":"","sdpMid":"0","sdpMLineIndex":0}`)},
		{name: "bad json", give: b64(`[`), wantErr: errBadPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := decodeCandidate(tt.give)
			if !errors.Is(err, tt.wantErr) || ok != tt.wantOK || (ok && got.Candidate != tt.want) {
				t.Errorf("decodeCandidate(%q) = %+v, %v, %v, want %q, %v, %v", tt.give, got, ok, err, tt.want, tt.wantOK, tt.wantErr)
			}
		})
	}
}

func TestEncodeFrames(t *testing.T) {
	mid, idx := "0", uint16(0)
	tests := []struct {
		name string
		give []byte
		want string
	}{
		{
			name: "answer",
			give: encodeAnswer("viewer-1", "v=0\r\n"),
			want: `{"action":"SDP_ANSWER","messagePayload":"` + b64(`{"type":"answer","sdp":"v=0\r\n"}`) +
				`","recipientClientId":"viewer-1"}`,
		},
		{
			name: "candidate",
			give: encodeCandidate("viewer-1", webrtc.ICECandidateInit{Candidate: "candidate:1", SDPMid: &mid, SDPMLineIndex: &idx}),
			want: `{"action":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}`) +
				`","recipientClientId":"viewer-1"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(tt.give); got != tt.want {
				t.Errorf("frame = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestIsICERestart(t *testing.T) {
	const live = "v=0\r\na=fingerprint:sha-256 AA:BB\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:old\r\n"
	tests := []struct {
		name string
		give string
		want bool
	}{
		{name: "restart", give: "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:new\r\na=fingerprint:sha-256 aa:bb\r\n", want: true},
		{name: "same ufrag", give: "v=0\r\na=fingerprint:sha-256 AA:BB\r\na=ice-ufrag:old\r\n"},
		{name: "new peer", give: "v=0\r\na=fingerprint:sha-256 CC:DD\r\na=ice-ufrag:new\r\n"},
		{name: "no fingerprint", give: "v=0\r\na=ice-ufrag:new\r\n"},
		{name: "no ufrag", give: "v=0\r\na=fingerprint:sha-256 AA:BB\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isICERestart(live, tt.give); got != tt.want {
				t.Errorf("isICERestart(live, %q) = %v, want %v", tt.give, got, tt.want)
			}
		})
	}
}
