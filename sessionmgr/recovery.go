package sessionmgr

import (
	"fmt"
	"time"
)

// The recovery ladder (design: "Recovery after a network change"). An
// outage (network changed, ICE failed, ICE disconnected past the grace,
// video stalled) starts a recovery; each step asks the app to renegotiate
// and is bounded by its timeout, measured from the step's start to video
// flowing again:
//
//  1. ICE_RESTART: same peer connection, clientId and WSS. An answer with
//     another DTLS fingerprint than the current one comes from a replaced
//     connection (the KVS JS sample): it is not applied, and step 2 starts
//     at once. No answer at all within ice_restart_timeout: the master
//     ignores this clientId (the C sample), so step 2 would be ignored too
//     and step 3 starts. An answer but no video in time: step 2.
//  2. NEW_PEER_CONNECTION: the app builds a new peer connection; same
//     clientId and WSS. No video within new_peer_connection_timeout: step 3.
//  3. NEW_CLIENT_ID: a new clientId, WSS and peer connection; its offer
//     follows the answer-timeout policy, and once answered video must flow
//     within new_peer_connection_timeout, else RECOVERY_FAILED.
//
// RECOVERED is emitted only when the app reports video growing after the
// step's answer (on a new peer connection for steps 2 and 3), with the
// outage from its first sign. The session stays RECOVERING until then.

// ladder is a running recovery (actor goroutine only).
type ladder struct {
	step    RecoveryStep // the step running; StepUnknown: no recovery
	first   RecoveryStep // the step the recovery started at
	started time.Time    // when the step started
	// answered: the step's answer was applied; its video counts from now.
	answered bool
	// oldPC: for steps that replace the app's peer connection, the one
	// being replaced (its video does not count).
	oldPC uint32
	// oldAppFP: the replaced peer connection's offer fingerprint; an offer
	// with it is not the new peer connection's.
	oldAppFP string
	// forced: started by a takeover, not by the camera's behaviour;
	// inconclusive: a step ran out before the app even sent its offer.
	// Either way the outcome says nothing about the master to learn.
	forced, inconclusive bool
	// ended: the step's outcome was observed.
	ended bool
}

// counts reports whether video on peer connection pc proves the current
// step worked.
func (l *ladder) counts(pc uint32) bool {
	if !l.answered {
		return false
	}
	return l.step == StepICERestart || pc != l.oldPC
}

// answerTimed reports whether an offer in step s is bounded by the
// answer-timeout policy (no recovery, or a new clientId) rather than by
// the step's own timer.
func (s RecoveryStep) answerTimed() bool {
	return s != StepICERestart && s != StepNewPeerConnection
}

// StepOutcome is how a recovery step ended.
type StepOutcome int

// The step outcomes.
const (
	OutcomeUnknown StepOutcome = iota
	// OutcomeRecovered: video flowed again.
	OutcomeRecovered
	// OutcomeFingerprintChanged: the ICE restart was answered from a
	// replaced connection.
	OutcomeFingerprintChanged
	// OutcomeTimeout: answered (or the app sent no offer), but no video in
	// time.
	OutcomeTimeout
	// OutcomeNoAnswer: the step's offer got no answer in time.
	OutcomeNoAnswer
	// OutcomeFailed: the session failed or ended during the step.
	OutcomeFailed
)

var outcomeNames = [...]string{"unknown", "recovered", "fingerprint_changed", "timeout", "no_answer", "failed"}

// String is the outcome's metric label.
func (o StepOutcome) String() string {
	if o < 0 || int(o) >= len(outcomeNames) {
		return "unknown"
	}
	return outcomeNames[o]
}

// recover starts a recovery for why, at the first step the policy (and
// what the channel's master needed last time) says; nothing when one runs
// already or there is no answered peer connection to recover.
func (a *actor) recover(why string) {
	if a.rec.step != StepUnknown {
		return
	}
	if _, err := next(a.s.State, input{kind: inRecover}); err != nil {
		return // nothing to recover yet: do not read the hint for nothing
	}
	step, learned := a.firstStep()
	a.startRecovery(why, step, learned, false)
}

// startRecovery moves to RECOVERING and starts step.
// A forced recovery (a takeover's) is RECOVERING already.
func (a *actor) startRecovery(why string, step RecoveryStep, learned, forced bool) {
	if !forced {
		if _, err := a.transition(input{kind: inRecover}, "recovering: "+why); err != nil {
			return // nothing to recover yet (no answer delivered)
		}
	}
	a.answerT.stop()
	a.discT.stop()
	a.stallT.stop()
	a.setMediaFlowing(false)
	a.noteSign(a.m.now())
	a.rec = ladder{first: step, forced: forced}
	a.startStep(step, learned, why)
}

