package sessionmgr

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// serveForwarded answers requests other replicas forward to this one.
func (p *clusterPeers) serveForwarded(ctx context.Context) {
	m := p.m
	for ctx.Err() == nil {
		err := p.c.Serve(ctx, m.cfg.ReplicaID, m.handleForwarded)
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("serve forwarded requests", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (m *Manager) handleForwarded(ctx context.Context, f Forwarded) ForwardReply {
	r := request{kind: reqApp, msg: f.Msg}
	switch f.Kind {
	case "close":
		r = request{kind: reqClose, reason: CloseByBackend}
	case "attach", "detach":
		r = request{kind: reqDetach, att: &Attachment{m: m, id: f.Session, stream: f.Stream}, from: f.From}
		if f.Kind == "attach" {
			r.kind = reqAttach
			if m.isDraining() {
				// The app must not stay on a replica that is leaving:
				// the forwarder takes the session over instead.
				code, detail := encodeErr(errOwnerDraining)
				return ForwardReply{Err: code, Detail: detail}
			}
		}
	}
	s, err := m.sendLocal(ctx, f.Session, r)
	code, detail := encodeErr(err)
	return ForwardReply{Session: s, Err: code, Detail: detail}
}

// sendLocal serves a request forwarded to this replica without forwarding
// it again: the local actor, or (when the record names this replica but no
// actor runs it, e.g. after a store outage) a local takeover; errNotOwner
// when the session belongs elsewhere now.
func (m *Manager) sendLocal(ctx context.Context, id SessionID, r request) (Session, error) {
	for range 2 {
		if a := m.actor(id); a != nil {
			s, err := a.call(ctx, r)
			if !errors.Is(err, errFenced) {
				return s, err
			}
			m.removeActor(id, a)
			return Session{}, errNotOwner
		}
		s, err := m.store.Get(ctx, id)
		if err != nil {
			return Session{}, err
		}
		if s.Terminal() {
			return s, ErrSessionClosed
		}
		if s.Owner != m.cfg.ReplicaID {
			return Session{}, errNotOwner
		}
		if err := m.takeover(ctx, s, false); err != nil && !errors.Is(err, ErrConflict) {
			return Session{}, err
		}
	}
	return Session{}, errNotOwner
}

// CloseSession closes a session on a backend's request. Closing an ended
// session returns it unchanged.
func (m *Manager) CloseSession(ctx context.Context, id SessionID) (Session, error) {
	s, err := m.send(ctx, id, request{kind: reqClose, reason: CloseByBackend})
	if errors.Is(err, ErrSessionClosed) && s.ID != "" {
		return s, nil
	}
	return s, err
}

// Send delivers one app message to the session and returns once the
// session has taken it. Errors: ErrInvalidArgument, ErrNotJoined,
// ErrOfferInFlight, ErrOfferNotExpected, ErrSessionClosed, ErrNotFound.
func (m *Manager) Send(ctx context.Context, id SessionID, msg AppMessage) (Session, error) {
	return m.send(ctx, id, request{kind: reqApp, msg: msg})
}

// send routes a request to the session's actor: the local one, or, when
// none runs here, where the peers route it (in a cluster: the owner's,
// forwarded, or a new local one after a takeover). A request, a join
// included, takes the session over only when the owner is gone (no
// heartbeat) or, for a join, drains; while the owner lives it is
// forwarded, so an app that alternates replicas moves nothing.
func (m *Manager) send(ctx context.Context, id SessionID, r request) (Session, error) {
	if r.kind == reqAttach && m.isDraining() {
		if err := m.peers.drainingJoin(); err != nil {
			return Session{}, err
		}
	}
	ownerDraining := false
	for range 4 {
		if a := m.actor(id); a != nil {
			if r.att != nil {
				r.att.setOwner("")
			}
			s, err := a.call(ctx, r)
			if !errors.Is(err, errFenced) {
				return s, err
			}
			m.removeActor(id, a)
		}
		s, err := m.store.Get(ctx, id)
		if err != nil {
			return Session{}, err
		}
		if s.Terminal() {
			return s, ErrSessionClosed
		}
		out, again, err := m.peers.route(ctx, s, r, &ownerDraining)
		if !again {
			return out, err
		}
	}
	return Session{}, fmt.Errorf("session %s: ownership keeps moving: %w", id, ErrUnavailable)
}

// forward hands a request to the owner replica.
func (p *clusterPeers) forward(ctx context.Context, owner string, id SessionID, r request) (Session, error) {
	m := p.m
	f := Forwarded{Session: id, Kind: "app", Msg: r.msg, From: m.cfg.ReplicaID}
	switch r.kind {
	case reqClose:
		f.Kind = "close"
	case reqAttach, reqDetach:
		f.Kind, f.Msg, f.Stream = "attach", AppMessage{}, r.att.stream
		if r.kind == reqDetach {
			f.Kind = "detach"
		}
	}
	timeout := m.cfg.ForwardTimeout
	if r.kind == reqAttach {
		// A live owner answers a join at once; one that does not is taken
		// to be dead (see send).
		timeout = min(timeout, attachForwardTimeout)
	}
	fctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rep, err := p.c.Forward(fctx, owner, f)
	if err != nil {
		return Session{}, err
	}
	if err := decodeErr(rep.Err, rep.Detail); err != nil {
		return rep.Session, fmt.Errorf("%w: %w", errOwnerAnswered, err)
	}
	return rep.Session, nil
}

// attachForwardTimeout bounds the wait for a forwarded join's answer.
const attachForwardTimeout = 2 * time.Second

// errOwnerAnswered marks an error the owner itself returned to a forwarded
// request (as opposed to the forward failing).
var errOwnerAnswered = errors.New("answered by the owner")

// Watch calls fn with every event after `after`, oldest first, then with
// live events, until the session's terminal event (then it returns nil),
// ctx ends, or fn fails. It reads the store once to replay, then waits on
// the store's timeline (Redis: the replica's one follower, which hands
// events to every waiting stream from memory), so an open stream costs no
// store call per event and nothing while the session is quiet; every
// watchCheck it also checks that the session has not ended without a
// terminal event in reach (its timeline trimmed past the watcher): an
// events read and a read of the record's owner fields, no record decode.
//
// A stream's goroutine parks in Watch for the stream's life, so the wait
// is Watch's own call of Store.Events, in a small frame, and the work of
// each batch is in calls that return first (nextEvents, deliver): parked,
// the goroutine then uses little enough of its stack for the runtime to
// halve it at a collection.
func (m *Manager) Watch(ctx context.Context, id SessionID, after uint64, fn func(Event) error) error {
	check := true // the first read checks whether the session has ended
	for {
		evs, err := []Event{}, error(nil)
		if check {
			evs, err = m.nextEvents(ctx, id, after)
		}
		if err == nil && evs != nil && len(evs) == 0 {
			// Live, and nothing after `after`: wait, for at most
			// watchCheck (then the session is checked again).
			wctx, cancel := context.WithTimeout(ctx, m.watchCheck)
			evs, err = m.store.Events(wctx, id, after, 256, true)
			if err != nil && ctx.Err() == nil && wctx.Err() != nil {
				evs, err = []Event{}, nil
			}
			cancel()
		}
		if errors.Is(err, ErrUnavailable) {
			// A store outage: the stream stays open (the app's media does
			// not depend on it) and catches up when the store is back.
			if err := pauseForStore(ctx); err != nil {
				return err
			}
			check = true
			continue
		}
		if err != nil {
			return err
		}
		if evs == nil {
			return nil // ended, and the caller has seen the end
		}
		check = len(evs) == 0
		var done bool
		if after, done, err = deliver(evs, after, fn); err != nil || done {
			return err
		}
	}
}

// deliver hands evs to fn in order and returns the last one's Seq; done
// after a terminal event. Not inlined: its copy of an event for fn would
// widen Watch's frame, where streams park.
//
//go:noinline
func deliver(evs []Event, after uint64, fn func(Event) error) (last uint64, done bool, err error) {
	for i := range evs {
		if err := fn(evs[i]); err != nil {
			return after, false, err
		}
		after = evs[i].Seq
		if evs[i].Terminal() {
			return after, true, nil
		}
	}
	return after, false, nil
}

// pauseForStore waits flushRetry, or until ctx ends (then its error).
func pauseForStore(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(flushRetry):
		return nil
	}
}

// watchCheck is how long Watch waits for events before it checks the
// session again (nextEvents). The check only catches a session that ended
// without a terminal event in reach (a record that expired publishes
// nothing): every event, deletes and reconnects reach the waiters
// without it. Each check costs a store read per open stream, so it is
// rare: 10,000 open streams make 33 checks a second.
const watchCheck = 5 * time.Minute

// nextEvents returns the events after `after` without waiting: none (an
// empty slice) while the session lives, nil (no error) when it has ended
// and there is nothing more. The terminal event is appended before the
// record turns terminal, so once the record reads terminal, a second read
// of the events has it.
func (m *Manager) nextEvents(ctx context.Context, id SessionID, after uint64) ([]Event, error) {
	evs, err := m.store.Events(ctx, id, after, 256, false)
	if err != nil || len(evs) > 0 {
		return evs, err
	}
	ended, err := m.ended(ctx, id)
	if err != nil {
		return nil, err
	}
	if ended {
		evs, err := m.store.Events(ctx, id, after, 256, false)
		if err != nil || len(evs) > 0 {
			return evs, err
		}
		return nil, nil
	}
	return []Event{}, nil
}

// ended reports whether the stored session is terminal. That is all a
// watch needs of the record, so it reads the record's owner fields
// (Owners: no decode), and the whole record only for a session Owners does
// not find, so that a missing one fails as Get fails (ErrNotFound).
func (m *Manager) ended(ctx context.Context, id SessionID) (bool, error) {
	o, err := m.store.Owners(ctx, []SessionID{id})
	if err != nil {
		return false, err
	}
	if len(o) == 1 && o[0] != (Ownership{}) {
		return !o[0].Live, nil
	}
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return false, err
	}
	return s.Terminal(), nil
}
