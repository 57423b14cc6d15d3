package sessionmgr

import (
	"context"
	"time"

	"golang.org/x/time/rate"
)

// sweep adopts the live sessions of dead replicas, so that each either
// resumes here when its app comes back or ends CLIENT_GONE after its resume
// grace (freeing its channel slot), instead of waiting for a lifetime; then
// it joins again this replica's streams whose owner died (rejoin).
// Every SweepEvery it reads the replicas that own sessions (one command)
// and asks each other one whether it lives; only a dead replica's owner
// index is read, so a sweep costs what the dead owned, not what the store
// holds (ended sessions cost nothing: they leave the index).
func (p *clusterPeers) sweep(ctx context.Context) {
	m := p.m
	t := time.NewTicker(m.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reps, err := m.store.Replicas(ctx)
		if err != nil {
			continue
		}
		for _, r := range reps {
			if ctx.Err() != nil {
				return
			}
			if r != m.cfg.ReplicaID && !p.alive(ctx, r) {
				m.adopt(ctx, r)
			}
		}
		p.rejoin(ctx)
	}
}

// adopt takes over the live sessions of dead replica r that no replica
// took yet, and drops the index entries of r that its records contradict.
func (m *Manager) adopt(ctx context.Context, r string) {
	ids, err := m.store.Owned(ctx, r)
	if err != nil {
		return
	}
	owners, err := m.store.Owners(ctx, ids)
	if err != nil {
		return
	}
	var stale []SessionID
	for i, id := range ids {
		if o := owners[i]; !o.Live || o.Owner != r {
			stale = append(stale, id)
			continue
		}
		if m.actor(id) != nil {
			continue
		}
		s, err := m.store.Get(ctx, id)
		if err != nil || !s.State.Live() || s.Owner != r {
			continue
		}
		if err := m.takeover(ctx, s, true); err == nil {
			m.log.Info("adopted the session of a dead replica", "session_id", s.ID, "from", s.Owner)
		}
	}
	// Also drops r from the replicas once it owns nothing.
	_ = m.store.Forget(ctx, r, nil, stale)
}

// watchOwners fences the actors whose sessions another replica took over.
// Every OwnerCheck (200 ms while draining, so that the apps' moves free
// this replica quickly) it reads the sessions taken from this replica
// (Store.Moved: one command, usually empty), checks the owner fields of
// those it runs (one pipeline) and fences the actors whose epoch is not
// the stored one. After its own heartbeat lapsed (the others may have
// taken its sessions as a dead replica's) it checks every session it runs
// that way once. The epoch fence on every write stays the safety net.
func (m *Manager) watchOwners(ctx context.Context) {
	t := time.NewTimer(m.cfg.OwnerCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-m.drainC:
			t.Stop()
		}
		if n := m.lapses.Load(); n != m.checked.Load() && m.checkOwners(ctx, m.actorIDs()) {
			m.checked.Store(n)
		}
		cctx, cancel := context.WithTimeout(ctx, m.cfg.StoreTimeout)
		if moved, err := m.store.Moved(cctx, m.cfg.ReplicaID); err == nil && len(moved) > 0 {
			if m.checkOwners(cctx, moved) {
				_ = m.store.Forget(cctx, m.cfg.ReplicaID, moved, nil)
			}
		}
		cancel()
		every := m.cfg.OwnerCheck
		if m.isDraining() {
			every = min(every, 200*time.Millisecond)
		}
		t.Reset(every)
	}
}

// ownersBatch bounds the sessions of one Owners call.
const ownersBatch = 1000

// checkOwners fences the local actors of ids whose stored epoch or owner
// is not theirs; false when the store could not tell.
func (m *Manager) checkOwners(ctx context.Context, ids []SessionID) bool {
	for len(ids) > 0 {
		n := min(len(ids), ownersBatch)
		var (
			check  []SessionID
			actors []*actor
		)
		m.mu.Lock()
		for _, id := range ids[:n] {
			if a := m.actors[id]; a != nil {
				check = append(check, id)
				actors = append(actors, a)
			}
		}
		m.mu.Unlock()
		ids = ids[n:]
		if len(check) == 0 {
			continue
		}
		owners, err := m.store.Owners(ctx, check)
		if err != nil {
			return false
		}
		for i, a := range actors {
			o := owners[i]
			if o.Epoch != 0 && (o.Epoch != a.epoch || o.Owner != m.cfg.ReplicaID) {
				m.log.Info("session taken over by another replica", "session_id", check[i], "owner", o.Owner, "epoch", o.Epoch)
				a.fence()
			}
		}
	}
	return true
}