// firstStep is where a new recovery starts.
func (a *actor) firstStep() (RecoveryStep, bool) {
	switch a.s.Options.Recovery {
	case RecoveryFullReconnect:
		return StepNewClientID, false
	case RecoveryICERestartOnly:
		return StepICERestart, false
	}
	if s := a.learnedStep(); s != StepUnknown {
		return s, true
	}
	return StepICERestart, false
}

// allowed reports whether the session's policy lets the ladder use step.
func (a *actor) allowed(step RecoveryStep) bool {
	switch a.s.Options.Recovery {
	case RecoveryFullReconnect:
		return step == StepNewClientID
	case RecoveryICERestartOnly:
		return step == StepICERestart
	}
	return step != StepUnknown
}

// startStep starts one step: RECOVERY_STARTED, then the renegotiate.
func (a *actor) startStep(step RecoveryStep, learned bool, why string) {
	a.rec.step, a.rec.started, a.rec.answered, a.rec.ended = step, a.m.now(), false, false
	a.stepT.stop()
	a.answerT.stop()
	// A new offer answers this step; whatever the last one had is void.
	a.offer, a.offerSent, a.answered = "", false, false
	a.appCands, a.heldRemote = nil, nil
	rec := &Recovery{Step: step, Learned: learned}
	hint := ""
	if learned {
		hint = " (what this camera needed last time)"
	}
	o := a.s.Options
	switch step {
	case StepICERestart:
		a.emit(Event{Type: EventRecoveryStarted, Recovery: rec,
			Message: fmt.Sprintf("%s: restarting ICE with the same clientId %s%s", why, a.s.ClientID, hint)})
		a.redialIfLost()
		rn := &Renegotiate{Action: RenegotiateICERestart, Reason: why + ": restart ICE on your peer connection and send the new offer"}
		if a.refreshICEIfStale() {
			ice := a.s.IceServers
			rn.IceServers = &ice
		}
		a.renegotiate(rn)
		a.stepT.start(o.ICERestartTimeout)
	case StepNewPeerConnection:
		a.rec.oldPC, a.rec.oldAppFP = a.media.pc, a.appFP
		a.emit(Event{Type: EventRecoveryStarted, Recovery: rec,
			Message: fmt.Sprintf("%s: a new peer connection with the same clientId %s%s", why, a.s.ClientID, hint)})
		a.redialIfLost()
		a.refreshICEIfStale()
		ice := a.s.IceServers
		a.renegotiate(&Renegotiate{Action: RenegotiateNewPeerConnection, IceServers: &ice,
			Reason: why + ": close your peer connection, build a new one with these ICE servers and send its offer"})
		a.stepT.start(o.NewPeerConnectionTimeout)
	case StepNewClientID:
		a.rec.oldPC, a.rec.oldAppFP = a.media.pc, a.appFP
		a.emit(Event{Type: EventRecoveryStarted, Recovery: rec,
			Message: fmt.Sprintf("%s: reconnecting with a new clientId and a new peer connection%s", why, hint)})
		a.closeConn()
		a.releaseLease()
		if !a.newClientID() {
			return
		}
		a.offerAttempt = 0
		a.dial()
		a.refreshICE(true)
		ice := a.s.IceServers
		a.renegotiate(&Renegotiate{Action: RenegotiateNewPeerConnection, IceServers: &ice,
			Reason: why + ": close your peer connection, build a new one with these ICE servers and send its offer"})
		// Its offer follows the answer-timeout policy; the media wait
		// starts with the answer.
	}
}

// redialIfLost reopens signaling with the same clientId when it was lost.
func (a *actor) redialIfLost() {
	if a.conn == nil && !a.dialing {
		a.dial()
	}
}

func (a *actor) renegotiate(rn *Renegotiate) {
	a.renegotiating = true
	a.emit(Event{Type: EventRenegotiate, Renegotiate: rn, Message: rn.Reason})
}

// checkStepOffer refuses, in a step that replaces the app's peer
// connection, an offer from the peer connection being replaced (an ICE
// restart sent before the app saw the newer renegotiate, and resent after
// its resume): the camera's answer to it could never carry video to the
// new peer connection the step waits for.
func (a *actor) checkStepOffer(fp string) error {
	if a.rec.step != StepNewPeerConnection && a.rec.step != StepNewClientID {
		return nil
	}
	if fp != "" && fp == a.rec.oldAppFP {
		return fmt.Errorf("%w: the offer comes from the peer connection being replaced (same DTLS fingerprint); "+
			"the latest renegotiate asks for a new peer connection", ErrOfferNotExpected)
	}
	return nil
}

