package kvsemu

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Operation names, as counted in Counters.Calls and accepted by Throttle.
const (
	OpCreateSignalingChannel      = "CreateSignalingChannel"
	OpDescribeSignalingChannel    = "DescribeSignalingChannel"
	OpGetSignalingChannelEndpoint = "GetSignalingChannelEndpoint"
	OpDeleteSignalingChannel      = "DeleteSignalingChannel"
	OpGetIceServerConfig          = "GetIceServerConfig"
	OpConnectAsViewer             = "ConnectAsViewer"
	OpConnectAsMaster             = "ConnectAsMaster"
)

// maxRequestBody bounds a control-plane request body.
const maxRequestBody = 1 << 20

// apiError is a KVS error response: status, __type and message.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func errInvalid(format string, a ...any) *apiError {
	return &apiError{http.StatusBadRequest, codeInvalidArgument, fmt.Sprintf(format, a...)}
}

func errNotFound() *apiError {
	return &apiError{http.StatusNotFound, codeNotFound, "The requested channel is not found or not active."}
}

func errLimit(msg string) *apiError {
	return &apiError{http.StatusBadRequest, codeClientLimit, msg}
}

// controlOp is one REST-JSON operation.
type controlOp struct {
	name string
	path string
	// authCode is the error returned for a bad signature: the control plane
	// (kinesisvideo) says AccessDeniedException, the signaling service
	// NotAuthorizedException; both are HTTP 401.
	authCode string
	handle   func(e *Emulator, body []byte) (any, *apiError)
}

// controlOps lists the operations (KVS-PROTOCOL.md section 1).
func controlOps() []controlOp {
	return []controlOp{
		{OpCreateSignalingChannel, "/createSignalingChannel", codeAccessDenied, (*Emulator).apiCreate},
		{OpDescribeSignalingChannel, "/describeSignalingChannel", codeAccessDenied, (*Emulator).apiDescribe},
		{OpGetSignalingChannelEndpoint, "/getSignalingChannelEndpoint", codeAccessDenied, (*Emulator).apiEndpoint},
		{OpDeleteSignalingChannel, "/deleteSignalingChannel", codeAccessDenied, (*Emulator).apiDelete},
		{OpGetIceServerConfig, "/v1/get-ice-server-config", codeNotAuthorized, (*Emulator).apiIceConfig},
	}
}

// controlPlane wraps an operation: count, read, verify SigV4, apply an
// injected throttle, decode, answer. Every response, errors included,
// carries the CORS headers a browser needs to read it.
func (e *Emulator) controlPlane(op controlOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		allowOrigin(w.Header(), r)
		e.counters.call(op.name)
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, codeSerialization, "cannot read the request body")
			return
		}
		if err := e.verifier.VerifyRequest(r, body); err != nil {
			e.log.Debug("kvsemu: refused signature", "op", op.name, "err", err)
			writeError(w, http.StatusUnauthorized, op.authCode, authMessage(err))
			return
		}
		if e.takeThrottle(op.name) {
			writeError(w, http.StatusBadRequest, codeClientLimit, "Injected throttle: "+op.name)
			return
		}
		resp, aerr := op.handle(e, body)
		if aerr != nil {
			e.log.Debug("kvsemu: api error", "op", op.name, "code", aerr.code, "msg", aerr.msg)
			writeError(w, aerr.status, aerr.code, aerr.msg)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// unknownOperation answers any other path.
func unknownOperation(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, codeUnknownOperation, "Unknown operation "+r.Method+" "+r.URL.Path)
}

