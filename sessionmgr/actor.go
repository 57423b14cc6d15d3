package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// reqKind is the kind of a request to an actor.
type reqKind int

const (
	reqApp    reqKind = iota + 1 // an app message
	reqAttach                    // an app stream attached
	reqDetach                    // an app stream ended
	reqClose                     // close with reason
	reqGoAway                    // the replica drains: tell the app to reconnect elsewhere
)

// request is a call into an actor; the actor answers on reply.
type request struct {
	kind   reqKind
	msg    AppMessage
	reason CloseReason
	// att is the stream of reqAttach and reqDetach, and from the replica
	// it is on ("" for this one: a forwarded attach names its replica).
	att   *Attachment
	from  string
	reply chan reply
}

type reply struct {
	s   Session
	err error
}

// closeLetGo asks an actor to let its session go without ending it (a
// draining or closing replica of a cluster).
const closeLetGo CloseReason = -1

// timer is one of the actor's deadlines. The actor keeps one runtime
// timer, armed for the earliest deadline running (actor.arm), so a parked
// actor holds one timer and waits on one channel for all twelve: each
// timer of its own cost a time.Timer, its channel and a sudog while
// parked, about 0.3 KiB per running timer. A deadline is 8 bytes on the
// monotonic clock (monoNow), where a time.Time takes 24: twelve of them
// and wakeAt kept the actor a size class larger (1,792 bytes, not 1,408).
type timer struct {
	due int64 // monoNow at the deadline; 0 while stopped
}

// start (re)starts t to fire after d.
func (t *timer) start(d time.Duration) { t.due = monoAfter(d) }

func (t *timer) stop() { t.due = 0 }

func (t *timer) running() bool { return t.due != 0 }

// monoBase anchors monoNow.
var monoBase = time.Now()

// monoNow is the time in nanoseconds since monoBase, from the monotonic
// clock (a wall-clock step moves no deadline). In a testing/synctest
// bubble, whose clock has no monotonic reading, it follows the bubble's
// clock, negative but as steady.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// monoAfter is monoNow after d, never 0 (a stopped timer's due).
func monoAfter(d time.Duration) int64 { return runningDue(monoNow() + int64(d)) }

// runningDue is due, moved by a nanosecond off 0 (a stopped timer's due).
func runningDue(due int64) int64 {
	if due == 0 {
		return 1
	}
	return due
}

// actor owns one live session. Only its goroutine (run) touches the fields
// below inbox; others talk to it through inbox and done.
type actor struct {
	m     *Manager
	inbox chan *request
	done  chan struct{} // closed when run returns
	quit  chan CloseReason
	// logClient is the clientId the actor's log lines name (set by each
	// attempt; "" before the first). The logger is made per line (see
	// logger): lines are rare, and a kept one is 0.4 KiB per session.
	logClient string

	// ctx is cancelled when the actor ends; it bounds dials in flight.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup // dial goroutines

	s         Session
	lease     Lease
	haveLease bool
	dirty     bool // s changed since the last Put

	conn       SignalingConn
	connEvents <-chan *SignalEvent
	dialGen    int  // generation of the dial in flight or of conn
	dialing    bool // a dial of generation dialGen is in flight
	dialC      chan dialResult

	offer          string // the app's current offer, replayed on retry
	offerRequested bool   // the offer answers a renegotiate
	offerSent      bool   // sent on the current connection
	offerSentAt    time.Time
	answered       bool // the current offer got its answer
	appCands       []Candidate
	heldRemote     []Candidate // camera candidates before the answer
	offerAttempt   int         // signaling attempts for the current offer

	renegotiating bool // a renegotiate awaits its offer
	// dropRemote: the camera's answer to the current offer was refused
	// (it came from a replaced connection), and so are its candidates,
	// until the next offer goes out.
	dropRemote bool
	// remoteFP and appFP are the DTLS fingerprints (sdpFingerprint) of the
	// last answer applied and of the app's current offer.
	remoteFP, appFP string

	// rec is the recovery ladder's state; rec.step is StepUnknown while no
	// recovery runs.
	rec ladder
	// outageSign is the first sign of the current outage (a disconnected
	// or failed report, a network change, the last video progress before a
	// stall); zero while there is none.
	outageSign time.Time
	// media is what the app's media reports showed.
	media mediaState
	// joinedAt is the app's first join (zero after a takeover), and
	// sawVideo whether the session's first video was observed.
	joinedAt time.Time
	sawVideo bool

	// streams are the app streams attached.
	streams streamSet
	// lastReport is the app's last connection-state report, and
	// stateEvents the CONNECTION_STATE events recorded (see onStateReport).
	lastReport  *ConnState
	stateEvents int

	// takeoverFrom is the replica this one took the session over from
	// ("" for a session created here).
	takeoverFrom string
	// adopted: taken over from a dead replica by the sweeper, not by the
	// app; the move's recovery waits for the app to come back.
	adopted bool
	// fenced: another replica took the session over; this actor lets go
	// without writing.
	fenced bool
	// epoch is the session's epoch this actor runs (a.s.Epoch, which never
	// changes; this copy is read by the Manager's ownership watch).
	epoch uint64
	// fenceC: the Manager found the session taken over (its moved sessions
	// named it and the record says so); buffered, one is enough.
	fenceC chan struct{}
	// letGo: this replica stops (drain, close) and leaves the live session
	// to be taken over elsewhere.
	letGo bool
	// pending are events the store could not take (an outage), flushed in
	// order when it is back.
	pending []Event

	// leaseLost: the Manager's renewer failed to renew a lease (buffered).
	leaseLost chan leaseLoss

	answerT, retryT, predialT, resumeT, stepT, stallT, discT, lifeT, renewT, flushT, remoteT, redialT timer
	// wake is armed for the earliest running timer's due, wakeAt (nil
	// before the first; see arm).
	wake        *time.Timer
	wakeAt      int64 // 0: wake is not armed
	dialRetries int   // throttled dials of the current attempt
}

