package thinclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Stream retry policy: a stream that ends without a new event counts as a
// failure; failures in a row back off exponentially and give up after
// maxStreamFailures.
const (
	maxStreamFailures = 10
	firstBackoff      = 25 * time.Millisecond
	maxBackoff        = 2 * time.Second
	maxSignalAttempts = 8
	// signalDrain bounds how long a run that ended lets the Signal call in
	// flight finish (a leave whose CLOSED arrived before its reply).
	signalDrain = 5 * time.Second
)

// run is the state of one Run. Its fields are touched only by Run's
// goroutine, except out and pion (queues) and gen (atomic), which pion
// callbacks and senders use.
type run struct {
	c    *Client
	log  *slog.Logger
	out  *queue[outMsg]    // app -> service, drained by the one sender
	pion *queue[pionEvent] // from pion callbacks
	inC  chan inbound      // from the current stream's receiver
	wg   sync.WaitGroup    // receivers and the Signal sender

	st       *stream // the current stream, nil between streams
	streams  int     // streams opened so far
	failures int     // streams in a row that ended without a new event
	retryT   *time.Timer
	retryC   <-chan time.Time // non-nil while backing off
	catchUp  bool             // the next stream is a WatchSession catch-up
	goAway   bool             // reopen the stream after this message

	signalJoined bool               // Signal mode: the app is attached
	attachSeen   bool               // Signal mode: our APP_ATTACHED arrived
	signalStop   chan struct{}      // closed: the Signal sender stops after its call in flight
	signalCancel context.CancelFunc // cancels the Signal sender's call in flight
	signalDone   chan struct{}      // closed when the Signal sender has returned

	pc             *webrtc.PeerConnection
	gen            atomic.Uint64 // offer generation, for candidates
	ice            []webrtc.ICEServer
	awaitingAnswer bool
	remote         []webrtc.ICECandidateInit // camera candidates before the answer
	reported       *vspb.ConnectionStateReport
	expect         string // Connect: the event detail the last actionable message announced
	terminal       *vspb.SessionEvent
}

// stream is one Connect or WatchSession stream.
type stream struct {
	watch  bool
	after  uint64 // the resume point it was opened with
	cancel context.CancelFunc
	joined chan struct{} // Connect: closed when `joined` arrived; the sender starts
	done   chan struct{} // closed when the receiver has ended; err says why
	err    error
	sender sync.WaitGroup

	gotJoined  bool // Run's goroutine only
	progressed bool // a new event arrived on it (Run's goroutine only)
}

// inbound is one message from a stream.
type inbound struct {
	s       *stream
	connect *vspb.ConnectResponse // Connect
	event   *vspb.SessionEvent    // WatchSession
}

// pionEvent is a pion callback handed to Run's goroutine: a local candidate
// (cand set) or a state change (cand nil) of pc.
type pionEvent struct {
	pc   *webrtc.PeerConnection
	cand *webrtc.ICECandidateInit
	gen  uint64
}

// Run drives the session until it ends: it joins (Connect) or watches
// (Signal), builds the peer connection with the session's ICE servers (a
// receive-only video transceiver), sends the offer, trickles candidates,
// applies the answer and the camera's candidates, reports ICE and
// peer-connection state changes, follows renegotiate (ICE_RESTART: an
// ICE-restart offer on the same peer connection; NEW_PEER_CONNECTION: a new
// one with the given ICE servers) and going-away, and resumes a dropped
// stream after the last sequence it saw.
//
// It returns nil when the session ends CLOSED, a *FailedError (matching
// ErrSessionFailed, carrying the failure's gRPC status) when it ends
// FAILED, ctx.Err() when ctx ends first (no leave is sent: call Leave for
// that), or the error that stopped it (e.g. the session does not exist, or
// the stream kept failing). Before returning it stops every goroutine it
// started and closes the peer connection. Run may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.runs.CompareAndSwap(false, true) {
		return ErrRunning
	}
	r := &run{
		c:    c,
		log:  c.log,
		out:  newQueue[outMsg](),
		pion: newQueue[pionEvent](),
		inC:  make(chan inbound),
		ice:  iceServersFromProto(c.cfg.IceServers),
	}
	c.mu.Lock()
	c.out = r.out
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	err := r.loop(ctx)
	r.stopSender()
	cancel()
	r.shutdown()
	if err != nil {
		r.log.Info("run ended", "error", err)
	} else {
		r.log.Info("run ended: session closed")
	}
	return err
}

