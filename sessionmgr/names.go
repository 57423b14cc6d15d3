package sessionmgr

import "strconv"

// The names of the enums that had none, as in the proto without its
// prefix. Stored records and forwarded messages carry enums by these names
// (see sessionmgr/internal/wire), so a name, once used, never changes.
var (
	recoveryPolicyNames    = [...]string{"DEFAULT", "AUTO", "ICE_RESTART_ONLY", "FULL_RECONNECT"}
	renegotiateActionNames = [...]string{"UNKNOWN", "ICE_RESTART", "NEW_PEER_CONNECTION"}
	iceStateNames          = [...]string{"UNKNOWN", "NEW", "CHECKING", "CONNECTED", "COMPLETED", "DISCONNECTED", "FAILED", "CLOSED"}
	peerStateNames         = [...]string{"UNKNOWN", "NEW", "CONNECTING", "CONNECTED", "DISCONNECTED", "FAILED", "CLOSED"}
)

func (p RecoveryPolicy) String() string {
	return enumName(recoveryPolicyNames[:], int(p), "RecoveryPolicy")
}

func (a RenegotiateAction) String() string {
	return enumName(renegotiateActionNames[:], int(a), "RenegotiateAction")
}

func (s ICEState) String() string { return enumName(iceStateNames[:], int(s), "ICEState") }

func (s PeerState) String() string { return enumName(peerStateNames[:], int(s), "PeerState") }

// ParseState is State.String's inverse; StateUnknown for any other name.
func ParseState(name string) State { return parseEnum[State](stateNames[:], name) }

// ParseCloseReason is CloseReason.String's inverse; CloseUnknown for any
// other name.
func ParseCloseReason(name string) CloseReason { return parseEnum[CloseReason](closeNames[:], name) }

// ParseFailureReason is FailureReason.String's inverse; FailureUnknown for
// any other name.
func ParseFailureReason(name string) FailureReason {
	return parseEnum[FailureReason](failureNames[:], name)
}

// ParseEventType is EventType.String's inverse; EventUnknown for any other
// name.
func ParseEventType(name string) EventType { return parseEnum[EventType](eventTypeNames[:], name) }

// ParseRecoveryPolicy is RecoveryPolicy.String's inverse; RecoveryDefault
// for any other name.
func ParseRecoveryPolicy(name string) RecoveryPolicy {
	return parseEnum[RecoveryPolicy](recoveryPolicyNames[:], name)
}

// ParseRenegotiateAction is RenegotiateAction.String's inverse;
// RenegotiateUnknown for any other name.
func ParseRenegotiateAction(name string) RenegotiateAction {
	return parseEnum[RenegotiateAction](renegotiateActionNames[:], name)
}

// ParseICEState is ICEState.String's inverse; ICEUnknown for any other
// name.
func ParseICEState(name string) ICEState { return parseEnum[ICEState](iceStateNames[:], name) }

// ParsePeerState is PeerState.String's inverse; PeerUnknown for any other
// name.
func ParsePeerState(name string) PeerState { return parseEnum[PeerState](peerStateNames[:], name) }

// enumName is names[i], or "<typ>(i)" for a value without a name.
func enumName(names []string, i int, typ string) string {
	if i < 0 || i >= len(names) {
		return typ + "(" + strconv.Itoa(i) + ")"
	}
	return names[i]
}

// parseEnum is the value whose name is name, or the zero value.
func parseEnum[E ~int](names []string, name string) E {
	for i, n := range names {
		if n == name {
			return E(i)
		}
	}
	return 0
}
