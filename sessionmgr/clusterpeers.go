package sessionmgr

import (
	"context"
	"errors"
	"sync"
	"time"
)

// clusterPeers are the other replicas sharing c (and the Store): this
// replica heartbeats, serves the requests they forward to it, forwards to
// a session's owner while it lives and takes the session over when it is
// gone, adopts dead replicas' sessions, watches for its own sessions
// taken elsewhere, and paces signaling connects across every replica.
type clusterPeers struct {
	m *Manager
	c Cluster

	// held are this replica's app streams whose join went to the replica
	// that owns their session (forwarded attachments; see rejoin).
	mu   sync.Mutex
	held map[*Attachment]struct{}
}

// start starts the heartbeat, the serving of forwarded requests, the sweep
// of dead replicas and the ownership watch.
func (p *clusterPeers) start() {
	m := p.m
	ctx, cancel := context.WithCancel(context.Background())
	m.bg.Go(func() {
		<-m.stopping
		cancel()
	})
	m.bg.Go(func() { p.heartbeat(ctx) })
	m.bg.Go(func() { p.serveForwarded(ctx) })
	m.bg.Go(func() { p.sweep(ctx) })
	m.bg.Go(func() { m.watchOwners(ctx) })
}

// alive reports whether replica may be alive. Unknown counts as alive:
// never steal on an outage. After an outage every heartbeat may have
// lapsed at once, so a missing heartbeat means dead only once this
// replica's own heartbeats have been succeeding for a whole ReplicaTTL
// (by then every live replica has renewed its own).
func (p *clusterPeers) alive(ctx context.Context, replica string) bool {
	m := p.m
	m.mu.Lock()
	trusted := !m.healthySince.IsZero() && time.Since(m.healthySince) >= m.cfg.ReplicaTTL
	m.mu.Unlock()
	if !trusted {
		return true
	}
	ok, err := p.c.Alive(ctx, replica)
	return err != nil || ok
}

// route takes the session over when its owner is this replica (no actor
// runs it here, e.g. after a store outage), is gone (no heartbeat) or,
// for a join, sends the app away (drains, or does not answer); otherwise
// it forwards r to the owner.
func (p *clusterPeers) route(ctx context.Context, s Session, r request, ownerDraining *bool) (Session, bool, error) {
	m := p.m
	if s.Owner == m.cfg.ReplicaID || *ownerDraining || !p.alive(ctx, s.Owner) {
		if err := m.takeover(ctx, s, false); err != nil && !errors.Is(err, ErrConflict) {
			return Session{}, false, err
		}
		return Session{}, true, nil // to the new local actor, or to whoever won the race
	}
	if r.att != nil {
		r.att.setOwner(s.Owner) // before: a detach may race the reply
	}
	out, err := p.forward(ctx, s.Owner, s.ID, r)
	if errors.Is(err, errNotOwner) || errors.Is(err, errFenced) {
		return Session{}, true, nil // ownership moved meanwhile
	}
	if r.kind == reqAttach && ctx.Err() == nil &&
		(errors.Is(err, errOwnerDraining) || errors.Is(err, ErrUnavailable) && !errors.Is(err, errOwnerAnswered)) {
		// The app left a draining replica, or the owner did not answer
		// (killed: its heartbeat has not lapsed yet): take over.
		*ownerDraining = true
		return Session{}, true, nil
	}
	return out, false, err
}

// drainingJoin refuses the join: the app must rejoin on another replica,
// even over a connection that still reaches this one.
func (p *clusterPeers) drainingJoin() error { return ErrShuttingDown }

// forwardDetach tells the owner in the background (the app's stream must
// end now, even when the owner is dead); a failed forward is tried again
// briefly, and past that the owner's check of this replica's heartbeat is
// the backstop.
func (p *clusterPeers) forwardDetach(ctx context.Context, owner string, id SessionID, r request) {
	m := p.m
	select {
	case <-m.stopping:
		return // closing: the owner drops this replica's streams
	default:
	}
	m.bg.Go(func() {
		ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		defer cancel()
		go func() {
			select {
			case <-m.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		for try := range 3 {
			_, err := p.forward(ctx, owner, id, r)
			if err == nil || !errors.Is(err, ErrUnavailable) || errors.Is(err, errOwnerAnswered) || ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(try+1) * 200 * time.Millisecond):
			}
		}
	})
}