// actorIDs returns the sessions this replica runs.
func (m *Manager) actorIDs() []SessionID {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := make([]SessionID, 0, len(m.actors))
	for id := range m.actors {
		ids = append(ids, id)
	}
	return ids
}

// heartbeat keeps this replica alive in the cluster's eyes.
func (p *clusterPeers) heartbeat(ctx context.Context) {
	m := p.m
	t := time.NewTicker(m.cfg.OwnerCheck / 2)
	defer t.Stop()
	var lastOK time.Time
	for {
		sent := time.Now()
		hctx, cancel := context.WithTimeout(ctx, m.cfg.StoreTimeout)
		err := p.c.Heartbeat(hctx, m.cfg.ReplicaID, m.cfg.ReplicaTTL)
		cancel()
		if err == nil {
			if !lastOK.IsZero() && time.Since(lastOK) >= m.cfg.ReplicaTTL/2 {
				// This replica may have been taken for dead (half the TTL:
				// what others saw of the gap may be longer than what this
				// replica saw).
				m.lapses.Add(1)
			}
			lastOK = time.Now()
			m.lastBeat.Store(int64(max(sent.Sub(m.born), 1)))
		}
		m.mu.Lock()
		switch {
		case err != nil:
			m.healthySince = time.Time{}
		case m.healthySince.IsZero():
			m.healthySince = time.Now()
		}
		m.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			m.log.Warn("replica heartbeat", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// unchallenged reports that no other replica can have taken over a
// session this replica runs since the ownership watch last looked: others
// take a live replica's session only when it drains (this one is not) or
// when its heartbeat has expired, and this one's was sent less than half
// its TTL ago (the key lives a TTL from its write, after the send), with
// every lapse before it checked. Then a request needs no read of the
// session's owner fields before it is served (actor.handle); the epoch
// fence on every write stays the safety net.
func (m *Manager) unchallenged() bool {
	beat := m.lastBeat.Load()
	return beat != 0 && time.Since(m.born)-time.Duration(beat) < m.cfg.ReplicaTTL/2 &&
		m.lapses.Load() == m.checked.Load() && !m.isDraining()
}

// takeover makes this replica the session's owner (compare-and-set on the
// epoch) and starts its actor.
func (m *Manager) takeover(ctx context.Context, s Session, adopt bool) error {
	m.mu.Lock()
	draining := m.draining || m.closing
	m.mu.Unlock()
	if draining {
		return ErrShuttingDown
	}
	prev := s.Owner
	s, err := m.store.Takeover(ctx, s.ID, m.cfg.ReplicaID, s.Epoch)
	if err != nil {
		return err
	}
	// Events the old owner appended but did not record in LastSeq, and
	// the app messages they acknowledge.
	if evs, err := m.store.Events(ctx, s.ID, s.LastSeq, 0, false); err == nil && len(evs) > 0 {
		s.LastSeq = evs[len(evs)-1].Seq
		for _, e := range evs {
			s.AckedAppSeq = max(s.AckedAppSeq, e.AckedAppSeq)
		}
		normalizeAppSeqs(&s)
	}
	a := newActor(m, s, Lease{})
	a.haveLease = false
	a.takeoverFrom = prev
	a.adopted = adopt
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return ErrShuttingDown
	}
	if old := m.actors[s.ID]; old != nil {
		return ErrConflict // a concurrent takeover here won
	}
	m.actors[s.ID] = a
	m.wg.Go(a.run)
	m.log.Info("session taken over", "session_id", s.ID, "from", prev, "epoch", s.Epoch)
	return nil
}

// pace waits for a turn to open a signaling connection on channel: across
// the cluster when there is one (KVS's 3 connects/s per channel is per
// channel, not per replica), else on this replica (peers.pace).
func (m *Manager) pace(ctx context.Context, channel string) error {
	return m.peers.pace(ctx, channel)
}

// pacer returns the channel's signaling-connect limiter.
func (m *Manager) pacer(channelARN string) *rate.Limiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.pacers[channelARN]
	if !ok {
		l = rate.NewLimiter(rate.Limit(m.cfg.DialsPerSecond), 1)
		m.pacers[channelARN] = l
	}
	return l
}