func newActor(m *Manager, s Session, l Lease) *actor {
	ctx, cancel := context.WithCancel(context.Background())
	return &actor{
		m:         m,
		inbox:     make(chan *request),
		done:      make(chan struct{}),
		quit:      make(chan CloseReason, 1),
		ctx:       ctx,
		cancel:    cancel,
		s:         s,
		lease:     l,
		haveLease: true,
		dialC:     make(chan dialResult, 4),
		media:     mediaState{pc: s.MediaPC, known: s.MediaPC == 0},
		epoch:     s.Epoch,
		fenceC:    make(chan struct{}, 1),
		leaseLost: make(chan leaseLoss, 1),
	}
}

// logger returns the actor's logger: the Manager's, with the session's id
// and, after an attempt, its clientId. Actor goroutine only.
func (a *actor) logger() *slog.Logger {
	if a.logClient == "" {
		return a.m.log.With("session_id", string(a.s.ID))
	}
	return a.m.log.With("session_id", string(a.s.ID), "client_id", a.logClient)
}

// call sends r to the actor and waits for its reply.
func (a *actor) call(ctx context.Context, r request) (Session, error) {
	r.reply = make(chan reply, 1)
	select {
	case a.inbox <- &r:
	case <-a.done:
		if r.kind == reqDetach {
			return Session{}, nil // nothing to detach from; the caller wants no session
		}
		return a.finalSnapshot(ctx)
	case <-ctx.Done():
		return Session{}, ctx.Err()
	}
	select {
	case rep := <-r.reply:
		return rep.s, rep.err
	case <-ctx.Done():
		return Session{}, ctx.Err()
	}
}

// finalSnapshot answers a call that raced with the actor's end.
func (a *actor) finalSnapshot(ctx context.Context) (Session, error) {
	if a.fenced { // safe: written before done was closed
		return Session{}, errFenced
	}
	s, err := a.m.store.Get(ctx, a.s.ID)
	if err != nil {
		return Session{}, err
	}
	return s, ErrSessionClosed
}

// stop asks the actor to close with reason; it does not wait.
func (a *actor) stop(reason CloseReason) {
	select {
	case a.quit <- reason:
	default:
	}
}

// snapshot is a copy of the session for callers (actor goroutine only).
func (a *actor) snapshot() Session { return a.s.clone() }

func (a *actor) run() {
	defer close(a.done)
	defer a.m.removeActor(a.s.ID, a)
	defer a.m.dropLease(a)
	a.begin()
	for !a.s.State.Terminal() && !a.fenced && !a.letGo {
		a.step()
		a.flush()
	}
	a.end()
}

// begin arms the session's timers and holds its lease; after a takeover,
// it starts the move.
func (a *actor) begin() {
	o := &a.s.Options
	a.lifeT.start(time.Until(a.s.Expires))
	a.resumeT.start(o.ResumeGrace) // the app must join within the grace too
	if a.m.renewer == nil {
		a.renewT.start(a.m.cfg.LeaseRenew)
	} else if a.haveLease {
		a.m.holdLease(a, a.lease)
	}
	if a.takeoverFrom != "" {
		a.onTakeover()
		a.flush()
	}
}