// checkOwnerFirst: another replica may have taken the session over since
// the last check (the actor then reads its owner fields unless
// Manager.unchallenged says no one can have).
func (p *clusterPeers) checkOwnerFirst() bool { return true }

// pace takes a turn across the cluster: KVS's 3 connects/s per channel is
// per channel, not per replica.
func (p *clusterPeers) pace(ctx context.Context, channel string) error {
	m := p.m
	for {
		wait, err := p.c.Pace(ctx, channel, m.cfg.DialsPerSecond)
		if err != nil {
			// The store is out: fall back to this replica's own pacing
			// rather than fail a session; KVS's throttling is retried.
			return m.pacer(channel).Wait(ctx)
		}
		if wait <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// sendAppsAway tells every app to reconnect (GOING_AWAY: it rejoins on
// another replica, which takes the session over) and lets go of the
// sessions still here when ctx ends (clientIds into cooldown, records left
// for a later takeover).
func (p *clusterPeers) sendAppsAway(ctx context.Context, actors []*actor) {
	for _, a := range actors {
		_, _ = a.call(ctx, request{kind: reqGoAway})
	}
	for _, a := range actors {
		select {
		case <-a.done:
		case <-ctx.Done():
			a.stop(closeLetGo)
		}
	}
	for _, a := range actors {
		<-a.done
	}
}

// closeReason lets the sessions go: others may take them over when the
// apps come back.
func (p *clusterPeers) closeReason() CloseReason { return closeLetGo }

// joined keeps att while another replica holds it (its join was
// forwarded), and lets it go when this replica holds it (a join again
// after a takeover here).
func (p *clusterPeers) joined(att *Attachment) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Read under p.mu: a Detach that begins now is left's after this.
	owner, detached := att.state()
	if detached || owner == "" || owner == p.m.cfg.ReplicaID {
		delete(p.held, att)
		return
	}
	if p.held == nil {
		p.held = make(map[*Attachment]struct{})
	}
	p.held[att] = struct{}{}
}

func (p *clusterPeers) left(att *Attachment) {
	p.mu.Lock()
	delete(p.held, att)
	p.mu.Unlock()
}

// rejoin joins again this replica's forwarded streams whose owner died,
// wherever their session goes now (adopted here by the sweep, by another
// replica, or taken over by this join). The new owner's actor starts with
// no streams: without this, an app whose stream to this replica never
// broke would be taken for gone after the resume grace, and its session
// would end under it. A join the new owner refuses for good (the session
// ended) lets the stream go; one that fails for now is tried again at the
// next sweep.
func (p *clusterPeers) rejoin(ctx context.Context) {
	m := p.m
	p.mu.Lock()
	byOwner := make(map[string][]*Attachment)
	for att := range p.held {
		owner, _ := att.state()
		byOwner[owner] = append(byOwner[owner], att)
	}
	p.mu.Unlock()
	for owner, atts := range byOwner {
		if ctx.Err() != nil {
			return
		}
		if p.alive(ctx, owner) {
			continue
		}
		for _, att := range atts {
			if _, detached := att.state(); detached {
				p.left(att)
				continue
			}
			_, err := m.send(ctx, att.id, request{kind: reqAttach, att: att})
			switch {
			case errors.Is(err, ErrSessionClosed) || errors.Is(err, ErrNotFound):
				p.left(att)
				continue
			case err != nil:
				m.log.Warn("join an app stream again after its session's owner stopped", "session_id", att.id, "from", owner, "error", err)
				continue
			}
			if _, detached := att.state(); detached {
				// The stream ended while it joined: tell the new owner.
				m.detachFrom(ctx, att)
				continue
			}
			p.joined(att)
			now, _ := att.state()
			if now == "" {
				now = m.cfg.ReplicaID
			}
			m.log.Info("app stream joined again after its session's owner stopped", "session_id", att.id, "from", owner, "owner", now)
		}
	}
}
