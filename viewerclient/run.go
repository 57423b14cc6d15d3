package viewerclient

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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Stream retry policy: a stream that ends (or is abandoned) before it
// joined or delivered a new event counts as a failure; failures in a row
// back off exponentially from firstBackoff to maxBackoff and give up after
// maxStreamFailures (about 15 s of trying).
const (
	maxStreamFailures = 20
	firstBackoff      = 25 * time.Millisecond
	maxBackoff        = time.Second
)

// run is the state of one Run. Its fields are touched only by Run's
// goroutine, except what the queues, the outbox and gen (atomic) share with
// pion callbacks, the watcher and the senders.
type run struct {
	c    *Client
	log  *slog.Logger
	out  *outbox
	pion *queue[pionEvent] // from pion callbacks
	netQ *queue[netChange] // from the watcher and NetworkChanged
	inC  chan inbound      // from the current stream's receiver
	wg   sync.WaitGroup    // receivers, senders and the watcher

	conn     *conn   // the current connection, nil between a re-dial and the next open
	st       *stream // the current stream, nil between streams
	streams  int     // streams opened so far
	failures int     // streams in a row that ended without progress
	retryT   *time.Timer
	retryC   <-chan time.Time // non-nil while backing off
	catchUp  bool             // the next stream is a WatchSession catch-up
	goAway   bool             // reopen the stream after this message
	redial   RedialReason     // re-dial after this message, for this reason
	changes  []netChange      // network changes to report once the re-dial closed the old stream

	signalJoined bool // Signal mode: the app is attached
	attachSeen   bool // Signal mode: our APP_ATTACHED arrived

	pc             *webrtc.PeerConnection
	gen            atomic.Uint64 // offer generation, for candidates
	ice            []webrtc.ICEServer
	awaitingAnswer bool
	remote         []webrtc.ICECandidateInit // camera candidates before the answer
	reported       *vspb.ConnectionStateReport
	expect         string // Connect: the event detail the last actionable message announced
	terminal       *vspb.SessionEvent
}

// stream is one Connect stream, or one WatchSession stream plus (Signal
// mode) the Signal sender that goes with it. Both use one connection.
type stream struct {
	id     uint64 // 1, 2, ... per run; the outbox's send marks
	watch  bool
	after  uint64 // the resume point it was opened with
	conn   *conn
	opened time.Time
	cancel context.CancelFunc
	joined chan struct{} // closed when the app is attached: the sender starts
	done   chan struct{} // closed when the receiver has ended
	sender sync.WaitGroup

	// mu guards err.
	mu  sync.Mutex
	err error // why it ended: the first failure of the receiver or sender

	// Run's goroutine only:
	up         bool // joined is closed
	gotJoined  bool // Connect: `joined` arrived
	received   bool // anything arrived on it
	progressed bool // a new event arrived on it
}

