package sessionmgr

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"
)

// CreateParams are the inputs of Create.
type CreateParams struct {
	Channel   ChannelRef
	ViewerID  string
	Options   Options
	Caller    string // who asks (API key id); scopes RequestID
	RequestID string
}

// Create creates a session: it validates the request, resolves the
// channel, leases a clientId, fetches ICE servers, stores the session with
// its first events (reserving a slot on the channel, or answering a
// repeat of the same request), and starts the session's actor. It returns
// the session; its record keeps the hash Config.TokenHash gives for its id.
// An idempotent repeat returns the first call's session (TokenHash
// included) with ErrAlreadyExists.
func (m *Manager) Create(ctx context.Context, p CreateParams) (Session, error) {
	if err := validChannelRef(p.Channel); err != nil {
		return Session{}, err
	}
	if err := validViewerID(p.ViewerID); err != nil {
		return Session{}, err
	}
	opts, err := m.cfg.options(p.Options)
	if err != nil {
		return Session{}, err
	}
	if m.isClosing() {
		return Session{}, ErrShuttingDown
	}
	ch, err := m.sig.Resolve(ctx, p.Channel)
	if err != nil {
		return Session{}, fmt.Errorf("resolve channel: %w", err)
	}
	// One round trip when the store takes the clientId's lease in its
	// write of the record (WithOneTripCreate); else two: the lease, then
	// the write of the record with its first events (which also takes the
	// channel's slot).
	var (
		n       newCreated
		stored  Session
		lease   Lease
		oneTrip bool
	)
	pl, prepared, err := m.prepare(ch, p.ViewerID)
	if err != nil {
		return Session{}, fmt.Errorf("allocate clientId: %w", err)
	}
	if prepared {
		lease = pl.Lease
		if n, err = m.newSession(ctx, ch, p, opts, lease); err != nil {
			return Session{}, err
		}
		start := time.Now()
		stored, err = m.taker.CreateTaking(ctx, n.a.s, m.cfg.MaxPerChannel, pl, n.a.pending...)
		// Taken means the first choice is live or cooling down: the
		// allocator's own way through its other candidates, below.
		oneTrip = !errors.Is(err, ErrLeaseTaken)
		if err == nil {
			m.obs.ClientID(time.Since(start), false, nil)
		}
	}
	if !oneTrip {
		// After a refused first choice (prepared), straight to the
		// allocator's other candidates.
		if lease, err = m.acquire(ctx, ch, p.ViewerID, prepared); err != nil {
			return Session{}, fmt.Errorf("allocate clientId: %w", err)
		}
		if n, err = m.newSession(ctx, ch, p, opts, lease); err != nil {
			m.giveBack(ctx, lease)
			return Session{}, err
		}
		stored, err = m.store.Create(ctx, n.a.s, m.cfg.MaxPerChannel, n.a.pending...)
	}
	a, first, s := n.a, n.first, n.a.s
	if err != nil {
		// The clientId never reached KVS: it needs no cooldown. A refusal
		// of the one-trip write (a full channel, a repeat) took no lease.
		refused := errors.Is(err, ErrChannelFull) || errors.Is(err, ErrAlreadyExists)
		if !oneTrip || !refused {
			m.giveBack(ctx, lease)
		}
		if errors.Is(err, ErrAlreadyExists) && stored.ID != "" && stored.ID != s.ID {
			return m.repeat(stored, p, ch)
		}
		if refused {
			return Session{}, err
		}
		return Session{}, fmt.Errorf("store session: %w", err)
	}
	a.pending, a.dirty = nil, false
	undo := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StoreTimeout)
		defer cancel()
		if err := m.store.Delete(dctx, s.ID); err != nil {
			m.log.Warn("undo create", "session_id", s.ID, "error", err)
		}
	}
	created := a.snapshot() // before the actor runs: then it owns a.s
	m.obs.SessionState(StateUnknown, StatePending)
	m.obs.Attempt()
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		m.giveBack(ctx, lease)
		undo()
		return Session{}, ErrShuttingDown
	}
	for _, e := range first {
		a.notify(e) // before the actor runs: then it owns a
	}
	a.notifyStored(first)
	m.actors[s.ID] = a
	m.wg.Go(a.run)
	m.mu.Unlock()
	m.log.Info("session created", "session_id", created.ID, "client_id", created.ClientID, "channel", ch.ARN)
	return created, nil
}

