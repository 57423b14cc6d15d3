package sessionmgr

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Manager runs sessions. Create one with New and stop it with Close; all
// methods are safe for concurrent use.
type Manager struct {
	cfg   Config
	store Store
	sig   Signaler
	ids   ClientIDs
	log   *slog.Logger
	now   func() time.Time
	obs   Observer
	// cluster shares sessions with other replicas; nil: a single replica.
	cluster Cluster
	// hintFailing is set while reading remembered recovery steps fails,
	// so that the failure is logged once, not per recovery.
	hintFailing atomic.Bool
	// recheck is set when this replica's own heartbeat lapsed (others may
	// have taken its sessions over as a dead replica's): the ownership
	// watch then checks every session it runs.
	recheck atomic.Bool
	// renewer renews the leases of all sessions together (when ids can);
	// held are the leases it renews, by actor, under leaseMu.
	renewer LeaseRenewer
	leaseMu sync.Mutex
	held    map[*actor]Lease
	// watchCheck is how long Watch waits for events before it checks the
	// session again (tests shorten it).
	watchCheck time.Duration
	// drainC wakes the ownership watch when Drain starts (buffered).
	drainC chan struct{}
	// stopping is closed by Close: background loops and final flushes end.
	stopping chan struct{}
	stopOnce sync.Once
	bg       sync.WaitGroup // heartbeat and forward-serving loops

	// healthySince is when this replica's heartbeats started succeeding
	// without a break (zero while they fail); heartbeat goroutine writes,
	// others read under mu.
	healthySince time.Time

	// mu guards the fields below and healthySince.
	mu       sync.Mutex
	actors   map[SessionID]*actor
	legacy   map[SessionID][]*Attachment // made by Attach, for Detach
	pacers   map[string]*rate.Limiter    // per channel ARN
	closing  bool
	draining bool
	wg       sync.WaitGroup // one per actor goroutine
}

// WithCluster makes the Manager one replica of many sharing c (and a
// shared Store): it heartbeats, serves requests forwarded by other
// replicas, forwards to a session's owner, and takes sessions over.
func WithCluster(c Cluster) Option { return func(m *Manager) { m.cluster = c } }

// Option configures optional seams of a Manager.
type Option func(*Manager)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithClock sets the wall clock used for record times (default time.Now).
// Timers always use the runtime's timers, which testing/synctest fakes.
func WithClock(now func() time.Time) Option { return func(m *Manager) { m.now = now } }

// New returns a Manager running sessions on store, sig and ids.
func New(cfg Config, store Store, sig Signaler, ids ClientIDs, opts ...Option) *Manager {
	cfg = cfg.withDefaults()
	if len(cfg.TokenSecret) == 0 {
		cfg.TokenSecret = make([]byte, 32)
		_, _ = rand.Read(cfg.TokenSecret)
	}
	m := &Manager{
		cfg:    cfg,
		store:  store,
		sig:    sig,
		ids:    ids,
		log:    slog.Default(),
		now:    time.Now,
		obs:    nopObserver{},
		actors: make(map[SessionID]*actor),
		legacy: make(map[SessionID][]*Attachment),
		pacers: make(map[string]*rate.Limiter),

		watchCheck: watchCheck,
	}
	m.stopping = make(chan struct{})
	m.drainC = make(chan struct{}, 1)
	for _, o := range opts {
		o(m)
	}
	if r, ok := ids.(LeaseRenewer); ok && ids != nil {
		m.renewer, m.held = r, make(map[*actor]Lease)
		ctx, cancel := context.WithCancel(context.Background())
		m.bg.Go(func() {
			<-m.stopping
			cancel()
		})
		m.bg.Go(func() { m.renewLeases(ctx) })
	}
	if m.cluster != nil {
		ctx, cancel := context.WithCancel(context.Background())
		m.bg.Go(func() {
			<-m.stopping
			cancel()
		})
		m.bg.Go(func() { m.heartbeat(ctx) })
		m.bg.Go(func() { m.serveForwarded(ctx) })
		m.bg.Go(func() { m.sweep(ctx) })
		m.bg.Go(func() { m.watchOwners(ctx) })
	}
	return m
}

