package kvsemu

import (
	"encoding/json"
	"strings"
)

// Signaling message types (KVS-PROTOCOL.md 2.2, 2.3).
const (
	typeOffer        = "SDP_OFFER"
	typeAnswer       = "SDP_ANSWER"
	typeCandidate    = "ICE_CANDIDATE"
	typeGoAway       = "GO_AWAY"
	typeReconnectICE = "RECONNECT_ICE_SERVER"
	typeStatus       = "STATUS_RESPONSE"
)

// KVS error codes used on the wire.
const (
	codeInvalidArgument  = "InvalidArgumentException"
	codeClientLimit      = "ClientLimitExceededException"
	codeNotFound         = "ResourceNotFoundException"
	codeResourceInUse    = "ResourceInUseException"
	codeAccessDenied     = "AccessDeniedException"
	codeNotAuthorized    = "NotAuthorizedException"
	codeVersionMismatch  = "VersionMismatchException"
	codeSerialization    = "SerializationException"
	codeUnknownOperation = "UnknownOperationException"
	codeInternalFailure  = "InternalFailure"
)

// Sizes.
const (
	// maxStatusDescription is the longest STATUS_RESPONSE description (1K).
	maxStatusDescription = 1024
	// maxInboundFrameBytes is the WebSocket read limit; a larger frame
	// closes the connection (1009). Payloads above Limits.MaxPayload but
	// below this get a STATUS_RESPONSE.
	maxInboundFrameBytes = 256 << 10
	// outboundQueueFrames is a connection's send queue; a client that lets
	// it fill is disconnected.
	outboundQueueFrames = 256
	// messageLogLimitPerChan bounds Messages per channel.
	messageLogLimitPerChan = 10000
	// statusCodeBadRequest is STATUS_RESPONSE's statusCode (a string).
	statusCodeBadRequest = "400"
)

// inbound is a client frame, read with case-insensitive keys (the JS SDK
// writes "action","messagePayload",...; the C SDK "action","MessagePayload",
// "RecipientClientId","CorrelationId" plus an ignored "IceServerList").
type inbound struct {
	action      string
	payload     string
	recipient   string
	correlation string
}

// parseInbound decodes a text frame. ok is false for anything that is not a
// JSON object with a string "action": such foreign frames are ignored.
func parseInbound(data []byte) (in inbound, ok bool) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return in, false
	}
	str := func(v json.RawMessage) string {
		var s string
		if json.Unmarshal(v, &s) != nil {
			return ""
		}
		return s
	}
	for k, v := range raw {
		switch strings.ToLower(k) {
		case "action":
			in.action = str(v)
		case "messagepayload":
			in.payload = str(v)
		case "recipientclientid":
			in.recipient = str(v)
		case "correlationid":
			in.correlation = str(v)
		}
	}
	return in, in.action != ""
}

// outbound is a frame the service sends, in the key order of frames seen
// from the real service: compact, lowercase, no senderClientId from the
// master.
type outbound struct {
	MessagePayload string          `json:"messagePayload,omitempty"`
	MessageType    string          `json:"messageType"`
	SenderClientID string          `json:"senderClientId,omitempty"`
	StatusResponse *statusResponse `json:"statusResponse,omitempty"`
}

type statusResponse struct {
	CorrelationID string `json:"correlationId"`
	ErrorType     string `json:"errorType"`
	StatusCode    string `json:"statusCode"`
	Description   string `json:"description,omitempty"`
	Success       bool   `json:"success"`
}

func encodeFrame(o outbound) []byte {
	b, _ := json.Marshal(o) // only strings and a bool: cannot fail
	return b
}

func statusFrame(correlationID, errorType, description string) []byte {
	if len(description) > maxStatusDescription {
		description = description[:maxStatusDescription]
	}
	return encodeFrame(outbound{MessageType: typeStatus, StatusResponse: &statusResponse{
		CorrelationID: correlationID,
		ErrorType:     errorType,
		StatusCode:    statusCodeBadRequest,
		Description:   description,
	}})
}

// validID reports whether s is a KVS client or correlation id:
// 1..256 of [a-zA-Z0-9_.-].
func validID(s string) bool {
	if len(s) < 1 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validClientID adds the ConnectAsViewer rule: no "AWS_" prefix, in any case.
func validClientID(s string) bool {
	return validID(s) && !strings.HasPrefix(strings.ToUpper(s), "AWS_")
}

// validPayload reports whether s is standard padded base64 text (the model's
// [a-zA-Z0-9+/=]+).
func validPayload(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}
