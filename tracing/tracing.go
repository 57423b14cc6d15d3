// Package tracing turns sessions' timelines into OpenTelemetry spans: one
// span per session (CREATED to its end) with a child per step: each
// signaling attempt, the wait for the camera's answer, the connection
// (answer to CONNECTED), the first video, and each recovery step. RPC spans
// come from otelgrpc in cmd/server; both carry the session id
// (`vss.session.id`), so a trace backend joins them.
//
// Spans are built from the events sessionmgr records (its EventObserver
// port), after the fact and without blocking the session: a Tracer never
// calls back into the session manager. Spans carry the event times, so
// they show what the session did, not when the tracer heard of it.
package tracing

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/viewersession/sessionmgr"
)

// Attribute keys on every span of a session.
const (
	KeySessionID = attribute.Key("vss.session.id")
	KeyChannel   = attribute.Key("vss.channel.arn")
	KeyClientID  = attribute.Key("vss.client_id")
	KeyAttempt   = attribute.Key("vss.attempt")
	KeyStep      = attribute.Key("vss.recovery.step")
	KeyOutcome   = attribute.Key("vss.outcome")
)

// maxSessions bounds the sessions a Tracer follows at once: a session that
// moves to another replica ends nowhere here, so the oldest is let go (its
// spans end with outcome "untracked") when the bound is reached.
const maxSessions = 100_000

// Tracer follows sessions' timelines and records their spans. Create it
// with New; it is safe for concurrent use.
type Tracer struct {
	tracer trace.Tracer

	// mu guards sessions and order.
	mu       sync.Mutex
	sessions map[sessionmgr.SessionID]*session
	order    []sessionmgr.SessionID // oldest first; may hold ended ids
}

// session is one session's open spans.
type session struct {
	ctx      context.Context // carries the root span
	root     trace.Span
	attempt  trace.Span
	answer   trace.Span
	connect  trace.Span
	video    trace.Span
	recovery trace.Span
	// videoStarted: the first-video span was opened (once per session:
	// later attaches are resumes).
	videoStarted bool
}

// New returns a Tracer recording spans with tp's tracer.
func New(tp trace.TracerProvider) *Tracer {
	return &Tracer{
		tracer:   tp.Tracer("github.com/acme/viewersession/tracing"),
		sessions: make(map[sessionmgr.SessionID]*session),
	}
}

// SessionEvent implements the span side of sessionmgr.EventObserver.
func (t *Tracer) SessionEvent(id sessionmgr.SessionID, channelARN string, e sessionmgr.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[id]
	if s == nil {
		if e.Terminal() {
			return
		}
		s = t.startLocked(id, channelARN, e)
	}
	at := trace.WithTimestamp(e.Time)
	child := func(name string, attrs ...attribute.KeyValue) trace.Span {
		_, sp := t.tracer.Start(s.ctx, name, at, trace.WithAttributes(append(attrs, KeySessionID.String(string(id)))...))
		return sp
	}
	end := func(sp *trace.Span, outcome string, failed bool) {
		if *sp == nil {
			return
		}
		(*sp).SetAttributes(KeyOutcome.String(outcome))
		if failed {
			(*sp).SetStatus(codes.Error, outcome)
		}
		(*sp).End(trace.WithTimestamp(e.Time))
		*sp = nil
	}

	switch e.Type {
	case sessionmgr.EventClientIDAllocated:
		end(&s.attempt, "superseded", false)
		s.attempt = child("session.attempt", KeyAttempt.Int(e.Attempt), KeyClientID.String(e.ClientID))
	case sessionmgr.EventOfferSent:
		end(&s.answer, "superseded", false)
		s.answer = child("session.answer", KeyAttempt.Int(e.Attempt), KeyClientID.String(e.ClientID))
		if s.connect == nil {
			s.connect = child("session.connect")
		}
	case sessionmgr.EventAnswer:
		end(&s.answer, "answered", false)
		end(&s.attempt, "answered", false)
	case sessionmgr.EventAnswerTimeout:
		end(&s.answer, "timeout", true)
		end(&s.attempt, "answer_timeout", true)
	case sessionmgr.EventStateChanged:
		if e.State == sessionmgr.StateConnected {
			end(&s.connect, "connected", false)
		}
	case sessionmgr.EventAppAttached:
		if !s.videoStarted {
			s.videoStarted = true
			s.video = child("session.first_video")
		}
	case sessionmgr.EventMediaFlowing:
		end(&s.connect, "connected", false)
		end(&s.video, "video", false)
	case sessionmgr.EventRecoveryStarted:
		step := sessionmgr.StepUnknown
		if e.Recovery != nil {
			step = e.Recovery.Step
		}
		end(&s.recovery, "next_step", true)
		s.recovery = child("session.recovery_step", KeyStep.String(step.String()))
	case sessionmgr.EventRecovered:
		end(&s.recovery, "recovered", false)
	}
	if e.Terminal() {
		failed := e.Type == sessionmgr.EventFailed
		outcome := "closed"
		if failed && e.Failure != nil {
			outcome = e.Failure.Reason.String()
		} else if e.Close != sessionmgr.CloseUnknown {
			outcome = e.Close.String()
		}
		for _, sp := range []*trace.Span{&s.recovery, &s.video, &s.connect, &s.answer, &s.attempt} {
			end(sp, "session_ended", false)
		}
		end(&s.root, outcome, failed)
		delete(t.sessions, id)
	}
}

// startLocked opens a session's root span at its first event.
func (t *Tracer) startLocked(id sessionmgr.SessionID, channelARN string, e sessionmgr.Event) *session {
	if len(t.sessions) >= maxSessions {
		t.evictOldestLocked(e)
	}
	ctx, root := t.tracer.Start(context.Background(), "session", trace.WithTimestamp(e.Time),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(KeySessionID.String(string(id)), KeyChannel.String(channelARN)))
	s := &session{ctx: ctx, root: root}
	t.sessions[id] = s
	if len(t.order) > 2*len(t.sessions)+1024 {
		// Drop the ids of ended sessions, keeping the order.
		live := t.order[:0]
		for _, o := range t.order {
			if _, ok := t.sessions[o]; ok {
				live = append(live, o)
			}
		}
		t.order = live
	}
	t.order = append(t.order, id)
	return s
}

// evictOldestLocked lets the oldest followed session go.
func (t *Tracer) evictOldestLocked(e sessionmgr.Event) {
	for len(t.order) > 0 {
		id := t.order[0]
		t.order = t.order[1:]
		s, ok := t.sessions[id]
		if !ok {
			continue // ended already
		}
		for _, sp := range []trace.Span{s.recovery, s.video, s.connect, s.answer, s.attempt, s.root} {
			if sp != nil {
				sp.SetAttributes(KeyOutcome.String("untracked"))
				sp.End(trace.WithTimestamp(e.Time))
			}
		}
		delete(t.sessions, id)
		return
	}
}

// Len is how many sessions the Tracer follows (for tests).
func (t *Tracer) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.sessions)
}

// String describes the Tracer.
func (t *Tracer) String() string { return fmt.Sprintf("tracing.Tracer(%d sessions)", t.Len()) }
