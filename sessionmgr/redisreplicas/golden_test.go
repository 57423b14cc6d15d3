package redisreplicas

import (
	"bytes"
	"flag"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
	"github.com/acme/viewersession/sessionmgr/internal/wire/wiretest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.v2.json from the encoders (the v1 fixtures are never rewritten)")

var goldenDeadline = time.Date(2026, 3, 1, 12, 0, 5, 250000000, time.UTC)

// goldenForwarded are the envelopes of each kind of forwarded request, and
// of each kind of app message, by fixture name.
func goldenForwarded() map[string]envelope {
	idx := uint16(0)
	network := "wifi"
	env := func(f sessionmgr.Forwarded) envelope {
		return envelope{Req: f, ReplyKey: "vs:v1:{reply:ABCDEFGHIJKLMNOPQRSTUVWXYZ}", Deadline: goldenDeadline}
	}
	app := func(m sessionmgr.AppMessage) envelope {
		return env(sessionmgr.Forwarded{Session: "abcdefghijklmnopqrstuvwxyz", Kind: "app", Msg: m, From: "replica-2"})
	}
	return map[string]envelope{
		"offer": app(sessionmgr.AppMessage{AppSeq: 5, Offer: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"}),
		"candidate": app(sessionmgr.AppMessage{AppSeq: 6, Candidate: &sessionmgr.Candidate{
			Candidate: "candidate:1 1 udp 2130706431 10.0.0.2 50001 typ host", SDPMid: "0",
			SDPMLineIndex: &idx, UsernameFragment: "wxyz",
		}}),
		"state-report": app(sessionmgr.AppMessage{AppSeq: 7, StateReport: &sessionmgr.ConnState{
			ICE: sessionmgr.ICEDisconnected, Peer: sessionmgr.PeerDisconnected,
		}}),
		"network-changed": app(sessionmgr.AppMessage{AppSeq: 8, NetworkChanged: &network}),
		"leave":           app(sessionmgr.AppMessage{AppSeq: 9, Leave: true}),
		"media": app(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{
			PeerConnection: 3, Packets: 900, Bytes: 1100000, Frames: 240,
		}}),
		"close":  env(sessionmgr.Forwarded{Session: "abcdefghijklmnopqrstuvwxyz", Kind: "close", From: "replica-2"}),
		"attach": env(sessionmgr.Forwarded{Session: "abcdefghijklmnopqrstuvwxyz", Kind: "attach", Stream: "stream-9", From: "replica-2"}),
		"detach": env(sessionmgr.Forwarded{Session: "abcdefghijklmnopqrstuvwxyz", Kind: "detach", Stream: "stream-9", From: "replica-2"}),
	}
}

// goldenReplies are an owner's answers: a session with every field set,
// and an error.
func goldenReplies() map[string]sessionmgr.ForwardReply {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return map[string]sessionmgr.ForwardReply{
		"session": {Session: sessionmgr.Session{
			ID: "abcdefghijklmnopqrstuvwxyz",
			Channel: sessionmgr.Channel{
				ARN:        "arn:aws:kinesisvideo:eu-west-1:123456789012:channel/front-door/1700000000000",
				Name:       "front-door",
				Region:     "eu-west-1",
				MessageTTL: 60 * time.Second,
			},
			ViewerID: "viewer-7",
			ClientID: "vs-0123456789abcdef",
			State:    sessionmgr.StateConnected,
			Attempt:  2,
			IceServers: sessionmgr.IceServers{
				Servers: []sessionmgr.IceServer{
					{URLs: []string{"stun:stun.example:443"}},
					{URLs: []string{"turn:t.example:443?transport=udp"}, Username: "1700000300:djE6", Credential: "c2VjcmV0"},
				},
				Expires: t0.Add(5 * time.Minute),
			},
			Options: sessionmgr.Options{
				AnswerTimeout:            10 * time.Second,
				RetryDelay:               1500 * time.Millisecond,
				MaxAttempts:              4,
				Recovery:                 sessionmgr.RecoveryFullReconnect,
				ResumeGrace:              30 * time.Second,
				ICERestartTimeout:        6 * time.Second,
				DisconnectedGrace:        2 * time.Second,
				MaxLifetime:              12 * time.Hour,
				NewPeerConnectionTimeout: 8 * time.Second,
				MediaStallTimeout:        3 * time.Second,
			},
			Created:      t0,
			Updated:      t0.Add(90 * time.Second),
			Expires:      t0.Add(12 * time.Hour),
			Close:        sessionmgr.CloseMaxLifetime,
			Failure:      &sessionmgr.Failure{Reason: sessionmgr.FailureKVSThrottled, Message: "throttled"},
			LastSeq:      17,
			TokenHash:    []byte{0xde, 0xad, 0xbe, 0xef},
			Caller:       "backend-a",
			RequestID:    "req-123",
			Owner:        "replica-1",
			Epoch:        4,
			AckedAppSeq:  9,
			AppSeqsAbove: []uint64{11},
			MediaFlowing: true,
			MediaPC:      3,
		}},
		"error": {Err: "CLOSED", Detail: "session abcdefghijklmnopqrstuvwxyz has ended"},
	}
}

// TestGoldenV1 reads the v1 fixtures: the forwarded messages as replicas
// before version 2 wrote them, captured with their encoders (commit
// 3fa9c04; never rewritten). Each decodes to the value it was made from,
// the frozen version 1 structs know every key in it, and a Cluster that
// writes version 1 (WithWriteVersion(1)) writes it byte for byte.
func TestGoldenV1(t *testing.T) {
	for name, want := range goldenForwarded() {
		file := "forwarded-" + name + ".v1.json"
		data := wiretest.Read(t, file)
		if enc, err := encodeEnvelope(want, 1); err != nil || !bytes.Equal(enc, data) {
			t.Errorf("encodeEnvelope(%s) in v1 = %s, %v\nwant (%s) %s", name, enc, err, file, data)
		}
		got, err := decodeEnvelope(data)
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
		wiretest.Strict(t, file, data, &envelopeV1{})
	}
	for name, want := range goldenReplies() {
		file := "reply-" + name + ".v1.json"
		data := wiretest.Read(t, file)
		if enc, err := encodeReply(want, 1); err != nil || !bytes.Equal(enc, data) {
			t.Errorf("encodeReply(%s) in v1 = %s, %v\nwant (%s) %s", name, enc, err, file, data)
		}
		got, err := decodeReply(data)
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
		wiretest.Strict(t, file, data, &replyV1{})
	}
}

// TestGoldenV2 checks the encoders against the v2 fixtures byte for byte
// (a change to the format shows as a diff; go test -update rewrites them
// for review), and that each decodes to the value it was made from.
func TestGoldenV2(t *testing.T) {
	for name, want := range goldenForwarded() {
		file := "forwarded-" + name + ".v2.json"
		data, err := encodeEnvelope(want, wire.Version)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			wiretest.Write(t, file, data)
		}
		if golden := wiretest.Read(t, file); !bytes.Equal(data, golden) {
			t.Errorf("encodeEnvelope(%s) = %s\nwant (%s) %s", name, data, file, golden)
		}
		got, err := decodeEnvelope(wiretest.Read(t, file))
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
	}
	for name, want := range goldenReplies() {
		file := "reply-" + name + ".v2.json"
		data, err := encodeReply(want, wire.Version)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			wiretest.Write(t, file, data)
		}
		if golden := wiretest.Read(t, file); !bytes.Equal(data, golden) {
			t.Errorf("encodeReply(%s) = %s\nwant (%s) %s", name, data, file, golden)
		}
		got, err := decodeReply(wiretest.Read(t, file))
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
	}
}