// onAnswer takes the camera's answer on the current connection.
func (a *actor) onAnswer(sdp string) {
	if !a.offerSent || a.answered {
		a.emit(Event{Type: EventStaleAnswerDropped, Message: fmt.Sprintf("an answer arrived with no offer awaiting one (state %s) and was dropped", a.s.State)})
		return
	}
	fp := sdpFingerprint(sdp)
	if a.rec.step == StepICERestart && fingerprintChanged(a.remoteFP, fp) {
		// Applied, it would leave the app ICE-connected over a DTLS
		// association the camera has closed: black video, forever.
		a.answered, a.dropRemote, a.heldRemote = true, true, nil
		a.emit(Event{Type: EventStaleAnswerDropped,
			Message: "the camera answered the ICE restart from a new connection (its DTLS fingerprint changed): not applied, the old connection cannot carry video"})
		a.climb(OutcomeFingerprintChanged, StepNewPeerConnection,
			"the camera replaced its connection on the ICE restart (new DTLS fingerprint)")
		return
	}
	if _, err := a.transition(input{kind: inAnswer}, "answer delivered; ICE is checking"); err != nil {
		a.emit(Event{Type: EventStaleAnswerDropped, Message: fmt.Sprintf("an answer arrived in state %s and was dropped", a.s.State)})
		return
	}
	a.answerT.stop()
	a.answered, a.remoteFP = true, fp
	if a.rec.step != StepUnknown {
		a.rec.answered = true
		if a.rec.step == StepNewClientID {
			a.stepT.start(newClientIDVideoWait(a.s.Options))
		}
	}
	a.m.obs.Answer(time.Since(a.offerSentAt))
	a.emit(Event{Type: EventAnswer, Answer: sdp, Message: "the camera answered"})
	for _, c := range a.heldRemote {
		a.emitRemoteCandidate(c)
	}
	a.heldRemote = nil
}

// onStepTimeout: the current step did not bring video back in time.
func (a *actor) onStepTimeout() {
	o := a.s.Options
	switch a.rec.step {
	case StepICERestart:
		d := o.ICERestartTimeout
		switch {
		case a.rec.answered:
			a.climb(OutcomeTimeout, StepNewPeerConnection, fmt.Sprintf("video did not flow within %v of the ICE restart", d))
		case a.offerSent:
			// The master ignores offers from this clientId (the C sample
			// while its old session lives): a new peer connection with
			// the same clientId would be ignored too.
			a.climb(OutcomeNoAnswer, StepNewClientID, fmt.Sprintf("the camera did not answer the ICE restart within %v", d))
		default:
			a.rec.inconclusive = true
			a.climb(OutcomeTimeout, StepNewPeerConnection, fmt.Sprintf("the app sent no ICE-restart offer within %v", d))
		}
	case StepNewPeerConnection:
		d := o.NewPeerConnectionTimeout
		switch {
		case a.rec.answered:
			a.climb(OutcomeTimeout, StepNewClientID, fmt.Sprintf("video did not flow within %v of the new peer connection", d))
		case a.offerSent:
			a.climb(OutcomeNoAnswer, StepNewClientID, fmt.Sprintf("the camera did not answer the new peer connection's offer within %v", d))
		default:
			a.rec.inconclusive = true
			a.climb(OutcomeTimeout, StepNewClientID, fmt.Sprintf("the app sent no new peer connection's offer within %v", d))
		}
	case StepNewClientID:
		a.climb(OutcomeTimeout, StepUnknown, fmt.Sprintf("video did not flow within %v after the camera answered the new clientId's offer", newClientIDVideoWait(o)))
	}
}

// newClientIDVideoWait bounds the wait for video after a new clientId's
// answer: the last step is a fresh connection, like the session's first
// (ICE checks from scratch, maybe through TURN, while other sessions of a
// dead replica reconnect too), so it gets the answer timeout's patience,
// never less than the new-peer-connection step's. Failing it after 2 s
// killed sessions that were seconds from video.
func newClientIDVideoWait(o Options) time.Duration {
	return max(o.NewPeerConnectionTimeout, o.AnswerTimeout)
}

