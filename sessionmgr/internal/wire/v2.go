package wire

import (
	"github.com/acme/viewersession/sessionmgr"
)

// Session is a session record, version 2. The record in Redis leaves Owner
// and Epoch out (the record keeps them in fields of their own); a
// forwarded reply carries them.
type Session struct {
	V            int         `json:"v"`
	ID           string      `json:"id"`
	Channel      Channel     `json:"channel"`
	ViewerID     string      `json:"viewerId,omitempty"`
	ClientID     string      `json:"clientId,omitempty"`
	State        string      `json:"state,omitempty"`
	Attempt      int         `json:"attempt,omitempty"`
	IceServers   *IceServers `json:"iceServers,omitempty"`
	Options      *Options    `json:"options,omitempty"`
	Created      string      `json:"created,omitempty"`
	Updated      string      `json:"updated,omitempty"`
	Expires      string      `json:"expires,omitempty"`
	Close        string      `json:"close,omitempty"`
	Failure      *Failure    `json:"failure,omitempty"`
	LastSeq      uint64      `json:"lastSeq,omitempty"`
	TokenHash    []byte      `json:"tokenHash,omitempty"` // base64
	Caller       string      `json:"caller,omitempty"`
	RequestID    string      `json:"requestId,omitempty"`
	Owner        string      `json:"owner,omitempty"`
	Epoch        uint64      `json:"epoch,omitempty"`
	AckedAppSeq  uint64      `json:"ackedAppSeq,omitempty"`
	AppSeqsAbove []uint64    `json:"appSeqsAbove,omitempty"`
	MediaFlowing bool        `json:"mediaFlowing,omitempty"`
	MediaPC      uint32      `json:"mediaPc,omitempty"`
}

// Channel is a resolved channel.
type Channel struct {
	ARN        string `json:"arn"`
	Name       string `json:"name,omitempty"`
	Region     string `json:"region,omitempty"`
	MessageTTL string `json:"messageTtl,omitempty"`
}

// Options are a session's timers and policy.
type Options struct {
	AnswerTimeout            string `json:"answerTimeout,omitempty"`
	RetryDelay               string `json:"retryDelay,omitempty"`
	MaxAttempts              int    `json:"maxAttempts,omitempty"`
	Recovery                 string `json:"recovery,omitempty"`
	ResumeGrace              string `json:"resumeGrace,omitempty"`
	ICERestartTimeout        string `json:"iceRestartTimeout,omitempty"`
	DisconnectedGrace        string `json:"disconnectedGrace,omitempty"`
	MaxLifetime              string `json:"maxLifetime,omitempty"`
	NewPeerConnectionTimeout string `json:"newPeerConnectionTimeout,omitempty"`
	MediaStallTimeout        string `json:"mediaStallTimeout,omitempty"`
}

// IceServers is a set of ICE servers. The credentials are stored: the
// owner's replacement needs them after a takeover.
type IceServers struct {
	Servers []IceServer `json:"servers,omitempty"`
	Expires string      `json:"expires,omitempty"`
}

// IceServer is one RTCIceServer.
type IceServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// Failure is a reason and a message.
type Failure struct {
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Event is a timeline entry, version 2.
type Event struct {
	V           int          `json:"v"`
	Seq         uint64       `json:"seq"`
	Time        string       `json:"time,omitempty"`
	Type        string       `json:"type,omitempty"`
	State       string       `json:"state,omitempty"`
	Attempt     int          `json:"attempt,omitempty"`
	ClientID    string       `json:"clientId,omitempty"`
	Message     string       `json:"message,omitempty"`
	Failure     *Failure     `json:"failure,omitempty"`
	Close       string       `json:"close,omitempty"`
	Answer      string       `json:"answer,omitempty"`
	Candidate   *Candidate   `json:"candidate,omitempty"`
	Renegotiate *Renegotiate `json:"renegotiate,omitempty"`
	GoingAway   string       `json:"goingAway,omitempty"`
	ConnState   *ConnState   `json:"connState,omitempty"`
	IceServers  *IceServers  `json:"iceServers,omitempty"`
	Recovery    *Recovery    `json:"recovery,omitempty"`
	Media       *MediaReport `json:"media,omitempty"`
	AckedAppSeq uint64       `json:"ackedAppSeq,omitempty"`
}

// Candidate is one ICE candidate.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           string  `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment string  `json:"usernameFragment,omitempty"`
}

