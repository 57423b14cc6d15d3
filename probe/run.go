package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/acme/viewersession/sessionmgr"
)

// run is one probe's peer connection and signaling. Its run method's
// goroutine does all the work; pion's callbacks only hand off (the local
// candidates, the first packet, the selected pair).
type run struct {
	log *slog.Logger
	res Result

	// mu guards the fields below; pion's callbacks write them.
	mu     sync.Mutex
	local  []webrtc.ICECandidateInit // gathered, not sent yet
	pair   *webrtc.ICECandidatePair  // the selected pair, latest
	closed bool                      // the peer connection is closing: no new readers
	// wake tells run's loop that local candidates are queued; first
	// carries the first video packet's arrival.
	wake  chan struct{}
	first chan firstPacket
	// readers counts the track readers (pion's OnTrack goroutines).
	readers sync.WaitGroup
}

type firstPacket struct {
	at    time.Time
	codec string
}

// run connects, offers, and waits for the answer and the first video
// packet, until ctx ends. It fills r.res as it goes.
func (r *run) run(ctx context.Context, api *webrtc.API, slot *sessionmgr.ProbeSlot) error {
	r.wake = make(chan struct{}, 1)
	r.first = make(chan firstPacket, 1)

	pc, err := api.NewPeerConnection(webrtc.Configuration{ICEServers: iceServers(slot.IceServers)})
	if err != nil {
		return fmt.Errorf("probe: new peer connection: %w", err)
	}
	defer r.close(pc)
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		return fmt.Errorf("probe: add video transceiver: %w", err)
	}
	pc.OnICECandidate(r.onCandidate)
	pc.OnTrack(r.onTrack)
	pc.SCTP().Transport().ICETransport().OnSelectedCandidatePairChange(r.onPair)

	dialed := time.Now()
	conn, err := slot.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	r.res.Connect = time.Since(dialed)

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("probe: create offer: %w", err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("probe: set local description: %w", err)
	}
	if err := conn.SendOffer(ctx, offer.SDP); err != nil {
		return err
	}
	sent := time.Now()
	r.log.Debug("probe: offer sent", "connect", r.res.Connect)

	var held []sessionmgr.Candidate // the camera's, before its answer
	events := conn.Events()
	for {
		select {
		case <-ctx.Done():
			r.res.Path = r.path(pc)
			return ctx.Err()
		case <-r.wake:
			for _, c := range r.takeLocal() {
				if err := conn.SendCandidate(ctx, candidateOf(c)); err != nil {
					return err
				}
			}
		case f := <-r.first:
			r.res.Media, r.res.FirstPacket, r.res.Codec = true, f.at.Sub(sent), f.codec
			r.res.Path = r.path(pc)
			return nil
		case ev, ok := <-events:
			if !ok {
				return fmt.Errorf("probe: signaling connection ended: %w", sessionmgr.ErrUnavailable)
			}
			switch ev.Kind {
			case sessionmgr.SignalAnswer:
				if r.res.Answered {
					continue // a repeat
				}
				r.res.Answered, r.res.Answer = true, time.Since(sent)
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ev.SDP}); err != nil {
					return fmt.Errorf("probe: apply the camera's answer: %w", err)
				}
				r.log.Debug("probe: answer", "latency", r.res.Answer)
				for _, c := range held {
					r.addRemote(pc, c)
				}
				held = nil
			case sessionmgr.SignalCandidate:
				if !r.res.Answered {
					held = append(held, ev.Candidate)
					continue
				}
				r.addRemote(pc, ev.Candidate)
			case sessionmgr.SignalRejected:
				return fmt.Errorf("%w: %s", ErrRejected, ev.Detail)
			case sessionmgr.SignalClosed:
				if ev.Err != nil {
					return ev.Err
				}
				return fmt.Errorf("probe: signaling connection ended: %w", sessionmgr.ErrUnavailable)
			}
		}
	}
}

