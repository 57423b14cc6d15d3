package sessionmgr

import "strconv"

// State is a session's state. The zero value is StateUnknown; the order is
// the proto's.
type State int

// The session states.
const (
	StateUnknown State = iota
	StatePending
	StateSignaling
	StateAwaitingOffer
	StateAwaitingAnswer
	StateConnecting
	StateConnected
	StateRetrying
	StateRecovering
	StateFailed
	StateClosed
)

var stateNames = [...]string{
	"UNKNOWN", "PENDING", "SIGNALING", "AWAITING_OFFER", "AWAITING_ANSWER", "CONNECTING",
	"CONNECTED", "RETRYING", "RECOVERING", "FAILED", "CLOSED",
}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return "State(" + strconv.Itoa(int(s)) + ")"
	}
	return stateNames[s]
}

// Terminal reports whether s is FAILED or CLOSED.
func (s State) Terminal() bool { return s == StateFailed || s == StateClosed }

// Live reports whether the session counts against its channel's limit.
func (s State) Live() bool { return s != StateUnknown && !s.Terminal() }

// CloseReason says why a session ended; the order is the proto's.
type CloseReason int

// The close reasons.
const (
	CloseUnknown CloseReason = iota
	CloseClientLeft
	CloseClientGone
	CloseByBackend
	CloseMaxLifetime
	CloseFailed
	CloseServerShutdown
)

var closeNames = [...]string{"UNKNOWN", "CLIENT_LEFT", "CLIENT_GONE", "CLOSED_BY_BACKEND", "MAX_LIFETIME", "FAILED", "SERVER_SHUTDOWN"}

func (c CloseReason) String() string {
	if c < 0 || int(c) >= len(closeNames) {
		return "CloseReason(" + strconv.Itoa(int(c)) + ")"
	}
	return closeNames[c]
}

// FailureReason is the code of a Failure; the order is the proto's, and the
// names are the google.rpc.ErrorInfo reasons.
type FailureReason int

// The failure reasons.
const (
	FailureUnknown FailureReason = iota
	FailureAnswerTimeout
	FailureRecoveryFailed
	FailureChannelNotFound
	FailureAccessDenied
	FailureKVSThrottled
	FailureKVSUnavailable
	FailureClientIDExhausted
	FailureSignalingRejected
	FailureInternal
)

var failureNames = [...]string{
	"UNKNOWN", "ANSWER_TIMEOUT", "RECOVERY_FAILED", "CHANNEL_NOT_FOUND", "ACCESS_DENIED",
	"KVS_THROTTLED", "KVS_UNAVAILABLE", "CLIENT_ID_EXHAUSTED", "SIGNALING_REJECTED", "INTERNAL",
}

func (f FailureReason) String() string {
	if f < 0 || int(f) >= len(failureNames) {
		return "FailureReason(" + strconv.Itoa(int(f)) + ")"
	}
	return failureNames[f]
}

// inputKind is what happened to a session, as the transition function sees it.
type inputKind int

const (
	inJoin          inputKind = iota + 1 // the app attached (first join or resume)
	inSignalingUp                        // the KVS WebSocket of the current attempt is open
	inOffer                              // the app sent an SDP offer
	inAnswer                             // the camera's answer arrived on the current attempt
	inAnswerTimeout                      // the answer timer of the current attempt fired
	inRetryDue                           // the retry delay is over
	inConnected                          // the app reported its peer connection connected
	inMediaFlowing                       // the app's video counters grew on its answered peer connection
	inRecover                            // network changed, ICE failed, disconnected past the grace, media stalled
	inStepTimeout                        // a recovery step did not bring video back in time
	inClose                              // leave, CloseSession, max lifetime, client gone, shutdown
	inFail                               // an unrecoverable error
	inTakeover                           // this replica took the session over from another
)

var inputNames = map[inputKind]string{
	inJoin: "join", inSignalingUp: "signaling-up", inOffer: "offer", inAnswer: "answer",
	inAnswerTimeout: "answer-timeout", inRetryDue: "retry-due", inConnected: "connected",
	inMediaFlowing: "media-flowing", inRecover: "recover", inStepTimeout: "step-timeout", inClose: "close", inFail: "fail",
	inTakeover: "takeover",
}

