package kvs

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func dialFake(t *testing.T, f *fakeKVS, cfg Config) (*Client, *Conn, *fakeSocket) {
	t.Helper()
	c := newTestClient(t, cfg)
	cn, err := c.Dial(t.Context(), f.channel(), "viewer-1")
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = cn.Close() })
	return c, cn, f.next(t)
}

func TestConnSendsCompactFrames(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	if got := s.query.Get("X-Amz-ClientId"); got != "viewer-1" {
		t.Errorf("X-Amz-ClientId = %q, want viewer-1", got)
	}
	if got := s.query.Get("X-Amz-Expires"); got != "299" {
		t.Errorf("X-Amz-Expires = %q, want 299", got)
	}

	id, err := cn.SendOffer(t.Context(), "v=0\r\nx=<&>\r\n")
	if err != nil {
		t.Fatalf("SendOffer: %v", err)
	}
	if !regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`).MatchString(id) {
		t.Errorf("SendOffer correlationId = %q, not a valid KVS correlationId", id)
	}
	want := `{"action":"SDP_OFFER","messagePayload":"` + b64(`{"sdp":"v=0\r\nx=<&>\r\n","type":"offer"}`) + `","correlationId":"` + id + `"}`
	if got := s.frame(t); got != want {
		t.Errorf("offer frame =\n%s\nwant\n%s", got, want)
	}

	idx := uint16(0)
	id2, err := cn.SendCandidate(t.Context(), Candidate{Candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host", SDPMid: "0", SDPMLineIndex: &idx})
	if err != nil {
		t.Fatalf("SendCandidate: %v", err)
	}
	if id2 == id {
		t.Errorf("SendCandidate correlationId = %q, same as the offer's", id2)
	}
	want = `{"action":"ICE_CANDIDATE","messagePayload":"` + b64(`{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}`) + `","correlationId":"` + id2 + `"}`
	if got := s.frame(t); got != want {
		t.Errorf("candidate frame =\n%s\nwant\n%s", got, want)
	}
}

func TestConnRefusesOversizedOffer(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, _ := dialFake(t, f, testConfig(f))
	_, err := cn.SendOffer(t.Context(), strings.Repeat("a", 7600))
	if !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SendOffer(7600 bytes) error = %v, want ErrInvalidArgument", err)
	}
}

// TestConnReceives checks answers, candidates and status responses, in the
// shapes KVS and the SDKs produce, and that junk in between breaks nothing.
func TestConnReceives(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	id, err := cn.SendOffer(t.Context(), "v=0\r\n")
	if err != nil {
		t.Fatal(err)
	}
	s.frame(t)

	junk := []string{
		``,
		`   `,
		`not json`,
		`{"message": "Endpoint request timed out", "connectionId":"abc=", "requestId":"def"}`,
		`{"messageType":"SDP_OFFER","messagePayload":"` + b64(`{"sdp":"v=0","type":"offer"}`) + `","senderClientId":"other"}`,
		`{"messageType":"SOMETHING_NEW","messagePayload":"eA=="}`,
		`{"messageType":"SDP_ANSWER"}`,
		`{"messageType":"SDP_ANSWER","messagePayload":"!!!"}`,
		`{"messageType":"ICE_CANDIDATE","messagePayload":"` + b64(`[1,2]`) + `"}`,
		`{"messageType":"SDP_ANSWER","messagePayload":"` + b64(strings.Repeat("x", 70<<10)) + `"}`,
	}
	for _, j := range junk {
		s.send(t, j)
	}
	if err := s.ws.Write(t.Context(), websocket.MessageBinary, []byte(`{"messageType":"SDP_ANSWER"}`)); err != nil {
		t.Fatal(err)
	}
	s.send(t, `{"messageType":"SDP_ANSWER","messagePayload":"`+b64(`{"type":"answer","sdp":"v=0\r\nanswer"}`)+`"}`)
	s.send(t, `{"MessageType":"ICE_CANDIDATE","MessagePayload":"`+b64(`{"candidate":"candidate:2 1 udp 1 127.0.0.1 6000 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"uf"}`)+`","SenderClientId":""}`)
	s.send(t, `{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"`+id+`","errorType":"InvalidArgumentException","statusCode":"400","success":false}}`)
	s.send(t, `{"messageType":"STATUS_RESPONSE","statusResponse":{"correlationId":"unknown","errorType":"X","statusCode":500,"description":"d"}}`)

	if ev := nextEvent(t, cn); ev.Type != EventAnswer || ev.SDP != "v=0\r\nanswer" {
		t.Errorf("event 1 = %v %q, want Answer %q", ev.Type, ev.SDP, "v=0\r\nanswer")
	}
	ev := nextEvent(t, cn)
	if ev.Type != EventCandidate || ev.Candidate.Candidate != "candidate:2 1 udp 1 127.0.0.1 6000 typ host" ||
		ev.Candidate.SDPMid != "0" || ev.Candidate.SDPMLineIndex == nil || *ev.Candidate.SDPMLineIndex != 0 || ev.Candidate.UsernameFragment != "uf" {
		t.Errorf("event 2 = %+v, want the candidate", ev)
	}
	ev = nextEvent(t, cn)
	want := Status{CorrelationID: id, ErrorType: "InvalidArgumentException", StatusCode: "400", Action: "SDP_OFFER"}
	if ev.Type != EventStatus || ev.Status == nil || *ev.Status != want {
		t.Errorf("event 3 = %v %+v, want Status %+v", ev.Type, ev.Status, want)
	}
	ev = nextEvent(t, cn)
	want = Status{CorrelationID: "unknown", ErrorType: "X", StatusCode: "500", Description: "d"}
	if ev.Type != EventStatus || ev.Status == nil || *ev.Status != want {
		t.Errorf("event 4 = %v %+v, want Status %+v", ev.Type, ev.Status, want)
	}
	// Still the same, working socket.
	if _, err := cn.SendOffer(t.Context(), "v=0\r\n"); err != nil {
		t.Fatalf("SendOffer after junk: %v", err)
	}
	s.frame(t)
	if n := f.count("ConnectAsViewer"); n != 1 {
		t.Errorf("connects = %d, want 1 (junk must not drop the socket)", n)
	}
}

