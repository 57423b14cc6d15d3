package service

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

const namePrefix = "sessions/"

// parseName turns `sessions/{id}` into a session id.
func parseName(field, name string) (sessionmgr.SessionID, error) {
	if name == "" {
		return "", invalidField(field, "required")
	}
	id, ok := strings.CutPrefix(name, namePrefix)
	if !ok || !sessionmgr.ValidSessionID(id) {
		return "", invalidField(field, "want sessions/{id} with a 26-character id, got "+quoteTrunc(name))
	}
	return sessionmgr.SessionID(id), nil
}

// quoteTrunc quotes s for a message: Go syntax (control characters and
// invalid UTF-8 escaped, never echoed raw), cut at 80 bytes.
func quoteTrunc(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:80]) + "..."
	}
	return strconv.Quote(s)
}

func sessionName(id sessionmgr.SessionID) string { return namePrefix + string(id) }

func channelRefFromProto(c *vspb.Channel) sessionmgr.ChannelRef {
	return sessionmgr.ChannelRef{ARN: c.GetArn(), Name: c.GetName(), Region: c.GetRegion()}
}

// optionsFromProto converts options; durations must be valid and not
// negative (zero means the default).
func optionsFromProto(o *vspb.SessionOptions) (sessionmgr.Options, error) {
	var out sessionmgr.Options
	if o == nil {
		return out, nil
	}
	durs := []struct {
		field string
		d     *durationpb.Duration
		dst   *time.Duration
	}{
		{"options.answer_timeout", o.GetAnswerTimeout(), &out.AnswerTimeout},
		{"options.retry_delay", o.GetRetryDelay(), &out.RetryDelay},
		{"options.resume_grace", o.GetResumeGrace(), &out.ResumeGrace},
		{"options.ice_restart_timeout", o.GetIceRestartTimeout(), &out.ICERestartTimeout},
		{"options.disconnected_grace", o.GetDisconnectedGrace(), &out.DisconnectedGrace},
		{"options.max_lifetime", o.GetMaxLifetime(), &out.MaxLifetime},
		{"options.new_peer_connection_timeout", o.GetNewPeerConnectionTimeout(), &out.NewPeerConnectionTimeout},
		{"options.media_stall_timeout", o.GetMediaStallTimeout(), &out.MediaStallTimeout},
	}
	for _, d := range durs {
		if d.d == nil {
			continue
		}
		if err := d.d.CheckValid(); err != nil {
			return out, invalidField(d.field, err.Error())
		}
		v := d.d.AsDuration()
		if v < 0 {
			return out, invalidField(d.field, "must not be negative")
		}
		*d.dst = v
	}
	if o.GetMaxAttempts() > 5 {
		return out, invalidField("options.max_attempts", "at most 5")
	}
	out.MaxAttempts = int(o.GetMaxAttempts())
	rp, ok := recoveryPolicyFromProto[o.GetRecoveryPolicy()]
	if !ok {
		return out, invalidField("options.recovery_policy", "unknown value")
	}
	out.Recovery = rp
	return out, nil
}

func optionsToProto(o sessionmgr.Options) *vspb.SessionOptions {
	return &vspb.SessionOptions{
		AnswerTimeout:     durationpb.New(o.AnswerTimeout),
		RetryDelay:        durationpb.New(o.RetryDelay),
		MaxAttempts:       uint32(o.MaxAttempts),
		RecoveryPolicy:    recoveryPolicyToProto[o.Recovery],
		ResumeGrace:       durationpb.New(o.ResumeGrace),
		IceRestartTimeout: durationpb.New(o.ICERestartTimeout),
		DisconnectedGrace: durationpb.New(o.DisconnectedGrace),
		MaxLifetime:       durationpb.New(o.MaxLifetime),

		NewPeerConnectionTimeout: durationpb.New(o.NewPeerConnectionTimeout),
		MediaStallTimeout:        durationpb.New(o.MediaStallTimeout),
	}
}

func sessionToProto(s sessionmgr.Session) *vspb.Session {
	p := &vspb.Session{
		Name:                 sessionName(s.ID),
		Channel:              &vspb.Channel{Arn: s.Channel.ARN},
		ViewerId:             s.ViewerID,
		ClientId:             s.ClientID,
		State:                stateToProto[s.State],
		Attempt:              uint32(s.Attempt),
		IceServers:           iceServersToProto(s.IceServers.Servers),
		IceServersExpireTime: timeToProto(s.IceServers.Expires),
		Options:              optionsToProto(s.Options),
		CreateTime:           timeToProto(s.Created),
		UpdateTime:           timeToProto(s.Updated),
		ExpireTime:           timeToProto(s.Expires),
		CloseReason:          closeToProto[s.Close],
		LastSequence:         s.LastSeq,
		AckedAppSequence:     s.AckedAppSeq,
		MediaFlowing:         s.MediaFlowing,
	}
	if s.Failure != nil {
		p.Failure = failureToProto(s.Failure)
	}
	return p
}

