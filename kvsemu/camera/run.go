package camera

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// eventKind says what an event carries.
type eventKind int

const (
	_ eventKind = iota
	// evOffer is an SDP offer just read from the socket.
	evOffer
	// evDelayedOffer is an admitted offer whose AnswerDelay has passed.
	evDelayedOffer
	// evCandidate is a viewer's trickled ICE candidate.
	evCandidate
)

// event is one input to the event loop.
type event struct {
	kind     eventKind
	clientID string
	offer    webrtc.SessionDescription
	cand     webrtc.ICECandidateInit
	received time.Time
}

// maxPending bounds the early candidates kept per client id.
const maxPending = 64

// pendingQueue holds ICE candidates that arrived before their viewer's offer.
type pendingQueue struct {
	first time.Time
	cands []webrtc.ICECandidateInit
}

// expired reports whether the queue outlived ttl at now.
func (q *pendingQueue) expired(now time.Time, ttl time.Duration) bool {
	return now.Sub(q.first) > ttl
}

// run is the state of one Camera.Run call. The sessions and pending maps
// belong to the event loop goroutine (loop); the rest is set before the
// goroutines start and is safe to share.
type run struct {
	c     *Camera
	log   *slog.Logger
	api   *webrtc.API
	track *webrtc.TrackLocalStaticSample
	// events feeds the event loop from the socket reader and delay timers.
	events chan event
	// out feeds the socket writer from the loop and pion callbacks; it
	// outlives signaling connections, so frames queued while reconnecting
	// are sent on the next connection.
	out chan []byte
	// wg tracks stream, signal and delayed-offer goroutines.
	wg sync.WaitGroup
	// sessWG tracks per-session RTCP readers; they end when their peer
	// connection closes.
	sessWG sync.WaitGroup
	// wake asks the loop for a cleanup pass now (buffered 1; a pending wake
	// stands for any number). Peer connection state callbacks send to it,
	// as the C sample's broadcast its cleanup loop's condition variable.
	wake chan struct{}

	sessions map[string]*session
	pending  map[string]*pendingQueue
}

// newRun prepares the pion API and the shared video track.
func newRun(c *Camera) (*run, error) {
	api, err := c.newAPI()
	if err != nil {
		return nil, err
	}
	track, err := webrtc.NewTrackLocalStaticSample(
		webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "video", "kvsemu-camera")
	if err != nil {
		return nil, fmt.Errorf("video track: %w", err)
	}
	return &run{
		c:        c,
		log:      c.cfg.Logger.With("mode", string(c.cfg.Mode)),
		api:      api,
		track:    track,
		events:   make(chan event, 64),
		wake:     make(chan struct{}, 1),
		out:      make(chan []byte, outQueue),
		sessions: make(map[string]*session),
		pending:  make(map[string]*pendingQueue),
	}, nil
}

// loop is the event loop: it owns the sessions and handles offers,
// candidates and the cleanup passes until ctx ends. A pass runs
// CleanupPeriod after the previous one, or sooner when woken: the C
// sample's sessionCleanupWait waits on a condition variable with that
// timeout, and every peer connection state change signals it.
func (r *run) loop(ctx context.Context) {
	t := time.NewTimer(r.c.cfg.CleanupPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.events:
			r.handle(ctx, ev)
			continue
		case <-t.C:
		case <-r.wake:
		}
		r.cleanup()
		t.Reset(r.c.cfg.CleanupPeriod)
	}
}

// wakeCleanup asks the loop for a cleanup pass without blocking. It is safe
// to call from any goroutine, also after Run returned.
func (r *run) wakeCleanup() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// handle dispatches one event.
func (r *run) handle(ctx context.Context, ev event) {
	switch ev.kind {
	case evOffer:
		ok, delay, o := r.c.admitOffer()
		if !ok {
			r.decided(ev.clientID, o, false)
			return
		}
		if wait := ev.received.Add(delay).Sub(r.c.now()); wait > 0 {
			r.log.Info("delaying answer", "client_id", ev.clientID, "delay", delay)
			r.wg.Go(func() { r.delay(ctx, ev, wait) })
			return
		}
		r.offer(ev)
	case evDelayedOffer:
		r.offer(ev)
	case evCandidate:
		r.candidate(ev)
	}
}

