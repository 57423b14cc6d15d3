package camera

import "strconv"

// outcome is what the camera did with one SDP offer.
type outcome int

const (
	outcomeUnknown outcome = iota
	// outcomeAnswered: a new session answered the offer.
	outcomeAnswered
	// outcomeReplaced: js-sample (or restart-capable, for an offer that is
	// not an ICE restart) closed the client's session and a new peer
	// connection answered.
	outcomeReplaced
	// outcomeRestarted: restart-capable applied an ICE-restart offer to the
	// session's peer connection and answered from it.
	outcomeRestarted
	// outcomeLiveSession: c-sample ignored the offer because the client id
	// still has a session.
	outcomeLiveSession
	// outcomeTooManySessions: the session cap was reached.
	outcomeTooManySessions
	// outcomeFaultNoAnswer: ignored under Fault.NoAnswer.
	outcomeFaultNoAnswer
	// outcomeFaultEarlyOffer: ignored under Fault.AnswerFromOffer.
	outcomeFaultEarlyOffer
	// outcomeFailed: pion rejected the offer or could not answer it.
	outcomeFailed
)

// String returns a stable snake_case name for logs.
func (o outcome) String() string {
	switch o {
	case outcomeAnswered:
		return "answered"
	case outcomeReplaced:
		return "replaced"
	case outcomeRestarted:
		return "ice_restarted"
	case outcomeLiveSession:
		return "ignored_live_session"
	case outcomeTooManySessions:
		return "ignored_too_many_sessions"
	case outcomeFaultNoAnswer:
		return "ignored_fault_no_answer"
	case outcomeFaultEarlyOffer:
		return "ignored_fault_answer_from_offer"
	case outcomeFailed:
		return "failed"
	case outcomeUnknown:
		return "unknown"
	default:
		return "outcome(" + strconv.Itoa(int(o)) + ")"
	}
}

// answered reports whether the outcome sent an SDP answer.
func (o outcome) answered() bool {
	return o == outcomeAnswered || o == outcomeReplaced || o == outcomeRestarted
}
