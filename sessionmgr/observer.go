package sessionmgr

import "time"

// Observer receives what a Manager does, for metrics. Implementations must
// be safe for concurrent use and must not block (they run on session
// actors). A nil Observer (the default) observes nothing.
type Observer interface {
	// SessionState: a session moved from one state to another (from is
	// StateUnknown for a new session).
	SessionState(from, to State)
	// Attempt: a signaling attempt started (a clientId was leased for it).
	Attempt()
	// Answer: the camera answered, d after the offer went out.
	Answer(d time.Duration)
	// AnswerTimeout: an attempt got no answer in time; retry tells whether
	// another attempt follows.
	AnswerTimeout(retry bool)
	// RecoveryStep: a recovery step ended with outcome.
	RecoveryStep(step RecoveryStep, outcome StepOutcome)
	// Outage: video flows again after an outage of d (its first sign to
	// video flowing); step brought it back.
	Outage(step RecoveryStep, d time.Duration)
	// MediaStall: video stood still on a connected peer connection.
	MediaStall()
	// FirstVideo: a session's first video flowed, d after its app joined.
	FirstVideo(d time.Duration)
	// ClientID: a clientId lease was requested; d is how long it took,
	// collided whether the preferred id was taken.
	ClientID(d time.Duration, collided bool, err error)
	// Failure: a session FAILED with reason.
	Failure(reason FailureReason)
}

// EventObserver is an Observer that also receives every timeline event as
// its actor records it (for tracing: spans per session step). Same rules:
// safe for concurrent use, never blocks; the Event is the callee's to keep
// but shares its payload pointers with the session, so it must not change
// them.
type EventObserver interface {
	Observer
	SessionEvent(id SessionID, channelARN string, e Event)
}

// SessionObserver is an Observer that also receives every timeline event
// with who the session is for (for webhooks), once it is stored: an event
// of an owner fenced by a takeover, which never reaches the timeline, is
// not delivered. Same rules: safe for concurrent use, never blocks; the Event
// shares its payload pointers with the session, so the callee must not
// change them.
type SessionObserver interface {
	Observer
	SessionEventOf(s SessionRef, e Event)
}

// SessionRef names a session and whom it serves.
type SessionRef struct {
	ID          SessionID
	ChannelARN  string
	ChannelName string
	ViewerID    string
}

// WithObserver sets the Manager's Observer.
func WithObserver(o Observer) Option { return func(m *Manager) { m.obs = o } }

type nopObserver struct{}

func (nopObserver) SessionState(State, State)              {}
func (nopObserver) Attempt()                               {}
func (nopObserver) Answer(time.Duration)                   {}
func (nopObserver) AnswerTimeout(bool)                     {}
func (nopObserver) RecoveryStep(RecoveryStep, StepOutcome) {}
func (nopObserver) Outage(RecoveryStep, time.Duration)     {}
func (nopObserver) MediaStall()                            {}
func (nopObserver) FirstVideo(time.Duration)               {}
func (nopObserver) ClientID(time.Duration, bool, error)    {}
func (nopObserver) Failure(FailureReason)                  {}
