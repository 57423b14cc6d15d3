package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// dialResult is the outcome of an asynchronous signaling dial.
type dialResult struct {
	gen  int
	conn SignalingConn
	err  error
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
		a.logger().Debug("offer not sent", "state", a.s.State.String(), "error", err)
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
		a.logger().Warn("sending the offer to KVS failed", "error", err)
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
		a.logger().Debug("send candidate", "error", err)
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
	l, err := a.m.acquire(ctx, a.s.Channel, a.s.ViewerID, false)
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
	a.logClient = l.ClientID
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
			a.logger().Info("KVS throttled the signaling connect", "error", res.err, "retry_in", d.String())
			a.emit(Event{Type: EventSignalingError, Message: fmt.Sprintf("KVS throttled the signaling connect; trying again in %v", d.Round(time.Millisecond)),
				Failure: &Failure{Reason: FailureKVSThrottled, Message: publicErr(res.err)}})
			a.redialT.start(d)
			return
		}
		a.logger().Warn("could not open KVS signaling", "error", res.err)
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
			a.logger().Info("signaling reopened", "error", ev.Err)
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
			a.logger().Warn("signaling connection lost", "error", ev.Err)
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
		a.logger().Warn("renew clientId lease", "client_id", a.lease.ClientID, "error", err)
	}
}

// onLeaseLost reports a failed renewal by the Manager's renewer, as renew
// reports its own, unless the lease is no longer the actor's (released or
// replaced while the renewal ran).
func (a *actor) onLeaseLost(loss leaseLoss) {
	if !a.haveLease || a.lease.Token != loss.token {
		return
	}
	a.logger().Warn("renew clientId lease", "client_id", a.lease.ClientID, "error", loss.err)
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
		a.logger().Warn("refresh ICE servers", "error", err)
		return false
	}
	a.s.IceServers = ice
	a.dirty = true
	cp := ice
	a.emit(Event{Type: EventICEServersRefreshed, IceServers: &cp, Message: "fresh ICE servers fetched"})
	return true
}
