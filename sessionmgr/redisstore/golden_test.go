package redisstore

import (
	"flag"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/internal/wire"
	"github.com/acme/viewersession/sessionmgr/internal/wire/wiretest"
)

var update = flag.Bool("update", false, "rewrite testdata/*.v2.json from the encoders (the v1 fixtures are never rewritten)")

// goldenSession is a session with every field set, nested ones included.
func goldenSession() sessionmgr.Session {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return sessionmgr.Session{
		ID: "abcdefghijklmnopqrstuvwxyz",
		Channel: sessionmgr.Channel{
			ARN:        "arn:aws:kinesisvideo:eu-west-1:123456789012:channel/front-door/1700000000000",
			Name:       "front-door",
			Region:     "eu-west-1",
			MessageTTL: 60 * time.Second,
		},
		ViewerID: "viewer-7",
		ClientID: "vs-0123456789abcdef",
		State:    sessionmgr.StateRecovering,
		Attempt:  3,
		IceServers: sessionmgr.IceServers{
			Servers: []sessionmgr.IceServer{
				{URLs: []string{"stun:stun.kinesisvideo.eu-west-1.amazonaws.com:443"}},
				{
					URLs:       []string{"turn:1-2-3-4.t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=udp", "turns:1-2-3-4.t-1.kinesisvideo.eu-west-1.amazonaws.com:443?transport=tcp"},
					Username:   "1700000300:djE6YXJu",
					Credential: "c2VjcmV0",
				},
			},
			Expires: t0.Add(5 * time.Minute),
		},
		Options: sessionmgr.Options{
			AnswerTimeout:            10 * time.Second,
			RetryDelay:               1500 * time.Millisecond,
			MaxAttempts:              4,
			Recovery:                 sessionmgr.RecoveryICERestartOnly,
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
		Close:        sessionmgr.CloseFailed,
		Failure:      &sessionmgr.Failure{Reason: sessionmgr.FailureRecoveryFailed, Message: "no step recovered the media"},
		LastSeq:      42,
		TokenHash:    []byte{0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03},
		Caller:       "backend-a",
		RequestID:    "req-123",
		Owner:        "replica-1",
		Epoch:        7,
		AckedAppSeq:  19,
		AppSeqsAbove: []uint64{21, 24},
		MediaFlowing: true,
		MediaPC:      2,
	}
}

// goldenEvents are events of each kind that carries a payload, and a few
// without, by fixture name.
func goldenEvents() map[string]sessionmgr.Event {
	t0 := time.Date(2026, 3, 1, 12, 0, 1, 5000000, time.UTC)
	idx := uint16(1)
	ice := &sessionmgr.IceServers{
		Servers: []sessionmgr.IceServer{{URLs: []string{"turn:a.example:443"}, Username: "u", Credential: "p"}},
		Expires: t0.Add(5 * time.Minute),
	}
	return map[string]sessionmgr.Event{
		"created": {Seq: 1, Time: t0, Type: sessionmgr.EventCreated, State: sessionmgr.StatePending},
		"state": {Seq: 2, Time: t0.Add(time.Millisecond), Type: sessionmgr.EventStateChanged,
			State: sessionmgr.StateAwaitingAnswer, Attempt: 1, ClientID: "vs-0123456789abcdef", AckedAppSeq: 3},
		"answer": {Seq: 3, Time: t0.Add(2 * time.Millisecond), Type: sessionmgr.EventAnswer,
			State: sessionmgr.StateConnecting, Attempt: 1, Answer: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},
		"candidate": {Seq: 4, Time: t0.Add(3 * time.Millisecond), Type: sessionmgr.EventRemoteCandidate,
			State: sessionmgr.StateConnecting, Candidate: &sessionmgr.Candidate{
				Candidate: "candidate:1 1 udp 2130706431 10.0.0.1 50000 typ host", SDPMid: "0",
				SDPMLineIndex: &idx, UsernameFragment: "abcd",
			}},
		"conn-state": {Seq: 5, Time: t0.Add(4 * time.Millisecond), Type: sessionmgr.EventConnectionState,
			State: sessionmgr.StateConnected, ConnState: &sessionmgr.ConnState{ICE: sessionmgr.ICEConnected, Peer: sessionmgr.PeerConnected}},
		"renegotiate": {Seq: 6, Time: t0.Add(5 * time.Millisecond), Type: sessionmgr.EventRenegotiate,
			State: sessionmgr.StateRecovering, Renegotiate: &sessionmgr.Renegotiate{
				Action: sessionmgr.RenegotiateNewPeerConnection, IceServers: ice, Reason: "network changed",
			}},
		"ice-servers": {Seq: 7, Time: t0.Add(6 * time.Millisecond), Type: sessionmgr.EventICEServersRefreshed,
			State: sessionmgr.StateConnected, IceServers: ice},
		"recovery-started": {Seq: 8, Time: t0.Add(7 * time.Millisecond), Type: sessionmgr.EventRecoveryStarted,
			State: sessionmgr.StateRecovering, Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepNewPeerConnection, Learned: true}},
		"recovered": {Seq: 9, Time: t0.Add(8 * time.Millisecond), Type: sessionmgr.EventRecovered,
			State: sessionmgr.StateConnected, Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepICERestart, Outage: 2345 * time.Millisecond}},
		"media": {Seq: 10, Time: t0.Add(9 * time.Millisecond), Type: sessionmgr.EventMediaFlowing,
			State: sessionmgr.StateConnected, Media: &sessionmgr.MediaReport{PeerConnection: 2, Packets: 1200, Bytes: 1500000, Frames: 300}},
		"going-away": {Seq: 11, Time: t0.Add(10 * time.Millisecond), Type: sessionmgr.EventGoingAway,
			State: sessionmgr.StateConnected, GoingAway: "replica draining"},
		"failed": {Seq: 12, Time: t0.Add(11 * time.Millisecond), Type: sessionmgr.EventFailed,
			State: sessionmgr.StateFailed, Message: "answer timed out",
			Failure: &sessionmgr.Failure{Reason: sessionmgr.FailureAnswerTimeout, Message: "no answer in 10s"}},
		"closed": {Seq: 13, Time: t0.Add(12 * time.Millisecond), Type: sessionmgr.EventClosed,
			State: sessionmgr.StateClosed, Close: sessionmgr.CloseClientLeft},
	}
}