// climb ends the current step with outcome and starts step, or fails the
// session when the policy allows no further step.
func (a *actor) climb(outcome StepOutcome, step RecoveryStep, why string) {
	from := a.rec.step
	a.endStep(outcome)
	in := input{kind: inStepTimeout, last: step == StepUnknown || !a.allowed(step)}
	if to, err := next(a.s.State, in); err != nil {
		return
	} else if to == StateFailed {
		a.fail(FailureRecoveryFailed, a.failureMessage(from, outcome, why))
		return
	}
	if _, err := a.transition(in, why); err != nil {
		return
	}
	a.startStep(step, false, why)
}

// failureMessage says why the last step allowed failed, in plain words.
func (a *actor) failureMessage(step RecoveryStep, outcome StepOutcome, why string) string {
	switch {
	case a.s.Options.Recovery == RecoveryICERestartOnly && outcome == OutcomeFingerprintChanged:
		return "the camera replaced its connection on the ICE restart (its answer carries a new DTLS fingerprint), " +
			"so the old connection cannot carry video, and the recovery policy allows ICE restart only; " +
			"create a new session, or use RECOVERY_POLICY_AUTO"
	case a.s.Options.Recovery == RecoveryICERestartOnly:
		return why + ", and the recovery policy allows ICE restart only; create a new session, or use RECOVERY_POLICY_AUTO"
	case step == StepNewClientID:
		return why + ": no recovery step is left; check the camera and the app's network, then create a new session"
	}
	return why + ": the recovery failed"
}

// endStep observes the current step's outcome, once.
func (a *actor) endStep(outcome StepOutcome) {
	if a.rec.step == StepUnknown || a.rec.ended {
		return
	}
	a.rec.ended = true
	a.stepT.stop()
	a.m.obs.RecoveryStep(a.rec.step, outcome)
}

// abandonStep ends a step cut short by the session's end.
func (a *actor) abandonStep() {
	a.endStep(OutcomeFailed)
}

// recovered: video flows again after the outage; the session is CONNECTED.
func (a *actor) recovered() {
	step := a.rec.step
	now := a.m.now()
	outage := now.Sub(a.outageSign)
	if a.outageSign.IsZero() {
		outage = now.Sub(a.rec.started)
	}
	a.endStep(OutcomeRecovered)
	a.answerT.stop()
	a.m.obs.Outage(step, outage)
	a.emit(Event{Type: EventRecovered, Recovery: &Recovery{Step: step, Outage: outage},
		Message: fmt.Sprintf("video flows again after %v of outage: recovered by %s", outage.Round(time.Millisecond), stepWords(step))})
	a.learn(step)
	a.rec = ladder{}
	a.outageSign = time.Time{}
}

// stepWords names a step in plain words.
func stepWords(s RecoveryStep) string {
	switch s {
	case StepICERestart:
		return "an ICE restart"
	case StepNewPeerConnection:
		return "a new peer connection with the same clientId"
	case StepNewClientID:
		return "a new clientId and peer connection"
	}
	return s.String()
}

// maxStateEvents bounds the CONNECTION_STATE events one actor records.
const maxStateEvents = 200

// onStateReport takes the app's report of its peer connection. "Connected"
// ends no recovery (video does); failed starts one at once, disconnected
// after the grace.
//
// Reports are coalesced on the timeline, so that they can never push its
// milestones (CREATED, ANSWER, ...) out of the retained window: a report
// equal to the previous one adds no event, and past maxStateEvents per
// actor none does (each still acts).
func (a *actor) onStateReport(cs ConnState) {
	if a.lastReport == nil || *a.lastReport != cs {
		a.lastReport = &cs
		if a.stateEvents < maxStateEvents {
			a.stateEvents++
			a.emit(Event{Type: EventConnectionState, ConnState: &cs,
				Message: fmt.Sprintf("the app reports ICE %s, peer connection %s", iceName(cs.ICE), peerName(cs.Peer))})
		}
	}
	switch {
	case cs.Peer == PeerConnected || (cs.Peer == PeerUnknown && (cs.ICE == ICEConnected || cs.ICE == ICECompleted)):
		a.discT.stop()
		if a.rec.step == StepUnknown {
			a.outageSign = time.Time{} // healed by itself
		}
		_, _ = a.transition(input{kind: inConnected}, "the app's peer connection is connected")
	case cs.ICE == ICEFailed || cs.Peer == PeerFailed:
		a.discT.stop()
		a.noteSign(a.m.now())
		a.recover("ICE failed")
	case cs.ICE == ICEDisconnected || cs.Peer == PeerDisconnected:
		if (a.s.State == StateConnected || a.s.State == StateConnecting) && !a.discT.running() {
			a.noteSign(a.m.now())
			a.discT.start(a.s.Options.DisconnectedGrace)
		}
	}
}
