package kvs

import (
	"strings"
	"testing"
)

func TestEncodeFrameJSFixture(t *testing.T) {
	// The viewer fixture of the JS SDK's SignalingClient.spec.ts.
	payload, err := offerPayload("offer= true\nvideo= true")
	if err != nil {
		t.Fatal(err)
	}
	got, err := encodeFrame(actionSDPOffer, payload, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"action":"SDP_OFFER","messagePayload":"eyJzZHAiOiJvZmZlcj0gdHJ1ZVxudmlkZW89IHRydWUiLCJ0eXBlIjoib2ZmZXIifQ=="}`
	if string(got) != want {
		t.Errorf("encodeFrame = %s, want %s", got, want)
	}
}

func TestCandidatePayload(t *testing.T) {
	one := uint16(1)
	tests := []struct {
		name string
		give Candidate
		want string
	}{
		{"full", Candidate{Candidate: "candidate:a", SDPMid: "1", SDPMLineIndex: &one, UsernameFragment: "u"}, `{"candidate":"candidate:a","sdpMid":"1","sdpMLineIndex":1,"usernameFragment":"u"}`},
		{"mid only", Candidate{Candidate: "candidate:a", SDPMid: "0"}, `{"candidate":"candidate:a","sdpMid":"0"}`},
		{"index only", Candidate{Candidate: "candidate:a", SDPMLineIndex: &one}, `{"candidate":"candidate:a","sdpMLineIndex":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := candidatePayload(tt.give)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := decodePayload(got)
			if string(raw) != tt.want {
				t.Errorf("candidatePayload(%+v) = %s, want %s", tt.give, raw, tt.want)
			}
		})
	}
}

func TestEncodeFrameBounds(t *testing.T) {
	if _, err := encodeFrame(actionSDPOffer, strings.Repeat("A", maxPayload), "c"); err != nil {
		t.Errorf("encodeFrame(%d bytes) = %v, want nil", maxPayload, err)
	}
	for _, n := range []int{0, maxPayload + 1} {
		if _, err := encodeFrame(actionSDPOffer, strings.Repeat("A", n), "c"); err == nil {
			t.Errorf("encodeFrame(%d bytes) = nil error, want one", n)
		}
	}
}

func TestDecodeFrame(t *testing.T) {
	zero := uint16(0)
	tests := []struct {
		name string
		give string
		want frame
	}{
		{"JS answer fixture", `{"messageType":"SDP_ANSWER","messagePayload":"` + b64(`{"type":"answer","sdp":"v=0"}`) + `"}`, frame{kind: frameAnswer, sdp: "v=0"}},
		{"capitalised keys", `{"MessageType":"SDP_ANSWER","MessagePayload":"` + b64(`{"Type":"answer","Sdp":"v=0"}`) + `","SenderClientId":"m"}`, frame{kind: frameAnswer, sdp: "v=0", sender: "m"}},
		{"lowercase type", `{"messageType":"sdp_answer","messagePayload":"` + b64(`{"sdp":"v=0"}`) + `"}`, frame{kind: frameAnswer, sdp: "v=0"}},
		{"unpadded base64", `{"messageType":"SDP_ANSWER","messagePayload":"` + strings.TrimRight(b64(`{"sdp":"v=0"}`), "=") + `"}`, frame{kind: frameAnswer, sdp: "v=0"}},
		{"candidate", `{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}`) + `"}`, frame{kind: frameCandidate, candidate: Candidate{Candidate: "candidate:1", SDPMid: "0", SDPMLineIndex: &zero}}},
		{"candidate numeric mid, string index", `{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"candidate:1","sdpMid":0,"sdpMLineIndex":"0"}`) + `"}`, frame{kind: frameCandidate, candidate: Candidate{Candidate: "candidate:1", SDPMid: "0", SDPMLineIndex: &zero}}},
		{"end of candidates", `{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"","sdpMid":null}`) + `"}`, frame{kind: frameCandidate}},
		{"status string code", `{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"1697058567743","errorType":"InvalidArgumentException","statusCode":"400","success":false}}`, frame{kind: frameStatus, status: Status{CorrelationID: "1697058567743", ErrorType: "InvalidArgumentException", StatusCode: "400"}}},
		{"status number code", `{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"c","statusCode":404,"description":"d"}}`, frame{kind: frameStatus, status: Status{CorrelationID: "c", StatusCode: "404", Description: "d"}}},
		{"go away", `{"messageType":"GO_AWAY","messagePayload":"ZHVtbXk="}`, frame{kind: frameGoAway}},
		{"go away, no payload", `{"messageType":"GO_AWAY"}`, frame{kind: frameGoAway}},
		{"reconnect ice", `{"messageType":"RECONNECT_ICE_SERVER"}`, frame{kind: frameReconnectICE}},
		{"empty", ``, frame{kind: frameIgnored}},
		{"blank", " \n", frame{kind: frameIgnored}},
		{"api gateway", `{"message": "Endpoint request timed out", "connectionId":"L0=", "requestId":"x"}`, frame{kind: frameIgnored}},
		{"not json", `hello`, frame{kind: frameIgnored}},
		{"json array", `[1]`, frame{kind: frameIgnored}},
		{"offer to a viewer", `{"messageType":"SDP_OFFER","messagePayload":"` + b64(`{"sdp":"v=0","type":"offer"}`) + `"}`, frame{kind: frameIgnored}},
		{"unknown type", `{"messageType":"NEW_THING"}`, frame{kind: frameIgnored}},
		{"answer without payload", `{"messageType":"SDP_ANSWER"}`, frame{kind: frameIgnored}},
		{"answer of type offer", `{"messageType":"SDP_ANSWER","messagePayload":"` + b64(`{"sdp":"v=0","type":"offer"}`) + `"}`, frame{kind: frameIgnored}},
		{"answer with empty sdp", `{"messageType":"SDP_ANSWER","messagePayload":"` + b64(`{"sdp":"","type":"answer"}`) + `"}`, frame{kind: frameIgnored}},
		{"status without body", `{"messageType":"STATUS_RESPONSE"}`, frame{kind: frameIgnored}},
		{"payload is not a string", `{"messageType":"SDP_ANSWER","messagePayload":{"sdp":"v=0"}}`, frame{kind: frameIgnored}},
		{"oversized", `{"messageType":"GO_AWAY","pad":"` + strings.Repeat("x", maxFrame) + `"}`, frame{kind: frameIgnored}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := decodeFrame([]byte(tt.give))
			if !sameFrame(got, tt.want) {
				t.Errorf("decodeFrame(%.80q) = %+v, want %+v", tt.give, got, tt.want)
			}
			if got.kind == frameIgnored && got.why == "" {
				t.Errorf("decodeFrame(%.80q) ignored without a reason", tt.give)
			}
		})
	}
}

