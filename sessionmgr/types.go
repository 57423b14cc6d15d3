package sessionmgr

import (
	"strconv"
	"strings"
	"time"
)

// SessionID identifies a session: 26 characters of lower-case base32.
type SessionID string

// ChannelRef names a KVS signaling channel as a caller gave it: an ARN, or a
// name and a region.
type ChannelRef struct {
	ARN, Name, Region string
}

// Channel is a resolved channel.
type Channel struct {
	ARN, Name, Region string
	// MessageTTL is the channel's MessageTtlSeconds: the clientId cooldown
	// is never shorter.
	MessageTTL time.Duration
}

// RecoveryPolicy selects how a session recovers after a network change.
type RecoveryPolicy int

// The recovery policies; see the proto's RecoveryPolicy.
const (
	RecoveryDefault RecoveryPolicy = iota
	RecoveryAuto
	RecoveryICERestartOnly
	RecoveryFullReconnect
)

// Options are one session's timers and policy; zero fields take the
// manager's defaults.
type Options struct {
	AnswerTimeout     time.Duration
	RetryDelay        time.Duration
	MaxAttempts       int
	Recovery          RecoveryPolicy
	ResumeGrace       time.Duration
	ICERestartTimeout time.Duration
	DisconnectedGrace time.Duration
	MaxLifetime       time.Duration
	// NewPeerConnectionTimeout bounds the ladder's new-peer-connection
	// step, and the media wait after a new clientId's answer.
	NewPeerConnectionTimeout time.Duration
	// MediaStallTimeout is how long video may stand still on a connected
	// peer connection before it counts as an outage.
	MediaStallTimeout time.Duration
}

// IceServer is one RTCIceServer. Credential is a secret: String hides it.
type IceServer struct {
	URLs       []string
	Username   string
	Credential string
}

// String prints the server without its credential.
func (s IceServer) String() string {
	return "{urls:[" + strings.Join(s.URLs, " ") + "] username:" + s.Username + " credential:<redacted>}"
}

// IceServers is a set of ICE servers and when its TURN credentials expire.
type IceServers struct {
	Servers []IceServer
	Expires time.Time
}

// Candidate is one ICE candidate, as the app or the camera trickled it.
type Candidate struct {
	Candidate        string
	SDPMid           string
	SDPMLineIndex    *uint16
	UsernameFragment string
}

// Failure is a reason code and a message for people.
type Failure struct {
	Reason  FailureReason
	Message string
}

// Session is a session's record. Owned by its actor; copies are handed out.
type Session struct {
	ID         SessionID
	Channel    Channel
	ViewerID   string
	ClientID   string
	State      State
	Attempt    int
	IceServers IceServers
	Options    Options
	Created    time.Time
	Updated    time.Time
	Expires    time.Time
	Close      CloseReason
	Failure    *Failure
	LastSeq    uint64
	// TokenHash is SHA-256 of the session token; the token is never stored.
	TokenHash []byte
	// Caller and RequestID make CreateSession idempotent.
	Caller, RequestID string
	// Owner is the replica that runs the session's actor and holds its KVS
	// connection; Epoch fences its writes (a takeover increments it).
	Owner string
	Epoch uint64
	// AckedAppSeq is the highest app sequence such that it and every lower
	// one were handled; AppSeqsAbove the handled ones above it, sorted (at
	// most maxAppSeqAhead). Together they make app messages at-most-once
	// across resumes and replicas.
	AckedAppSeq  uint64
	AppSeqsAbove []uint64
	// MediaFlowing: video flows (from MEDIA_FLOWING or RECOVERED until
	// MEDIA_STALLED or an outage starts a recovery). It changes with those
	// milestones only, so the stored record shows it without a write per
	// media report.
	MediaFlowing bool
	// MediaPC is the app's peer connection id of the last MEDIA_FLOWING (0:
	// none yet).
	MediaPC uint32
}

// Terminal reports whether the session has ended.
func (s *Session) Terminal() bool { return s.State.Terminal() }

// EventType is the kind of a timeline event; see the proto's EventType.
type EventType int

// The event types, in the proto's order.
const (
	EventUnknown EventType = iota
	EventCreated
	EventStateChanged
	EventAppAttached
	EventAppDetached
	EventClientIDAllocated
	EventSignalingConnected
	EventSignalingReconnected
	EventOfferSent
	EventAnswer
	EventRemoteCandidate
	EventAnswerTimeout
	EventRetryScheduled
	EventStaleAnswerDropped
	EventConnectionState
	EventNetworkChanged
	EventRecoveryStarted
	EventRecovered
	EventRenegotiate
	EventICEServersRefreshed
	EventSignalingError
	EventGoingAway
	EventOwnerChanged
	EventFailed
	EventClosed
	EventMediaFlowing
	EventMediaStalled
)

