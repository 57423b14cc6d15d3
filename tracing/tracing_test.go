package tracing

import (
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/acme/viewersession/sessionmgr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func attr(s sdktrace.ReadOnlySpan, k attribute.Key) string {
	for _, a := range s.Attributes() {
		if a.Key == k {
			return a.Value.String()
		}
	}
	return ""
}

// TestSessionSpans feeds a session's timeline (connect, a two-step
// recovery, close) and checks the spans: names, parentage, times, steps.
func TestSessionSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	tr := New(tp)

	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	const id = sessionmgr.SessionID("s1")
	for _, e := range []sessionmgr.Event{
		{Type: sessionmgr.EventCreated, Time: at(0)},
		{Type: sessionmgr.EventAppAttached, Time: at(10)},
		{Type: sessionmgr.EventClientIDAllocated, Time: at(20), Attempt: 1, ClientID: "alice"},
		{Type: sessionmgr.EventOfferSent, Time: at(100), Attempt: 1, ClientID: "alice"},
		{Type: sessionmgr.EventAnswer, Time: at(150), Attempt: 1},
		{Type: sessionmgr.EventStateChanged, Time: at(400), State: sessionmgr.StateConnected},
		{Type: sessionmgr.EventMediaFlowing, Time: at(500)},
		{Type: sessionmgr.EventAppDetached, Time: at(900)},
		{Type: sessionmgr.EventAppAttached, Time: at(950)},
		{Type: sessionmgr.EventRecoveryStarted, Time: at(1000), Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepICERestart}},
		{Type: sessionmgr.EventRecoveryStarted, Time: at(1100), Recovery: &sessionmgr.Recovery{Step: sessionmgr.StepNewPeerConnection}},
		{Type: sessionmgr.EventRecovered, Time: at(1700)},
		{Type: sessionmgr.EventClosed, Time: at(5000), Close: sessionmgr.CloseClientLeft},
	} {
		tr.SessionEvent(id, "arn:aws:kinesisvideo:us-west-2:1:channel/c/1", e)
	}
	if tr.Len() != 0 {
		t.Errorf("the tracer still follows %d sessions after CLOSED", tr.Len())
	}
	spans := rec.Ended()
	byName := map[string][]sdktrace.ReadOnlySpan{}
	var root sdktrace.ReadOnlySpan
	for _, s := range spans {
		byName[s.Name()] = append(byName[s.Name()], s)
		if s.Name() == "session" {
			root = s
		}
	}
	if root == nil {
		t.Fatalf("no root span among %d", len(spans))
	}
	if got := root.EndTime().Sub(root.StartTime()); got != 5*time.Second {
		t.Errorf("session span lasts %v, want 5s (CREATED to CLOSED)", got)
	}
	want := map[string]int{"session.attempt": 1, "session.answer": 1, "session.connect": 1, "session.first_video": 1, "session.recovery_step": 2}
	for name, n := range want {
		if len(byName[name]) != n {
			t.Errorf("%d %q spans, want %d", len(byName[name]), name, n)
		}
		for _, s := range byName[name] {
			if s.Parent().SpanID() != root.SpanContext().SpanID() {
				t.Errorf("%q is not a child of the session span", name)
			}
			if attr(s, KeySessionID) != "s1" {
				t.Errorf("%q has session id %q", name, attr(s, KeySessionID))
			}
		}
	}
	if d := byName["session.answer"][0]; d.EndTime().Sub(d.StartTime()) != 50*time.Millisecond {
		t.Errorf("answer span lasts %v, want 50ms", d.EndTime().Sub(d.StartTime()))
	}
	if v := byName["session.first_video"][0]; v.EndTime().Sub(v.StartTime()) != 490*time.Millisecond {
		t.Errorf("first-video span lasts %v, want 490ms (join to MEDIA_FLOWING)", v.EndTime().Sub(v.StartTime()))
	}
	steps := byName["session.recovery_step"]
	slices.SortFunc(steps, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	if attr(steps[0], KeyStep) != "ICE_RESTART" || attr(steps[0], KeyOutcome) != "next_step" ||
		attr(steps[1], KeyStep) != "NEW_PEER_CONNECTION" || attr(steps[1], KeyOutcome) != "recovered" {
		t.Errorf("recovery steps = %s/%s, %s/%s; want ICE_RESTART/next_step, NEW_PEER_CONNECTION/recovered",
			attr(steps[0], KeyStep), attr(steps[0], KeyOutcome), attr(steps[1], KeyStep), attr(steps[1], KeyOutcome))
	}
}

// TestUntrackedSessionsBounded: sessions that end elsewhere are let go.
func TestUntrackedSessionsBounded(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(t.Context())
	tr := New(tp)
	for i := range maxSessions + 10 {
		tr.SessionEvent(sessionmgr.SessionID(string(rune('a'+i%26))+time.Duration(i).String()), "arn", sessionmgr.Event{Type: sessionmgr.EventCreated, Time: time.Now()})
	}
	if n := tr.Len(); n > maxSessions {
		t.Errorf("the tracer follows %d sessions, want at most %d", n, maxSessions)
	}
}