func sameFrame(a, b frame) bool {
	if a.kind != b.kind || a.sdp != b.sdp || a.status != b.status {
		return false
	}
	if b.kind == frameAnswer && a.sender != b.sender {
		return false
	}
	ca, cb := a.candidate, b.candidate
	if ca.Candidate != cb.Candidate || ca.SDPMid != cb.SDPMid || ca.UsernameFragment != cb.UsernameFragment {
		return false
	}
	if (ca.SDPMLineIndex == nil) != (cb.SDPMLineIndex == nil) {
		return false
	}
	return ca.SDPMLineIndex == nil || *ca.SDPMLineIndex == *cb.SDPMLineIndex
}

// TestDecodeFrameOversizedAllocs checks that a frame over the limit is
// refused before any parsing.
func TestDecodeFrameOversizedAllocs(t *testing.T) {
	big := []byte(`{"messageType":"SDP_ANSWER","messagePayload":"` + strings.Repeat("QUFB", 1<<18) + `"}`)
	allocs := testing.AllocsPerRun(10, func() { decodeFrame(big) })
	if allocs > 1 {
		t.Errorf("decodeFrame(1 MiB) allocs = %v, want <= 1", allocs)
	}
}

// FuzzDecodeFrame checks that no input panics the decoder and that what it
// returns is never more than proportional to its input (so allocation stays
// bounded by maxFrame).
func FuzzDecodeFrame(f *testing.F) {
	seeds := []string{
		``,
		`{"messageType":"SDP_ANSWER","messagePayload":"` + b64(`{"type":"answer","sdp":"v=0"}`) + `"}`,
		`{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"candidate:1","sdpMid":"0","sdpMLineIndex":0}`) + `"}`,
		`{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"1","errorType":"E","statusCode":"400"}}`,
		`{"messageType":"GO_AWAY"}`,
		`{"messageType":"RECONNECT_ICE_SERVER"}`,
		`{"message": "Endpoint request timed out"}`,
		`{"MessageType":"ice_candidate","MessagePayload":"e30"}`,
		`{"messageType":"STATUS_RESPONSE","statusResponse":{"statusCode":1e999}}`,
		`{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"c","sdpMLineIndex":"99999999"}`) + `"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got := decodeFrame(b)
		if len(b) > maxFrame && got.kind != frameIgnored {
			t.Fatalf("decodeFrame accepted a %d byte frame", len(b))
		}
		size := len(got.sdp) + len(got.candidate.Candidate) + len(got.candidate.SDPMid) + len(got.candidate.UsernameFragment) +
			len(got.status.CorrelationID) + len(got.status.ErrorType) + len(got.status.StatusCode) + len(got.status.Description) + len(got.sender)
		// Invalid UTF-8 bytes become U+FFFD (3 bytes): the bound is 3x.
		if size > 3*len(b) {
			t.Fatalf("decodeFrame(%d bytes) produced %d bytes of fields", len(b), size)
		}
		if got.kind == frameIgnored && got.why == "" {
			t.Fatal("ignored without a reason")
		}
		if len(got.why) > 200 {
			t.Fatalf("reason of %d bytes, want it clipped", len(got.why))
		}
	})
}
