package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/viewerclient"
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
		give     viewerclient.Stats
		prev     viewerclient.Stats
		interval time.Duration
		want     string
	}{
		{
			name:     "flowing",
			give:     viewerclient.Stats{PacketsReceived: 312, BytesReceived: 289100, FramesPerSecond: 15, LocalAddress: "127.0.0.2:5000", LocalCandidateType: "host"},
			prev:     viewerclient.Stats{PacketsReceived: 294},
			interval: time.Second,
			want:     "10:08:46.101  media            packets 312 (+18/s)  289.1 kB  15.0 fps  via 127.0.0.2:5000 (host)",
		},
		{
			name:     "stalled, no selected pair",
			give:     viewerclient.Stats{PacketsReceived: 53, BytesReceived: 999},
			prev:     viewerclient.Stats{PacketsReceived: 53},
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
	s := viewerclient.Stats{PacketsReceived: 174, BytesReceived: 111600}
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
		"NAME          VIEWER          CLIENT_ID  STATE      ATTEMPT  CREATED              REASON\n" +
		"sessions/bbb  bob             bob        CONNECTED  1        2026-11-21 10:08:46  -\n" +
		"sessions/aaa  viewerctl-root  -          PENDING    2        2026-11-21 10:07:46  -\n"
	if got := b.String(); got != want {
		t.Errorf("writeSessions =\n%s; want\n%s", got, want)
	}
}

// ev is a timeline event for the timeline tests, ms after at.
func ev(seq uint64, ms int, typ vspb.EventType, state vspb.SessionState, msg string) *vspb.SessionEvent {
	return &vspb.SessionEvent{Sequence: seq, Time: timestamppb.New(at.Add(time.Duration(ms) * time.Millisecond)),
		Type: typ, State: state, Attempt: 1, ClientId: "v", Message: msg}
}

// Issue 16, papercut 1: every state change printed twice, as STATE_CHANGED
// and as the event that caused it. Each state change is one line now.
func TestTimelineOneLinePerStateChange(t *testing.T) {
	const (
		changed  = vspb.EventType_EVENT_TYPE_STATE_CHANGED
		signal   = vspb.SessionState_SESSION_STATE_SIGNALING
		awaitOff = vspb.SessionState_SESSION_STATE_AWAITING_OFFER
		awaitAns = vspb.SessionState_SESSION_STATE_AWAITING_ANSWER
		conning  = vspb.SessionState_SESSION_STATE_CONNECTING
		conn     = vspb.SessionState_SESSION_STATE_CONNECTED
		recov    = vspb.SessionState_SESSION_STATE_RECOVERING
	)
	events := []*vspb.SessionEvent{ // as TestWatchNetworkChangeRecovers's server emits them
		ev(3, 0, vspb.EventType_EVENT_TYPE_APP_ATTACHED, vspb.SessionState_SESSION_STATE_PENDING, "the app attached"),
		ev(4, 0, changed, signal, "PENDING -> SIGNALING: the app joined; opening KVS signaling"),
		ev(5, 2, vspb.EventType_EVENT_TYPE_SIGNALING_CONNECTED, signal, "KVS signaling open"),
		ev(6, 2, changed, awaitOff, "SIGNALING -> AWAITING_OFFER: signaling open; waiting for the app's offer"),
		ev(7, 6, changed, awaitAns, "AWAITING_OFFER -> AWAITING_ANSWER: offer sent; waiting for the camera's answer"),
		ev(8, 7, vspb.EventType_EVENT_TYPE_OFFER_SENT, awaitAns, "offer sent to the camera"),
		ev(9, 10, vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE, awaitAns, "a camera candidate"),
		ev(10, 13, changed, conning, "AWAITING_ANSWER -> CONNECTING: answer delivered; ICE is checking"),
		ev(11, 13, vspb.EventType_EVENT_TYPE_CONNECTION_STATE, conning, "checking"),
		ev(12, 13, vspb.EventType_EVENT_TYPE_ANSWER, conning, "the camera answered"),
		ev(13, 21, changed, conn, "CONNECTING -> CONNECTED: the app's peer connection is connected"),
		ev(14, 900, vspb.EventType_EVENT_TYPE_MEDIA_FLOWING, conn, "video flows"), // too late to share the line
		ev(15, 1500, changed, recov, "CONNECTED -> RECOVERING: recovering: network changed"),
		ev(16, 1500, vspb.EventType_EVENT_TYPE_RECOVERY_STARTED, recov, "network changed: restarting ICE"),
	}
	tl := timeline{loc: time.UTC}
	var lines []string
	for _, e := range events {
		lines = append(lines, tl.add(e)...)
	}
	lines = append(lines, tl.flush()...)
	t.Logf("timeline:\n%s", strings.Join(lines, "\n"))
	for _, change := range []string{"PENDING -> SIGNALING", "SIGNALING -> AWAITING_OFFER", "AWAITING_OFFER -> AWAITING_ANSWER",
		"AWAITING_ANSWER -> CONNECTING", "CONNECTING -> CONNECTED", "CONNECTED -> RECOVERING"} {
		n := 0
		for _, l := range lines {
			n += strings.Count(l, change)
		}
		if n != 1 {
			t.Errorf("%q is on %d lines; want 1", change, n)
		}
	}
	want := []string{
		"10:08:46.101  PENDING          attempt 1  v                     APP_ATTACHED: the app attached",
		"10:08:46.103  SIGNALING        attempt 1  v                     SIGNALING_CONNECTED: KVS signaling open (PENDING -> SIGNALING)",
		"10:08:46.103  AWAITING_OFFER   attempt 1  v                     STATE_CHANGED: SIGNALING -> AWAITING_OFFER: signaling open; waiting for the app's offer",
		"10:08:46.108  AWAITING_ANSWER  attempt 1  v                     OFFER_SENT: offer sent to the camera (AWAITING_OFFER -> AWAITING_ANSWER)",
		"10:08:46.114  CONNECTING       attempt 1  v                     ANSWER: the camera answered (AWAITING_ANSWER -> CONNECTING)",
		"10:08:46.122  CONNECTED        attempt 1  v                     STATE_CHANGED: CONNECTING -> CONNECTED: the app's peer connection is connected",
		"10:08:47.001  CONNECTED        attempt 1  v                     MEDIA_FLOWING: video flows",
		"10:08:47.601  RECOVERING       attempt 1  v                     RECOVERY_STARTED: network changed: restarting ICE (CONNECTED -> RECOVERING)",
	}
	if got := strings.Join(lines, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("timeline =\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
}

// Issue 16, papercut 2: `sessions -all` had no reason column.
func TestWriteSessionsReasonColumn(t *testing.T) {
	list := []*vspb.Session{
		{Name: "sessions/ccc", ViewerId: "carol", State: vspb.SessionState_SESSION_STATE_FAILED, CloseReason: vspb.CloseReason_CLOSE_REASON_FAILED,
			Failure: &vspb.Failure{Reason: vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT}, CreateTime: timestamppb.New(at)},
		{Name: "sessions/bbb", ViewerId: "bob", State: vspb.SessionState_SESSION_STATE_CLOSED, CloseReason: vspb.CloseReason_CLOSE_REASON_CLIENT_GONE, CreateTime: timestamppb.New(at)},
		{Name: "sessions/aaa", ViewerId: "alice", State: vspb.SessionState_SESSION_STATE_CONNECTED, CreateTime: timestamppb.New(at)},
	}
	var b bytes.Buffer
	if err := writeSessions(&b, list, time.UTC); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for i, want := range []string{"REASON", "ANSWER_TIMEOUT", "CLIENT_GONE", "-"} {
		f := strings.Fields(lines[i])
		if got := f[len(f)-1]; got != want {
			t.Errorf("line %d %q: last column %q; want %q", i, lines[i], got, want)
		}
	}
}

// Issue 16, papercut 6: "connection refused" came without a hint.
func TestConnectionRefusedHint(t *testing.T) {
	err := withHint("localhost:50051", errors.New(`list sessions: Unavailable: dial tcp 127.0.0.1:50051: connect: connection refused`))
	if !strings.HasSuffix(err.Error(), "connection refused; is the server running at localhost:50051?") {
		t.Errorf("withHint = %v", err)
	}
	other := errors.New("list sessions: PermissionDenied: bad key")
	if got := withHint("localhost:50051", other); got != other {
		t.Errorf("withHint(%v) = %v; want it unchanged", other, got)
	}
	w := &watcher{cfg: watchConfig{commonConfig: commonConfig{Addr: "h:1"}}}
	if got, want := w.plainWhy(`rpc error: code = Unavailable desc = connection error: desc = "transport: dial tcp h:1: connect: connection refused"`),
		"connection refused: is the server running at h:1?"; got != want {
		t.Errorf("plainWhy = %q; want %q", got, want)
	}
}