// end lets the session go (fenced, or this replica stops) or ends it, and
// waits for the actor's dials.
func (a *actor) end() {
	switch {
	case a.fenced:
		a.logger().Info("session taken over by another replica; letting go")
		a.teardown()
	case a.letGo:
		// Its events reach the store first (briefly: the drain has a
		// deadline): the next owner continues them.
		a.drainPending(2 * time.Second)
		a.logger().Info("replica stopping; letting go of the session for a takeover elsewhere")
		a.teardown()
	default:
		a.teardown()
		a.flush()
		a.drainPending(30 * time.Second)
	}
	a.cancel()
	a.bg.Wait()
	close(a.dialC)
	for res := range a.dialC {
		if res.conn != nil {
			_ = res.conn.Close()
		}
	}
	a.logger().Info("session ended", "state", a.s.State.String(), "reason", a.s.Close.String())
}

// step waits for the actor's next input and handles it. It is where an
// idle actor parks, so it keeps a small frame (the work is in the methods
// it calls, which return before the next wait): the parked goroutine's
// stack can then shrink to the runtime's smallest.
func (a *actor) step() {
	wake := a.arm()
	select {
	case r := <-a.inbox:
		a.handle(r)
	case reason := <-a.quit:
		a.onQuit(reason)
	case res := <-a.dialC:
		a.onDial(res)
	case ev, ok := <-a.connEvents:
		a.onConnEvent(ev, ok)
	case <-wake:
		a.fireDue()
	case loss := <-a.leaseLost:
		a.onLeaseLost(loss)
	case <-a.fenceC:
		a.fenced = true
	}
}

// timers lists the actor's timers in the order fireDue breaks ties in.
func (a *actor) timers() [12]*timer {
	return [12]*timer{&a.answerT, &a.predialT, &a.retryT, &a.resumeT, &a.stepT, &a.stallT,
		&a.discT, &a.lifeT, &a.renewT, &a.remoteT, &a.flushT, &a.redialT}
}

// arm sets the actor's one runtime timer for the earliest running timer
// and returns its channel; nil (a case that never fires) when none runs.
// Not inlined: step's frame stays small.
//
//go:noinline
func (a *actor) arm() <-chan time.Time {
	var next int64
	for _, t := range a.timers() {
		if t.running() && (next == 0 || t.due < next) {
			next = t.due
		}
	}
	switch {
	case next == 0:
		if a.wake != nil && a.wakeAt != 0 {
			a.wake.Stop()
			a.wakeAt = 0
		}
		return nil
	case a.wake == nil:
		a.wake = time.NewTimer(time.Duration(next - monoNow()))
	case next != a.wakeAt:
		a.wake.Reset(time.Duration(next - monoNow()))
	}
	a.wakeAt = next
	return a.wake.C
}

// fireDue runs the earliest running timer that is due (the first listed
// on a tie); the next step arms for the rest.
func (a *actor) fireDue() {
	a.wakeAt = 0 // fired: the next arm sets it again
	now := monoNow()
	var due *timer
	for _, t := range a.timers() {
		if t.running() && t.due <= now && (due == nil || t.due < due.due) {
			due = t
		}
	}
	if due == nil {
		return
	}
	due.stop()
	switch due {
	case &a.answerT:
		a.onAnswerTimeout()
	case &a.predialT:
		a.onPredial()
	case &a.retryT:
		a.onRetryDue()
	case &a.resumeT:
		a.onResumeGraceOver()
	case &a.stepT:
		a.onStepTimeout()
	case &a.stallT:
		a.onStall()
	case &a.discT:
		a.onDisconnectedTooLong()
	case &a.lifeT:
		a.onLifetimeOver()
	case &a.renewT:
		a.renewT.start(a.m.cfg.LeaseRenew)
		a.renew()
	case &a.remoteT:
		a.dropDeadStreams()
		a.watchRemoteStreams()
	case &a.flushT:
		// flushT only wakes the actor: its loop flushes after every step.
	case &a.redialT:
		if a.conn == nil {
			a.dial()
		}
	}
}

// onQuit serves Manager.Close and Drain's stop.
func (a *actor) onQuit(reason CloseReason) {
	if reason == closeLetGo {
		a.letGo = true // leave the record for a takeover elsewhere
		return
	}
	a.close(reason, "the server is shutting down")
}

// onConnEvent takes the signaling connection's next event; !ok: it ended.
//
// Not inlined: its copy of the event would widen step's frame.
//
//go:noinline
func (a *actor) onConnEvent(ev *SignalEvent, ok bool) {
	if !ok {
		ev = &SignalEvent{Kind: SignalClosed, Err: errors.New("signaling connection ended")}
	}
	a.onSignal(*ev)
}