// delay hands ev back to the loop after wait, unless ctx ends first.
func (r *run) delay(ctx context.Context, ev event, wait time.Duration) {
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	ev.kind = evDelayedOffer
	select {
	case r.events <- ev:
	case <-ctx.Done():
	}
}

// offer applies the mode's re-offer rule and the session cap, then answers.
// An offer from a client id with a session (ICE restart or not) is:
//   - CSample: ignored while the session exists; only a cleanup pass
//     removes a dead one.
//   - JSSample: answered from a new peer connection after the old one is
//     closed.
//   - RestartCapable: an ICE restart is applied to the existing peer
//     connection; anything else is answered as in JSSample.
func (r *run) offer(ev event) {
	id := ev.clientID
	log := r.log.With("client_id", id)
	s := r.sessions[id]
	restart := s != nil && isICERestart(remoteSDP(s.pc), ev.offer.SDP)
	switch {
	case s != nil && r.c.cfg.Mode == CSample:
		log.Info("session still active, ignore new offer that has the same client id", "ice_restart", restart)
		r.decided(id, outcomeLiveSession, restart)
		return
	case restart && r.c.cfg.Mode == RestartCapable:
		err := r.answer(s, ev.offer)
		if err == nil {
			r.decided(id, outcomeRestarted, restart)
			return
		}
		log.Warn("ICE restart on the live peer connection failed, replacing it", "err", err)
	case s == nil && len(r.sessions) >= r.c.cfg.MaxSessions:
		log.Warn("too many sessions, ignoring offer", "max_sessions", r.c.cfg.MaxSessions)
		r.decided(id, outcomeTooManySessions, restart)
		return
	}
	o := outcomeAnswered
	if s != nil {
		o = outcomeReplaced
		log.Info("closing the client's peer connection, answering from a new one", "ice_restart", restart)
		r.dropSession(s)
	}
	if err := r.startSession(id, ev.offer, log); err != nil {
		log.Warn("cannot answer offer", "err", err)
		o = outcomeFailed
	}
	r.decided(id, o, restart)
}

// startSession creates a peer connection for client id, with a DTLS
// certificate of its own, answers offer with it and registers it.
func (r *run) startSession(id string, offer webrtc.SessionDescription, log *slog.Logger) error {
	cert, err := newCertificate()
	if err != nil {
		return err
	}
	pc, err := r.api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		return fmt.Errorf("new peer connection: %w", err)
	}
	s := &session{id: id, pc: pc, log: log, send: r.send}
	pc.OnICECandidate(s.onCandidate)
	mode := r.c.cfg.Mode
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		log.Info("peer connection state", "state", st.String())
		if isDead(mode, st) {
			s.terminated.Store(true)
		}
		r.wakeCleanup()
	})
	sender, err := pc.AddTrack(r.track)
	if err != nil {
		s.close()
		return fmt.Errorf("add track: %w", err)
	}
	r.sessWG.Go(func() { drainRTCP(sender) })
	if err := r.answer(s, offer); err != nil {
		s.close()
		return err
	}
	r.sessions[id] = s
	r.c.count(func(st *Stats) { st.Sessions = len(r.sessions) })
	return nil
}

// isDead reports whether a peer connection that reached st is a dead
// session for mode. The C sample marks its session for removal on failed,
// closed or disconnected, and the mark sticks even if the connection
// recovers; the other modes drop a connection once it failed or closed.
func isDead(mode Mode, st webrtc.PeerConnectionState) bool {
	switch st {
	case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
		return true
	case webrtc.PeerConnectionStateDisconnected:
		return mode == CSample
	default:
		return false
	}
}

// newCertificate makes a fresh DTLS certificate (ECDSA P-256), so that
// every peer connection, a replacing one included, has a fingerprint of
// its own, as a browser's and the KVS C SDK's do.
func newCertificate() (webrtc.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("certificate key: %w", err)
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return webrtc.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	return *cert, nil
}