var eventTypeNames = [...]string{
	"UNKNOWN", "CREATED", "STATE_CHANGED", "APP_ATTACHED", "APP_DETACHED", "CLIENT_ID_ALLOCATED",
	"SIGNALING_CONNECTED", "SIGNALING_RECONNECTED", "OFFER_SENT", "ANSWER", "REMOTE_CANDIDATE",
	"ANSWER_TIMEOUT", "RETRY_SCHEDULED", "STALE_ANSWER_DROPPED", "CONNECTION_STATE", "NETWORK_CHANGED",
	"RECOVERY_STARTED", "RECOVERED", "RENEGOTIATE", "ICE_SERVERS_REFRESHED", "SIGNALING_ERROR",
	"GOING_AWAY", "OWNER_CHANGED", "FAILED", "CLOSED", "MEDIA_FLOWING", "MEDIA_STALLED",
}

func (t EventType) String() string {
	if t < 0 || int(t) >= len(eventTypeNames) {
		return "EventType(" + strconv.Itoa(int(t)) + ")"
	}
	return eventTypeNames[t]
}

// RenegotiateAction is what the app must do before offering again.
type RenegotiateAction int

// The renegotiate actions.
const (
	RenegotiateUnknown RenegotiateAction = iota
	RenegotiateICERestart
	RenegotiateNewPeerConnection
)

// Renegotiate asks the app for a new offer.
type Renegotiate struct {
	Action     RenegotiateAction
	IceServers *IceServers
	Reason     string
}

// ICEState mirrors RTCIceConnectionState; PeerState RTCPeerConnectionState.
type (
	ICEState  int
	PeerState int
)

// The ICE connection states, in the proto's order.
const (
	ICEUnknown ICEState = iota
	ICENew
	ICEChecking
	ICEConnected
	ICECompleted
	ICEDisconnected
	ICEFailed
	ICEClosed
)

// The peer connection states, in the proto's order.
const (
	PeerUnknown PeerState = iota
	PeerNew
	PeerConnecting
	PeerConnected
	PeerDisconnected
	PeerFailed
	PeerClosed
)

// ConnState is the app's report of its peer connection.
type ConnState struct {
	ICE  ICEState
	Peer PeerState
}

// Event is one entry of a session's timeline. Exactly one of the payload
// pointers is set, matching Type, or none.
type Event struct {
	Seq      uint64
	Time     time.Time
	Type     EventType
	State    State
	Attempt  int
	ClientID string
	Message  string
	Failure  *Failure
	Close    CloseReason

	Answer      string
	Candidate   *Candidate
	Renegotiate *Renegotiate
	GoingAway   string
	ConnState   *ConnState
	IceServers  *IceServers
	Recovery    *Recovery
	Media       *MediaReport

	// AckedAppSeq is the session's AckedAppSeq when the event was emitted.
	AckedAppSeq uint64
}

// Terminal reports whether the event ends the timeline.
func (e *Event) Terminal() bool { return e.Type == EventFailed || e.Type == EventClosed }

// AppMessage is one app -> service message (Connect or Signal). Exactly
// one of the fields after AppSeq is set.
type AppMessage struct {
	// AppSeq is the app's sequence number of the message; 0: unsequenced
	// (applied every time, never acknowledged).
	AppSeq         uint64
	Offer          string
	Candidate      *Candidate
	StateReport    *ConnState
	NetworkChanged *string
	Leave          bool
	Media          *MediaReport
}

// MediaReport is the app's inbound video progress on one of its peer
// connections: cumulative counters that restart with each new peer
// connection (see the proto's MediaReport).
type MediaReport struct {
	// PeerConnection identifies the app's peer connection; 0: none.
	PeerConnection uint32
	Packets        uint64
	Bytes          uint64
	Frames         uint64
}

// RecoveryStep is one rung of the recovery ladder, cheapest first; the
// order is the proto's.
type RecoveryStep int

// The recovery steps.
const (
	StepUnknown           RecoveryStep = iota
	StepICERestart                     // ICE restart: same peer connection, same clientId
	StepNewPeerConnection              // a new peer connection, same clientId and WSS
	StepNewClientID                    // a new peer connection, a new clientId and WSS
)

var stepNames = [...]string{"UNKNOWN", "ICE_RESTART", "NEW_PEER_CONNECTION", "NEW_CLIENT_ID"}

// String is the step's name (the proto's without its prefix); stored
// learned steps use it.
func (s RecoveryStep) String() string {
	if s < 0 || int(s) >= len(stepNames) {
		return "RecoveryStep(" + strconv.Itoa(int(s)) + ")"
	}
	return stepNames[s]
}

// ParseRecoveryStep is String's inverse; StepUnknown for anything else.
func ParseRecoveryStep(name string) RecoveryStep {
	for i, n := range stepNames {
		if i > 0 && n == name {
			return RecoveryStep(i)
		}
	}
	return StepUnknown
}

// Recovery describes a recovery step (RECOVERY_STARTED) or its outcome
// (RECOVERED).
type Recovery struct {
	Step RecoveryStep
	// Outage (RECOVERED): from the outage's first sign to video flowing
	// again.
	Outage time.Duration
	// Learned (RECOVERY_STARTED): the step was chosen because it worked
	// for the channel's master last time.
	Learned bool
}

// mediaOnly reports whether the message is a media report (see
// actor.onSequenced).
func (m AppMessage) mediaOnly() bool { return m.Media != nil }
