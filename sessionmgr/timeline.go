package sessionmgr

import (
	"context"
	"errors"
	"time"
)

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
		a.logger().Error("event buffer full during a store outage; dropping the oldest buffered event",
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

// flush writes buffered events and the record, when it changed, in one
// store write (Save); on a failure it leaves them buffered (retried by
// flushT), and when another replica took the session over (ErrFenced)
// marks the actor fenced.
func (a *actor) flush() {
	if (len(a.pending) == 0 && !a.dirty) || a.fenced {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), a.m.cfg.StoreTimeout)
	err := a.save(ctx)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, ErrSeqConflict):
		// Out-of-order events at our own epoch cannot come from another
		// writer (Save skips what an earlier write that timed out stored):
		// drop them rather than retry forever.
		a.logger().Error("store refused buffered events at our own epoch; dropping them", "dropped", len(a.pending), "error", err)
		a.pending = nil
	case errors.Is(err, ErrConflict): // ErrFenced: another replica took over
		a.fenced = true
	default:
		if !a.flushT.running() {
			a.logger().Warn("store unavailable; buffering events", "buffered", len(a.pending), "error", err)
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
		a.logger().Error("ended session's events could not be stored", "lost", len(a.pending))
	}
}

// save writes the buffered events and the record in one store write.
func (a *actor) save(ctx context.Context) error {
	if err := a.m.store.Save(ctx, a.s, a.pending); err != nil {
		return err
	}
	a.notifyStored(a.pending)
	a.pending, a.dirty = nil, false
	return nil
}