func TestConnGoAwayReconnects(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	s.send(t, `{"messageType":"GO_AWAY","messagePayload":""}`)
	err := s.waitClosed(t)
	if got := websocket.CloseStatus(err); got != websocket.StatusNormalClosure {
		t.Errorf("old socket close status = %v (%v), want normal closure", got, err)
	}
	s2 := f.next(t)
	if got := s2.query.Get("X-Amz-ClientId"); got != "viewer-1" {
		t.Errorf("reconnect clientId = %q, want viewer-1", got)
	}
	ev := nextEvent(t, cn)
	if ev.Type != EventReconnected || !errors.Is(ev.Err, errGoAway) {
		t.Errorf("event = %v (%v), want Reconnected after GO_AWAY", ev.Type, ev.Err)
	}
	if _, err := cn.SendOffer(t.Context(), "v=0\r\nrestart"); err != nil {
		t.Fatalf("SendOffer after GO_AWAY: %v", err)
	}
	if got := s2.frame(t); !strings.Contains(got, b64(`{"sdp":"v=0\r\nrestart","type":"offer"}`)) {
		t.Errorf("frame on the new socket = %s, want the offer", got)
	}
}

func TestConnDropReconnects(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	_ = s.ws.CloseNow()
	s2 := f.next(t)
	ev := nextEvent(t, cn)
	if ev.Type != EventReconnected || ev.Err == nil || errors.Is(ev.Err, errGoAway) {
		t.Errorf("event = %v (%v), want Reconnected after a drop", ev.Type, ev.Err)
	}
	s2.send(t, `{"messageType":"SDP_ANSWER","messagePayload":"`+b64(`{"type":"answer","sdp":"a"}`)+`"}`)
	if ev := nextEvent(t, cn); ev.Type != EventAnswer {
		t.Errorf("event after reconnect = %v, want Answer", ev.Type)
	}
}

func TestConnReconnectGivesUp(t *testing.T) {
	tests := []struct {
		name   string
		status int
		want   error
	}{
		{"throttled", http.StatusBadRequest, ErrThrottled},
		{"server error", http.StatusServiceUnavailable, ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeKVS(t)
			cfg := testConfig(f)
			_, cn, s := dialFake(t, f, cfg)
			f.set(func(f *fakeKVS) { f.refuseWSS, f.refuseWith = 100, tt.status })
			_ = s.ws.CloseNow()
			ev := nextEvent(t, cn)
			if ev.Type != EventClosed || !errors.Is(ev.Err, ErrUnavailable) || !errors.Is(ev.Err, tt.want) {
				t.Errorf("event = %v (%v), want Closed wrapping ErrUnavailable and %v", ev.Type, ev.Err, tt.want)
			}
			if _, ok := <-cn.Events(); ok {
				t.Error("Events still open after EventClosed")
			}
			if got, want := f.count("ConnectAsViewer"), 1+cfg.Backoff.Attempts; got != want {
				t.Errorf("connects = %d, want %d (1 + Backoff.Attempts)", got, want)
			}
			if _, err := cn.SendOffer(t.Context(), "v=0"); !errors.Is(err, ErrClosed) {
				t.Errorf("SendOffer after the end = %v, want ErrClosed", err)
			}
		})
	}
}

