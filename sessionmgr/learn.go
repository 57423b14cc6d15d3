package sessionmgr

import "context"

// The ladder learns each channel's master: the step that brought video
// back is remembered in the Store (shared by every replica) for
// Config.RecoveryHintTTL, and the channel's next AUTO recovery starts
// there (RECOVERY_STARTED says learned). If that step fails the ladder
// climbs on, and what works then is remembered instead.

// learnedStep is the step that brought video back for the channel's
// master last time; StepUnknown when none is known. The read is bounded by
// HintTimeout: a slow or failing store delays a recovery by at most that,
// and then the ladder starts at the bottom.
func (a *actor) learnedStep() RecoveryStep {
	ctx, cancel := context.WithTimeout(a.ctx, a.m.cfg.HintTimeout)
	defer cancel()
	step, err := a.m.store.RecoveryHint(ctx, a.s.Channel.ARN)
	if err != nil {
		if a.m.hintFailing.CompareAndSwap(false, true) {
			a.logger().Warn("reading the recovery step learned for the channel failed; recoveries start at the ICE restart until the store answers",
				"channel", a.s.Channel.ARN, "error", err)
		}
		return StepUnknown
	}
	if a.m.hintFailing.CompareAndSwap(true, false) {
		a.logger().Info("reading learned recovery steps works again")
	}
	return step
}

// learn remembers step, which brought video back, for the channel, in the
// background (the actor does not wait for the store). Only AUTO recoveries
// teach: a policy that skips steps, a takeover's forced step, or a ladder
// whose app sent no offer in a step say nothing about the master.
func (a *actor) learn(step RecoveryStep) {
	if a.s.Options.Recovery != RecoveryAuto || a.rec.forced || a.rec.inconclusive {
		return
	}
	arn, ttl, timeout, log := a.s.Channel.ARN, a.m.cfg.RecoveryHintTTL, a.m.cfg.StoreTimeout, a.logger()
	a.bg.Go(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), timeout)
		defer cancel()
		if err := a.m.store.SetRecoveryHint(ctx, arn, step, ttl); err != nil {
			log.Warn("remember the recovery step that worked for the channel", "step", step.String(), "error", err)
		}
	})
}