// Renegotiate asks the app for a new offer.
type Renegotiate struct {
	Action     string      `json:"action,omitempty"`
	IceServers *IceServers `json:"iceServers,omitempty"`
	Reason     string      `json:"reason,omitempty"`
}

// ConnState is the app's report of its peer connection.
type ConnState struct {
	ICE  string `json:"ice,omitempty"`
	Peer string `json:"peer,omitempty"`
}

// Recovery is a recovery step or its outcome.
type Recovery struct {
	Step    string `json:"step,omitempty"`
	Outage  string `json:"outage,omitempty"`
	Learned bool   `json:"learned,omitempty"`
}

// MediaReport is the app's inbound video progress.
type MediaReport struct {
	PeerConnection uint32 `json:"peerConnection,omitempty"`
	Packets        uint64 `json:"packets,omitempty"`
	Bytes          uint64 `json:"bytes,omitempty"`
	Frames         uint64 `json:"frames,omitempty"`
}

// AppMessage is an app message forwarded to the session's owner. It has
// no version of its own: the message around it has.
type AppMessage struct {
	AppSeq         uint64       `json:"appSeq,omitempty"`
	Offer          string       `json:"offer,omitempty"`
	Candidate      *Candidate   `json:"candidate,omitempty"`
	StateReport    *ConnState   `json:"stateReport,omitempty"`
	NetworkChanged *string      `json:"networkChanged,omitempty"`
	Leave          bool         `json:"leave,omitempty"`
	Media          *MediaReport `json:"media,omitempty"`
}

// FromSession is s in version 2.
func FromSession(s sessionmgr.Session) Session {
	var r Session
	r.from(&s)
	return r
}