func TestConnReconnectICEServer(t *testing.T) {
	f := newFakeKVS(t)
	c, cn, s := dialFake(t, f, testConfig(f))
	first, err := c.IceServers(t.Context(), f.channel(), "viewer-1")
	if err != nil {
		t.Fatal(err)
	}
	s.send(t, `{"messageType":"RECONNECT_ICE_SERVER"}`)
	ev := nextEvent(t, cn)
	if ev.Type != EventIceServersRefreshed || ev.Err != nil || ev.IceServers == nil {
		t.Fatalf("event = %v (%v), want IceServersRefreshed with servers", ev.Type, ev.Err)
	}
	if got, old := ev.IceServers.Servers[0].Credential, first.Servers[0].Credential; got == old {
		t.Errorf("refreshed credential = %q, want a fresh one (old %q)", got, old)
	}
	if n := f.count("GetIceServerConfig"); n != 2 {
		t.Errorf("GetIceServerConfig calls = %d, want 2", n)
	}
	cached, err := c.IceServers(t.Context(), f.channel(), "viewer-1")
	if err != nil {
		t.Fatal(err)
	}
	if cached.Servers[0].Credential != ev.IceServers.Servers[0].Credential {
		t.Errorf("cache after refresh = %v, want the refreshed set", cached.Servers[0])
	}
	if n := f.count("ConnectAsViewer"); n != 1 {
		t.Errorf("connects = %d, want 1 (RECONNECT_ICE_SERVER keeps the socket)", n)
	}
}

func TestConnKeepalive(t *testing.T) {
	f := newFakeKVS(t)
	cfg := testConfig(f)
	cfg.PingInterval = 50 * time.Millisecond
	f.set(func(f *fakeKVS) { f.mute = true })
	_, cn, _ := dialFake(t, f, cfg)
	f.set(func(f *fakeKVS) { f.mute = false })
	// The mute socket never answers a ping: the client must drop it and
	// come back on a socket that does.
	s2 := f.next(t)
	if ev := nextEvent(t, cn); ev.Type != EventReconnected {
		t.Fatalf("event = %v (%v), want Reconnected after unanswered pings", ev.Type, ev.Err)
	}
	// The answering socket stays up across several ping periods.
	s2.send(t, `{"messageType":"SDP_ANSWER","messagePayload":"`+b64(`{"type":"answer","sdp":"a"}`)+`"}`)
	if ev := nextEvent(t, cn); ev.Type != EventAnswer {
		t.Errorf("event = %v, want Answer", ev.Type)
	}
	timer := time.NewTimer(5 * cfg.PingInterval)
	defer timer.Stop()
	select {
	case ev := <-cn.Events():
		t.Errorf("unexpected event %v (%v) on an answering socket", ev.Type, ev.Err)
	case <-timer.C:
	}
}

func TestConnContextCancelClosesCleanly(t *testing.T) {
	f := newFakeKVS(t)
	c := newTestClient(t, testConfig(f))
	ctx, cancel := context.WithCancel(t.Context())
	cn, err := c.Dial(ctx, f.channel(), "viewer-1")
	if err != nil {
		t.Fatal(err)
	}
	s := f.next(t)
	cancel()
	ev := nextEvent(t, cn)
	if ev.Type != EventClosed || !errors.Is(ev.Err, ErrClosed) || !errors.Is(ev.Err, context.Canceled) {
		t.Errorf("event = %v (%v), want Closed wrapping ErrClosed and context.Canceled", ev.Type, ev.Err)
	}
	if got := websocket.CloseStatus(s.waitClosed(t)); got != websocket.StatusNormalClosure {
		t.Errorf("close status = %v, want normal closure", got)
	}
	if err := cn.Close(); err != nil {
		t.Errorf("Close after cancel = %v", err)
	}
}