func (r *run) loop(ctx context.Context) error {
	for {
		if r.st == nil && r.retryC == nil {
			if r.terminal != nil {
				return r.result(nil)
			}
			r.open(ctx)
		}
		var done <-chan struct{}
		if r.st != nil {
			done = r.st.done
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case in := <-r.inC:
			if in.s != r.st {
				continue // a stream already given up
			}
			if err := r.onInbound(ctx, in); err != nil {
				return err
			}
		case <-r.pion.ready:
			r.onPion()
		case <-r.retryC:
			r.retryC = nil
		case <-done:
			st := r.st
			r.closeStream()
			if stop, err := r.onStreamEnd(ctx, st); stop {
				return err
			}
		}
		if r.goAway {
			r.goAway = false
			r.log.Info("going away: reopening the stream", "after", r.c.lastSequence())
			r.closeStream()
		}
	}
}

// result is Run's outcome once the terminal event has arrived; streamErr is
// how the stream that carried it ended.
func (r *run) result(streamErr error) error {
	if r.terminal.GetType() == vspb.EventType_EVENT_TYPE_FAILED {
		return newFailedError(r.terminal, streamErr)
	}
	return nil
}

// open starts a stream: Connect (join after the last sequence), or
// WatchSession after the last sequence in Signal mode and for a catch-up.
func (r *run) open(ctx context.Context) {
	r.streams++
	if r.streams > 1 {
		r.c.count(func(s *Stats) { s.Resumes++ })
	}
	sctx, cancel := context.WithCancel(ctx)
	st := &stream{
		watch:  r.c.cfg.Mode == ModeSignal || r.catchUp,
		after:  r.c.lastSequence(),
		cancel: cancel,
		joined: make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.catchUp = false
	r.st = st
	r.c.mu.Lock()
	r.c.dropCur = cancel
	r.c.mu.Unlock()
	r.log.Debug("opening stream", "watch", st.watch, "after", st.after)
	r.wg.Go(func() { r.receive(sctx, st) })
}

// closeStream ends the current stream and waits for its goroutines.
func (r *run) closeStream() {
	st := r.st
	if st == nil {
		return
	}
	st.cancel()
	<-st.done
	st.sender.Wait()
	r.st = nil
	r.c.mu.Lock()
	r.c.dropCur = nil
	r.c.mu.Unlock()
}

// onStreamEnd decides what follows a stream that ended: Run's result, an
// error, or a resume (possibly after a backoff). A stream refused before it
// delivered anything (no such session, bad token) stops Run; one that ends
// later is resumed, whatever its status: on Connect that includes an app
// message the service refused, which ends the stream with the message's
// error.
func (r *run) onStreamEnd(ctx context.Context, st *stream) (bool, error) {
	if r.terminal != nil {
		return true, r.result(st.err)
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	err := st.err
	code := status.Code(err)
	opened := st.gotJoined || st.progressed
	r.log.Info("stream ended", "watch", st.watch, "opened", opened, "code", code.String(), "error", err)
	if !opened {
		switch code {
		case codes.NotFound, codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument, codes.Unimplemented:
			return true, err
		case codes.FailedPrecondition:
			if !st.watch && errorReason(err) == "SESSION_CLOSED" {
				// Connect refuses to join an ended session; its timeline's
				// end is still readable on WatchSession.
				r.catchUp = true
			}
		}
	}
	if st.progressed {
		r.failures = 0
		return false, nil
	}
	r.failures++
	if r.failures > maxStreamFailures {
		return true, fmt.Errorf("thinclient: stream failed %d times in a row: %w", r.failures, err)
	}
	d := min(firstBackoff<<(r.failures-1), maxBackoff)
	if r.retryT == nil {
		r.retryT = time.NewTimer(d)
	} else {
		r.retryT.Reset(d)
	}
	r.retryC = r.retryT.C
	return false, nil
}

// errorReason returns the google.rpc.ErrorInfo reason of a status error.
func errorReason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// receive runs one stream: it opens it, starts the Connect sender, and
// hands every message to Run's goroutine until the stream ends.
func (r *run) receive(ctx context.Context, st *stream) {
	defer close(st.done)
	actx := r.c.auth(ctx)
	if st.watch {
		ws, err := r.c.rpc.WatchSession(actx, &vspb.WatchSessionRequest{Name: r.c.cfg.Session, AfterSequence: st.after})
		if err != nil {
			st.err = err
			return
		}
		for {
			m, err := ws.Recv()
			if err != nil {
				st.err = err
				return
			}
			if !r.post(ctx, inbound{s: st, event: m.GetEvent()}) {
				st.err = ctx.Err()
				return
			}
		}
	}
	cs, err := r.c.rpc.Connect(actx)
	if err != nil {
		st.err = err
		return
	}
	st.sender.Go(func() { r.sendConnect(ctx, cs, st) })
	for {
		m, err := cs.Recv()
		if err != nil {
			st.err = err
			return
		}
		if !r.post(ctx, inbound{s: st, connect: m}) {
			st.err = ctx.Err()
			return
		}
	}
}

func (r *run) post(ctx context.Context, in inbound) bool {
	select {
	case r.inC <- in:
		return true
	case <-ctx.Done():
		return false
	}
}

// sendConnect is the one goroutine that sends on a Connect stream: the
// join, then, once joined, the outbox in order. A message whose send fails
// goes back to the head of the outbox for the next stream.
func (r *run) sendConnect(ctx context.Context, cs grpc.BidiStreamingClient[vspb.ConnectRequest, vspb.ConnectResponse], st *stream) {
	join := &vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: r.c.cfg.Session, AfterSequence: st.after}}}
	if err := cs.Send(join); err != nil {
		return
	}
	select {
	case <-st.joined:
	case <-ctx.Done():
		return
	}
	for {
		for {
			m, ok := r.out.pop()
			if !ok {
				break
			}
			if err := cs.Send(m.connectRequest()); err != nil {
				if !r.out.pushFront(m) {
					m.finish(ErrStopped)
				}
				return
			}
			r.log.Debug("sent", "message", m.kind.String())
			m.finish(nil)
		}
		select {
		case <-r.out.ready:
		case <-ctx.Done():
			return
		}
	}
}