func (a *actor) onResumeGraceOver() {
	a.close(CloseClientGone, fmt.Sprintf("the app did not come back within %v", a.s.Options.ResumeGrace))
}

func (a *actor) onDisconnectedTooLong() {
	a.recover(fmt.Sprintf("ICE stayed disconnected for %v", a.s.Options.DisconnectedGrace))
}

func (a *actor) onLifetimeOver() {
	a.close(CloseMaxLifetime, fmt.Sprintf("the session reached its maximum lifetime of %v", a.s.Options.MaxLifetime))
}

// handle serves one request.
func (a *actor) handle(r *request) {
	var err error
	if a.m.peers.checkOwnerFirst() && r.kind != reqDetach && r.kind != reqGoAway && !(r.kind == reqApp && r.msg.mediaOnly()) {
		// Another replica may have taken the session over since the last
		// check: never serve a request on a stale actor. The read is
		// skipped while no other replica can have (Manager.unchallenged),
		// and for media reports, every second: one a stale actor takes is
		// lost harmlessly (the next carries the same cumulative counters).
		if !a.m.unchallenged() {
			a.checkOwner()
		}
		if a.fenced {
			r.reply <- reply{err: errFenced}
			return
		}
	}
	if a.adopted && (r.kind == reqAttach || r.kind == reqApp) {
		a.adopted = false // the app is back: recover from the move now
		a.afterMove()
	}
	switch r.kind {
	case reqAttach:
		err = a.attach(r)
	case reqDetach:
		a.detach(r)
	case reqClose:
		if a.s.Terminal() {
			err = ErrSessionClosed
		} else {
			a.close(r.reason, "closed by the backend")
		}
	case reqApp:
		err = a.onSequenced(r.msg)
	case reqGoAway:
		why := "this server is shutting down; reconnect (join after your last sequence) to continue on another replica"
		a.emit(Event{Type: EventGoingAway, GoingAway: why, Message: why})
	}
	a.flush()
	if a.fenced {
		err = errFenced
	}
	r.reply <- reply{s: a.snapshot(), err: err}
}

func (a *actor) attach(r *request) error {
	if r.att != nil && !a.streams.add(r.att.stream, r.from) {
		return nil // detached before it arrived: its caller is gone
	}
	a.watchRemoteStreams()
	a.resumeT.stop()
	a.emit(Event{Type: EventAppAttached, Message: "the app attached"})
	a.refreshICEIfStale()
	from := a.s.State
	to, err := a.transition(input{kind: inJoin}, "the app joined; opening KVS signaling")
	if err != nil {
		return err
	}
	if from == StatePending && to == StateSignaling {
		a.joinedAt = a.m.now()
	}
	if to == StateSignaling && a.conn == nil && !a.dialing {
		a.dial()
	}
	return nil
}

func (a *actor) detach(r *request) {
	if r.att == nil || !a.streams.remove(r.att.stream) {
		return // not attached here (a failed or moved attach): nothing to end
	}
	a.afterDetach()
}

// afterDetach starts the resume grace once no stream is left.
func (a *actor) afterDetach() {
	if a.streams.len() == 0 && !a.s.Terminal() {
		a.emit(Event{Type: EventAppDetached, Message: fmt.Sprintf("the app's stream ended; it may resume within %v", a.s.Options.ResumeGrace)})
		a.resumeT.start(a.s.Options.ResumeGrace)
	}
}

// onSequenced handles an app message at most once by its app sequence
// (unsequenced ones every time). A message counts as handled once the actor
// took it, applied or refused: its number is marked before it is applied, so
// the events it causes carry the acknowledgement and reach the store with it
// (a takeover elsewhere then knows it was handled). A message that causes no
// event advances the acknowledgement in the record too, except a media
// report: those come every second and must not each write the store; a
// media report repeated after a takeover is harmless (its counters are
// cumulative).
func (a *actor) onSequenced(msg AppMessage) error {
	n := msg.AppSeq
	if n == 0 {
		return a.onApp(msg)
	}
	switch checkAppSeq(&a.s, n) {
	case appSeqRepeat:
		a.keepAlive()
		a.logger().Debug("repeated app message acknowledged again, not applied", "app_sequence", n)
		return nil
	case appSeqTooFar:
		return invalid("app_sequence", "%d is more than %d above the acknowledged %d: resend the unacknowledged messages first, in order",
			n, maxAppSeqAhead, a.s.AckedAppSeq)
	}
	markAppSeq(&a.s, n)
	if !msg.mediaOnly() {
		a.dirty = true
	}
	return a.onApp(msg)
}

