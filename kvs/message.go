package kvs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Wire limits.
const (
	// maxPayload is KVS's limit on messagePayload (base64 text), 10,000.
	maxPayload = 10000
	// maxFrame is the largest inbound frame decoded; larger ones are dropped.
	maxFrame = 64 << 10
	// maxCandidate bounds a candidate line.
	maxCandidate = 1024
)

// Actions a viewer sends and message types it receives.
const (
	actionSDPOffer     = "SDP_OFFER"
	actionICECandidate = "ICE_CANDIDATE"

	typeSDPAnswer          = "SDP_ANSWER"
	typeICECandidate       = "ICE_CANDIDATE"
	typeStatusResponse     = "STATUS_RESPONSE"
	typeGoAway             = "GO_AWAY"
	typeReconnectICEServer = "RECONNECT_ICE_SERVER"
)

// outbound is a frame a viewer sends, in the JS SDK's key order. A viewer
// sends no recipientClientId.
type outbound struct {
	Action         string `json:"action"`
	MessagePayload string `json:"messagePayload"`
	CorrelationID  string `json:"correlationId,omitempty"`
}

// sessionDescription is the JSON of an RTCSessionDescription.
type sessionDescription struct {
	SDP  string `json:"sdp"`
	Type string `json:"type"`
}

// candidateOut is the JSON of an RTCIceCandidate as a viewer sends it.
type candidateOut struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment string  `json:"usernameFragment,omitempty"`
}

// marshalCompact encodes v as compact JSON without HTML escaping (as
// JSON.stringify does).
func marshalCompact(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// offerPayload is the messagePayload of an SDP offer.
func offerPayload(sdp string) (string, error) {
	b, err := marshalCompact(sessionDescription{SDP: sdp, Type: "offer"})
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// candidatePayload is the messagePayload of an ICE candidate.
func candidatePayload(c Candidate) (string, error) {
	out := candidateOut{Candidate: c.Candidate, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
	if c.SDPMid != "" {
		out.SDPMid = &c.SDPMid
	}
	b, err := marshalCompact(out)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// encodeFrame encodes an outbound frame, refusing a payload over KVS's limit.
func encodeFrame(action, payload, correlationID string) ([]byte, error) {
	if len(payload) == 0 || len(payload) > maxPayload {
		return nil, fmt.Errorf("kvs: %w: %s payload is %d bytes of base64, want 1..%d", ErrInvalidArgument, action, len(payload), maxPayload)
	}
	return marshalCompact(outbound{Action: action, MessagePayload: payload, CorrelationID: correlationID})
}

// frameKind is what an inbound frame means to a viewer.
type frameKind int

const (
	frameIgnored frameKind = iota
	frameAnswer
	frameCandidate
	frameStatus
	frameGoAway
	frameReconnectICE
)

// frame is a decoded inbound frame.
type frame struct {
	kind      frameKind
	sdp       string
	candidate Candidate
	status    Status
	sender    string
	why       string // for frameIgnored, a short reason (for logs)
}

// looseString accepts a JSON string, number or boolean as text (KVS sends
// statusCode as a string, the C SDK reads it as a number).
type looseString string

func (s *looseString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = looseString(v)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err == nil {
		*s = looseString(n)
		return nil
	}
	var v bool
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*s = looseString(strconv.FormatBool(v))
	return nil
}

// inbound is a frame a viewer receives. encoding/json matches its keys
// case-insensitively and ignores unknown ones.
type inbound struct {
	SenderClientID string `json:"senderClientId"`
	MessageType    string `json:"messageType"`
	MessagePayload string `json:"messagePayload"`
	StatusResponse *struct {
		CorrelationID string      `json:"correlationId"`
		ErrorType     string      `json:"errorType"`
		StatusCode    looseString `json:"statusCode"`
		Description   string      `json:"description"`
	} `json:"statusResponse"`
}

// candidateIn is the JSON of an RTCIceCandidate as received.
type candidateIn struct {
	Candidate        string       `json:"candidate"`
	SDPMid           *looseString `json:"sdpMid"`
	SDPMLineIndex    *looseString `json:"sdpMLineIndex"`
	UsernameFragment string       `json:"usernameFragment"`
}

// decodePayload decodes base64 (padded or not) messagePayload text.
func decodePayload(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// ignored is a frame to drop, with the reason.
func ignored(why string) frame { return frame{kind: frameIgnored, why: why} }

// decodeFrame decodes one inbound text frame. It never fails: frames that are
// empty, too big, not JSON, foreign (no messageType), of an unknown or
// viewer-irrelevant type, or with an unusable payload come back as
// frameIgnored. Its allocations are bounded by maxFrame.
func decodeFrame(b []byte) frame {
	if len(bytes.TrimSpace(b)) == 0 {
		return ignored("empty frame")
	}
	if len(b) > maxFrame {
		return ignored("oversized frame")
	}
	var in inbound
	if err := json.Unmarshal(b, &in); err != nil {
		return ignored("not a KVS message")
	}
	f := frame{sender: in.SenderClientID}
	switch strings.ToUpper(strings.TrimSpace(in.MessageType)) {
	case "":
		return ignored("no messageType")
	case typeGoAway:
		f.kind = frameGoAway
	case typeReconnectICEServer:
		f.kind = frameReconnectICE
	case typeStatusResponse:
		sr := in.StatusResponse
		if sr == nil {
			return ignored("STATUS_RESPONSE without statusResponse")
		}
		f.kind = frameStatus
		f.status = Status{CorrelationID: sr.CorrelationID, ErrorType: sr.ErrorType, StatusCode: string(sr.StatusCode), Description: sr.Description}
	case typeSDPAnswer:
		raw, err := decodePayload(in.MessagePayload)
		if err != nil || len(raw) == 0 {
			return ignored("SDP_ANSWER without a payload")
		}
		var sd sessionDescription
		if err := json.Unmarshal(raw, &sd); err != nil || sd.SDP == "" {
			return ignored("SDP_ANSWER payload is not a session description")
		}
		if sd.Type != "" && !strings.EqualFold(sd.Type, "answer") {
			return ignored("SDP_ANSWER payload of type " + clip(sd.Type, 64))
		}
		f.kind = frameAnswer
		f.sdp = sd.SDP
	case typeICECandidate:
		raw, err := decodePayload(in.MessagePayload)
		if err != nil || len(raw) == 0 {
			return ignored("ICE_CANDIDATE without a payload")
		}
		var ci candidateIn
		if err := json.Unmarshal(raw, &ci); err != nil {
			return ignored("ICE_CANDIDATE payload is not a candidate")
		}
		f.kind = frameCandidate
		f.candidate = Candidate{Candidate: ci.Candidate, UsernameFragment: ci.UsernameFragment}
		if ci.SDPMid != nil {
			f.candidate.SDPMid = string(*ci.SDPMid)
		}
		if ci.SDPMLineIndex != nil {
			if n, err := strconv.ParseUint(string(*ci.SDPMLineIndex), 10, 16); err == nil {
				idx := uint16(n)
				f.candidate.SDPMLineIndex = &idx
			}
		}
	default:
		return ignored("message type " + clip(in.MessageType, 64) + " is not for a viewer")
	}
	return f
}

// clip shortens s to at most n bytes for logs.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