// backendView is a session as a backend sees it: the TURN usernames and
// credentials only when asked for, and never for an ended session.
func backendView(s sessionmgr.Session, withCredentials bool) *vspb.Session {
	p := sessionToProto(s)
	if !withCredentials || s.Terminal() {
		stripCredentials(p.GetIceServers())
	}
	return p
}

// stripCredentials removes TURN usernames and credentials (the URLs stay).
func stripCredentials(servers []*vspb.IceServer) {
	for _, is := range servers {
		is.Username, is.Credential = "", ""
	}
}

// stripEventCredentials removes TURN credentials from an event for a
// backend's watch (refreshed ICE servers, a renegotiate's servers).
func stripEventCredentials(e *vspb.SessionEvent) {
	stripCredentials(e.GetIceServers().GetIceServers())
	stripCredentials(e.GetRenegotiate().GetIceServers())
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func failureToProto(f *sessionmgr.Failure) *vspb.Failure {
	if f == nil {
		return nil
	}
	return &vspb.Failure{Reason: failureReasonToProto[f.Reason], Message: f.Message}
}

func iceServersToProto(in []sessionmgr.IceServer) []*vspb.IceServer {
	out := make([]*vspb.IceServer, 0, len(in))
	for _, s := range in {
		out = append(out, &vspb.IceServer{Urls: append([]string(nil), s.URLs...), Username: s.Username, Credential: s.Credential})
	}
	return out
}

// Limits of an app's ICE candidate (the proto's).
const (
	maxCandidateLen = 1024
	maxSDPMidLen    = 64
	maxMLineIndex   = 63
	maxUfragLen     = 256
)

// candidateFromProto checks and converts an app's candidate.
func candidateFromProto(c *vspb.IceCandidate) (*sessionmgr.Candidate, error) {
	switch {
	case len(c.GetCandidate()) > maxCandidateLen:
		return nil, invalidField("candidate.candidate", fmt.Sprintf("%d bytes, at most %d", len(c.GetCandidate()), maxCandidateLen))
	case len(c.GetSdpMid()) > maxSDPMidLen:
		return nil, invalidField("candidate.sdp_mid", fmt.Sprintf("%d bytes, at most %d", len(c.GetSdpMid()), maxSDPMidLen))
	case c.SdpMlineIndex != nil && c.GetSdpMlineIndex() > maxMLineIndex:
		return nil, invalidField("candidate.sdp_mline_index", fmt.Sprintf("%d, want 0..%d", c.GetSdpMlineIndex(), maxMLineIndex))
	case len(c.GetUsernameFragment()) > maxUfragLen:
		return nil, invalidField("candidate.username_fragment", fmt.Sprintf("%d bytes, at most %d", len(c.GetUsernameFragment()), maxUfragLen))
	}
	out := &sessionmgr.Candidate{Candidate: c.GetCandidate(), SDPMid: c.GetSdpMid(), UsernameFragment: c.GetUsernameFragment()}
	if c.SdpMlineIndex != nil {
		i := uint16(c.GetSdpMlineIndex())
		out.SDPMLineIndex = &i
	}
	return out, nil
}

func candidateToProto(c *sessionmgr.Candidate) *vspb.IceCandidate {
	out := &vspb.IceCandidate{Candidate: c.Candidate, SdpMid: c.SDPMid, UsernameFragment: c.UsernameFragment}
	if c.SDPMLineIndex != nil {
		v := uint32(*c.SDPMLineIndex)
		out.SdpMlineIndex = &v
	}
	return out
}

func renegotiateToProto(r *sessionmgr.Renegotiate) *vspb.Renegotiate {
	out := &vspb.Renegotiate{Action: renegotiateActionToProto[r.Action], Reason: r.Reason}
	if r.IceServers != nil {
		out.IceServers = iceServersToProto(r.IceServers.Servers)
	}
	return out
}

func eventToProto(e sessionmgr.Event) *vspb.SessionEvent {
	p := &vspb.SessionEvent{
		Sequence:    e.Seq,
		Time:        timeToProto(e.Time),
		Type:        eventTypeToProto[e.Type],
		State:       stateToProto[e.State],
		Attempt:     uint32(e.Attempt),
		ClientId:    e.ClientID,
		Message:     e.Message,
		Failure:     failureToProto(e.Failure),
		CloseReason: closeToProto[e.Close],

		AckedAppSequence: e.AckedAppSeq,
	}
	switch {
	case e.Answer != "":
		p.Detail = &vspb.SessionEvent_Answer{Answer: &vspb.SessionDescription{Sdp: e.Answer}}
	case e.Candidate != nil:
		p.Detail = &vspb.SessionEvent_Candidate{Candidate: candidateToProto(e.Candidate)}
	case e.Renegotiate != nil:
		p.Detail = &vspb.SessionEvent_Renegotiate{Renegotiate: renegotiateToProto(e.Renegotiate)}
	case e.GoingAway != "":
		p.Detail = &vspb.SessionEvent_GoingAway{GoingAway: &vspb.GoingAway{Reason: e.GoingAway}}
	case e.ConnState != nil:
		p.Detail = &vspb.SessionEvent_ConnectionState{ConnectionState: &vspb.ConnectionStateReport{
			IceState: iceStateToProto[e.ConnState.ICE], PeerState: peerStateToProto[e.ConnState.Peer],
		}}
	case e.IceServers != nil:
		p.Detail = &vspb.SessionEvent_IceServers{IceServers: &vspb.IceServerUpdate{
			IceServers: iceServersToProto(e.IceServers.Servers), ExpireTime: timeToProto(e.IceServers.Expires),
		}}
	case e.Recovery != nil:
		r := &vspb.Recovery{Step: recoveryStepToProto[e.Recovery.Step], Learned: e.Recovery.Learned}
		if e.Type == sessionmgr.EventRecovered {
			r.Outage = durationpb.New(e.Recovery.Outage)
		}
		p.Detail = &vspb.SessionEvent_Recovery{Recovery: r}
	case e.Media != nil:
		p.Detail = &vspb.SessionEvent_Media{Media: mediaToProto(e.Media)}
	}
	return p
}

func mediaToProto(m *sessionmgr.MediaReport) *vspb.MediaReport {
	return &vspb.MediaReport{PeerConnectionId: m.PeerConnection, PacketsReceived: m.Packets, BytesReceived: m.Bytes, FramesDecoded: m.Frames}
}

// appMessage converts one app message (Connect or Signal); field is the
// oneof's path for errors.
type appOneof interface {
	GetAppSequence() uint64
	GetOffer() *vspb.SessionDescription
	GetCandidate() *vspb.IceCandidate
	GetStateReport() *vspb.ConnectionStateReport
	GetNetworkChanged() *vspb.NetworkChanged
	GetLeave() *vspb.Leave
	GetMediaReport() *vspb.MediaReport
}

// checkJoinSequence refuses a join with an app sequence: join opens the
// stream, it is not one of the app's numbered messages.
func checkJoinSequence(r *vspb.ConnectRequest) error {
	if r.GetAppSequence() != 0 {
		return invalidField("app_sequence", "join is not sequenced: send it with app_sequence 0")
	}
	return nil
}

// appMessage converts an app message and its app sequence (any number:
// how far ahead of the acknowledged one it may be is the session's rule).
func appMessage(m appOneof) (sessionmgr.AppMessage, error) {
	msg, err := appPayload(m)
	msg.AppSeq = m.GetAppSequence()
	return msg, err
}

func appPayload(m appOneof) (sessionmgr.AppMessage, error) {
	switch {
	case m.GetOffer() != nil:
		if m.GetOffer().GetSdp() == "" {
			return sessionmgr.AppMessage{}, invalidField("offer.sdp", "required")
		}
		return sessionmgr.AppMessage{Offer: m.GetOffer().GetSdp()}, nil
	case m.GetCandidate() != nil:
		c, err := candidateFromProto(m.GetCandidate())
		if err != nil {
			return sessionmgr.AppMessage{}, err
		}
		return sessionmgr.AppMessage{Candidate: c}, nil
	case m.GetStateReport() != nil:
		r := m.GetStateReport()
		ice, ok := iceStateFromProto[r.GetIceState()]
		if !ok {
			return sessionmgr.AppMessage{}, invalidField("state_report.ice_state", fmt.Sprintf("unknown value %d", r.GetIceState()))
		}
		peer, ok := peerStateFromProto[r.GetPeerState()]
		if !ok {
			return sessionmgr.AppMessage{}, invalidField("state_report.peer_state", fmt.Sprintf("unknown value %d", r.GetPeerState()))
		}
		return sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{
			ICE: ice, Peer: peer,
		}}, nil
	case m.GetNetworkChanged() != nil:
		d := m.GetNetworkChanged().GetDescription()
		if len(d) > 256 {
			return sessionmgr.AppMessage{}, invalidField("network_changed.description", "at most 256 bytes")
		}
		return sessionmgr.AppMessage{NetworkChanged: &d}, nil
	case m.GetLeave() != nil:
		return sessionmgr.AppMessage{Leave: true}, nil
	case m.GetMediaReport() != nil:
		r := m.GetMediaReport()
		if r.GetPeerConnectionId() == 0 && (r.GetPacketsReceived() != 0 || r.GetBytesReceived() != 0 || r.GetFramesDecoded() != 0) {
			return sessionmgr.AppMessage{}, invalidField("media_report.peer_connection_id", "0 means no peer connection, but the counters are not zero")
		}
		return sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{
			PeerConnection: r.GetPeerConnectionId(), Packets: r.GetPacketsReceived(), Bytes: r.GetBytesReceived(), Frames: r.GetFramesDecoded(),
		}}, nil
	}
	return sessionmgr.AppMessage{}, invalidField("message", "one of offer, candidate, state_report, network_changed, leave, media_report is required")
}
