package service

import (
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// The RPCs the fuzz target decodes a request of (the first byte of the
// input picks one).
const (
	rpcCreate = iota
	rpcGet
	rpcList
	rpcClose
	rpcWatch
	rpcSignal
	rpcConnect
	rpcProbe
	rpcCount
)

// validateRequest decodes data as the request of rpc with the server's
// codec and runs the checks the handler runs before it touches the
// manager, as the server does.
func validateRequest(rpc byte, data []byte) error {
	var req proto.Message
	switch rpc % rpcCount {
	case rpcCreate:
		req = &vspb.CreateSessionRequest{}
	case rpcGet:
		req = &vspb.GetSessionRequest{}
	case rpcList:
		req = &vspb.ListSessionsRequest{}
	case rpcClose:
		req = &vspb.CloseSessionRequest{}
	case rpcWatch:
		req = &vspb.WatchSessionRequest{}
	case rpcSignal:
		req = &vspb.SignalRequest{}
	case rpcConnect:
		req = &vspb.ConnectRequest{}
	case rpcProbe:
		req = &vspb.ProbeChannelRequest{}
	}
	if err := Codec().Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, req); err != nil {
		return err
	}
	if err := decodeError(req); err != nil {
		return err
	}
	switch r := req.(type) {
	case *vspb.CreateSessionRequest:
		_, err := validateCreate(r)
		return err
	case *vspb.GetSessionRequest:
		_, err := parseName("name", r.GetName())
		return err
	case *vspb.ListSessionsRequest:
		_, _, err := validateList(r)
		if err == nil && r.GetPageToken() != "" {
			decodePageToken(r.GetPageToken())
		}
		return err
	case *vspb.CloseSessionRequest:
		_, err := parseName("name", r.GetName())
		return err
	case *vspb.WatchSessionRequest:
		if _, err := parseName("name", r.GetName()); err != nil {
			return err
		}
		return checkAfter(r.GetAfterSequence(), sessionmgr.Session{LastSeq: 7})
	case *vspb.SignalRequest:
		if _, err := parseName("name", r.GetName()); err != nil {
			return err
		}
		_, err := appMessage(r)
		return err
	case *vspb.ConnectRequest:
		if j := r.GetJoin(); j != nil {
			if _, err := parseName("join.name", j.GetName()); err != nil {
				return err
			}
			if err := checkJoinSequence(r); err != nil {
				return err
			}
			return checkAfter(j.GetAfterSequence(), sessionmgr.Session{LastSeq: 7})
		}
		_, err := appMessage(r)
		return err
	case *vspb.ProbeChannelRequest:
		_, err := validateProbe(r)
		return err
	}
	return nil
}

// fuzzSeeds are requests of every RPC, among them the cases of issue 15.
func fuzzSeeds() [][2]any {
	idx := func(v uint32) *uint32 { return &v }
	name := "sessions/" + strings.Repeat("a", 26)
	cand := func(c *vspb.IceCandidate) *vspb.SignalRequest {
		return &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_Candidate{Candidate: c}}
	}
	msgs := []struct {
		rpc byte
		m   proto.Message
	}{
		{rpcCreate, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Name: "cam", Region: "us-west-2\r\nX-Injected: yes"}, ViewerId: "v"}},
		{rpcCreate, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: "arn:aws:kinesisvideo:us-west-2:1:channel/c/1"}, RequestId: "r-1"}},
		{rpcCreate, &vspb.CreateSessionRequest{Channel: &vspb.Channel{Name: "cam"}, Options: &vspb.SessionOptions{MaxAttempts: 9}}},
		{rpcGet, &vspb.GetSessionRequest{Name: name, IncludeIceCredentials: true}},
		{rpcGet, &vspb.GetSessionRequest{Name: "sessions/\r\nSet-Cookie: x"}},
		{rpcList, &vspb.ListSessionsRequest{PageSize: -1, State: 99, PageToken: "!!"}},
		{rpcClose, &vspb.CloseSessionRequest{Name: name}},
		{rpcWatch, &vspb.WatchSessionRequest{Name: name, AfterSequence: 1 << 40}},
		{rpcSignal, cand(&vspb.IceCandidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", SdpMid: strings.Repeat("m", 256)})},
		{rpcSignal, cand(&vspb.IceCandidate{Candidate: "candidate:1", SdpMlineIndex: idx(64)})},
		{rpcSignal, cand(&vspb.IceCandidate{Candidate: "candidate:1", SdpMlineIndex: idx(70000)})},
		{rpcSignal, &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{IceState: 99, PeerState: -3}}}},
		{rpcSignal, &vspb.SignalRequest{Name: name, Message: &vspb.SignalRequest_MediaReport{MediaReport: &vspb.MediaReport{PacketsReceived: 5}}}},
		{rpcConnect, &vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name, AfterSequence: 1 << 62}}}},
		{rpcConnect, &vspb.ConnectRequest{AppSequence: 3, Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}}},
		{rpcConnect, &vspb.ConnectRequest{Message: &vspb.ConnectRequest_NetworkChanged{NetworkChanged: &vspb.NetworkChanged{Description: strings.Repeat("x", 300)}}}},
		{rpcProbe, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Name: "cam"}, Deadline: &durationpb.Duration{Seconds: 1 << 62, Nanos: -5}}},
		{rpcProbe, &vspb.ProbeChannelRequest{Channel: &vspb.Channel{Arn: "arn:aws:kinesisvideo:us-west-2:1:channel/c/1"}, Deadline: &durationpb.Duration{Seconds: 2}}},
	}
	var out [][2]any
	for _, m := range msgs {
		b, err := proto.Marshal(m.m)
		if err != nil {
			panic(err)
		}
		out = append(out, [2]any{m.rpc, b})
	}
	// Invalid UTF-8 in a string field (name), and bytes that are no
	// protobuf at all.
	bad := protowire.AppendTag(nil, 1, protowire.BytesType)
	bad = protowire.AppendBytes(bad, []byte("sessions/\xff\xfe"))
	for rpc := range byte(rpcCount) {
		out = append(out, [2]any{rpc, bad}, [2]any{rpc, []byte{0xff, 0xff, 0xff}})
	}
	return out
}

// FuzzRequests decodes and validates every RPC's request: nothing panics,
// every refusal is INVALID_ARGUMENT or OUT_OF_RANGE with an ErrorInfo
// (and BadRequest for a field), and no message echoes a control
// character or invalid UTF-8.
func FuzzRequests(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s[0].(byte), s[1].([]byte))
	}
	f.Fuzz(func(t *testing.T, rpc byte, data []byte) {
		err := validateRequest(rpc, data)
		if err == nil {
			return
		}
		st, ok := status.FromError(err)
		if !ok {
			t.Fatalf("rpc %d: %v is not a status", rpc%rpcCount, err)
		}
		if st.Code() != codes.InvalidArgument && st.Code() != codes.OutOfRange {
			t.Fatalf("rpc %d: code %v (%q), want INVALID_ARGUMENT or OUT_OF_RANGE", rpc%rpcCount, st.Code(), st.Message())
		}
		var info bool
		for _, d := range st.Details() {
			if _, ok := d.(*errdetails.ErrorInfo); ok {
				info = true
			}
		}
		if !info {
			t.Fatalf("rpc %d: %v has no ErrorInfo", rpc%rpcCount, err)
		}
		msg := st.Message()
		if !utf8.ValidString(msg) || strings.ContainsAny(msg, "\r\n\x00") {
			t.Fatalf("rpc %d: message %q echoes control characters or invalid UTF-8", rpc%rpcCount, msg)
		}
	})
}