// fail ends the stream because of err (the first reason wins).
func (s *stream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *stream) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
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
// peer-connection state changes and its media counters, follows
// renegotiate (ICE_RESTART: an ICE-restart offer on the same peer
// connection; NEW_PEER_CONNECTION: a new one with the given ICE servers)
// and going-away, resumes a dropped stream after the last sequence it saw,
// and re-dials when the service stops acknowledging or the network changes
// (see the package doc).
//
// It returns nil when the session ends CLOSED, a *FailedError (matching
// ErrSessionFailed, carrying the failure's gRPC status) when it ends
// FAILED, ctx.Err() when ctx ends first (no leave is sent: call Leave for
// that), or the error that stopped it (e.g. the session does not exist, or
// the stream kept failing). Before returning it stops every goroutine it
// started, closes the connections it dialed and the peer connection. Run
// may be called once.
func (c *Client) Run(ctx context.Context) error {
	if !c.runs.CompareAndSwap(false, true) {
		return ErrRunning
	}
	r := &run{
		c:    c,
		log:  c.log,
		out:  c.out,
		pion: newQueue[pionEvent](),
		netQ: newQueue[netChange](),
		inC:  make(chan inbound),
		ice:  iceServersFromProto(c.cfg.IceServers),
	}
	c.out.start()
	c.mu.Lock()
	c.netQ = r.netQ
	c.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	if c.host != nil && !c.cfg.NoNetworkWatch {
		r.wg.Go(func() { r.watchNetwork(ctx) })
	}
	err := r.loop(ctx)
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
	media := time.NewTicker(r.c.cfg.MediaInterval)
	defer media.Stop()
	check := time.NewTicker(min(max(r.c.cfg.AckTimeout/10, 10*time.Millisecond), 250*time.Millisecond))
	defer check.Stop()
	for {
		if r.st == nil && r.retryC == nil {
			if r.terminal != nil {
				return r.result(nil)
			}
			if err := r.open(ctx); err != nil {
				return err
			}
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
		case <-r.netQ.ready:
			r.onNetworkChanges()
		case <-r.retryC:
			r.retryC = nil
		case <-media.C:
			r.reportMedia()
		case <-r.c.resumed:
			r.reportMedia() // video is back: tell the service now, not up to a second later
		case now := <-check.C:
			r.checkAcks(now)
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
		if reason := r.redial; reason != "" {
			r.redial = ""
			if err := r.redialNow(reason); err != nil {
				return err
			}
		}
	}
}

// reportMedia queues a media report while the stream is open.
func (r *run) reportMedia() {
	if r.st != nil && r.st.up {
		r.out.push(&outMsg{kind: kindMediaReport, media: r.c.mediaReport()})
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

// open starts a stream on the current connection (dialing one first if
// there is none): Connect (join after the last sequence), or WatchSession
// after the last sequence in Signal mode and for a catch-up. A failed dial
// counts as a failed stream.
func (r *run) open(ctx context.Context) error {
	if r.conn == nil {
		cn, err := r.dial(ctx)
		if err != nil {
			r.log.Warn("dial failed", "error", err)
			return r.backoff(err)
		}
		r.conn = cn
	}
	r.streams++
	if r.streams > 1 {
		r.c.count(func(s *Stats) { s.Resumes++ })
	}
	sctx, cancel := context.WithCancel(ctx)
	st := &stream{
		id:     uint64(r.streams),
		watch:  r.c.cfg.Mode == ModeSignal || r.catchUp,
		after:  r.c.lastSequence(),
		conn:   r.conn,
		opened: time.Now(),
		cancel: cancel,
		joined: make(chan struct{}),
		done:   make(chan struct{}),
	}
	r.catchUp = false
	r.st = st
	r.c.mu.Lock()
	r.c.dropCur = func() {
		st.fail(errDropped)
	}
	r.c.mu.Unlock()
	r.log.Debug("opening stream", "watch", st.watch, "after", st.after)
	r.wg.Go(func() { r.receive(sctx, st) })
	if st.watch && r.c.cfg.Mode == ModeSignal {
		st.sender.Go(func() { r.sendSignal(sctx, st) })
		if r.signalJoined {
			r.attached(st)
		}
	}
	return nil
}

// errDropped ends a stream that DropStream dropped.
var errDropped = status.Error(codes.Canceled, "viewerclient: stream dropped (test hook)")

// attached marks the stream as carrying the attached app: its sender
// starts and media reports flow.
func (r *run) attached(st *stream) {
	if !st.up {
		st.up = true
		close(st.joined)
	}
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

// backoff schedules the next open after a failure (err), or gives up.
func (r *run) backoff(err error) error {
	r.failures++
	if r.failures > maxStreamFailures {
		return fmt.Errorf("viewerclient: stream failed %d times in a row: %w", r.failures, err)
	}
	d := min(firstBackoff<<(r.failures-1), maxBackoff)
	if r.retryT == nil {
		r.retryT = time.NewTimer(d)
	} else {
		r.retryT.Reset(d)
	}
	r.retryC = r.retryT.C
	return nil
}

// onStreamEnd decides what follows a stream that ended: Run's result, an
// error, or a resume (possibly after a backoff, possibly on a fresh
// connection). A stream refused before it delivered anything (no such
// session, bad token) stops Run; one that ends later is resumed, whatever
// its status: on Connect that includes an app message the service refused,
// which ends the stream with the message's error. A stream that broke the
// way a dead connection does is resumed on a new one.
func (r *run) onStreamEnd(ctx context.Context, st *stream) (bool, error) {
	if r.terminal != nil {
		return true, r.result(st.error())
	}
	if err := ctx.Err(); err != nil {
		return true, err
	}
	err := st.error()
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
	if err != errDropped && brokenConn(code) { //nolint:errorlint // the sentinel itself
		r.abandonConn(RedialStreamError)
	}
	if st.progressed {
		r.failures = 0
		return false, nil
	}
	if err == nil {
		err = errors.New("stream ended")
	}
	return false, r.backoff(err)
}

// brokenConn reports whether a stream that ended with code suggests a
// broken connection rather than the service's refusal.
func brokenConn(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Unknown, codes.Canceled, codes.DeadlineExceeded, codes.Internal:
		return true
	}
	return false
}

// checkAcks re-dials when the service has not answered in time: a join
// (or, on WatchSession, anything) within AckTimeout of opening, or a
// sequenced message within AckTimeout of sending it.
func (r *run) checkAcks(now time.Time) {
	st := r.st
	if st == nil || r.redial != "" {
		return
	}
	limit := r.c.cfg.AckTimeout
	switch {
	case !st.received && now.Sub(st.opened) > limit:
		r.log.Warn("no answer to the join: re-dialing", "after", now.Sub(st.opened))
	case !st.up:
		return
	default:
		sent := r.out.oldestSent(st.id)
		if sent.IsZero() || now.Sub(sent) <= limit {
			return
		}
		r.log.Warn("no ack: re-dialing", "waited", now.Sub(sent))
	}
	r.redial = RedialAckTimeout
}

// redialNow abandons the stream and the connection and opens a new
// stream on a fresh one: at once after a network change or when the
// stream had worked, after a backoff when it never had. The network
// changes waiting are queued only now, so that they go out on the new
// connection, not into the old one.
func (r *run) redialNow(reason RedialReason) error {
	st := r.st
	worked := st != nil && (st.gotJoined || st.progressed)
	r.closeStream()
	r.abandonConn(reason)
	for _, ch := range r.changes {
		r.out.push(&outMsg{kind: kindNetworkChanged, text: ch.description, done: ch.done})
	}
	r.changes = nil
	if worked || reason == RedialNetworkChange {
		r.failures = 0
		r.retryC = nil
		return nil
	}
	return r.backoff(errors.New(string(reason)))
}

// onNetworkChanges handles the network changes queued: the client
// re-dials once, and each becomes a sequenced network_changed message on
// the new connection.
func (r *run) onNetworkChanges() {
	chs := r.netQ.drain()
	if len(chs) == 0 {
		return
	}
	for _, ch := range chs {
		r.log.Info("network changed", "description", ch.description)
		r.c.count(func(s *Stats) { s.NetworkChanges++ })
		if f := r.c.cfg.OnNetworkChange; f != nil {
			f(ch.description)
		}
	}
	r.changes = append(r.changes, chs...)
	r.redial = RedialNetworkChange
}

// watchNetwork runs the network watcher until ctx ends.
func (r *run) watchNetwork(ctx context.Context) {
	c := r.c
	pollNetwork(ctx, c.cfg.netSource, c.cfg.pollEvery, c.inUse,
		func(s netState) {
			r.log.Info("network", "now", s.describe())
			if err := c.host.refresh(); err != nil {
				r.log.Warn("re-reading the interfaces", "error", err)
			}
		},
		func(why string) { r.netQ.push(netChange{description: why}) })
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

// onInbound handles one message of the current stream.
func (r *run) onInbound(ctx context.Context, in inbound) error {
	in.s.received = true
	if in.event != nil {
		return r.onEvent(ctx, in.s, in.event)
	}
	switch m := in.connect.GetMessage().(type) {
	case *vspb.ConnectResponse_Joined:
		return r.onJoined(in.s, m.Joined)
	case *vspb.ConnectResponse_Event:
		return r.onEvent(ctx, in.s, m.Event)
	case *vspb.ConnectResponse_Ack:
		r.out.ack(m.Ack.GetAppSequence())
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

// onJoined takes the join reply: what the service has acknowledged (the
// sender then resends everything above it, with the same numbers), and
// fresh ICE servers.
func (r *run) onJoined(st *stream, j *vspb.Joined) error {
	if st.gotJoined {
		return nil
	}
	st.gotJoined = true
	sess := j.GetSession()
	r.out.ack(j.GetAckedAppSequence())
	last, acked, pending := r.out.sequences()
	r.log.Info("joined", "state", sess.GetState().String(), "last_sequence", sess.GetLastSequence(), "after", st.after,
		"acked_app_sequence", acked, "app_sequence", last, "pending", pending)
	if s := sess.GetIceServers(); len(s) > 0 {
		r.ice = iceServersFromProto(s)
	}
	r.attached(st)
	if r.pc == nil {
		return r.newPeer(false)
	}
	return nil
}

// onEvent handles one timeline event: record it (dropping duplicates), then
// act on it.
func (r *run) onEvent(ctx context.Context, st *stream, e *vspb.SessionEvent) error {
	r.out.ack(e.GetAckedAppSequence())
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
func (r *run) detectSignalJoin(_ context.Context, st *stream, e *vspb.SessionEvent) error {
	if e.GetType() == vspb.EventType_EVENT_TYPE_APP_ATTACHED && e.GetSequence() > st.after {
		r.attachSeen = true
	}
	if !r.attachSeen || e.GetState() == vspb.SessionState_SESSION_STATE_PENDING ||
		e.GetType() == vspb.EventType_EVENT_TYPE_CLOSED || e.GetType() == vspb.EventType_EVENT_TYPE_FAILED {
		return nil
	}
	r.signalJoined = true
	r.log.Info("attached", "state", e.GetState().String())
	r.attached(st)
	if r.pc == nil {
		return r.newPeer(false)
	}
	return nil
}

// shutdown stops everything Run started, closes the connection it dialed
// and the peer connection, and tells whoever waits on a message that it
// will not be sent (a leave counts as delivered once the session is
// CLOSED: that is what it asked for).
func (r *run) shutdown() {
	r.closeStream()
	r.dropConn()
	if r.retryT != nil {
		r.retryT.Stop()
	}
	r.wg.Wait()
	closed := r.terminal.GetType() == vspb.EventType_EVENT_TYPE_CLOSED
	r.out.stop(func(m *outMsg) bool { return closed && m.kind == kindLeave })
	for _, ch := range append(r.changes, r.netQ.close()...) {
		if ch.done != nil {
			ch.done <- ErrStopped
		}
	}
	c := r.c
	c.mu.Lock()
	c.netQ = nil
	c.noRead = true
	c.dropCur = nil
	c.mu.Unlock()
	if r.pc != nil {
		if err := r.pc.GracefulClose(); err != nil && !errors.Is(err, webrtc.ErrConnectionClosed) {
			r.log.Debug("close peer connection", "error", err)
		}
		r.pc = nil
		c.setPC(nil)
	}
	c.reader.Wait()
	c.mu.Lock()
	c.ended = true
	c.wakeLocked()
	c.mu.Unlock()
}