// newCreated is a session being created: its actor (which holds the
// session and its first events, pending) and those events.
type newCreated struct {
	a     *actor
	first []Event
}

// newSession builds the session Create stores for lease: its ICE servers,
// a new id and its token's hash, its actor and first two events.
func (m *Manager) newSession(ctx context.Context, ch Channel, p CreateParams, opts Options, lease Lease) (newCreated, error) {
	ice, err := m.sig.IceServers(ctx, ch, lease.ClientID, false)
	if err != nil {
		return newCreated{}, fmt.Errorf("get ICE servers: %w", err)
	}
	id := newSessionID()
	now := m.now()
	s := Session{
		ID:         id,
		Channel:    ch,
		ViewerID:   p.ViewerID,
		State:      StatePending,
		Options:    opts,
		Created:    now,
		Updated:    now,
		Expires:    now.Add(opts.MaxLifetime),
		TokenHash:  m.cfg.TokenHash(id),
		Caller:     p.Caller,
		RequestID:  p.RequestID,
		Owner:      m.cfg.ReplicaID,
		Epoch:      1,
		ClientID:   lease.ClientID,
		Attempt:    1,
		IceServers: ice,
	}
	a := newActor(m, s, lease)
	first := []Event{
		a.record(Event{Type: EventCreated, Message: fmt.Sprintf("session created for viewer %q on channel %s", p.ViewerID, ch.Name)}),
		a.record(Event{Type: EventClientIDAllocated, Message: fmt.Sprintf("clientId %s allocated (attempt 1)", lease.ClientID)}),
	}
	return newCreated{a: a, first: first}, nil
}

// prepare returns the first-choice lease for the store to take in its
// write, when the Manager creates in one trip (WithOneTripCreate).
func (m *Manager) prepare(ch Channel, base string) (PreparedLease, bool, error) {
	if m.taker == nil {
		return PreparedLease{}, false, nil
	}
	return m.preparer.PrepareLease(ch.ARN, base, ch.MessageTTL)
}

// acquire leases a clientId, observed. taken: a LeaseTaker has just
// refused the prepared first choice (LeasePreparer.AcquireTaken).
func (m *Manager) acquire(ctx context.Context, ch Channel, base string, taken bool) (Lease, error) {
	start := time.Now()
	var (
		l   Lease
		err error
	)
	if taken {
		l, err = m.preparer.AcquireTaken(ctx, ch.ARN, base, ch.MessageTTL)
	} else {
		l, err = m.ids.Acquire(ctx, ch.ARN, base, ch.MessageTTL)
	}
	m.obs.ClientID(time.Since(start), l.Collided, err)
	return l, err
}

// giveBack ends a lease whose clientId never reached KVS: free at once
// when the allocator can (LeaseReturner), else released into its cooldown.
func (m *Manager) giveBack(ctx context.Context, l Lease) {
	r, ok := m.ids.(LeaseReturner)
	if !ok {
		m.release(ctx, l)
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StoreTimeout)
	defer cancel()
	if err := r.Return(rctx, l); err != nil {
		m.log.Warn("return unused clientId", "client_id", l.ClientID, "error", err)
	}
}

func (m *Manager) release(ctx context.Context, l Lease) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StoreTimeout)
	defer cancel()
	if err := m.ids.Release(rctx, l); err != nil {
		m.log.Warn("release clientId", "client_id", l.ClientID, "error", err)
	}
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func newSessionID() SessionID {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return SessionID(strings.ToLower(idEncoding.EncodeToString(b[:])))
}

// ValidSessionID reports whether s has the form of a session id.
func ValidSessionID(s string) bool {
	if len(s) != 26 {
		return false
	}
	_, err := idEncoding.DecodeString(strings.ToUpper(s))
	return err == nil
}

// repeat answers an idempotent repeat of Create: the first call's
// session (the service gives its token back when its secret derives the
// stored hash).
func (m *Manager) repeat(stored Session, p CreateParams, ch Channel) (Session, error) {
	if stored.ViewerID != p.ViewerID || stored.Channel.ARN != ch.ARN {
		return Session{}, invalid("request_id", "already used for another request (viewer %q on %s)", stored.ViewerID, stored.Channel.Name)
	}
	return stored.clone(), ErrAlreadyExists
}