// sendSignal is the one goroutine that sends app messages in Signal mode:
// one Signal call each, in order. Transient failures are retried; a message
// the service refuses is dropped (and its error reported to whoever waits
// for it).
func (r *run) sendSignal(ctx context.Context, stop <-chan struct{}) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	attempts := 0
	for {
		select {
		case <-stop:
			return
		default:
		}
		m, ok := r.out.pop()
		if !ok {
			select {
			case <-r.out.ready:
				continue
			case <-ctx.Done():
				return
			case <-stop:
				return
			}
		}
		_, err := r.c.rpc.Signal(r.c.auth(ctx), m.signalRequest(r.c.cfg.Session))
		if err == nil {
			attempts = 0
			r.log.Debug("sent", "message", m.kind.String())
			m.finish(nil)
			continue
		}
		if ctx.Err() != nil {
			if !r.out.pushFront(m) {
				m.finish(ErrStopped)
			}
			return
		}
		attempts++
		if retryable(err) && attempts < maxSignalAttempts {
			if !r.out.pushFront(m) {
				m.finish(ErrStopped)
				return
			}
			d := min(firstBackoff<<(attempts-1), maxBackoff)
			if t == nil {
				t = time.NewTimer(d)
			} else {
				t.Reset(d)
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			case <-stop:
				return
			}
			continue
		}
		attempts = 0
		r.log.Warn("service refused a message", "message", m.kind.String(), "code", status.Code(err).String(), "error", err)
		m.finish(err)
	}
}

func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded, codes.Canceled:
		return true
	}
	return false
}

// onInbound handles one message of the current stream.
func (r *run) onInbound(ctx context.Context, in inbound) error {
	if in.event != nil {
		return r.onEvent(ctx, in.s, in.event)
	}
	switch m := in.connect.GetMessage().(type) {
	case *vspb.ConnectResponse_Joined:
		return r.onJoined(in.s, m.Joined)
	case *vspb.ConnectResponse_Event:
		return r.onEvent(ctx, in.s, m.Event)
	case *vspb.ConnectResponse_Answer:
		r.expect = "answer"
	case *vspb.ConnectResponse_Candidate:
		r.expect = "candidate"
	case *vspb.ConnectResponse_Renegotiate:
		r.expect = "renegotiate"
	case *vspb.ConnectResponse_GoingAway:
		r.expect = "going_away"
	}
	// The actionable messages repeat the payload of the event that follows
	// them; the client acts on the event, so that a replay after a resume
	// is deduplicated by sequence like every other event.
	return nil
}

func detailName(e *vspb.SessionEvent) string {
	switch e.GetDetail().(type) {
	case *vspb.SessionEvent_Answer:
		return "answer"
	case *vspb.SessionEvent_Candidate:
		return "candidate"
	case *vspb.SessionEvent_Renegotiate:
		return "renegotiate"
	case *vspb.SessionEvent_GoingAway:
		return "going_away"
	}
	return ""
}

func (r *run) onJoined(st *stream, j *vspb.Joined) error {
	if st.gotJoined {
		return nil
	}
	st.gotJoined = true
	sess := j.GetSession()
	r.log.Info("joined", "state", sess.GetState().String(), "last_sequence", sess.GetLastSequence(), "after", st.after)
	if s := sess.GetIceServers(); len(s) > 0 {
		r.ice = iceServersFromProto(s)
	}
	// An offer handed to a stream that then dropped may never have reached
	// the service: a session still awaiting an offer says so. (The outbox
	// is checked before the sender starts, so an offer still queued is not
	// sent twice.)
	if r.pc != nil && r.awaitingAnswer && sess.GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER &&
		!r.out.any(func(m outMsg) bool { return m.kind == kindOffer }) {
		if ld := r.pc.LocalDescription(); ld != nil {
			r.log.Info("re-sending the offer lost with the previous stream")
			r.out.push(outMsg{kind: kindOffer, text: ld.SDP})
			r.c.count(func(s *Stats) { s.OffersSent++ })
		}
	}
	close(st.joined)
	if r.pc == nil {
		return r.newPeer(false)
	}
	return nil
}