// writeError writes a KVS error: the status, X-Amzn-ErrorType and a JSON body
// with __type and message (KVS-PROTOCOL.md 1.5). The two newer signaling
// shapes use a lowercase "message"; the others "Message", as in the models.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("X-Amzn-ErrorType", code)
	msgKey := "Message"
	if code == "InvalidClientException" || code == "SessionExpiredException" {
		msgKey = "message"
	}
	writeJSON(w, status, map[string]string{"__type": code, msgKey: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"__type":"InternalFailure","Message":"cannot encode the response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(status)
	w.Write(b)
}

// requestID is a random request id in the AWS UUID shape.
func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func decode(body []byte, v any) *apiError {
	if len(strings.TrimSpace(string(body))) == 0 {
		body = []byte("{}")
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &apiError{http.StatusBadRequest, codeSerialization, "cannot parse the request body"}
	}
	return nil
}

type singleMasterConfiguration struct {
	MessageTtlSeconds int64 //nolint:revive // the wire name
}

type channelInfo struct {
	ChannelARN                string
	ChannelName               string
	ChannelStatus             string
	ChannelType               string
	CreationTime              json.Number
	SingleMasterConfiguration singleMasterConfiguration
	Version                   string
}

func (ch *channel) info() channelInfo {
	return channelInfo{
		ChannelARN:    ch.arn,
		ChannelName:   ch.name,
		ChannelStatus: "ACTIVE",
		ChannelType:   "SINGLE_MASTER",
		// A JSON number of epoch seconds, as aws-sdk-go-v2 requires.
		CreationTime:              json.Number(strconv.FormatFloat(float64(ch.created.UnixMilli())/1000, 'f', 3, 64)),
		SingleMasterConfiguration: singleMasterConfiguration{MessageTtlSeconds: ch.ttlSeconds()},
		Version:                   ch.version,
	}
}

func (e *Emulator) apiCreate(body []byte) (any, *apiError) {
	var req struct {
		ChannelName               string
		ChannelType               string
		SingleMasterConfiguration *singleMasterConfiguration
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if !validChannelName(req.ChannelName) {
		return nil, errInvalid("ChannelName must match [a-zA-Z0-9_.-]{1,256}")
	}
	if req.ChannelType != "" && req.ChannelType != "SINGLE_MASTER" {
		return nil, errInvalid("ChannelType %q is not supported by the emulator", req.ChannelType)
	}
	ttl := defaultMessageTTL
	if c := req.SingleMasterConfiguration; c != nil && c.MessageTtlSeconds != 0 {
		if c.MessageTtlSeconds < 5 || c.MessageTtlSeconds > 120 {
			return nil, errInvalid("MessageTtlSeconds must be between 5 and 120")
		}
		ttl = time.Duration(c.MessageTtlSeconds) * time.Second
	}
	arn, err := e.CreateChannel(req.ChannelName, ttl)
	switch {
	case errors.Is(err, ErrExists):
		return nil, &apiError{http.StatusBadRequest, codeResourceInUse, "The signaling channel " + req.ChannelName + " already exists."}
	case err != nil:
		return nil, &apiError{http.StatusInternalServerError, codeInternalFailure, err.Error()}
	}
	return map[string]string{"ChannelARN": arn}, nil
}

func (e *Emulator) apiDescribe(body []byte) (any, *apiError) {
	var req struct{ ChannelName, ChannelARN string }
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	var ch *channel
	var ok bool
	switch {
	case req.ChannelARN != "":
		ch, ok = e.channel(req.ChannelARN)
	case req.ChannelName != "":
		ch, ok = e.channelByName(req.ChannelName)
	default:
		return nil, errInvalid("ChannelName or ChannelARN is required")
	}
	if !ok {
		return nil, errNotFound()
	}
	if !allow(ch.describeLimit, e.cfg.Now()) {
		return nil, errLimit("DescribeSignalingChannel rate exceeded for this channel")
	}
	return map[string]channelInfo{"ChannelInfo": ch.info()}, nil
}

type endpointItem struct {
	Protocol         string
	ResourceEndpoint string
}

func (e *Emulator) apiEndpoint(body []byte) (any, *apiError) {
	var req struct {
		ChannelARN                               string
		SingleMasterChannelEndpointConfiguration *struct {
			Protocols []string
			Role      string
		}
	}
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.ChannelARN == "" {
		return nil, errInvalid("ChannelARN is required")
	}
	protocols := []string{"WSS", "HTTPS"}
	if c := req.SingleMasterChannelEndpointConfiguration; c != nil {
		switch c.Role {
		case "", "MASTER", "VIEWER":
		default:
			return nil, errInvalid("Role must be MASTER or VIEWER")
		}
		if len(c.Protocols) > 0 {
			protocols = c.Protocols
		}
	}
	if _, ok := e.channel(req.ChannelARN); !ok {
		return nil, errNotFound()
	}
	list := make([]endpointItem, 0, len(protocols))
	for _, p := range protocols {
		switch p {
		case "WSS":
			list = append(list, endpointItem{"WSS", e.WSSEndpoint()})
		case "HTTPS":
			list = append(list, endpointItem{"HTTPS", e.Endpoint()})
		case "WEBRTC":
			return nil, errInvalid("The channel is not configured for WebRTC ingestion")
		default:
			return nil, errInvalid("Unknown protocol %q", p)
		}
	}
	return map[string][]endpointItem{"ResourceEndpointList": list}, nil
}

func (e *Emulator) apiDelete(body []byte) (any, *apiError) {
	var req struct{ ChannelARN, CurrentVersion string }
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.ChannelARN == "" {
		return nil, errInvalid("ChannelARN is required")
	}
	ch, ok := e.channel(req.ChannelARN)
	if !ok {
		return nil, errNotFound()
	}
	if req.CurrentVersion != "" && req.CurrentVersion != ch.version {
		return nil, &apiError{http.StatusBadRequest, codeVersionMismatch, "CurrentVersion does not match the channel's version"}
	}
	if err := e.DeleteChannel(req.ChannelARN); err != nil {
		return nil, errNotFound()
	}
	return struct{}{}, nil
}

type iceServer struct {
	Password string
	Ttl      int64 //nolint:revive // the wire name
	Uris     []string
	Username string
}

func (e *Emulator) apiIceConfig(body []byte) (any, *apiError) {
	var req struct{ ChannelARN, ClientId, Service, Username string } //nolint:revive // wire names
	if err := decode(body, &req); err != nil {
		return nil, err
	}
	if req.ChannelARN == "" {
		return nil, errInvalid("ChannelARN is required")
	}
	if req.ClientId != "" && !validID(req.ClientId) {
		return nil, errInvalid("ClientId must match [a-zA-Z0-9_.-]{1,256}")
	}
	if req.Service != "" && req.Service != "TURN" {
		return nil, errInvalid("Service must be TURN")
	}
	ch, ok := e.channel(req.ChannelARN)
	if !ok {
		return nil, errNotFound()
	}
	now := e.cfg.Now()
	if !allow(ch.iceLimit, now) {
		return nil, errLimit("GetIceServerConfig rate exceeded for this channel")
	}
	user, pass := e.turn.credentials(ch.arn, now.Add(e.cfg.TURNTTL))
	return map[string][]iceServer{"IceServerList": {{
		Password: pass,
		Ttl:      int64(e.cfg.TURNTTL / time.Second),
		Uris:     e.turn.uris(),
		Username: user,
	}}}, nil
}
