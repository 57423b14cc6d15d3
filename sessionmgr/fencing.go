package sessionmgr

import (
	"context"
	"fmt"
)

// watchRemoteStreams arms remoteT, which checks every OwnerCheck that the
// replicas app streams are attached from still live (dropDeadStreams),
// while there are such streams; an actor without any has no timer to run
// (nor has any actor of a single replica: only a forwarded attach names
// another replica).
func (a *actor) watchRemoteStreams() {
	if !a.remoteT.running() && len(a.streams.replicas()) > 0 {
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