// onEvent handles one timeline event: record it (dropping duplicates), then
// act on it.
func (r *run) onEvent(ctx context.Context, st *stream, e *vspb.SessionEvent) error {
	if want := r.expect; want != "" {
		r.expect = ""
		if got := detailName(e); got != want {
			r.log.Warn("connect: an actionable message was not followed by its event", "announced", want, "event", e.GetType().String())
		}
	}
	if !r.c.record(e) {
		return nil
	}
	st.progressed = true
	r.log.Debug("event", "seq", e.GetSequence(), "type", e.GetType().String(), "state", e.GetState().String())
	if f := r.c.cfg.OnEvent; f != nil {
		f(proto.CloneOf(e))
	}
	if r.c.cfg.Mode == ModeSignal && !r.signalJoined {
		if err := r.detectSignalJoin(ctx, st, e); err != nil {
			return err
		}
	}
	switch e.GetType() {
	case vspb.EventType_EVENT_TYPE_ANSWER:
		r.onAnswer(e.GetAnswer().GetSdp())
	case vspb.EventType_EVENT_TYPE_REMOTE_CANDIDATE:
		r.onRemoteCandidate(e.GetCandidate())
	case vspb.EventType_EVENT_TYPE_RENEGOTIATE:
		return r.onRenegotiate(e.GetRenegotiate())
	case vspb.EventType_EVENT_TYPE_ICE_SERVERS_REFRESHED:
		if s := e.GetIceServers().GetIceServers(); len(s) > 0 {
			r.ice = iceServersFromProto(s)
		}
	case vspb.EventType_EVENT_TYPE_GOING_AWAY:
		r.goAway = true
	case vspb.EventType_EVENT_TYPE_CLOSED, vspb.EventType_EVENT_TYPE_FAILED:
		r.terminal = e
		r.log.Info("session ended", "type", e.GetType().String(), "close_reason", e.GetCloseReason().String())
	}
	return nil
}

// detectSignalJoin: in Signal mode the app is attached once its watch's
// APP_ATTACHED event has arrived and the session has left PENDING (the
// attach's ICE refresh, if any, comes before that state change). Then the
// Signal sender starts and the first offer is made.
func (r *run) detectSignalJoin(ctx context.Context, st *stream, e *vspb.SessionEvent) error {
	if e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && e.GetSequence() > st.after {
		r.attachSeen = true
	}
	if !r.attachSeen || e.GetState() == vspb.SessionState_SESSION_STATE_PENDING ||
		e.GetType() == vspb.EventType_EVENT_TYPE_CLOSED || e.GetType() == vspb.EventType_EVENT_TYPE_FAILED {
		return nil
	}
	r.signalJoined = true
	r.log.Info("attached", "state", e.GetState().String())
	// The sender lives until Run ends, across WatchSession resumes.
	ctx, cancel := context.WithCancel(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	r.signalStop, r.signalCancel, r.signalDone = stop, cancel, done
	r.wg.Go(func() {
		defer close(done)
		r.sendSignal(ctx, stop)
	})
	if r.pc == nil {
		return r.newPeer(false)
	}
	return nil
}

// stopSender stops the Signal sender, letting its call in flight finish
// (for at most signalDrain) so that a message the service took is reported
// as delivered. Messages still queued stay for shutdown to fail.
func (r *run) stopSender() {
	if r.signalStop == nil {
		return
	}
	close(r.signalStop)
	t := time.NewTimer(signalDrain)
	defer t.Stop()
	select {
	case <-r.signalDone:
	case <-t.C:
	}
	r.signalCancel()
	<-r.signalDone
}

// shutdown stops everything Run started and closes the peer connection.
func (r *run) shutdown() {
	r.closeStream()
	if r.retryT != nil {
		r.retryT.Stop()
	}
	r.wg.Wait()
	for _, m := range r.out.close() {
		m.finish(ErrStopped)
	}
	c := r.c
	c.mu.Lock()
	c.out = nil
	c.noRead = true
	c.dropCur = nil
	c.mu.Unlock()
	if r.pc != nil {
		if err := r.pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			r.log.Debug("close peer connection", "error", err)
		}
		r.pc = nil
	}
	c.reader.Wait()
	c.mu.Lock()
	c.ended = true
	c.wakeLocked()
	c.mu.Unlock()
}