// writer is a Store that only encodes, in version v.
func writer(v int) *Store {
	s := &Store{}
	WithWriteVersion(v)(s)
	return s
}

// TestGoldenV1 reads the v1 fixtures: the JSON of the domain structs as
// replicas before version 2 wrote it, captured with their encoders (commit
// 3fa9c04; never rewritten). Each decodes to the value it was made from,
// the frozen version 1 structs know every key in it, and a Store that
// writes version 1 (WithWriteVersion(1)) writes it byte for byte.
func TestGoldenV1(t *testing.T) {
	want := goldenSession()
	data := readGolden(t, "session.v1.json")
	if enc, err := writer(1).encodeSession(want); err != nil || enc != data {
		t.Errorf("encodeSession in v1 = %s, %v\nwant (session.v1.json) %s", enc, err, data)
	}
	got, err := decodeSession(data, want.Epoch, want.Owner)
	if err != nil {
		t.Fatalf("decode session.v1.json: %v", err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("session.v1.json (-want +got):\n%s", d)
	}
	strict(t, "session.v1.json", data, &wire.SessionV1{})
	for name, want := range goldenEvents() {
		file := "event-" + name + ".v1.json"
		data := readGolden(t, file)
		if enc, err := writer(1).encodeEvent(want); err != nil || enc != data {
			t.Errorf("encodeEvent(%s) in v1 = %s, %v\nwant (%s) %s", name, enc, err, file, data)
		}
		got, err := decodeEvent(data)
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
		strict(t, file, data, &wire.EventV1{})
	}
}

// TestGoldenV2 checks the encoders against the v2 fixtures byte for byte
// (a change to the format shows as a diff; go test -update rewrites them
// for review), and that each decodes to the value it was made from.
func TestGoldenV2(t *testing.T) {
	want := goldenSession()
	data, err := writer(wire.Version).encodeSession(want)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		writeGolden(t, "session.v2.json", data)
	}
	if golden := readGolden(t, "session.v2.json"); data != golden {
		t.Errorf("encodeSession = %s\nwant (session.v2.json) %s", data, golden)
	}
	got, err := decodeSession(readGolden(t, "session.v2.json"), want.Epoch, want.Owner)
	if err != nil {
		t.Fatalf("decode session.v2.json: %v", err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("session.v2.json (-want +got):\n%s", d)
	}
	for name, want := range goldenEvents() {
		file := "event-" + name + ".v2.json"
		data, err := writer(wire.Version).encodeEvent(want)
		if err != nil {
			t.Fatal(err)
		}
		if *update {
			writeGolden(t, file, data)
		}
		if golden := readGolden(t, file); data != golden {
			t.Errorf("encodeEvent(%s) = %s\nwant (%s) %s", name, data, file, golden)
		}
		got, err := decodeEvent(readGolden(t, file))
		if err != nil {
			t.Fatalf("decode %s: %v", file, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s (-want +got):\n%s", file, d)
		}
	}
}

// strict, writeGolden and readGolden are wiretest's, on the strings
// this package's records are.
func strict(t *testing.T, file, data string, v any) {
	t.Helper()
	wiretest.Strict(t, file, []byte(data), v)
}

func writeGolden(t *testing.T, name, data string) {
	t.Helper()
	wiretest.Write(t, name, []byte(data))
}

func readGolden(t *testing.T, name string) string {
	t.Helper()
	return string(wiretest.Read(t, name))
}