// from sets r to s in version 2. It works through pointers, with no
// Session values in its frame: it runs at the bottom of CreateSession's
// stack (see EncodeSession).
func (r *Session) from(s *sessionmgr.Session) {
	*r = Session{
		V:  Version,
		ID: string(s.ID),
		Channel: Channel{
			ARN: s.Channel.ARN, Name: s.Channel.Name, Region: s.Channel.Region,
			MessageTTL: formatDuration(s.Channel.MessageTTL),
		},
		ViewerID:     s.ViewerID,
		ClientID:     s.ClientID,
		State:        name(s.State, sessionmgr.ParseState),
		Attempt:      s.Attempt,
		IceServers:   fromIceServers(&s.IceServers),
		Created:      FormatTime(s.Created),
		Updated:      FormatTime(s.Updated),
		Expires:      FormatTime(s.Expires),
		Close:        name(s.Close, sessionmgr.ParseCloseReason),
		Failure:      fromFailure(s.Failure),
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
	if o := &s.Options; *o != (sessionmgr.Options{}) {
		r.Options = &Options{
			AnswerTimeout:            formatDuration(o.AnswerTimeout),
			RetryDelay:               formatDuration(o.RetryDelay),
			MaxAttempts:              o.MaxAttempts,
			Recovery:                 name(o.Recovery, sessionmgr.ParseRecoveryPolicy),
			ResumeGrace:              formatDuration(o.ResumeGrace),
			ICERestartTimeout:        formatDuration(o.ICERestartTimeout),
			DisconnectedGrace:        formatDuration(o.DisconnectedGrace),
			MaxLifetime:              formatDuration(o.MaxLifetime),
			NewPeerConnectionTimeout: formatDuration(o.NewPeerConnectionTimeout),
			MediaStallTimeout:        formatDuration(o.MediaStallTimeout),
		}
	}
}

// Session is r in the domain's terms.
func (r Session) Session() sessionmgr.Session {
	s := sessionmgr.Session{
		ID: sessionmgr.SessionID(r.ID),
		Channel: sessionmgr.Channel{
			ARN: r.Channel.ARN, Name: r.Channel.Name, Region: r.Channel.Region,
			MessageTTL: parseDuration(r.Channel.MessageTTL),
		},
		ViewerID:     r.ViewerID,
		ClientID:     r.ClientID,
		State:        sessionmgr.ParseState(r.State),
		Attempt:      r.Attempt,
		Created:      ParseTime(r.Created),
		Updated:      ParseTime(r.Updated),
		Expires:      ParseTime(r.Expires),
		Close:        sessionmgr.ParseCloseReason(r.Close),
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
	if r.IceServers != nil {
		s.IceServers = *r.IceServers.iceServers()
	}
	if o := r.Options; o != nil {
		s.Options = sessionmgr.Options{
			AnswerTimeout:            parseDuration(o.AnswerTimeout),
			RetryDelay:               parseDuration(o.RetryDelay),
			MaxAttempts:              o.MaxAttempts,
			Recovery:                 sessionmgr.ParseRecoveryPolicy(o.Recovery),
			ResumeGrace:              parseDuration(o.ResumeGrace),
			ICERestartTimeout:        parseDuration(o.ICERestartTimeout),
			DisconnectedGrace:        parseDuration(o.DisconnectedGrace),
			MaxLifetime:              parseDuration(o.MaxLifetime),
			NewPeerConnectionTimeout: parseDuration(o.NewPeerConnectionTimeout),
			MediaStallTimeout:        parseDuration(o.MediaStallTimeout),
		}
	}
	return s
}

// FromEvent is e in version 2.
func FromEvent(e sessionmgr.Event) Event {
	r := Event{
		V:           Version,
		Seq:         e.Seq,
		Time:        FormatTime(e.Time),
		Type:        name(e.Type, sessionmgr.ParseEventType),
		State:       name(e.State, sessionmgr.ParseState),
		Attempt:     e.Attempt,
		ClientID:    e.ClientID,
		Message:     e.Message,
		Failure:     fromFailure(e.Failure),
		Close:       name(e.Close, sessionmgr.ParseCloseReason),
		Answer:      e.Answer,
		Candidate:   fromCandidate(e.Candidate),
		GoingAway:   e.GoingAway,
		ConnState:   fromConnState(e.ConnState),
		IceServers:  fromIceServers(e.IceServers),
		Media:       fromMedia(e.Media),
		AckedAppSeq: e.AckedAppSeq,
	}
	if g := e.Renegotiate; g != nil {
		r.Renegotiate = &Renegotiate{
			Action:     name(g.Action, sessionmgr.ParseRenegotiateAction),
			IceServers: fromIceServers(g.IceServers),
			Reason:     g.Reason,
		}
	}
	if c := e.Recovery; c != nil {
		r.Recovery = &Recovery{
			Step:    name(c.Step, sessionmgr.ParseRecoveryStep),
			Outage:  formatDuration(c.Outage),
			Learned: c.Learned,
		}
	}
	return r
}

// Event is r in the domain's terms.
func (r Event) Event() sessionmgr.Event {
	e := sessionmgr.Event{
		Seq:         r.Seq,
		Time:        ParseTime(r.Time),
		Type:        sessionmgr.ParseEventType(r.Type),
		State:       sessionmgr.ParseState(r.State),
		Attempt:     r.Attempt,
		ClientID:    r.ClientID,
		Message:     r.Message,
		Failure:     r.Failure.failure(),
		Close:       sessionmgr.ParseCloseReason(r.Close),
		Answer:      r.Answer,
		Candidate:   r.Candidate.candidate(),
		GoingAway:   r.GoingAway,
		ConnState:   r.ConnState.connState(),
		IceServers:  r.IceServers.iceServers(),
		Media:       r.Media.media(),
		AckedAppSeq: r.AckedAppSeq,
	}
	if g := r.Renegotiate; g != nil {
		e.Renegotiate = &sessionmgr.Renegotiate{
			Action:     sessionmgr.ParseRenegotiateAction(g.Action),
			IceServers: g.IceServers.iceServers(),
			Reason:     g.Reason,
		}
	}
	if c := r.Recovery; c != nil {
		e.Recovery = &sessionmgr.Recovery{
			Step:    sessionmgr.ParseRecoveryStep(c.Step),
			Outage:  parseDuration(c.Outage),
			Learned: c.Learned,
		}
	}
	return e
}

// FromAppMessage is m in version 2.
func FromAppMessage(m sessionmgr.AppMessage) AppMessage {
	return AppMessage{
		AppSeq:         m.AppSeq,
		Offer:          m.Offer,
		Candidate:      fromCandidate(m.Candidate),
		StateReport:    fromConnState(m.StateReport),
		NetworkChanged: m.NetworkChanged,
		Leave:          m.Leave,
		Media:          fromMedia(m.Media),
	}
}

// AppMessage is r in the domain's terms.
func (r AppMessage) AppMessage() sessionmgr.AppMessage {
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

// fromIceServers is nil for nil and for an empty set.
func fromIceServers(s *sessionmgr.IceServers) *IceServers {
	if s == nil || (s.Servers == nil && s.Expires.IsZero()) {
		return nil
	}
	r := &IceServers{Expires: FormatTime(s.Expires)}
	for _, v := range s.Servers {
		r.Servers = append(r.Servers, IceServer{URLs: v.URLs, Username: v.Username, Credential: v.Credential})
	}
	return r
}

func (r *IceServers) iceServers() *sessionmgr.IceServers {
	if r == nil {
		return nil
	}
	s := &sessionmgr.IceServers{Expires: ParseTime(r.Expires)}
	for _, v := range r.Servers {
		s.Servers = append(s.Servers, sessionmgr.IceServer{URLs: v.URLs, Username: v.Username, Credential: v.Credential})
	}
	return s
}

func fromFailure(f *sessionmgr.Failure) *Failure {
	if f == nil {
		return nil
	}
	return &Failure{Reason: name(f.Reason, sessionmgr.ParseFailureReason), Message: f.Message}
}

func (r *Failure) failure() *sessionmgr.Failure {
	if r == nil {
		return nil
	}
	return &sessionmgr.Failure{Reason: sessionmgr.ParseFailureReason(r.Reason), Message: r.Message}
}

func fromCandidate(c *sessionmgr.Candidate) *Candidate {
	if c == nil {
		return nil
	}
	return &Candidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

func (r *Candidate) candidate() *sessionmgr.Candidate {
	if r == nil {
		return nil
	}
	return &sessionmgr.Candidate{Candidate: r.Candidate, SDPMid: r.SDPMid, SDPMLineIndex: r.SDPMLineIndex, UsernameFragment: r.UsernameFragment}
}

func fromConnState(c *sessionmgr.ConnState) *ConnState {
	if c == nil {
		return nil
	}
	return &ConnState{ICE: name(c.ICE, sessionmgr.ParseICEState), Peer: name(c.Peer, sessionmgr.ParsePeerState)}
}

func (r *ConnState) connState() *sessionmgr.ConnState {
	if r == nil {
		return nil
	}
	return &sessionmgr.ConnState{ICE: sessionmgr.ParseICEState(r.ICE), Peer: sessionmgr.ParsePeerState(r.Peer)}
}

func fromMedia(m *sessionmgr.MediaReport) *MediaReport {
	if m == nil {
		return nil
	}
	return &MediaReport{PeerConnection: m.PeerConnection, Packets: m.Packets, Bytes: m.Bytes, Frames: m.Frames}
}

func (r *MediaReport) media() *sessionmgr.MediaReport {
	if r == nil {
		return nil
	}
	return &sessionmgr.MediaReport{PeerConnection: r.PeerConnection, Packets: r.Packets, Bytes: r.Bytes, Frames: r.Frames}
}