// answer applies offer to s's peer connection (a first offer or an ICE
// restart), adds the client's early candidates, and queues the answer;
// candidates gathered meanwhile are held until the answer is queued so the
// viewer sees the answer first.
func (r *run) answer(s *session, offer webrtc.SessionDescription) error {
	s.holdCandidates()
	if err := s.pc.SetRemoteDescription(offer); err != nil {
		return fmt.Errorf("set remote description: %w", err)
	}
	if q := r.pending[s.id]; q != nil {
		delete(r.pending, s.id)
		if !q.expired(r.c.now(), r.c.cfg.PendingCandidateTTL) {
			for _, c := range q.cands {
				if err := s.pc.AddICECandidate(c); err != nil {
					s.log.Debug("add early candidate", "err", err)
				}
			}
		}
	}
	ans, err := s.pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("create answer: %w", err)
	}
	if err := s.pc.SetLocalDescription(ans); err != nil {
		return fmt.Errorf("set local description: %w", err)
	}
	s.log.Debug("answer", "sdp", ans.SDP)
	if r.send(encodeAnswer(s.id, ans.SDP)) {
		r.c.count(func(st *Stats) { st.AnswersSent++ })
	}
	s.releaseCandidates()
	return nil
}

// candidate adds a viewer's candidate to its session, or queues it until
// the viewer's offer arrives.
func (r *run) candidate(ev event) {
	if s := r.sessions[ev.clientID]; s != nil {
		if err := s.pc.AddICECandidate(ev.cand); err != nil {
			s.log.Debug("add candidate", "err", err)
		}
		return
	}
	q := r.pending[ev.clientID]
	if q == nil || q.expired(ev.received, r.c.cfg.PendingCandidateTTL) {
		q = &pendingQueue{first: ev.received}
		r.pending[ev.clientID] = q
	}
	if len(q.cands) < maxPending {
		q.cands = append(q.cands, ev.cand)
	}
}

// cleanup is one cleanup pass: it drops dead sessions (see isDead) and
// early candidates older than PendingCandidateTTL. It is the only place a
// dead session is removed.
func (r *run) cleanup() {
	for _, s := range r.sessions {
		if s.terminated.Load() {
			s.log.Info("cleaning up dead session", "state", s.pc.ConnectionState().String())
			r.dropSession(s)
		}
	}
	now := r.c.now()
	for id, q := range r.pending {
		if q.expired(now, r.c.cfg.PendingCandidateTTL) {
			r.log.Debug("dropping early candidates", "client_id", id, "count", len(q.cands))
			delete(r.pending, id)
		}
	}
	if h := r.c.hooks.cleanupDone; h != nil {
		h()
	}
}

// dropSession closes s and forgets it.
func (r *run) dropSession(s *session) {
	delete(r.sessions, s.id)
	r.c.count(func(st *Stats) { st.Sessions = len(r.sessions) })
	s.close()
	if h := r.c.hooks.sessionDropped; h != nil {
		h(s.id, s.pc.ConnectionState())
	}
}

// closeAll closes every session; Run calls it after the loop ended.
func (r *run) closeAll() {
	for _, s := range r.sessions {
		r.dropSession(s)
	}
}

// send queues a frame for the socket writer without blocking; it reports
// false and drops the frame when the queue is full.
func (r *run) send(frame []byte) bool {
	select {
	case r.out <- frame:
		return true
	default:
		r.log.Warn("signaling send queue full, dropping frame")
		return false
	}
}

// decided records what became of an offer; iceRestart says whether it was
// an ICE restart of the client's live session.
func (r *run) decided(id string, o outcome, iceRestart bool) {
	if !o.answered() {
		r.c.count(func(st *Stats) { st.IgnoredOffers++ })
	}
	r.log.Info("offer handled", "client_id", id, "outcome", o.String(), "ice_restart", iceRestart)
	if h := r.c.hooks.offerDone; h != nil {
		h(id, o)
	}
}

// remoteSDP returns pc's remote description SDP, or "".
func remoteSDP(pc *webrtc.PeerConnection) string {
	if d := pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}

// drainRTCP reads (and so lets pion process) the RTCP a viewer sends for
// the video track, until the peer connection closes.
func drainRTCP(sender *webrtc.RTPSender) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := sender.Read(buf); err != nil {
			return
		}
	}
}