// onCandidate queues a gathered candidate for run's loop (pion callback).
func (r *run) onCandidate(c *webrtc.ICECandidate) {
	if c == nil {
		return // gathering complete: nothing to send
	}
	r.mu.Lock()
	r.local = append(r.local, c.ToJSON())
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *run) takeLocal() []webrtc.ICECandidateInit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.local
	r.local = nil
	return out
}

// onTrack reads a video track's first packet and hands its arrival to
// run's loop (pion callback, on a goroutine of its own that close waits
// for: the read ends when the peer connection closes).
func (r *run) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	if tr.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.readers.Add(1)
	r.mu.Unlock()
	defer r.readers.Done()
	if _, _, err := tr.ReadRTP(); err != nil {
		return
	}
	select {
	case r.first <- firstPacket{at: time.Now(), codec: tr.Codec().MimeType}:
	default: // a second track's: the first one told
	}
}

// onPair records the selected candidate pair (pion callback; pion's
// GetSelectedCandidatePair races with the transport's start).
func (r *run) onPair(p *webrtc.ICECandidatePair) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pair = p
}

// path is the selected candidate pair as a Path (zero when none).
func (r *run) path(pc *webrtc.PeerConnection) Path {
	r.mu.Lock()
	pair := r.pair
	r.mu.Unlock()
	if pair == nil {
		p, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || p == nil {
			return Path{}
		}
		pair = p
	}
	if pair.Local == nil || pair.Remote == nil {
		return Path{}
	}
	out := Path{
		Local:    CandidateType(pair.Local.Typ.String()),
		Remote:   CandidateType(pair.Remote.Typ.String()),
		Protocol: pair.Local.Protocol.String(),
	}
	if pair.Local.Typ == webrtc.ICECandidateTypeRelay {
		out.RelayProtocol = relayProtocol(pc, pair.Local)
	}
	return out
}

// relayProtocol is how the relay candidate local reaches its TURN server,
// from the peer connection's stats ("" when they do not say).
func relayProtocol(pc *webrtc.PeerConnection, local *webrtc.ICECandidate) string {
	for _, s := range pc.GetStats() {
		c, ok := s.(webrtc.ICECandidateStats)
		if ok && c.Type == webrtc.StatsTypeLocalCandidate && c.IP == local.Address && uint16(c.Port) == local.Port {
			return strings.ToLower(c.RelayProtocol)
		}
	}
	return ""
}

func (r *run) addRemote(pc *webrtc.PeerConnection, c sessionmgr.Candidate) {
	if c.Candidate == "" {
		return // end of candidates
	}
	init := webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMLineIndex: c.SDPMLineIndex}
	if c.SDPMid != "" {
		init.SDPMid = &c.SDPMid
	}
	if c.UsernameFragment != "" {
		init.UsernameFragment = &c.UsernameFragment
	}
	if err := pc.AddICECandidate(init); err != nil {
		r.log.Debug("probe: add the camera's candidate", "error", err)
	}
}

// close closes the peer connection and waits for the track readers.
func (r *run) close(pc *webrtc.PeerConnection) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if err := pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
		r.log.Debug("probe: close peer connection", "error", err)
	}
	r.readers.Wait()
}

func candidateOf(c webrtc.ICECandidateInit) sessionmgr.Candidate {
	out := sessionmgr.Candidate{Candidate: c.Candidate, SDPMLineIndex: c.SDPMLineIndex}
	if c.SDPMid != nil {
		out.SDPMid = *c.SDPMid
	}
	if c.UsernameFragment != nil {
		out.UsernameFragment = *c.UsernameFragment
	}
	return out
}

func iceServers(s sessionmgr.IceServers) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(s.Servers))
	for _, srv := range s.Servers {
		out = append(out, webrtc.ICEServer{URLs: srv.URLs, Username: srv.Username, Credential: srv.Credential})
	}
	return out
}
