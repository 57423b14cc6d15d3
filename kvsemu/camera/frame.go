package camera

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pion/webrtc/v4"
)

// Message types on the signaling socket (KVS-PROTOCOL.md 2.2, 2.3).
const (
	typeSDPOffer           = "SDP_OFFER"
	typeSDPAnswer          = "SDP_ANSWER"
	typeICECandidate       = "ICE_CANDIDATE"
	typeGoAway             = "GO_AWAY"
	typeReconnectICEServer = "RECONNECT_ICE_SERVER"
	typeStatusResponse     = "STATUS_RESPONSE"
)

// inFrame is a frame the master receives:
// {"senderClientId","messageType","messagePayload","statusResponse"}.
// encoding/json matches the keys case-insensitively, so the capitalised
// spelling some clients use is understood too; unknown keys are ignored.
type inFrame struct {
	SenderClientID string          `json:"senderClientId"`
	MessageType    string          `json:"messageType"`
	MessagePayload string          `json:"messagePayload"`
	StatusResponse *statusResponse `json:"statusResponse"`
}

// statusResponse is the error report KVS sends for a failed send. statusCode
// is a string in the JS fixtures and a number in the C parser, so it is kept
// raw.
type statusResponse struct {
	CorrelationID string          `json:"correlationId"`
	ErrorType     string          `json:"errorType"`
	StatusCode    json.RawMessage `json:"statusCode"`
	Description   string          `json:"description"`
}

// outFrame is a frame the master sends:
// {"action","messagePayload","recipientClientId"}.
type outFrame struct {
	Action            string `json:"action"`
	MessagePayload    string `json:"messagePayload"`
	RecipientClientID string `json:"recipientClientId"`
}

// sdpPayload is the JSON inside an SDP frame's base64 payload.
type sdpPayload struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

// candidatePayload is the JSON inside an ICE_CANDIDATE frame's base64
// payload, as the camera sends it.
type candidatePayload struct {
	Candidate     string `json:"candidate"`
	SDPMid        string `json:"sdpMid"`
	SDPMLineIndex uint16 `json:"sdpMLineIndex"`
}

// parseFrame decodes one text frame. ok is false for empty or unparsable
// frames, which callers ignore.
func parseFrame(data []byte) (f inFrame, ok bool) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return inFrame{}, false
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return inFrame{}, false
	}
	f.MessageType = strings.ToUpper(strings.TrimSpace(f.MessageType))
	return f, true
}

// decodePayload undoes the base64 of messagePayload (padded or not).
func decodePayload(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: payload is not base64", errBadPayload)
	}
	return b, nil
}

// decodeOffer reads an SDP_OFFER payload.
func decodeOffer(payload string) (webrtc.SessionDescription, error) {
	b, err := decodePayload(payload)
	if err != nil {
		return webrtc.SessionDescription{}, err
	}
	var p sdpPayload
	if err := json.Unmarshal(b, &p); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	if p.Type != "" && !strings.EqualFold(p.Type, "offer") {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: type %q in an SDP_OFFER", errBadPayload, p.Type)
	}
	if p.SDP == "" {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: empty sdp", errBadPayload)
	}
	return webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: p.SDP}, nil
}

// decodeCandidate reads an ICE_CANDIDATE payload. ok is false for the empty
// end-of-candidates candidate.
func decodeCandidate(payload string) (c webrtc.ICECandidateInit, ok bool, err error) {
	b, err := decodePayload(payload)
	if err != nil {
		return webrtc.ICECandidateInit{}, false, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return webrtc.ICECandidateInit{}, false, fmt.Errorf("%w: %w", errBadPayload, err)
	}
	return c, c.Candidate != "", nil
}

// encodeAnswer builds the SDP_ANSWER frame for recipient.
func encodeAnswer(recipient, sdp string) []byte {
	return encodeFrame(typeSDPAnswer, recipient, sdpPayload{Type: "answer", SDP: sdp})
}

// encodeCandidate builds the ICE_CANDIDATE frame for recipient.
func encodeCandidate(recipient string, c webrtc.ICECandidateInit) []byte {
	p := candidatePayload{Candidate: c.Candidate}
	if c.SDPMid != nil {
		p.SDPMid = *c.SDPMid
	}
	if c.SDPMLineIndex != nil {
		p.SDPMLineIndex = *c.SDPMLineIndex
	}
	return encodeFrame(typeICECandidate, recipient, p)
}

// encodeFrame marshals payload to JSON, base64s it and wraps it in an
// outFrame. The inputs are plain structs, so marshalling cannot fail.
func encodeFrame(action, recipient string, payload any) []byte {
	inner, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("camera: marshal %T: %v", payload, err))
	}
	out, err := json.Marshal(outFrame{
		Action:            action,
		MessagePayload:    base64.StdEncoding.EncodeToString(inner),
		RecipientClientID: recipient,
	})
	if err != nil {
		panic(fmt.Sprintf("camera: marshal frame: %v", err))
	}
	return out
}

// sdpAttr returns the value of the first "a=<name>:" line in sdp, or "".
// Session- and media-level lines are both searched; the fingerprint and
// ice-ufrag are the same in every m-section of a bundled offer.
func sdpAttr(sdp, name string) string {
	prefix := "a=" + name + ":"
	for line := range strings.Lines(sdp) {
		line = strings.TrimRight(line, "\r\n")
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// isICERestart reports whether offer comes from the same remote peer as
// current (same DTLS fingerprint) but with new ICE credentials (different
// ice-ufrag): an ICE restart of a live peer connection.
func isICERestart(current, offer string) bool {
	fpCur, fpNew := sdpAttr(current, "fingerprint"), sdpAttr(offer, "fingerprint")
	ufCur, ufNew := sdpAttr(current, "ice-ufrag"), sdpAttr(offer, "ice-ufrag")
	return fpCur != "" && strings.EqualFold(fpCur, fpNew) && ufNew != "" && ufCur != ufNew
}
