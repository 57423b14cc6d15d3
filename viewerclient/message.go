package viewerclient

import (
	"time"

	"github.com/pion/webrtc/v4"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// msgKind is the kind of an app -> service message.
type msgKind int

const (
	kindOffer msgKind = iota + 1
	kindCandidate
	kindStateReport
	kindNetworkChanged
	kindLeave
	kindMediaReport
)

func (k msgKind) String() string {
	switch k {
	case kindOffer:
		return "offer"
	case kindCandidate:
		return "candidate"
	case kindStateReport:
		return "state_report"
	case kindNetworkChanged:
		return "network_changed"
	case kindLeave:
		return "leave"
	case kindMediaReport:
		return "media_report"
	}
	return "unknown"
}

// outMsg is one app -> service message in the outbox.
type outMsg struct {
	kind msgKind
	// gen is the offer generation a candidate belongs to; candidates of an
	// older offer are dropped from the outbox when a new offer is made
	// (unless already numbered).
	gen   uint64
	text  string // offer SDP, or network_changed description
	cand  webrtc.ICECandidateInit
	state *vspb.ConnectionStateReport
	media *vspb.MediaReport

	// Set and read under the outbox's lock:
	seq     uint64    // app_sequence; 0 until a sender takes it
	sentOn  uint64    // the stream it was last sent on (0: none)
	sentAt  time.Time // when
	calling bool      // a Signal call for it is out: its reply settles it
	acked   bool      // acknowledged while its call was out
	// done, if set, gets the outcome once: nil when the service handled
	// it (acknowledged, or its Signal call succeeded), the Signal call's
	// error when refused, or ErrStopped when Run ended first.
	done chan error
}

// finishLocked reports m's outcome to its waiter, once. The outbox's lock
// must be held (or m not shared).
func (m *outMsg) finishLocked(err error) {
	if m.done != nil {
		m.done <- err
		m.done = nil
	}
}

func (m *outMsg) connectRequest() *vspb.ConnectRequest {
	r := &vspb.ConnectRequest{AppSequence: m.seq}
	switch m.kind {
	case kindOffer:
		r.Message = &vspb.ConnectRequest_Offer{Offer: &vspb.SessionDescription{Sdp: m.text}}
	case kindCandidate:
		r.Message = &vspb.ConnectRequest_Candidate{Candidate: candidateToProto(m.cand)}
	case kindStateReport:
		r.Message = &vspb.ConnectRequest_StateReport{StateReport: m.state}
	case kindNetworkChanged:
		r.Message = &vspb.ConnectRequest_NetworkChanged{NetworkChanged: &vspb.NetworkChanged{Description: m.text}}
	case kindLeave:
		r.Message = &vspb.ConnectRequest_Leave{Leave: &vspb.Leave{}}
	case kindMediaReport:
		r.Message = &vspb.ConnectRequest_MediaReport{MediaReport: m.media}
	}
	return r
}

func (m *outMsg) signalRequest(name string) *vspb.SignalRequest {
	r := &vspb.SignalRequest{Name: name, AppSequence: m.seq}
	switch m.kind {
	case kindOffer:
		r.Message = &vspb.SignalRequest_Offer{Offer: &vspb.SessionDescription{Sdp: m.text}}
	case kindCandidate:
		r.Message = &vspb.SignalRequest_Candidate{Candidate: candidateToProto(m.cand)}
	case kindStateReport:
		r.Message = &vspb.SignalRequest_StateReport{StateReport: m.state}
	case kindNetworkChanged:
		r.Message = &vspb.SignalRequest_NetworkChanged{NetworkChanged: &vspb.NetworkChanged{Description: m.text}}
	case kindLeave:
		r.Message = &vspb.SignalRequest_Leave{Leave: &vspb.Leave{}}
	case kindMediaReport:
		r.Message = &vspb.SignalRequest_MediaReport{MediaReport: m.media}
	}
	return r
}

func candidateToProto(c webrtc.ICECandidateInit) *vspb.IceCandidate {
	p := &vspb.IceCandidate{Candidate: c.Candidate}
	if c.SDPMid != nil {
		p.SdpMid = *c.SDPMid
	}
	if c.SDPMLineIndex != nil {
		i := uint32(*c.SDPMLineIndex)
		p.SdpMlineIndex = &i
	}
	if c.UsernameFragment != nil {
		p.UsernameFragment = *c.UsernameFragment
	}
	return p
}

func candidateFromProto(p *vspb.IceCandidate) webrtc.ICECandidateInit {
	c := webrtc.ICECandidateInit{Candidate: p.GetCandidate()}
	if mid := p.GetSdpMid(); mid != "" {
		c.SDPMid = &mid
	}
	if p.SdpMlineIndex != nil && p.GetSdpMlineIndex() <= 0xffff {
		i := uint16(p.GetSdpMlineIndex())
		c.SDPMLineIndex = &i
	}
	if u := p.GetUsernameFragment(); u != "" {
		c.UsernameFragment = &u
	}
	return c
}

func iceServersFromProto(in []*vspb.IceServer) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(in))
	for _, s := range in {
		out = append(out, webrtc.ICEServer{
			URLs:           append([]string(nil), s.GetUrls()...),
			Username:       s.GetUsername(),
			Credential:     s.GetCredential(),
			CredentialType: webrtc.ICECredentialTypePassword,
		})
	}
	return out
}

func iceStateToProto(s webrtc.ICEConnectionState) vspb.IceConnectionState {
	switch s {
	case webrtc.ICEConnectionStateNew:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_NEW
	case webrtc.ICEConnectionStateChecking:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_CHECKING
	case webrtc.ICEConnectionStateConnected:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_CONNECTED
	case webrtc.ICEConnectionStateCompleted:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_COMPLETED
	case webrtc.ICEConnectionStateDisconnected:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_DISCONNECTED
	case webrtc.ICEConnectionStateFailed:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_FAILED
	case webrtc.ICEConnectionStateClosed:
		return vspb.IceConnectionState_ICE_CONNECTION_STATE_CLOSED
	}
	return vspb.IceConnectionState_ICE_CONNECTION_STATE_UNSPECIFIED
}

func peerStateToProto(s webrtc.PeerConnectionState) vspb.PeerConnectionState {
	switch s {
	case webrtc.PeerConnectionStateNew:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_NEW
	case webrtc.PeerConnectionStateConnecting:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTING
	case webrtc.PeerConnectionStateConnected:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_CONNECTED
	case webrtc.PeerConnectionStateDisconnected:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_DISCONNECTED
	case webrtc.PeerConnectionStateFailed:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_FAILED
	case webrtc.PeerConnectionStateClosed:
		return vspb.PeerConnectionState_PEER_CONNECTION_STATE_CLOSED
	}
	return vspb.PeerConnectionState_PEER_CONNECTION_STATE_UNSPECIFIED
}
