package viewerclient

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/pion/webrtc/v4"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// newPeer builds a peer connection with the current ICE servers (closing
// the previous one, if any: NEW_PEER_CONNECTION) and makes its offer.
func (r *run) newPeer(replace bool) error {
	if old := r.pc; old != nil {
		r.pc = nil
		r.c.setPC(nil)
		if err := old.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			r.log.Debug("close previous peer connection", "error", err)
		}
	}
	r.refreshInterfaces()
	cfg := webrtc.Configuration{ICEServers: r.ice}
	if r.c.cfg.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := r.c.api.NewPeerConnection(cfg)
	if err != nil {
		return fmt.Errorf("viewerclient: new peer connection: %w", err)
	}
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		_ = pc.Close()
		return fmt.Errorf("viewerclient: add video transceiver: %w", err)
	}
	// Callbacks only hand off; Run's goroutine does the work.
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand == nil {
			return // end of gathering: nothing to send
		}
		init := cand.ToJSON()
		r.pion.push(pionEvent{pc: pc, cand: &init, gen: r.gen.Load()})
	})
	pc.OnICEConnectionStateChange(func(webrtc.ICEConnectionState) { r.pion.push(pionEvent{pc: pc}) })
	pc.OnConnectionStateChange(func(webrtc.PeerConnectionState) { r.pion.push(pionEvent{pc: pc}) })
	var id atomic.Uint32 // set below, before any track can arrive
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) { r.c.readTrack(tr, id.Load()) })
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(func(p *webrtc.ICECandidatePair) { r.c.onSelectedPair(pc, p) })

	r.pc = pc
	r.reported = nil
	id.Store(r.c.setPC(pc))
	if replace {
		r.c.count(func(s *Stats) { s.NewPeerConnections++ })
	}
	r.log.Info("new peer connection", "peer_connection_id", id.Load(), "ice_servers", len(r.ice))
	return r.offer(false)
}

// refreshInterfaces re-reads the machine's interfaces before a gathering
// (HostNetwork), so that an ICE restart or a new peer connection gathers
// on the interfaces as they are now, watched or not.
func (r *run) refreshInterfaces() {
	if r.c.host == nil {
		return
	}
	if err := r.c.host.refresh(); err != nil {
		r.log.Warn("re-reading the interfaces", "error", err)
	}
}

// offer makes an offer (an ICE-restart one when restart) on the current
// peer connection, applies it, and queues it. Candidates of older offers
// still queued are dropped.
func (r *run) offer(restart bool) error {
	gen := r.gen.Add(1)
	r.out.removeQueued(func(m *outMsg) bool { return m.kind == kindCandidate && m.gen < gen })
	var opts *webrtc.OfferOptions
	if restart {
		opts = &webrtc.OfferOptions{ICERestart: true}
	}
	o, err := r.pc.CreateOffer(opts)
	if err != nil {
		return fmt.Errorf("viewerclient: create offer: %w", err)
	}
	if err := r.pc.SetLocalDescription(o); err != nil {
		return fmt.Errorf("viewerclient: set local description: %w", err)
	}
	r.awaitingAnswer = true
	r.remote = nil
	if restart {
		r.c.forgetPair() // the selected pair is about to change
	}
	r.out.push(&outMsg{kind: kindOffer, text: o.SDP})
	r.c.count(func(s *Stats) {
		s.OffersSent++
		if restart {
			s.ICERestarts++
		}
	})
	r.log.Info("offer queued", "ice_restart", restart, "address", r.c.address())
	return nil
}

// onRenegotiate follows a renegotiate: ICE_RESTART on the same peer
// connection (with fresh ICE servers when given), or NEW_PEER_CONNECTION.
func (r *run) onRenegotiate(rn *vspb.Renegotiate) error {
	if s := rn.GetIceServers(); len(s) > 0 {
		r.ice = iceServersFromProto(s)
	}
	r.log.Info("renegotiate", "action", rn.GetAction().String(), "reason", rn.GetReason(), "ice_servers", len(rn.GetIceServers()))
	switch rn.GetAction() {
	case vspb.Renegotiate_ACTION_ICE_RESTART:
		if r.pc == nil {
			return r.newPeer(true)
		}
		r.refreshInterfaces()
		cfg := r.pc.GetConfiguration()
		cfg.ICEServers = r.ice
		if err := r.pc.SetConfiguration(cfg); err != nil {
			r.log.Warn("apply ICE servers before the restart", "error", err)
		}
		if err := r.offer(true); err != nil {
			r.log.Warn("ICE restart failed; building a new peer connection instead", "error", err)
			return r.newPeer(true)
		}
		return nil
	case vspb.Renegotiate_ACTION_NEW_PEER_CONNECTION:
		return r.newPeer(true)
	}
	r.log.Warn("renegotiate with an unknown action ignored", "action", rn.GetAction().String())
	return nil
}

// onAnswer applies the camera's answer to the outstanding offer, then the
// camera candidates that arrived before it.
func (r *run) onAnswer(sdp string) {
	if r.pc == nil || !r.awaitingAnswer {
		r.log.Warn("answer without an outstanding offer ignored")
		return
	}
	r.awaitingAnswer = false
	if err := r.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		r.log.Warn("apply answer", "error", err)
		return
	}
	r.log.Info("answer applied")
	for _, c := range r.remote {
		r.addRemote(c)
	}
	r.remote = nil
}

// onRemoteCandidate applies a camera candidate, or holds it until the
// answer to the outstanding offer is applied.
func (r *run) onRemoteCandidate(p *vspb.IceCandidate) {
	c := candidateFromProto(p)
	if r.pc == nil || r.awaitingAnswer {
		r.remote = append(r.remote, c)
		return
	}
	r.addRemote(c)
}

func (r *run) addRemote(c webrtc.ICECandidateInit) {
	if c.Candidate == "" {
		return // end of candidates
	}
	if err := r.pc.AddICECandidate(c); err != nil {
		r.log.Debug("add remote candidate", "error", err)
	}
}

// onPion handles the pion callbacks queued so far: local candidates of the
// current offer are queued for the service; a state change of the current
// peer connection becomes a ConnectionStateReport when either state
// differs from the last one reported.
func (r *run) onPion() {
	for _, ev := range r.pion.drain() {
		if ev.pc != r.pc || r.pc == nil {
			continue // a closed peer connection
		}
		if ev.cand != nil {
			if ev.gen == r.gen.Load() {
				r.out.push(&outMsg{kind: kindCandidate, gen: ev.gen, cand: *ev.cand})
			}
			continue
		}
		rep := &vspb.ConnectionStateReport{
			IceState:  iceStateToProto(r.pc.ICEConnectionState()),
			PeerState: peerStateToProto(r.pc.ConnectionState()),
		}
		if r.reported != nil && r.reported.GetIceState() == rep.GetIceState() && r.reported.GetPeerState() == rep.GetPeerState() {
			continue
		}
		r.reported = rep
		r.c.count(func(s *Stats) { s.ICEState, s.PeerState = rep.GetIceState(), rep.GetPeerState() })
		r.log.Info("connection state", "ice", r.pc.ICEConnectionState().String(), "peer", r.pc.ConnectionState().String())
		r.out.push(&outMsg{kind: kindStateReport, state: rep})
	}
}