// keepAlive restarts the resume grace of a session whose app talks without
// a stream attached (a Signal client between WatchSession streams).
func (a *actor) keepAlive() {
	if a.streams.len() == 0 && a.resumeT.running() {
		a.resumeT.start(a.s.Options.ResumeGrace)
	}
}

// onApp handles one app message.
func (a *actor) onApp(msg AppMessage) error {
	if a.s.Terminal() {
		return ErrSessionClosed
	}
	a.keepAlive()
	switch {
	case msg.Offer != "":
		return a.onOffer(msg.Offer)
	case msg.Candidate != nil:
		return a.onAppCandidate(*msg.Candidate)
	case msg.StateReport != nil:
		a.onStateReport(*msg.StateReport)
		return nil
	case msg.NetworkChanged != nil:
		desc := *msg.NetworkChanged
		a.emit(Event{Type: EventNetworkChanged, Message: "the app reported a network change " + quoteIf(desc)})
		a.noteSign(a.m.now())
		a.recover("network changed")
		return nil
	case msg.Media != nil:
		a.onMedia(*msg.Media)
		return nil
	case msg.Leave:
		a.close(CloseClientLeft, "the app left")
		return nil
	}
	return invalid("message", "empty message")
}

func quoteIf(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("(%q)", s)
}

// close ends the session with reason.
func (a *actor) close(reason CloseReason, why string) {
	if _, err := a.transition(input{kind: inClose}, ""); err != nil {
		return
	}
	a.s.Close = reason
	a.s.MediaFlowing = false
	a.abandonStep()
	a.emit(Event{Type: EventClosed, Close: reason, Message: "session closed: " + why})
}

// fail ends the session with a failure.
func (a *actor) fail(reason FailureReason, msg string) {
	if _, err := a.transition(input{kind: inFail}, ""); err != nil {
		return
	}
	a.s.Close = CloseFailed
	a.s.Failure = &Failure{Reason: reason, Message: msg}
	a.s.MediaFlowing = false
	a.m.obs.Failure(reason)
	a.abandonStep()
	a.emit(Event{Type: EventFailed, Close: CloseFailed, Failure: a.s.Failure, Message: msg})
	a.logger().Warn("session failed", "reason", reason.String(), "message", msg)
}

// teardown releases everything a terminal session holds.
func (a *actor) teardown() {
	for _, t := range []*timer{&a.answerT, &a.retryT, &a.predialT, &a.resumeT, &a.stepT, &a.stallT, &a.discT, &a.lifeT, &a.renewT, &a.flushT, &a.remoteT, &a.redialT} {
		t.stop()
	}
	a.closeConn()
	a.releaseLease()
}

// transition applies in through next; on a change it records the new state
// and, for non-terminal states, a STATE_CHANGED event saying why.
func (a *actor) transition(in input, why string) (State, error) {
	from := a.s.State
	to, err := next(from, in)
	if err != nil {
		return from, err
	}
	if to == from {
		return to, nil
	}
	a.s.State = to
	a.s.Updated = a.m.now()
	a.dirty = true
	a.m.obs.SessionState(from, to)
	if !to.Terminal() {
		msg := fmt.Sprintf("%s -> %s", from, to)
		if why != "" {
			msg += ": " + why
		}
		a.emit(Event{Type: EventStateChanged, Message: msg})
	}
	return to, nil
}

// failureOf maps a dependency error to a failure reason and a message.
func failureOf(err error) (FailureReason, string) {
	switch {
	case errors.Is(err, ErrChannelNotFound):
		return FailureChannelNotFound, "the channel does not exist"
	case errors.Is(err, ErrAccessDenied):
		return FailureAccessDenied, "the service may not use this channel"
	case errors.Is(err, ErrThrottled):
		return FailureKVSThrottled, "KVS throttled the connection; try again shortly"
	case errors.Is(err, ErrClientIDExhausted):
		return FailureClientIDExhausted, "every clientId candidate is in use or cooling down"
	case errors.Is(err, ErrCredentials):
		return FailureAccessDenied, "the service cannot load its AWS credentials"
	case errors.Is(err, context.Canceled):
		return FailureInternal, "cancelled"
	}
	return FailureKVSUnavailable, publicErr(err)
}

func iceName(s ICEState) string {
	return [...]string{"unknown", "new", "checking", "connected", "completed", "disconnected", "failed", "closed"}[clampIdx(int(s), 8)]
}

func peerName(s PeerState) string {
	return [...]string{"unknown", "new", "connecting", "connected", "disconnected", "failed", "closed"}[clampIdx(int(s), 7)]
}

func clampIdx(i, n int) int {
	if i < 0 || i >= n {
		return 0
	}
	return i
}
