package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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

// dialResult is the outcome of an asynchronous signaling dial.
type dialResult struct {
	gen  int
	conn SignalingConn
	err  error
}

// timer is a stoppable timer whose channel is nil while stopped, so a
// select on it is inert.
type timer struct {
	t *time.Timer
	c <-chan time.Time
}

func (t *timer) start(d time.Duration) {
	t.stop()
	t.t = time.NewTimer(d)
	t.c = t.t.C
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
		t.t, t.c = nil, nil
	}
}

func (t *timer) running() bool { return t.t != nil }

// actor owns one live session. Only its goroutine (run) touches the fields
// below inbox; others talk to it through inbox and done.
type actor struct {
	m     *Manager
	inbox chan request
	done  chan struct{} // closed when run returns
	quit  chan CloseReason
	log   *slog.Logger

	// ctx is cancelled when the actor ends; it bounds dials in flight.
	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup // dial goroutines

	s         Session
	lease     Lease
	haveLease bool
	dirty     bool // s changed since the last Put

	conn       SignalingConn
	connEvents <-chan SignalEvent
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
	dialRetries                                                                                       int // throttled dials of the current attempt
}

func newActor(m *Manager, s Session, l Lease) *actor {
	ctx, cancel := context.WithCancel(context.Background())
	return &actor{
		m:         m,
		inbox:     make(chan request),
		done:      make(chan struct{}),
		quit:      make(chan CloseReason, 1),
		log:       m.log.With("session_id", string(s.ID)),
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

// watchRemoteStreams arms remoteT, which checks every OwnerCheck that the
// replicas app streams are attached from still live (dropDeadStreams),
// while there are such streams; an actor without any has no timer to run.
func (a *actor) watchRemoteStreams() {
	if a.m.cluster != nil && a.remoteT.c == nil && len(a.streams.replicas()) > 0 {
		a.remoteT.start(a.m.cfg.OwnerCheck)
	}
}

// fence tells the actor that another replica took its session over; it
// does not wait.
func (a *actor) fence() {
	select {
	case a.fenceC <- struct{}{}:
	default:
	}
}

// call sends r to the actor and waits for its reply.
func (a *actor) call(ctx context.Context, r request) (Session, error) {
	r.reply = make(chan reply, 1)
	select {
	case a.inbox <- r:
	case <-a.done:
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
	o := a.s.Options
	a.lifeT.start(time.Until(a.s.Expires))
	a.resumeT.start(o.ResumeGrace) // the app must join within the grace too
	if a.m.renewer == nil {
		a.renewT.start(a.m.cfg.LeaseRenew)
	} else if a.haveLease {
		a.m.holdLease(a, a.lease)
	}
	defer a.m.dropLease(a)
	if a.takeoverFrom != "" {
		a.onTakeover()
		a.flush()
	}

	for !a.s.Terminal() && !a.fenced && !a.letGo {
		select {
		case r := <-a.inbox:
			a.handle(r)
		case reason := <-a.quit:
			if reason == closeLetGo {
				a.letGo = true // leave the record for a takeover elsewhere
			} else {
				a.close(reason, "the server is shutting down")
			}
		case res := <-a.dialC:
			a.onDial(res)
		case ev, ok := <-a.connEvents:
			if !ok {
				ev = SignalEvent{Kind: SignalClosed, Err: errors.New("signaling connection ended")}
			}
			a.onSignal(ev)
		case <-a.answerT.c:
			a.answerT.stop()
			a.onAnswerTimeout()
		case <-a.predialT.c:
			a.predialT.stop()
			a.onPredial()
		case <-a.retryT.c:
			a.retryT.stop()
			a.onRetryDue()
		case <-a.resumeT.c:
			a.resumeT.stop()
			a.close(CloseClientGone, fmt.Sprintf("the app did not come back within %v", o.ResumeGrace))
		case <-a.stepT.c:
			a.stepT.stop()
			a.onStepTimeout()
		case <-a.stallT.c:
			a.stallT.stop()
			a.onStall()
		case <-a.discT.c:
			a.discT.stop()
			a.recover(fmt.Sprintf("ICE stayed disconnected for %v", o.DisconnectedGrace))
		case <-a.lifeT.c:
			a.lifeT.stop()
			a.close(CloseMaxLifetime, fmt.Sprintf("the session reached its maximum lifetime of %v", o.MaxLifetime))
		case <-a.renewT.c:
			a.renewT.start(a.m.cfg.LeaseRenew)
			a.renew()
		case loss := <-a.leaseLost:
			a.onLeaseLost(loss)
		case <-a.fenceC:
			a.fenced = true
		case <-a.remoteT.c:
			a.remoteT.stop()
			a.dropDeadStreams()
			a.watchRemoteStreams()
		case <-a.flushT.c:
			a.flushT.stop()
		case <-a.redialT.c:
			a.redialT.stop()
			if a.conn == nil {
				a.dial()
			}
		}
		a.flush()
	}
	switch {
	case a.fenced:
		a.log.Info("session taken over by another replica; letting go")
		a.teardown()
	case a.letGo:
		// Its events reach the store first (briefly: the drain has a
		// deadline): the next owner continues them.
		a.drainPending(2 * time.Second)
		a.log.Info("replica stopping; letting go of the session for a takeover elsewhere")
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
	a.log.Info("session ended", "state", a.s.State.String(), "reason", a.s.Close.String())
}

// handle serves one request.
func (a *actor) handle(r request) {
	var err error
	if a.m.cluster != nil && r.kind != reqDetach && r.kind != reqGoAway && !(r.kind == reqApp && r.msg.mediaOnly()) {
		// Another replica may have taken the session over since the last
		// check: never serve a request on a stale actor. Media reports,
		// every second, skip the read: one a stale actor takes is lost
		// harmlessly (the next carries the same cumulative counters).
		a.checkOwner()
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

func (a *actor) attach(r request) error {
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

func (a *actor) detach(r request) {
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
		a.log.Debug("repeated app message acknowledged again, not applied", "app_sequence", n)
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

func (a *actor) onOffer(sdp string) error {
	if a.s.State == StatePending {
		return ErrNotJoined
	}
	if _, err := a.m.sig.ValidateOffer(sdp); err != nil {
		return &FieldError{Field: "offer.sdp", Reason: err.Error()}
	}
	ready := a.conn != nil
	if _, err := next(a.s.State, input{kind: inOffer, ready: ready, requested: a.renegotiating}); err != nil {
		return err
	}
	fp := sdpFingerprint(sdp)
	if err := a.checkStepOffer(fp); err != nil {
		return err
	}
	a.offer, a.appFP = sdp, fp
	a.offerRequested = a.renegotiating
	a.renegotiating = false
	if a.offerSent {
		a.appCands = nil // they went out with the previous offer
	} // else: candidates that overtook this offer (Signal calls race) stay
	a.offerSent = false
	a.answered = false
	a.heldRemote = nil
	if a.rec.step.answerTimed() {
		a.offerAttempt = 1
	}
	if ready {
		a.sendOffer()
	}
	return nil
}

// sendOffer sends the buffered offer and candidates on the current
// connection and moves to AWAITING_ANSWER.
func (a *actor) sendOffer() {
	in := input{kind: inOffer, ready: true, requested: a.offerRequested}
	if _, err := a.transition(in, "offer sent; waiting for the camera's answer"); err != nil {
		a.log.Debug("offer not sent", "state", a.s.State.String(), "error", err)
		return
	}
	if a.rec.step.answerTimed() {
		// From the moment the offer leaves (the step timer bounds the
		// ladder's cheaper steps instead).
		a.answerT.start(a.s.Options.AnswerTimeout)
	}
	// Camera candidates held so far cannot belong to this offer's answer.
	a.heldRemote, a.dropRemote = nil, false
	a.offerSentAt = time.Now()
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.KVSTimeout)
	defer cancel()
	if err := a.conn.SendOffer(ctx, a.offer); err != nil {
		a.log.Warn("sending the offer to KVS failed", "error", err)
		a.emit(Event{Type: EventSignalingError, Message: "sending the offer to KVS failed: " + publicErr(err),
			Failure: &Failure{Reason: FailureKVSUnavailable, Message: publicErr(err)}})
	} else {
		msg := fmt.Sprintf("offer sent to the camera with clientId %s (attempt %d)", a.s.ClientID, a.s.Attempt)
		switch a.rec.step {
		case StepICERestart:
			msg = fmt.Sprintf("ICE-restart offer sent to the camera with clientId %s", a.s.ClientID)
		case StepNewPeerConnection:
			msg = fmt.Sprintf("the app's new peer connection's offer sent to the camera with the same clientId %s", a.s.ClientID)
		}
		a.emit(Event{Type: EventOfferSent, Message: msg})
	}
	a.offerSent = true
	for _, c := range a.appCands {
		a.sendCandidate(c)
	}
}

func (a *actor) sendCandidate(c Candidate) {
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.KVSTimeout)
	defer cancel()
	if err := a.conn.SendCandidate(ctx, c); err != nil {
		a.log.Debug("send candidate", "error", err)
	}
}

func (a *actor) onAppCandidate(c Candidate) error {
	if a.s.State == StatePending {
		return ErrNotJoined
	}
	if c.Candidate == "" {
		// End of candidates: KVS has no message for it (the SDKs send none),
		// and the camera needs none; nothing to forward.
		return nil
	}
	if err := a.m.sig.ValidateCandidate(c); err != nil {
		return &FieldError{Field: "candidate", Reason: err.Error()}
	}
	if len(a.appCands) >= a.m.cfg.MaxCandidates {
		return invalid("candidate", "more than %d candidates for one offer", a.m.cfg.MaxCandidates)
	}
	a.appCands = append(a.appCands, c)
	if a.offerSent && a.conn != nil {
		a.sendCandidate(c)
	}
	return nil
}

func (a *actor) onAnswerTimeout() {
	o := a.s.Options
	left := a.offerAttempt < o.MaxAttempts
	a.emit(Event{Type: EventAnswerTimeout,
		Failure: &Failure{Reason: FailureAnswerTimeout, Message: fmt.Sprintf("no answer within %v", o.AnswerTimeout)},
		Message: fmt.Sprintf("the camera did not answer within %v (attempt %d of %d, clientId %s)", o.AnswerTimeout, a.offerAttempt, o.MaxAttempts, a.s.ClientID)})
	a.m.obs.AnswerTimeout(left)
	in := input{kind: inAnswerTimeout, attemptsLeft: left}
	if to, err := next(a.s.State, in); err != nil {
		return
	} else if to == StateFailed {
		a.endStep(OutcomeNoAnswer) // a new clientId's offer, in a recovery
		a.fail(FailureAnswerTimeout, fmt.Sprintf("the camera did not answer after %d attempts of %v each; check that it is online", a.offerAttempt, o.AnswerTimeout))
		return
	}
	if _, err := a.transition(in, fmt.Sprintf("retrying in %v with a fresh clientId", o.RetryDelay)); err != nil {
		return
	}
	a.closeConn()
	a.releaseLease()
	a.emit(Event{Type: EventRetryScheduled, Message: fmt.Sprintf("signaling closed and clientId released into cooldown; attempt %d in %v with a fresh clientId", a.offerAttempt+1, o.RetryDelay)})
	a.retryT.start(o.RetryDelay)
	a.predialT.start(o.RetryDelay - predialLead(o.RetryDelay))
}

// predialLead is how long before the retry is due its clientId is leased
// and its signaling opened, so the replayed offer leaves exactly
// retry_delay after the timeout instead of a dial later.
func predialLead(retryDelay time.Duration) time.Duration {
	return min(time.Second, retryDelay*3/4)
}

// onPredial prepares the next attempt: a fresh clientId and its signaling
// connection, opened while the session still waits in RETRYING.
func (a *actor) onPredial() {
	if a.s.State != StateRetrying || a.haveLease {
		return
	}
	if !a.newClientID() {
		return
	}
	a.offerAttempt++
	a.offerSent, a.answered = false, false
	a.heldRemote = nil
	a.dial()
}

func (a *actor) onRetryDue() {
	a.onPredial() // no-op when the predial ran
	if a.s.Terminal() {
		return
	}
	in := input{kind: inRetryDue, recovering: a.rec.step != StepUnknown}
	if _, err := a.transition(in, "retrying: KVS signaling with a fresh clientId"); err != nil {
		return
	}
	if a.conn != nil {
		a.signalingUp()
	}
}

// newClientID leases a fresh clientId for the next attempt; on failure the
// session fails.
func (a *actor) newClientID() bool {
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.KVSTimeout)
	defer cancel()
	l, err := a.m.acquire(ctx, a.s.Channel, a.s.ViewerID)
	if err != nil {
		reason, msg := failureOf(err)
		a.fail(reason, "could not allocate a new clientId: "+msg)
		return false
	}
	a.lease, a.haveLease = l, true
	a.m.holdLease(a, l)
	a.s.ClientID = l.ClientID
	a.s.Attempt++
	a.m.obs.Attempt()
	a.dirty = true
	a.log = a.m.log.With("session_id", string(a.s.ID), "client_id", l.ClientID)
	a.emit(Event{Type: EventClientIDAllocated, Message: fmt.Sprintf("clientId %s allocated (attempt %d)", l.ClientID, a.s.Attempt)})
	return true
}

// dial opens signaling for the current clientId in the background, paced
// per channel.
func (a *actor) dial() {
	a.dialGen++
	a.dialing = true
	gen, ch, id := a.dialGen, a.s.Channel, a.s.ClientID
	a.bg.Go(func() {
		if err := a.m.pace(a.ctx, ch.ARN); err != nil {
			a.dialC <- dialResult{gen: gen, err: err}
			return
		}
		// The connection lives as long as the dial context: the actor's.
		// The signaler bounds the establishment itself.
		conn, err := a.m.sig.Dial(a.ctx, ch, id)
		a.dialC <- dialResult{gen: gen, conn: conn, err: err}
	})
}

// maxDialRetries bounds the redials of one attempt after KVS throttling.
const maxDialRetries = 8

// dialBackoff is the wait before redial n (n >= 1): 250ms doubling, capped
// at 4s, with full jitter so replicas do not redial in step.
func dialBackoff(n int) time.Duration {
	d := 250 * time.Millisecond << min(n-1, 4)
	return d/2 + rand.N(d/2)
}

func (a *actor) onDial(res dialResult) {
	if res.gen != a.dialGen || a.s.Terminal() {
		if res.conn != nil {
			_ = res.conn.Close()
		}
		return
	}
	a.dialing = false
	if res.err != nil {
		if errors.Is(res.err, ErrThrottled) && a.dialRetries < maxDialRetries {
			// KVS allows 3 connects per second per channel; several
			// replicas recovering one channel's sessions can exceed it.
			a.dialRetries++
			d := dialBackoff(a.dialRetries)
			a.log.Info("KVS throttled the signaling connect", "error", res.err, "retry_in", d.String())
			a.emit(Event{Type: EventSignalingError, Message: fmt.Sprintf("KVS throttled the signaling connect; trying again in %v", d.Round(time.Millisecond)),
				Failure: &Failure{Reason: FailureKVSThrottled, Message: publicErr(res.err)}})
			a.redialT.start(d)
			return
		}
		a.log.Warn("could not open KVS signaling", "error", res.err)
		reason, msg := failureOf(res.err)
		a.fail(reason, "could not open KVS signaling: "+msg)
		return
	}
	a.dialRetries = 0
	a.conn, a.connEvents = res.conn, res.conn.Events()
	a.emit(Event{Type: EventSignalingConnected, Message: fmt.Sprintf("KVS signaling open with clientId %s", a.s.ClientID)})
	if a.s.State == StateRetrying {
		return // opened ahead of the retry; onRetryDue goes on from here
	}
	a.signalingUp()
}

// signalingUp moves on once the current attempt's signaling is open: to
// AWAITING_OFFER, or straight on with a buffered offer.
func (a *actor) signalingUp() {
	if _, err := a.transition(input{kind: inSignalingUp}, "signaling open; waiting for the app's offer"); err != nil && !errors.Is(err, errStale) {
		return
	}
	if a.offer != "" && !a.offerSent {
		a.sendOffer()
	}
}

// onSignal handles one event from KVS.
func (a *actor) onSignal(ev SignalEvent) {
	switch ev.Kind {
	case SignalAnswer:
		a.onAnswer(ev.SDP)
	case SignalCandidate:
		if a.dropRemote {
			return
		}
		if !a.answered {
			if len(a.heldRemote) < a.m.cfg.MaxCandidates {
				a.heldRemote = append(a.heldRemote, ev.Candidate)
			}
			return
		}
		a.emitRemoteCandidate(ev.Candidate)
	case SignalRejected:
		a.emit(Event{Type: EventSignalingError, Message: "KVS refused a message: " + ev.Detail,
			Failure: &Failure{Reason: FailureSignalingRejected, Message: ev.Detail}})
	case SignalReconnected:
		why := "the signaling connection dropped"
		if ev.Err != nil {
			a.log.Info("signaling reopened", "error", ev.Err)
		}
		a.emit(Event{Type: EventSignalingReconnected, Message: fmt.Sprintf("signaling reopened with the same clientId %s after: %s", a.s.ClientID, why)})
	case SignalIceServers:
		if ev.IceServers != nil {
			a.s.IceServers = *ev.IceServers
			a.dirty = true
			ice := a.s.IceServers
			a.emit(Event{Type: EventICEServersRefreshed, IceServers: &ice, Message: "KVS rotated its TURN servers (RECONNECT_ICE_SERVER); fresh ICE servers attached"})
		}
	case SignalClosed:
		if a.conn != nil {
			_ = a.conn.Close() // ended for good; release what it holds
		}
		a.conn, a.connEvents = nil, nil
		msg := "signaling connection lost"
		if ev.Err != nil {
			a.log.Warn("signaling connection lost", "error", ev.Err)
			msg += ": " + publicErr(ev.Err)
		}
		a.emit(Event{Type: EventSignalingError, Message: msg, Failure: &Failure{Reason: FailureKVSUnavailable, Message: msg}})
		if a.s.State == StateAwaitingOffer || a.s.State == StateSignaling || a.s.State == StateRecovering {
			a.dial() // the app still needs a way to offer
		}
	}
}

func (a *actor) emitRemoteCandidate(c Candidate) {
	cc := c
	a.emit(Event{Type: EventRemoteCandidate, Candidate: &cc, Message: "camera ICE candidate"})
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
	a.log.Warn("session failed", "reason", reason.String(), "message", msg)
}

// teardown releases everything a terminal session holds.
func (a *actor) teardown() {
	for _, t := range []*timer{&a.answerT, &a.retryT, &a.predialT, &a.resumeT, &a.stepT, &a.stallT, &a.discT, &a.lifeT, &a.renewT, &a.flushT, &a.remoteT, &a.redialT} {
		t.stop()
	}
	a.closeConn()
	a.releaseLease()
}

func (a *actor) closeConn() {
	if a.conn != nil {
		_ = a.conn.Close()
	}
	a.conn, a.connEvents = nil, nil
	a.dialGen++ // results of dials in flight are stale now
	a.dialing = false
	a.offerSent = false
}

func (a *actor) releaseLease() {
	if !a.haveLease {
		return
	}
	a.haveLease = false
	a.m.dropLease(a)
	a.m.release(a.ctx, a.lease)
}

func (a *actor) renew() {
	if !a.haveLease {
		return
	}
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.StoreTimeout)
	defer cancel()
	if err := a.m.ids.Renew(ctx, a.lease); err != nil {
		a.log.Warn("renew clientId lease", "client_id", a.lease.ClientID, "error", err)
	}
}

// onLeaseLost reports a failed renewal by the Manager's renewer, as renew
// reports its own, unless the lease is no longer the actor's (released or
// replaced while the renewal ran).
func (a *actor) onLeaseLost(loss leaseLoss) {
	if !a.haveLease || a.lease.Token != loss.token {
		return
	}
	a.log.Warn("renew clientId lease", "client_id", a.lease.ClientID, "error", loss.err)
}

// refreshICEIfStale refetches ICE servers that are close to expiry and
// reports whether it did.
func (a *actor) refreshICEIfStale() bool {
	if a.m.now().Before(a.s.IceServers.Expires.Add(-a.m.cfg.ICERefreshBefore)) {
		return false
	}
	return a.refreshICE(true)
}

func (a *actor) refreshICE(force bool) bool {
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.KVSTimeout)
	defer cancel()
	ice, err := a.m.sig.IceServers(ctx, a.s.Channel, a.s.ClientID, force)
	if err != nil {
		a.log.Warn("refresh ICE servers", "error", err)
		return false
	}
	a.s.IceServers = ice
	a.dirty = true
	cp := ice
	a.emit(Event{Type: EventICEServersRefreshed, IceServers: &cp, Message: "fresh ICE servers fetched"})
	return true
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

// emit appends an event to the timeline, stamped with the session's
// current state, attempt and clientId.
func (a *actor) emit(e Event) { a.notify(a.record(e)) }

// record stamps e, buffers it for the next store write and returns it.
func (a *actor) record(e Event) Event {
	e.Seq = a.s.LastSeq + 1
	e.Time = a.m.now()
	e.State = a.s.State
	e.Attempt = a.s.Attempt
	e.ClientID = a.s.ClientID
	e.AckedAppSeq = a.s.AckedAppSeq
	a.s.LastSeq = e.Seq
	a.dirty = true
	// Events are written by flush, at the end of the step that emitted
	// them and before any reply: the step's I/O (an offer to KVS) goes out
	// first, and readers, who read the store, see every event in order.
	a.pending = append(a.pending, e)
	if len(a.pending) > maxPendingEvents {
		a.log.Error("event buffer full during a store outage; dropping the oldest buffered event",
			"type", a.pending[0].Type.String(), "seq", a.pending[0].Seq)
		a.pending = a.pending[1:]
	}
	return e
}

// notify hands e to the observers.
func (a *actor) notify(e Event) {
	if eo, ok := a.m.obs.(EventObserver); ok {
		eo.SessionEvent(a.s.ID, a.s.Channel.ARN, e)
	}
}

// notifyStored hands events, just stored, to a SessionObserver: only what
// reached the timeline, so that an owner fenced by a takeover (its writes
// refused) tells no one about events that never happened for readers.
func (a *actor) notifyStored(events []Event) {
	so, ok := a.m.obs.(SessionObserver)
	if !ok {
		return
	}
	ref := SessionRef{ID: a.s.ID, ChannelARN: a.s.Channel.ARN, ChannelName: a.s.Channel.Name, ViewerID: a.s.ViewerID}
	for _, e := range events {
		so.SessionEventOf(ref, e)
	}
}

// maxPendingEvents bounds the events a session buffers while the store is
// unreachable.
const maxPendingEvents = 10000

// flushEvents writes buffered events and the record in one store write
// (Save); on a failure it leaves them buffered (retried by flushT), and on
// a conflict marks the actor fenced.
func (a *actor) flushEvents() {
	if (len(a.pending) == 0 && !a.dirty) || a.fenced {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), a.m.cfg.StoreTimeout)
	err := a.save(ctx)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrConflict) && a.ownEpoch():
		// Out-of-order events at our own epoch cannot come from another
		// writer (Save skips what an earlier write that timed out stored):
		// drop them rather than retry forever.
		a.log.Error("store refused buffered events at our own epoch; dropping them", "dropped", len(a.pending), "error", err)
		a.pending = nil
	case errors.Is(err, ErrConflict):
		a.fenced = true
	default:
		if !a.flushT.running() {
			a.log.Warn("store unavailable; buffering events", "buffered", len(a.pending), "error", err)
			a.flushT.start(flushRetry)
		}
	}
}

// flushRetry is how often buffered events and records are retried during a
// store outage.
const flushRetry = 250 * time.Millisecond

// drainPending keeps flushing an ended session's buffered events for up to
// max so that its last events reach the store.
func (a *actor) drainPending(max time.Duration) {
	deadline := time.Now().Add(max)
	for (len(a.pending) > 0 || a.dirty) && !a.fenced && time.Now().Before(deadline) {
		select {
		case <-time.After(flushRetry):
		case <-a.m.stopping:
			return
		}
		a.flush()
	}
	if len(a.pending) > 0 {
		a.log.Error("ended session's events could not be stored", "lost", len(a.pending))
	}
}

// flush writes buffered events and the record when it changed.
func (a *actor) flush() { a.flushEvents() }

// save writes the buffered events and the record in one store write.
func (a *actor) save(ctx context.Context) error {
	if err := a.m.store.Save(ctx, a.s, a.pending); err != nil {
		return err
	}
	a.notifyStored(a.pending)
	a.pending, a.dirty = nil, false
	return nil
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

// onTakeover starts a session this replica just took over: the old
// owner's signaling and the app's offer are gone, so a session that had
// started signaling recovers with a full reconnect and a new clientId.
func (a *actor) onTakeover() {
	if a.adopted {
		a.emit(Event{Type: EventOwnerChanged, Message: fmt.Sprintf("replica %s stopped; replica %s adopted the session and waits %v for the app to come back",
			a.takeoverFrom, a.m.cfg.ReplicaID, a.s.Options.ResumeGrace)})
		return
	}
	a.emit(Event{Type: EventOwnerChanged, Message: fmt.Sprintf("the session moved from replica %s to replica %s", a.takeoverFrom, a.m.cfg.ReplicaID)})
	a.afterMove()
}

// afterMove recovers from the move itself: the old owner's signaling and
// the app's offer are gone.
func (a *actor) afterMove() {
	to, err := a.transition(input{kind: inTakeover}, "the session moved to this replica")
	if err != nil {
		return
	}
	if to == StatePending {
		a.newClientID() // signaling opens on join
		return
	}
	// The old owner's connection and clientId are gone: a new clientId,
	// forced (nothing learned about the camera from it).
	a.startRecovery("the session moved to another server", StepNewClientID, false, true)
}

// ownEpoch reports whether the stored record still carries this actor's
// epoch and owner (false on a read error: the conservative answer).
func (a *actor) ownEpoch() bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), a.m.cfg.StoreTimeout)
	defer cancel()
	s, err := a.m.store.Get(ctx, a.s.ID)
	return err == nil && s.Epoch == a.s.Epoch && s.Owner == a.s.Owner
}

// checkOwner detects a takeover by another replica that this actor has not
// yet written into (a request's check: the Manager's ownership watch
// finds the others, see Manager.watchOwners). It reads the record's owner
// fields only.
func (a *actor) checkOwner() {
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.StoreTimeout)
	defer cancel()
	o, err := a.m.store.Owners(ctx, []SessionID{a.s.ID})
	if err != nil || o[0].Epoch == 0 {
		return // an outage (or no record): the fence will tell on the next write
	}
	if o[0].Epoch != a.s.Epoch || o[0].Owner != a.s.Owner {
		a.fenced = true
	}
}