func (k inputKind) String() string {
	if n, ok := inputNames[k]; ok {
		return n
	}
	return "input(" + strconv.Itoa(int(k)) + ")"
}

// input is one input of the transition function, with the facts it
// depends on.
type input struct {
	kind inputKind
	// attemptsLeft (inAnswerTimeout): another attempt is allowed.
	attemptsLeft bool
	// ready (inOffer): the signaling connection is open, so the offer goes
	// out now; otherwise it is buffered until it is.
	ready bool
	// requested (inOffer): a renegotiate asked for this offer.
	requested bool
	// recovering (inRetryDue): the retry belongs to a recovery, which it
	// continues.
	recovering bool
	// last (inStepTimeout): no recovery step is left to try.
	last bool
}

// next is the session state machine: the state after in, or an error that
// says why in is refused (state unchanged) or is stale (to be dropped).
// It is pure: every side effect is the actor's, keyed on (from, to, in).
//
// A recovery holds the session in RECOVERING from its start until video
// flows again (inMediaFlowing): its offers, answers and the app's
// "connected" report keep it there, because a connected peer connection is
// not yet video (a master that replaced its connection leaves the app
// ICE-connected over a dead DTLS path). Only a retry after an answer
// timeout passes through RETRYING.
func next(cur State, in input) (State, error) {
	if cur.Terminal() {
		return cur, ErrSessionClosed
	}
	if cur == StateUnknown {
		return cur, errUnknownState
	}
	switch in.kind {
	case inClose:
		return StateClosed, nil
	case inFail:
		return StateFailed, nil
	case inJoin:
		if cur == StatePending {
			return StateSignaling, nil
		}
		return cur, nil
	case inTakeover:
		// The old owner's signaling and offer are gone: a session that had
		// started signaling recovers with a full reconnect.
		if cur == StatePending {
			return cur, nil
		}
		return StateRecovering, nil
	case inSignalingUp:
		switch cur {
		case StateSignaling:
			return StateAwaitingOffer, nil
		case StateRecovering:
			return StateRecovering, nil
		}
		return cur, errStale
	case inOffer:
		switch cur {
		case StatePending:
			return cur, ErrNotJoined
		case StateSignaling:
			return cur, nil // buffered until signaling is up
		case StateAwaitingOffer:
			return StateAwaitingAnswer, nil
		case StateRecovering:
			if !in.requested {
				return cur, ErrOfferInFlight
			}
			return cur, nil // sent now, or buffered until the new signaling is up
		case StateAwaitingAnswer, StateRetrying:
			return cur, ErrOfferInFlight
		}
		// CONNECTING, CONNECTED: only the offer a renegotiate asked for
		// (ICE may have healed by itself before the app sent it).
		if in.requested && in.ready {
			return StateAwaitingAnswer, nil
		}
		return cur, ErrOfferNotExpected
	case inAnswer:
		switch cur {
		case StateAwaitingAnswer:
			return StateConnecting, nil
		case StateRecovering:
			return cur, nil
		}
		return cur, errStale
	case inAnswerTimeout:
		if cur != StateAwaitingAnswer && cur != StateRecovering {
			return cur, errStale
		}
		if in.attemptsLeft {
			return StateRetrying, nil
		}
		return StateFailed, nil
	case inRetryDue:
		switch {
		case cur != StateRetrying:
			return cur, errStale
		case in.recovering:
			return StateRecovering, nil
		}
		return StateSignaling, nil
	case inConnected:
		switch cur {
		case StateConnecting, StateConnected:
			return StateConnected, nil
		case StateRecovering:
			return cur, nil // video decides
		}
		return cur, errStale
	case inMediaFlowing:
		switch cur {
		case StateConnecting, StateConnected, StateRecovering:
			// Video flows: the peer connection is connected, whether or
			// not its report came first.
			return StateConnected, nil
		}
		return cur, errStale
	case inRecover:
		switch cur {
		case StateConnecting, StateConnected:
			return StateRecovering, nil
		case StateRecovering:
			return cur, nil
		}
		return cur, errStale
	case inStepTimeout:
		if cur != StateRecovering {
			return cur, errStale
		}
		if in.last {
			return StateFailed, nil
		}
		return StateRecovering, nil
	}
	return cur, errStale
}
