package service

import (
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// The enums of the API and of the session manager, paired by name, never
// by number: each map below is written out, and TestEnumMapsMatchTheProto
// checks every pair's names against the proto's and that every proto value
// has its pair. A value missing here converts to the zero value
// (UNSPECIFIED, Unknown) rather than to whatever shares its number.

var stateToProto = map[sessionmgr.State]vspb.SessionState{
	sessionmgr.StateUnknown:        vspb.SessionState_SESSION_STATE_UNSPECIFIED,
	sessionmgr.StatePending:        vspb.SessionState_SESSION_STATE_PENDING,
	sessionmgr.StateSignaling:      vspb.SessionState_SESSION_STATE_SIGNALING,
	sessionmgr.StateAwaitingOffer:  vspb.SessionState_SESSION_STATE_AWAITING_OFFER,
	sessionmgr.StateAwaitingAnswer: vspb.SessionState_SESSION_STATE_AWAITING_ANSWER,
	sessionmgr.StateConnecting:     vspb.SessionState_SESSION_STATE_CONNECTING,
	sessionmgr.StateConnected:      vspb.SessionState_SESSION_STATE_CONNECTED,
	sessionmgr.StateRetrying:       vspb.SessionState_SESSION_STATE_RETRYING,
	sessionmgr.StateRecovering:     vspb.SessionState_SESSION_STATE_RECOVERING,
	sessionmgr.StateFailed:         vspb.SessionState_SESSION_STATE_FAILED,
	sessionmgr.StateClosed:         vspb.SessionState_SESSION_STATE_CLOSED,
}

var closeToProto = map[sessionmgr.CloseReason]vspb.CloseReason{
	sessionmgr.CloseUnknown:        vspb.CloseReason_CLOSE_REASON_UNSPECIFIED,
	sessionmgr.CloseClientLeft:     vspb.CloseReason_CLOSE_REASON_CLIENT_LEFT,
	sessionmgr.CloseClientGone:     vspb.CloseReason_CLOSE_REASON_CLIENT_GONE,
	sessionmgr.CloseByBackend:      vspb.CloseReason_CLOSE_REASON_CLOSED_BY_BACKEND,
	sessionmgr.CloseMaxLifetime:    vspb.CloseReason_CLOSE_REASON_MAX_LIFETIME,
	sessionmgr.CloseFailed:         vspb.CloseReason_CLOSE_REASON_FAILED,
	sessionmgr.CloseServerShutdown: vspb.CloseReason_CLOSE_REASON_SERVER_SHUTDOWN,
}

var failureReasonToProto = map[sessionmgr.FailureReason]vspb.FailureReason{
	sessionmgr.FailureUnknown:           vspb.FailureReason_FAILURE_REASON_UNSPECIFIED,
	sessionmgr.FailureAnswerTimeout:     vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT,
	sessionmgr.FailureRecoveryFailed:    vspb.FailureReason_FAILURE_REASON_RECOVERY_FAILED,
	sessionmgr.FailureChannelNotFound:   vspb.FailureReason_FAILURE_REASON_CHANNEL_NOT_FOUND,
	sessionmgr.FailureAccessDenied:      vspb.FailureReason_FAILURE_REASON_ACCESS_DENIED,
	sessionmgr.FailureKVSThrottled:      vspb.FailureReason_FAILURE_REASON_KVS_THROTTLED,
	sessionmgr.FailureKVSUnavailable:    vspb.FailureReason_FAILURE_REASON_KVS_UNAVAILABLE,
	sessionmgr.FailureClientIDExhausted: vspb.FailureReason_FAILURE_REASON_CLIENT_ID_EXHAUSTED,
	sessionmgr.FailureSignalingRejected: vspb.FailureReason_FAILURE_REASON_SIGNALING_REJECTED,
	sessionmgr.FailureInternal:          vspb.FailureReason_FAILURE_REASON_INTERNAL,
}

var eventTypeToProto = map[sessionmgr.EventType]vspb.EventType{
	sessionmgr.EventUnknown:              vspb.EventType_EVENT_TYPE_UNSPECIFIED,
	sessionmgr.EventCreated:              vspb.EventType_EVENT_TYPE_CREATED,
	sessionmgr.EventStateChanged:         vspb.EventType_EVENT_TYPE_STATE_CHANGED,
	sessionmgr.EventAppAttached:          vspb.EventType_EVENT_TYPE_APP_ATTACHED,
	sessionmgr.EventAppDetached:          vspb.EventType_EVENT_TYPE_APP_DETACHED,
	sessionmgr.EventClientIDAllocated:    vspb.EventType_EVENT_TYPE_CLIENT_ID_ALLOCATED,
	sessionmgr.EventSignalingConnected:   vspb.EventType_EVENT_TYPE_SIGNALING_CONNECTED,
	sessionmgr.EventSignalingReconnected: vspb.EventType_EVENT_TYPE_SIGNALING_RECONNECTED,
	sessionmgr.EventOfferSent:            vspb.EventType_EVENT_TYPE_OFFER_SENT,
	sessionmgr.EventAnswer:               vspb.EventType_EVENT_TYPE_ANSWER,
	sessionmgr.EventRemoteCandidate:      vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE,
	sessionmgr.EventAnswerTimeout:        vspb.EventType_EVENT_TYPE_ANSWER_TIMEOUT,
	sessionmgr.EventRetryScheduled:       vspb.EventType_EVENT_TYPE_RETRY_SCHEDULED,
	sessionmgr.EventStaleAnswerDropped:   vspb.EventType_EVENT_TYPE_STALE_ANSWER_DROPPED,
	sessionmgr.EventConnectionState:      vspb.EventType_EVENT_TYPE_CONNECTION_STATE,
	sessionmgr.EventNetworkChanged:       vspb.EventType_EVENT_TYPE_NETWORK_CHANGED,
	sessionmgr.EventRecoveryStarted:      vspb.EventType_EVENT_TYPE_RECOVERY_STARTED,
	sessionmgr.EventRecovered:            vspb.EventType_EVENT_TYPE_RECOVERED,
	sessionmgr.EventRenegotiate:          vspb.EventType_EVENT_TYPE_RENEGOTIATE,
	sessionmgr.EventICEServersRefreshed:  vspb.EventType_EVENT_TYPE_ICE_SERVERS_REFRESHED,
	sessionmgr.EventSignalingError:       vspb.EventType_EVENT_TYPE_SIGNALING_ERROR,
	sessionmgr.EventGoingAway:            vspb.EventType_EVENT_TYPE_GOING_AWAY,
	sessionmgr.EventOwnerChanged:         vspb.EventType_EVENT_TYPE_OWNER_CHANGED,
	sessionmgr.EventFailed:               vspb.EventType_EVENT_TYPE_FAILED,
	sessionmgr.EventClosed:               vspb.EventType_EVENT_TYPE_CLOSED,
	sessionmgr.EventMediaFlowing:         vspb.EventType_EVENT_TYPE_MEDIA_FLOWING,
	sessionmgr.EventMediaStalled:         vspb.EventType_EVENT_TYPE_MEDIA_STALLED,
}

var recoveryPolicyToProto = map[sessionmgr.RecoveryPolicy]vspb.RecoveryPolicy{
	sessionmgr.RecoveryDefault:        vspb.RecoveryPolicy_RECOVERY_POLICY_UNSPECIFIED,
	sessionmgr.RecoveryAuto:           vspb.RecoveryPolicy_RECOVERY_POLICY_AUTO,
	sessionmgr.RecoveryICERestartOnly: vspb.RecoveryPolicy_RECOVERY_POLICY_ICE_RESTART_ONLY,
	sessionmgr.RecoveryFullReconnect:  vspb.RecoveryPolicy_RECOVERY_POLICY_FULL_RECONNECT,
}

var renegotiateActionToProto = map[sessionmgr.RenegotiateAction]vspb.Renegotiate_Action{
	sessionmgr.RenegotiateUnknown:           vspb.Renegotiate_ACTION_UNSPECIFIED,
	sessionmgr.RenegotiateICERestart:        vspb.Renegotiate_ACTION_ICE_RESTART,
	sessionmgr.RenegotiateNewPeerConnection: vspb.Renegotiate_ACTION_NEW_PEER_CONNECTION,
}

var iceStateToProto = map[sessionmgr.ICEState]vspb.IceConnectionState{
	sessionmgr.ICEUnknown:      vspb.IceConnectionState_ICE_CONNECTION_STATE_UNSPECIFIED,
	sessionmgr.ICENew:          vspb.IceConnectionState_ICE_CONNECTION_STATE_NEW,
	sessionmgr.ICEChecking:     vspb.IceConnectionState_ICE_CONNECTION_STATE_CHECKING,
	sessionmgr.ICEConnected:    vspb.IceConnectionState_ICE_CONNECTION_STATE_CONNECTED,
	sessionmgr.ICECompleted:    vspb.IceConnectionState_ICE_CONNECTION_STATE_COMPLETED,
	sessionmgr.ICEDisconnected: vspb.IceConnectionState_ICE_CONNECTION_STATE_DISCONNECTED,
	sessionmgr.ICEFailed:       vspb.IceConnectionState_ICE_CONNECTION_STATE_FAILED,
	sessionmgr.ICEClosed:       vspb.IceConnectionState_ICE_CONNECTION_STATE_CLOSED,
}

var peerStateToProto = map[sessionmgr.PeerState]vspb.PeerConnectionState{
	sessionmgr.PeerUnknown:      vspb.PeerConnectionState_PEER_CONNECTION_STATE_UNSPECIFIED,
	sessionmgr.PeerNew:          vspb.PeerConnectionState_PEER_CONNECTION_STATE_NEW,
	sessionmgr.PeerConnecting:   vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTING,
	sessionmgr.PeerConnected:    vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTED,
	sessionmgr.PeerDisconnected: vspb.PeerConnectionState_PEER_CONNECTION_STATE_DISCONNECTED,
	sessionmgr.PeerFailed:       vspb.PeerConnectionState_PEER_CONNECTION_STATE_FAILED,
	sessionmgr.PeerClosed:       vspb.PeerConnectionState_PEER_CONNECTION_STATE_CLOSED,
}

var recoveryStepToProto = map[sessionmgr.RecoveryStep]vspb.RecoveryStep{
	sessionmgr.StepUnknown:           vspb.RecoveryStep_RECOVERY_STEP_UNSPECIFIED,
	sessionmgr.StepICERestart:        vspb.RecoveryStep_RECOVERY_STEP_ICE_RESTART,
	sessionmgr.StepNewPeerConnection: vspb.RecoveryStep_RECOVERY_STEP_NEW_PEER_CONNECTION,
	sessionmgr.StepNewClientID:       vspb.RecoveryStep_RECOVERY_STEP_NEW_CLIENT_ID,
}

// The reverse maps, for what apps and backends send.
var (
	recoveryPolicyFromProto = invert(recoveryPolicyToProto)
	iceStateFromProto       = invert(iceStateToProto)
	peerStateFromProto      = invert(peerStateToProto)
	stateFromProto          = invert(stateToProto)
)

func invert[D, P comparable](m map[D]P) map[P]D {
	out := make(map[P]D, len(m))
	for d, p := range m {
		out[p] = d
	}
	return out
}