func TestConnCloseIdempotent(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	for i := range 3 {
		if err := cn.Close(); err != nil {
			t.Errorf("Close #%d = %v", i+1, err)
		}
	}
	var last Event
	for ev := range cn.Events() {
		last = ev
	}
	if last.Type != EventClosed || !errors.Is(last.Err, ErrClosed) {
		t.Errorf("last event = %v (%v), want Closed with ErrClosed", last.Type, last.Err)
	}
	if got := websocket.CloseStatus(s.waitClosed(t)); got != websocket.StatusNormalClosure {
		t.Errorf("close status = %v, want normal closure", got)
	}
	if _, err := cn.SendCandidate(t.Context(), Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 1 typ host", SDPMid: "0"}); !errors.Is(err, ErrClosed) {
		t.Errorf("SendCandidate after Close = %v, want ErrClosed", err)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct {
		name     string
		refuse   int
		status   int
		clientID string
		want     error
		connects int
	}{
		{name: "throttled then ok", refuse: 2, status: http.StatusBadRequest, clientID: "v", want: nil, connects: 3},
		{name: "throttled throughout", refuse: 100, status: http.StatusBadRequest, clientID: "v", want: ErrThrottled, connects: 4},
		{name: "not found", refuse: 1, status: http.StatusNotFound, clientID: "v", want: ErrNotFound, connects: 1},
		{name: "server error", refuse: 1, status: http.StatusBadGateway, clientID: "v", want: ErrUnavailable, connects: 1},
		{name: "bad client id", clientID: "AWS_x", want: ErrInvalidArgument, connects: 0},
		{name: "empty client id", clientID: "", want: ErrInvalidArgument, connects: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeKVS(t)
			f.set(func(f *fakeKVS) { f.refuseWSS, f.refuseWith = tt.refuse, tt.status })
			c := newTestClient(t, testConfig(f))
			cn, err := c.Dial(t.Context(), f.channel(), tt.clientID)
			if cn != nil {
				defer cn.Close()
			}
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("Dial error = %v, want %v", err, tt.want)
			}
			if got := f.count("ConnectAsViewer"); got != tt.connects {
				t.Errorf("connects = %d, want %d", got, tt.connects)
			}
			var ae *APIError
			if tt.status == http.StatusBadRequest && tt.want != nil && (!errors.As(err, &ae) || ae.Code != "ClientLimitExceededException" || ae.Op != "ConnectAsViewer") {
				t.Errorf("Dial error = %#v, want an APIError ConnectAsViewer ClientLimitExceededException", err)
			}
		})
	}
}

// TestConnConcurrentSends checks that sends from many goroutines each make
// one whole frame.
func TestConnConcurrentSends(t *testing.T) {
	f := newFakeKVS(t)
	_, cn, s := dialFake(t, f, testConfig(f))
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := cn.SendCandidate(t.Context(), Candidate{Candidate: fmt.Sprintf("candidate:%d 1 udp 1 127.0.0.1 %d typ host", i, 1000+i), SDPMid: "0"})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("SendCandidate: %v", err)
		}
	}
	seen := map[string]bool{}
	for range n {
		var fr outbound
		if err := json.Unmarshal([]byte(s.frame(t)), &fr); err != nil {
			t.Fatalf("frame is not JSON: %v", err)
		}
		if seen[fr.CorrelationID] {
			t.Errorf("correlationId %q used twice", fr.CorrelationID)
		}
		seen[fr.CorrelationID] = true
	}
}

// TestDialAsTranslates checks DialAs: the reader delivers each event as
// conv made it, in order, drops the ones conv refuses, and closes the
// channel after the last (EventClosed's) once the connection is closed.
func TestDialAsTranslates(t *testing.T) {
	f := newFakeKVS(t)
	c := newTestClient(t, testConfig(f))
	conv := func(ev Event) (string, bool) {
		switch ev.Type {
		case EventCandidate:
			return "", false
		case EventAnswer:
			return "answer " + ev.SDP, true
		}
		return ev.Type.String(), true
	}
	cn, events, err := DialAs(t.Context(), c, f.channel(), "viewer-1", conv)
	if err != nil {
		t.Fatalf("DialAs: %v", err)
	}
	t.Cleanup(func() { _ = cn.Close() })
	if cn.Events() != nil {
		t.Error("Events() of a DialAs connection is not nil")
	}
	s := f.next(t)
	answer := func(sdp string) string {
		return `{"messageType":"SDP_ANSWER","messagePayload":"` + b64(`{"type":"answer","sdp":"`+sdp+`"}`) + `"}`
	}
	s.send(t, answer("a1"))
	s.send(t, `{"messageType":"ICE_CANDIDATE","messagePayload":"`+b64(`{"candidate":"candidate:2 1 udp 1 127.0.0.1 6000 typ host","sdpMid":"0"}`)+`"}`)
	s.send(t, answer("a2"))
	next := func() string {
		t.Helper()
		select {
		case v, ok := <-events:
			if !ok {
				t.Fatal("events closed early")
			}
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("no event within 10s")
			return ""
		}
	}
	for _, want := range []string{"answer a1", "answer a2"} {
		if got := next(); got != want {
			t.Errorf("event = %q, want %q", got, want)
		}
	}
	if err := cn.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var got []string
	for v := range events {
		got = append(got, v)
	}
	if len(got) != 1 || got[0] != "Closed" {
		t.Errorf("events after Close = %q, want [Closed] and the channel closed", got)
	}
}
