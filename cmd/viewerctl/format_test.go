package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/acme/viewersession/internal/thinclient"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

var at = time.Date(2026, 11, 21, 10, 8, 46, 101e6, time.UTC)

func TestFormatEvent(t *testing.T) {
	tests := []struct {
		name string
		give *vspb.SessionEvent
		want string
	}{
		{
			name: "before the first clientId",
			give: &vspb.SessionEvent{Time: timestamppb.New(at), Type: vspb.EventType_EVENT_TYPE_CREATED,
				State: vspb.SessionState_SESSION_STATE_PENDING, Message: "session created"},
			want: "10:08:46.101  PENDING          attempt 0  -                     CREATED: session created",
		},
		{
			name: "answer timeout",
			give: &vspb.SessionEvent{Time: timestamppb.New(at), Type: vspb.EventType_EVENT_TYPE_ANSWER_TIMEOUT,
				State: vspb.SessionState_SESSION_STATE_AWAITING_ANSWER, Attempt: 1, ClientId: "viewerctl-root",
				Message: "the camera did not answer within 5s",
				Failure: &vspb.Failure{Reason: vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT, Message: "no answer within 5s"}},
			want: "10:08:46.101  AWAITING_ANSWER  attempt 1  viewerctl-root        ANSWER_TIMEOUT: the camera did not answer within 5s [ANSWER_TIMEOUT: no answer within 5s]",
		},
		{
			name: "failed: the failure message is not repeated, nor the close reason",
			give: &vspb.SessionEvent{Time: timestamppb.New(at), Type: vspb.EventType_EVENT_TYPE_FAILED,
				State: vspb.SessionState_SESSION_STATE_FAILED, Attempt: 2, ClientId: "viewerctl-root-2",
				Message:     "the camera did not answer after 2 attempts",
				Failure:     &vspb.Failure{Reason: vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT, Message: "the camera did not answer after 2 attempts"},
				CloseReason: vspb.CloseReason_CLOSE_REASON_FAILED},
			want: "10:08:46.101  FAILED           attempt 2  viewerctl-root-2      FAILED: the camera did not answer after 2 attempts [ANSWER_TIMEOUT]",
		},
		{
			name: "closed",
			give: &vspb.SessionEvent{Time: timestamppb.New(at), Type: vspb.EventType_EVENT_TYPE_CLOSED,
				State: vspb.SessionState_SESSION_STATE_CLOSED, Attempt: 1, ClientId: "c", Message: "session closed: closed by the backend",
				CloseReason: vspb.CloseReason_CLOSE_REASON_CLOSED_BY_BACKEND},
			want: "10:08:46.101  CLOSED           attempt 1  c                     CLOSED: session closed: closed by the backend [CLOSED_BY_BACKEND]",
		},
		{
			name: "camera candidate",
			give: &vspb.SessionEvent{Time: timestamppb.New(at), Type: vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE,
				State: vspb.SessionState_SESSION_STATE_CONNECTING, Attempt: 1, ClientId: "c", Message: "camera ICE candidate",
				Detail: &vspb.SessionEvent_Candidate{Candidate: &vspb.IceCandidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}}},
			want: "10:08:46.101  CONNECTING       attempt 1  c                     REMOTE_CANDIDATE: camera ICE candidate (candidate:1 1 udp 1 127.0.0.1 5000 typ host)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatEvent(tt.give, time.UTC); got != tt.want {
				t.Errorf("formatEvent =\n%q; want\n%q", got, tt.want)
			}
		})
	}
}

// The answer's SDP and ICE servers (TURN credentials) never reach the
// output.
func TestFormatEventHidesPayloads(t *testing.T) {
	evs := []*vspb.SessionEvent{
		{Type: vspb.EventType_EVENT_TYPE_ANSWER, Message: "the camera answered",
			Detail: &vspb.SessionEvent_Answer{Answer: &vspb.SessionDescription{Sdp: "v=0 secret-sdp"}}},
		{Type: vspb.EventType_EVENT_TYPE_ICE_SERVERS_REFRESHED, Message: "fresh ICE servers fetched",
			Detail: &vspb.SessionEvent_IceServers{IceServers: &vspb.IceServerUpdate{IceServers: []*vspb.IceServer{
				{Urls: []string{"turn:127.0.0.1:3478"}, Username: "secret-user", Credential: "secret-password"}}}}},
		{Type: vspb.EventType_EVENT_TYPE_RENEGOTIATE, Message: "close your peer connection",
			Detail: &vspb.SessionEvent_Renegotiate{Renegotiate: &vspb.Renegotiate{IceServers: []*vspb.IceServer{
				{Urls: []string{"turn:127.0.0.1:3478"}, Username: "secret-user", Credential: "secret-password"}}}}},
	}
	for _, e := range evs {
		got := formatEvent(e, time.UTC)
		if strings.Contains(got, "secret") || strings.Contains(got, "turn:") {
			t.Errorf("formatEvent(%v) = %q; want no payload", e.GetType(), got)
		}
		if !strings.Contains(got, e.GetMessage()) {
			t.Errorf("formatEvent(%v) = %q; want the message %q", e.GetType(), got, e.GetMessage())
		}
	}
}

