package wire

import (
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// Version 1, frozen: the JSON that json.Marshal made of the domain structs
// before version 2 (commit 3fa9c04 captured it in the golden fixtures).
// Keys are the Go field names of that time, durations nanoseconds, and
// enums their numbers in the order of that time, which the lists below
// keep: a number is read through the name it had then, so reordering a
// domain enum does not change what an old record means. Nothing here
// follows later changes to the domain structs.
var (
	v1States = []string{
		"UNKNOWN", "PENDING", "SIGNALING", "AWAITING_OFFER", "AWAITING_ANSWER", "CONNECTING",
		"CONNECTED", "RETRYING", "RECOVERING", "FAILED", "CLOSED",
	}
	v1CloseReasons = []string{
		"UNKNOWN", "CLIENT_LEFT", "CLIENT_GONE", "CLOSED_BY_BACKEND", "MAX_LIFETIME", "FAILED", "SERVER_SHUTDOWN",
	}
	v1FailureReasons = []string{
		"UNKNOWN", "ANSWER_TIMEOUT", "RECOVERY_FAILED", "CHANNEL_NOT_FOUND", "ACCESS_DENIED",
		"KVS_THROTTLED", "KVS_UNAVAILABLE", "CLIENT_ID_EXHAUSTED", "SIGNALING_REJECTED", "INTERNAL",
	}
	v1EventTypes = []string{
		"UNKNOWN", "CREATED", "STATE_CHANGED", "APP_ATTACHED", "APP_DETACHED", "CLIENT_ID_ALLOCATED",
		"SIGNALING_CONNECTED", "SIGNALING_RECONNECTED", "OFFER_SENT", "ANSWER", "REMOTE_CANDIDATE",
		"ANSWER_TIMEOUT", "RETRY_SCHEDULED", "STALE_ANSWER_DROPPED", "CONNECTION_STATE", "NETWORK_CHANGED",
		"RECOVERY_STARTED", "RECOVERED", "RENEGOTIATE", "ICE_SERVERS_REFRESHED", "SIGNALING_ERROR",
		"GOING_AWAY", "OWNER_CHANGED", "FAILED", "CLOSED", "MEDIA_FLOWING", "MEDIA_STALLED",
	}
	v1RecoveryPolicies   = []string{"DEFAULT", "AUTO", "ICE_RESTART_ONLY", "FULL_RECONNECT"}
	v1RenegotiateActions = []string{"UNKNOWN", "ICE_RESTART", "NEW_PEER_CONNECTION"}
	v1ICEStates          = []string{"UNKNOWN", "NEW", "CHECKING", "CONNECTED", "COMPLETED", "DISCONNECTED", "FAILED", "CLOSED"}
	v1PeerStates         = []string{"UNKNOWN", "NEW", "CONNECTING", "CONNECTED", "DISCONNECTED", "FAILED", "CLOSED"}
	v1RecoverySteps      = []string{"UNKNOWN", "ICE_RESTART", "NEW_PEER_CONNECTION", "NEW_CLIENT_ID"}
)

// v1Enum reads a version 1 enum number: the value whose name is the
// number's name in names, or the zero value.
func v1Enum[E ~int](names []string, n int, parse func(string) E) E {
	if n < 0 || n >= len(names) {
		return 0
	}
	return parse(names[n])
}

// SessionV1 is a session record of version 1.
type SessionV1 struct {
	ID      string
	Channel struct {
		ARN, Name, Region string
		MessageTTL        time.Duration
	}
	ViewerID   string
	ClientID   string
	State      int
	Attempt    int
	IceServers IceServersV1
	Options    struct {
		AnswerTimeout            time.Duration
		RetryDelay               time.Duration
		MaxAttempts              int
		Recovery                 int
		ResumeGrace              time.Duration
		ICERestartTimeout        time.Duration
		DisconnectedGrace        time.Duration
		MaxLifetime              time.Duration
		NewPeerConnectionTimeout time.Duration
		MediaStallTimeout        time.Duration
	}
	Created, Updated, Expires time.Time
	Close                     int
	Failure                   *FailureV1
	LastSeq                   uint64
	TokenHash                 []byte
	Caller, RequestID         string
	Owner                     string
	Epoch                     uint64
	AckedAppSeq               uint64
	AppSeqsAbove              []uint64
	MediaFlowing              bool
	MediaPC                   uint32
}

// IceServersV1 is IceServers in version 1.
type IceServersV1 struct {
	Servers []IceServerV1
	Expires time.Time
}

// IceServerV1 is IceServer in version 1.
type IceServerV1 struct {
	URLs                 []string
	Username, Credential string
}

// FailureV1 is Failure in version 1.
type FailureV1 struct {
	Reason  int
	Message string
}

// CandidateV1 is Candidate in version 1.
type CandidateV1 struct {
	Candidate        string
	SDPMid           string
	SDPMLineIndex    *uint16
	UsernameFragment string
}

// ConnStateV1 is ConnState in version 1.
type ConnStateV1 struct{ ICE, Peer int }

// MediaReportV1 is MediaReport in version 1.
type MediaReportV1 struct {
	PeerConnection         uint32
	Packets, Bytes, Frames uint64
}

// EventV1 is a timeline entry of version 1.
type EventV1 struct {
	Seq         uint64
	Time        time.Time
	Type        int
	State       int
	Attempt     int
	ClientID    string
	Message     string
	Failure     *FailureV1
	Close       int
	Answer      string
	Candidate   *CandidateV1
	Renegotiate *RenegotiateV1
	GoingAway   string
	ConnState   *ConnStateV1
	IceServers  *IceServersV1
	Recovery    *RecoveryV1
	Media       *MediaReportV1
	AckedAppSeq uint64
}

// RenegotiateV1 is Renegotiate in version 1.
type RenegotiateV1 struct {
	Action     int
	IceServers *IceServersV1
	Reason     string
}

// RecoveryV1 is Recovery in version 1.
type RecoveryV1 struct {
	Step    int
	Outage  time.Duration
	Learned bool
}

// AppMessageV1 is an app message in version 1.
type AppMessageV1 struct {
	AppSeq         uint64
	Offer          string
	Candidate      *CandidateV1
	StateReport    *ConnStateV1
	NetworkChanged *string
	Leave          bool
	Media          *MediaReportV1
}

// Session is r in the domain's terms.
func (r SessionV1) Session() sessionmgr.Session {
	o := r.Options
	return sessionmgr.Session{
		ID: sessionmgr.SessionID(r.ID),
		Channel: sessionmgr.Channel{
			ARN: r.Channel.ARN, Name: r.Channel.Name, Region: r.Channel.Region, MessageTTL: r.Channel.MessageTTL,
		},
		ViewerID:   r.ViewerID,
		ClientID:   r.ClientID,
		State:      v1Enum(v1States, r.State, sessionmgr.ParseState),
		Attempt:    r.Attempt,
		IceServers: r.IceServers.iceServers(),
		Options: sessionmgr.Options{
			AnswerTimeout:            o.AnswerTimeout,
			RetryDelay:               o.RetryDelay,
			MaxAttempts:              o.MaxAttempts,
			Recovery:                 v1Enum(v1RecoveryPolicies, o.Recovery, sessionmgr.ParseRecoveryPolicy),
			ResumeGrace:              o.ResumeGrace,
			ICERestartTimeout:        o.ICERestartTimeout,
			DisconnectedGrace:        o.DisconnectedGrace,
			MaxLifetime:              o.MaxLifetime,
			NewPeerConnectionTimeout: o.NewPeerConnectionTimeout,
			MediaStallTimeout:        o.MediaStallTimeout,
		},
		Created:      r.Created,
		Updated:      r.Updated,
		Expires:      r.Expires,
		Close:        v1Enum(v1CloseReasons, r.Close, sessionmgr.ParseCloseReason),
		Failure:      r.Failure.failure(),
		LastSeq:      r.LastSeq,
		TokenHash:    r.TokenHash,
		Caller:       r.Caller,
		RequestID:    r.RequestID,
		Owner:        r.Owner,
		Epoch:        r.Epoch,
		AckedAppSeq:  r.AckedAppSeq,
		AppSeqsAbove: r.AppSeqsAbove,
		MediaFlowing: r.MediaFlowing,
		MediaPC:      r.MediaPC,
	}
}

// Event is r in the domain's terms.
func (r EventV1) Event() sessionmgr.Event {
	e := sessionmgr.Event{
		Seq:         r.Seq,
		Time:        r.Time,
		Type:        v1Enum(v1EventTypes, r.Type, sessionmgr.ParseEventType),
		State:       v1Enum(v1States, r.State, sessionmgr.ParseState),
		Attempt:     r.Attempt,
		ClientID:    r.ClientID,
		Message:     r.Message,
		Failure:     r.Failure.failure(),
		Close:       v1Enum(v1CloseReasons, r.Close, sessionmgr.ParseCloseReason),
		Answer:      r.Answer,
		Candidate:   r.Candidate.candidate(),
		GoingAway:   r.GoingAway,
		ConnState:   r.ConnState.connState(),
		Media:       r.Media.media(),
		AckedAppSeq: r.AckedAppSeq,
	}
	if r.IceServers != nil {
		s := r.IceServers.iceServers()
		e.IceServers = &s
	}
	if g := r.Renegotiate; g != nil {
		e.Renegotiate = &sessionmgr.Renegotiate{
			Action: v1Enum(v1RenegotiateActions, g.Action, sessionmgr.ParseRenegotiateAction),
			Reason: g.Reason,
		}
		if g.IceServers != nil {
			s := g.IceServers.iceServers()
			e.Renegotiate.IceServers = &s
		}
	}
	if c := r.Recovery; c != nil {
		e.Recovery = &sessionmgr.Recovery{
			Step:    v1Enum(v1RecoverySteps, c.Step, sessionmgr.ParseRecoveryStep),
			Outage:  c.Outage,
			Learned: c.Learned,
		}
	}
	return e
}

// AppMessage is r in the domain's terms.
func (r AppMessageV1) AppMessage() sessionmgr.AppMessage {
	return sessionmgr.AppMessage{
		AppSeq:         r.AppSeq,
		Offer:          r.Offer,
		Candidate:      r.Candidate.candidate(),
		StateReport:    r.StateReport.connState(),
		NetworkChanged: r.NetworkChanged,
		Leave:          r.Leave,
		Media:          r.Media.media(),
	}
}

func (r IceServersV1) iceServers() sessionmgr.IceServers {
	s := sessionmgr.IceServers{Expires: r.Expires}
	if r.Servers != nil {
		s.Servers = make([]sessionmgr.IceServer, len(r.Servers))
		for i, v := range r.Servers {
			s.Servers[i] = sessionmgr.IceServer{URLs: v.URLs, Username: v.Username, Credential: v.Credential}
		}
	}
	return s
}

func (r *FailureV1) failure() *sessionmgr.Failure {
	if r == nil {
		return nil
	}
	return &sessionmgr.Failure{Reason: v1Enum(v1FailureReasons, r.Reason, sessionmgr.ParseFailureReason), Message: r.Message}
}

func (r *CandidateV1) candidate() *sessionmgr.Candidate {
	if r == nil {
		return nil
	}
	return &sessionmgr.Candidate{Candidate: r.Candidate, SDPMid: r.SDPMid, SDPMLineIndex: r.SDPMLineIndex, UsernameFragment: r.UsernameFragment}
}

func (r *ConnStateV1) connState() *sessionmgr.ConnState {
	if r == nil {
		return nil
	}
	return &sessionmgr.ConnState{
		ICE:  v1Enum(v1ICEStates, r.ICE, sessionmgr.ParseICEState),
		Peer: v1Enum(v1PeerStates, r.Peer, sessionmgr.ParsePeerState),
	}
}

func (r *MediaReportV1) media() *sessionmgr.MediaReport {
	if r == nil {
		return nil
	}
	return &sessionmgr.MediaReport{PeerConnection: r.PeerConnection, Packets: r.Packets, Bytes: r.Bytes, Frames: r.Frames}
}

// v1Number is v's number in version 1: the index of its name in names, or
// 0 for a value that had no name then.
func v1Number[E interface {
	~int
	String() string
}](names []string, v E) int {
	if v == 0 {
		return 0
	}
	n := v.String()
	for i, name := range names {
		if name == n {
			return i
		}
	}
	return 0
}

// FromSessionV1 is s in version 1, for a replica that writes version 1
// while older replicas still run (see the package doc).
func FromSessionV1(s sessionmgr.Session) SessionV1 {
	r := SessionV1{
		ID:           string(s.ID),
		ViewerID:     s.ViewerID,
		ClientID:     s.ClientID,
		State:        v1Number(v1States, s.State),
		Attempt:      s.Attempt,
		IceServers:   fromIceServersV1(s.IceServers),
		Created:      s.Created,
		Updated:      s.Updated,
		Expires:      s.Expires,
		Close:        v1Number(v1CloseReasons, s.Close),
		Failure:      fromFailureV1(s.Failure),
		LastSeq:      s.LastSeq,
		TokenHash:    s.TokenHash,
		Caller:       s.Caller,
		RequestID:    s.RequestID,
		Owner:        s.Owner,
		Epoch:        s.Epoch,
		AckedAppSeq:  s.AckedAppSeq,
		AppSeqsAbove: s.AppSeqsAbove,
		MediaFlowing: s.MediaFlowing,
		MediaPC:      s.MediaPC,
	}
	r.Channel.ARN, r.Channel.Name, r.Channel.Region = s.Channel.ARN, s.Channel.Name, s.Channel.Region
	r.Channel.MessageTTL = s.Channel.MessageTTL
	o := s.Options
	r.Options.AnswerTimeout = o.AnswerTimeout
	r.Options.RetryDelay = o.RetryDelay
	r.Options.MaxAttempts = o.MaxAttempts
	r.Options.Recovery = v1Number(v1RecoveryPolicies, o.Recovery)
	r.Options.ResumeGrace = o.ResumeGrace
	r.Options.ICERestartTimeout = o.ICERestartTimeout
	r.Options.DisconnectedGrace = o.DisconnectedGrace
	r.Options.MaxLifetime = o.MaxLifetime
	r.Options.NewPeerConnectionTimeout = o.NewPeerConnectionTimeout
	r.Options.MediaStallTimeout = o.MediaStallTimeout
	return r
}

// FromEventV1 is e in version 1.
func FromEventV1(e sessionmgr.Event) EventV1 {
	r := EventV1{
		Seq:         e.Seq,
		Time:        e.Time,
		Type:        v1Number(v1EventTypes, e.Type),
		State:       v1Number(v1States, e.State),
		Attempt:     e.Attempt,
		ClientID:    e.ClientID,
		Message:     e.Message,
		Failure:     fromFailureV1(e.Failure),
		Close:       v1Number(v1CloseReasons, e.Close),
		Answer:      e.Answer,
		Candidate:   (*CandidateV1)(e.Candidate),
		GoingAway:   e.GoingAway,
		ConnState:   fromConnStateV1(e.ConnState),
		Media:       (*MediaReportV1)(e.Media),
		AckedAppSeq: e.AckedAppSeq,
	}
	if e.IceServers != nil {
		s := fromIceServersV1(*e.IceServers)
		r.IceServers = &s
	}
	if g := e.Renegotiate; g != nil {
		r.Renegotiate = &RenegotiateV1{Action: v1Number(v1RenegotiateActions, g.Action), Reason: g.Reason}
		if g.IceServers != nil {
			s := fromIceServersV1(*g.IceServers)
			r.Renegotiate.IceServers = &s
		}
	}
	if c := e.Recovery; c != nil {
		r.Recovery = &RecoveryV1{Step: v1Number(v1RecoverySteps, c.Step), Outage: c.Outage, Learned: c.Learned}
	}
	return r
}

// FromAppMessageV1 is m in version 1.
func FromAppMessageV1(m sessionmgr.AppMessage) AppMessageV1 {
	return AppMessageV1{
		AppSeq:         m.AppSeq,
		Offer:          m.Offer,
		Candidate:      (*CandidateV1)(m.Candidate),
		StateReport:    fromConnStateV1(m.StateReport),
		NetworkChanged: m.NetworkChanged,
		Leave:          m.Leave,
		Media:          (*MediaReportV1)(m.Media),
	}
}

func fromIceServersV1(s sessionmgr.IceServers) IceServersV1 {
	r := IceServersV1{Expires: s.Expires}
	if s.Servers != nil {
		r.Servers = make([]IceServerV1, len(s.Servers))
		for i, v := range s.Servers {
			r.Servers[i] = IceServerV1{URLs: v.URLs, Username: v.Username, Credential: v.Credential}
		}
	}
	return r
}

func fromFailureV1(f *sessionmgr.Failure) *FailureV1 {
	if f == nil {
		return nil
	}
	return &FailureV1{Reason: v1Number(v1FailureReasons, f.Reason), Message: f.Message}
}

func fromConnStateV1(c *sessionmgr.ConnState) *ConnStateV1 {
	if c == nil {
		return nil
	}
	return &ConnStateV1{ICE: v1Number(v1ICEStates, c.ICE), Peer: v1Number(v1PeerStates, c.Peer)}
}