// sweep adopts the live sessions of dead replicas, so that each either
// resumes here when its app comes back or ends CLIENT_GONE after its resume
// grace (freeing its channel slot), instead of waiting for a lifetime.
// Every SweepEvery it reads the replicas that own sessions (one command)
// and asks each other one whether it lives; only a dead replica's owner
// index is read, so a sweep costs what the dead owned, not what the store
// holds (ended sessions cost nothing: they leave the index).
func (m *Manager) sweep(ctx context.Context) {
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
			if r != m.cfg.ReplicaID && !m.alive(ctx, r) {
				m.adopt(ctx, r)
			}
		}
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
		if m.recheck.Swap(false) {
			if !m.checkOwners(ctx, m.actorIDs()) {
				m.recheck.Store(true)
			}
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
func (m *Manager) heartbeat(ctx context.Context) {
	t := time.NewTicker(m.cfg.OwnerCheck / 2)
	defer t.Stop()
	var lastOK time.Time
	for {
		hctx, cancel := context.WithTimeout(ctx, m.cfg.StoreTimeout)
		err := m.cluster.Heartbeat(hctx, m.cfg.ReplicaID, m.cfg.ReplicaTTL)
		cancel()
		if err == nil {
			if !lastOK.IsZero() && time.Since(lastOK) >= m.cfg.ReplicaTTL/2 {
				// This replica may have been taken for dead (half the TTL:
				// what others saw of the gap may be longer than what this
				// replica saw).
				m.recheck.Store(true)
			}
			lastOK = time.Now()
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

// serveForwarded answers requests other replicas forward to this one.
func (m *Manager) serveForwarded(ctx context.Context) {
	for ctx.Err() == nil {
		err := m.cluster.Serve(ctx, m.cfg.ReplicaID, m.handleForwarded)
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
// the session and its token.
func (m *Manager) Create(ctx context.Context, p CreateParams) (Session, string, error) {
	if err := validChannelRef(p.Channel); err != nil {
		return Session{}, "", err
	}
	if err := validViewerID(p.ViewerID); err != nil {
		return Session{}, "", err
	}
	opts, err := m.cfg.options(p.Options)
	if err != nil {
		return Session{}, "", err
	}
	if m.isClosing() {
		return Session{}, "", ErrShuttingDown
	}
	ch, err := m.sig.Resolve(ctx, p.Channel)
	if err != nil {
		return Session{}, "", fmt.Errorf("resolve channel: %w", err)
	}
	// Two store round trips: the clientId's lease, then one write of the
	// record with its first events (which also takes the channel's slot).
	lease, err := m.acquire(ctx, ch, p.ViewerID)
	if err != nil {
		return Session{}, "", fmt.Errorf("allocate clientId: %w", err)
	}
	ice, err := m.sig.IceServers(ctx, ch, lease.ClientID, false)
	if err != nil {
		m.giveBack(ctx, lease)
		return Session{}, "", fmt.Errorf("get ICE servers: %w", err)
	}
	id := newSessionID()
	token := m.token(id)
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
		TokenHash:  hashToken(token),
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
	stored, err := m.store.Create(ctx, a.s, m.cfg.MaxPerChannel, a.pending...)
	if err != nil {
		// The clientId never reached KVS: it needs no cooldown.
		m.giveBack(ctx, lease)
		if errors.Is(err, ErrAlreadyExists) && stored.ID != "" && stored.ID != s.ID {
			return m.repeat(stored, p, ch)
		}
		if errors.Is(err, ErrChannelFull) || errors.Is(err, ErrAlreadyExists) {
			return Session{}, "", err
		}
		return Session{}, "", fmt.Errorf("store session: %w", err)
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
		return Session{}, "", ErrShuttingDown
	}
	for _, e := range first {
		a.notify(e) // before the actor runs: then it owns a
	}
	a.notifyStored(first)
	m.actors[s.ID] = a
	m.wg.Go(a.run)
	m.mu.Unlock()
	m.log.Info("session created", "session_id", created.ID, "client_id", created.ClientID, "channel", ch.ARN)
	return created, token, nil
}

// acquire leases a clientId, observed.
func (m *Manager) acquire(ctx context.Context, ch Channel, base string) (Lease, error) {
	start := time.Now()
	l, err := m.ids.Acquire(ctx, ch.ARN, base, ch.MessageTTL)
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

// Get returns a session.
func (m *Manager) Get(ctx context.Context, id SessionID) (Session, error) {
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return Session{}, err
	}
	return s, nil
}

// List lists sessions, newest first.
func (m *Manager) List(ctx context.Context, f ListFilter, limit int, cursor string) ([]Session, string, error) {
	return m.store.List(ctx, f, limit, cursor)
}

// Authorize checks a session token in constant time: ErrNotFound when the
// session does not exist, ErrPermissionDenied when the token is not its.
func (m *Manager) Authorize(ctx context.Context, id SessionID, token string) error {
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return err
	}
	if token == "" || subtle.ConstantTimeCompare(hashToken(token), s.TokenHash) != 1 {
		return ErrPermissionDenied
	}
	return nil
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

// Drain prepares this replica's exit (SIGTERM): no new sessions; with
// other replicas, every app is told to reconnect (GOING_AWAY) and the
// replica waits until ctx ends for the apps to take their sessions
// elsewhere; whatever remains is let go (clientIds into cooldown, records
// left for a later takeover). A single replica has nowhere to send apps:
// its sessions are closed (SERVER_SHUTDOWN) by Close.
func (m *Manager) Drain(ctx context.Context) {
	m.mu.Lock()
	m.draining = true
	select {
	case m.drainC <- struct{}{}:
	default:
	}
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	m.mu.Unlock()
	if m.cluster == nil {
		return
	}
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

// Send delivers one app message to the session and returns once the
// session has taken it. Errors: ErrInvalidArgument, ErrNotJoined,
// ErrOfferInFlight, ErrOfferNotExpected, ErrSessionClosed, ErrNotFound.
func (m *Manager) Send(ctx context.Context, id SessionID, msg AppMessage) (Session, error) {
	return m.send(ctx, id, request{kind: reqApp, msg: msg})
}

// send routes a request to the session's actor: the local one, the
// owner's (forwarded), or a new local one after a takeover. A request, a
// join included, takes the session over only when the owner is gone (no
// heartbeat) or, for a join, drains; while the owner lives it is
// forwarded, so an app that alternates replicas moves nothing.
func (m *Manager) send(ctx context.Context, id SessionID, r request) (Session, error) {
	if r.kind == reqAttach && m.isDraining() && m.cluster != nil {
		// The app must rejoin on another replica, even over a connection
		// that still reaches this one.
		return Session{}, ErrShuttingDown
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
		if m.cluster == nil {
			return Session{}, fmt.Errorf("session %s has no actor on this replica: %w", id, ErrUnavailable)
		}
		if s.Owner == m.cfg.ReplicaID || ownerDraining || !m.alive(ctx, s.Owner) {
			if err := m.takeover(ctx, s, false); err != nil && !errors.Is(err, ErrConflict) {
				return Session{}, err
			}
			continue // to the new local actor, or to whoever won the race
		}
		if r.att != nil {
			r.att.setOwner(s.Owner) // before: a detach may race the reply
		}
		out, err := m.forward(ctx, s.Owner, id, r)
		if errors.Is(err, errNotOwner) || errors.Is(err, errFenced) {
			continue // ownership moved meanwhile
		}
		if r.kind == reqAttach && ctx.Err() == nil &&
			(errors.Is(err, errOwnerDraining) || errors.Is(err, ErrUnavailable) && !errors.Is(err, errOwnerAnswered)) {
			// The app left a draining replica, or the owner did not answer
			// (killed: its heartbeat has not lapsed yet): take over.
			ownerDraining = true
			continue
		}
		return out, err
	}
	return Session{}, fmt.Errorf("session %s: ownership keeps moving: %w", id, ErrUnavailable)
}

// alive reports whether replica may be alive. Unknown counts as alive:
// never steal on an outage. After an outage every heartbeat may have
// lapsed at once, so a missing heartbeat means dead only once this
// replica's own heartbeats have been succeeding for a whole ReplicaTTL
// (by then every live replica has renewed its own).
func (m *Manager) alive(ctx context.Context, replica string) bool {
	m.mu.Lock()
	trusted := !m.healthySince.IsZero() && time.Since(m.healthySince) >= m.cfg.ReplicaTTL
	m.mu.Unlock()
	if !trusted {
		return true
	}
	ok, err := m.cluster.Alive(ctx, replica)
	return err != nil || ok
}

// forward hands a request to the owner replica.
func (m *Manager) forward(ctx context.Context, owner string, id SessionID, r request) (Session, error) {
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
	rep, err := m.cluster.Forward(fctx, owner, f)
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

// Watch calls fn with every event after `after`, oldest first, then with
// live events, until the session's terminal event (then it returns nil),
// ctx ends, or fn fails. It reads the store once to replay, then waits on
// the store's timeline (Redis: the replica's one follower, which hands
// events to every waiting stream from memory), so an open stream costs no
// store call per event and nothing while the session is quiet; every
// watchCheck it also checks that the session has not ended without a
// terminal event in reach (its timeline trimmed past the watcher): an
// events read and a read of the record's owner fields, no record decode.
func (m *Manager) Watch(ctx context.Context, id SessionID, after uint64, fn func(Event) error) error {
	wait := false // the first read checks whether the session has ended
	for {
		var (
			evs []Event
			err error
		)
		if wait {
			evs, err = m.waitEvents(ctx, id, after)
		} else {
			evs, err = m.nextEvents(ctx, id, after)
		}
		if errors.Is(err, ErrUnavailable) {
			// A store outage: the stream stays open (the app's media does
			// not depend on it) and catches up when the store is back.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(flushRetry):
			}
			wait = false
			continue
		}
		if err != nil {
			return err
		}
		if evs == nil {
			return nil // ended, and the caller has seen the end
		}
		wait = len(evs) > 0
		for _, e := range evs {
			if err := fn(e); err != nil {
				return err
			}
			after = e.Seq
			if e.Terminal() {
				return nil
			}
		}
	}
}

// watchCheck is how long Watch waits for events before it checks the
// session again (nextEvents). The check only catches a session that ended
// without a terminal event in reach (a record that expired publishes
// nothing): every event, deletes and reconnects reach the waiters
// without it. Each check costs a store read per open stream, so it is
// rare: 10,000 open streams make 33 checks a second.
const watchCheck = 5 * time.Minute

// waitEvents waits for the events after `after`, for at most watchCheck;
// no events and no error when that passed (then Watch checks the session).
func (m *Manager) waitEvents(ctx context.Context, id SessionID, after uint64) ([]Event, error) {
	wctx, cancel := context.WithTimeout(ctx, m.watchCheck)
	defer cancel()
	evs, err := m.store.Events(wctx, id, after, 256, true)
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		return []Event{}, nil
	}
	return evs, err
}

// nextEvents returns the events after `after`, waiting for some when there
// are none; nil (no error) when the session has ended and there is nothing
// more. The terminal event is appended before the record turns terminal,
// so once the record reads terminal, a second read of the events has it.
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
	return m.waitEvents(ctx, id, after)
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

// Close ends every session this replica runs (CLOSED, SERVER_SHUTDOWN),
// releasing their clientIds into cooldown, and waits for their actors
// until ctx ends. New sessions are refused from the first call on.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	m.mu.Unlock()
	reason := CloseServerShutdown
	if m.cluster != nil {
		reason = closeLetGo // others may take them over when the apps come back
	}
	for _, a := range actors {
		a.stop(reason)
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("close sessions: %w", ctx.Err())
	}
	m.stopOnce.Do(func() { close(m.stopping) })
	m.bg.Wait()
	return err
}

func (m *Manager) isDraining() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.draining
}

func (m *Manager) isClosing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing || m.draining
}

func (m *Manager) actor(id SessionID) *actor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.actors[id]
}

func (m *Manager) removeActor(id SessionID, a *actor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.actors[id] == a {
		delete(m.actors, id)
	}
}

// pace waits for a turn to open a signaling connection on channel: across
// the cluster when there is one (KVS's 3 connects/s per channel is per
// channel, not per replica), else on this replica.
func (m *Manager) pace(ctx context.Context, channel string) error {
	if m.cluster == nil {
		return m.pacer(channel).Wait(ctx)
	}
	for {
		wait, err := m.cluster.Pace(ctx, channel, m.cfg.DialsPerSecond)
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

// token derives a session's token: the session id, a dot, and
// HMAC-SHA256(secret, id) in base64url (256 bits). The id part lets the
// service tell "another session's token" from "no token at all"; deriving
// the rest lets an idempotent repeat of CreateSession hand the same token
// back without storing it. Only its hash is stored, and verification uses
// the hash, so tokens outlive a change of secret.
func (m *Manager) token(id SessionID) string {
	mac := hmac.New(sha256.New, m.cfg.TokenSecret)
	mac.Write([]byte("viewersession/session-token/v1:" + string(id)))
	return string(id) + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// repeat answers an idempotent repeat of Create: the first call's session
// and, when this replica's secret derives it, its token.
func (m *Manager) repeat(stored Session, p CreateParams, ch Channel) (Session, string, error) {
	if stored.ViewerID != p.ViewerID || stored.Channel.ARN != ch.ARN {
		return Session{}, "", invalid("request_id", "already used for another request (viewer %q on %s)", stored.ViewerID, stored.Channel.Name)
	}
	tok := m.token(stored.ID)
	if subtle.ConstantTimeCompare(hashToken(tok), stored.TokenHash) != 1 {
		m.log.Warn("idempotent repeat: token secret differs from the creating replica's; token not returned", "session_id", stored.ID)
		tok = ""
	}
	return stored.clone(), tok, ErrAlreadyExists
}

// TokenSession returns the session a token claims to open (unverified:
// Authorize checks it).
func TokenSession(token string) (SessionID, bool) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || !ValidSessionID(id) || len(secret) != 43 {
		return "", false
	}
	return SessionID(id), true
}

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// clone returns a copy of s that shares no memory with it.
func (s Session) clone() Session {
	c := s
	c.IceServers.Servers = cloneServers(s.IceServers.Servers)
	if s.Failure != nil {
		f := *s.Failure
		c.Failure = &f
	}
	c.TokenHash = append([]byte(nil), s.TokenHash...)
	c.AppSeqsAbove = slices.Clone(s.AppSeqsAbove)
	return c
}

func cloneServers(in []IceServer) []IceServer {
	if in == nil {
		return nil
	}
	out := make([]IceServer, len(in))
	for i, s := range in {
		out[i] = s
		out[i].URLs = append([]string(nil), s.URLs...)
	}
	return out
}

// ResolveChannel resolves a channel reference (for listing by name).
func (m *Manager) ResolveChannel(ctx context.Context, ref ChannelRef) (Channel, error) {
	if err := validChannelRef(ref); err != nil {
		return Channel{}, err
	}
	return m.sig.Resolve(ctx, ref)
}