func TestNoisy(t *testing.T) {
	tests := []struct {
		give vspb.EventType
		want bool
	}{
		{vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE, true},
		{vspb.EventType_EVENT_TYPE_CONNECTION_STATE, true},
		{vspb.EventType_EVENT_TYPE_STATE_CHANGED, false},
		{vspb.EventType_EVENT_TYPE_ANSWER_TIMEOUT, false},
		{vspb.EventType_EVENT_TYPE_ICE_SERVERS_REFRESHED, false},
	}
	for _, tt := range tests {
		if got := noisy(&vspb.SessionEvent{Type: tt.give}); got != tt.want {
			t.Errorf("noisy(%v) = %v; want %v", tt.give, got, tt.want)
		}
	}
}

func TestFormatStats(t *testing.T) {
	tests := []struct {
		name     string
		give     thinclient.Stats
		prev     thinclient.Stats
		interval time.Duration
		want     string
	}{
		{
			name:     "flowing",
			give:     thinclient.Stats{PacketsReceived: 312, BytesReceived: 289100, FramesPerSecond: 15, LocalAddress: "127.0.0.2:5000", LocalCandidateType: "host"},
			prev:     thinclient.Stats{PacketsReceived: 294},
			interval: time.Second,
			want:     "10:08:46.101  media            packets 312 (+18/s)  289.1 kB  15.0 fps  via 127.0.0.2:5000 (host)",
		},
		{
			name:     "stalled, no selected pair",
			give:     thinclient.Stats{PacketsReceived: 53, BytesReceived: 999},
			prev:     thinclient.Stats{PacketsReceived: 53},
			interval: 2 * time.Second,
			want:     "10:08:46.101  media            packets 53 (+0/s)  999 B  0.0 fps",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatStats(at, tt.give, tt.prev, tt.interval); got != tt.want {
				t.Errorf("formatStats =\n%q; want\n%q", got, tt.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		give int64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{53412, "53.4 kB"},
		{2_345_678, "2.35 MB"},
	}
	for _, tt := range tests {
		if got := formatBytes(tt.give); got != tt.want {
			t.Errorf("formatBytes(%d) = %q; want %q", tt.give, got, tt.want)
		}
	}
}

func TestSummary(t *testing.T) {
	first := &vspb.SessionEvent{Attempt: 1, ClientId: "a"}
	last := &vspb.SessionEvent{Attempt: 2, ClientId: "b"}
	s := thinclient.Stats{PacketsReceived: 174, BytesReceived: 111600}
	tests := []struct {
		recoveries int
		want       string
	}{
		{0, "ok: CONNECTED on attempt 1 (clientId a); received 174 video packets, 111.6 kB"},
		{1, "ok: CONNECTED on attempt 1 (clientId a), recovered 1 time(s), last on attempt 2 (clientId b); received 174 video packets, 111.6 kB"},
	}
	for _, tt := range tests {
		if got := summary(first, last, tt.recoveries, s); got != tt.want {
			t.Errorf("summary(recoveries %d) =\n%q; want\n%q", tt.recoveries, got, tt.want)
		}
	}
}

func TestWriteSessions(t *testing.T) {
	list := []*vspb.Session{
		{Name: "sessions/bbb", ViewerId: "bob", ClientId: "bob", State: vspb.SessionState_SESSION_STATE_CONNECTED, Attempt: 1, CreateTime: timestamppb.New(at)},
		{Name: "sessions/aaa", ViewerId: "viewerctl-root", State: vspb.SessionState_SESSION_STATE_PENDING, Attempt: 2, CreateTime: timestamppb.New(at.Add(-time.Minute))},
	}
	var b bytes.Buffer
	if err := writeSessions(&b, list, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NAME          VIEWER          CLIENT_ID  STATE      ATTEMPT  CREATED\n" +
		"sessions/bbb  bob             bob        CONNECTED  1        2026-11-21 10:08:46\n" +
		"sessions/aaa  viewerctl-root  -          PENDING    2        2026-11-21 10:07:46\n"
	if got := b.String(); got != want {
		t.Errorf("writeSessions =\n%s; want\n%s", got, want)
	}
}
