package sessionmgr

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	// peers are the other replicas: noPeers for a single replica,
	// clusterPeers with WithCluster (set once, by New's options).
	peers peers
	// oneTrip asks for WithOneTripCreate; taker and preparer are set
	// when the store and ids can do it (New).
	oneTrip  bool
	taker    LeaseTaker
	preparer LeasePreparer
	// hintFailing is set while reading remembered recovery steps fails,
	// so that the failure is logged once, not per recovery.
	hintFailing atomic.Bool
	// lapses counts the times this replica's own heartbeat lapsed (others
	// may have taken its sessions over as a dead replica's); checked is
	// the count the ownership watch has checked every session it runs
	// after. lastBeat is when the last heartbeat that went through was
	// sent, as time since born on the monotonic clock (a wall-clock step
	// must not make an old heartbeat look fresh); 0 before the first. See
	// unchallenged.
	lapses, checked atomic.Uint64
	lastBeat        atomic.Int64
	born            time.Time
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
// A nil c leaves the Manager a single replica.
func WithCluster(c Cluster) Option {
	return func(m *Manager) {
		if c != nil {
			m.peers = &clusterPeers{m: m, c: c}
		}
	}
}

// WithOneTripCreate says that the store and the clientId allocator keep
// their state on one Redis server: Create then takes the clientId's lease
// in the store's write of the session (one round trip instead of two),
// when the store is a LeaseTaker that TakesLeases and the allocator a
// LeasePreparer. Never give it for a store and an allocator on different
// servers: the lease would be written to the store's.
func WithOneTripCreate() Option { return func(m *Manager) { m.oneTrip = true } }

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
	m := &Manager{
		cfg:    cfg,
		store:  store,
		sig:    sig,
		ids:    ids,
		log:    slog.Default(),
		now:    time.Now,
		born:   time.Now(),
		obs:    nopObserver{},
		actors: make(map[SessionID]*actor),
		legacy: make(map[SessionID][]*Attachment),
		pacers: make(map[string]*rate.Limiter),

		watchCheck: watchCheck,
	}
	m.stopping = make(chan struct{})
	m.drainC = make(chan struct{}, 1)
	m.peers = noPeers{m}
	for _, o := range opts {
		o(m)
	}
	if t, ok := store.(LeaseTaker); ok && m.oneTrip && t.TakesLeases() {
		if p, ok := ids.(LeasePreparer); ok {
			m.taker, m.preparer = t, p
		}
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
	m.peers.start()
	return m
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
	m.peers.sendAppsAway(ctx, actors)
}

// Close ends every session this replica runs (CLOSED, SERVER_SHUTDOWN),
// releasing their clientIds into cooldown, and waits for their actors
// until ctx ends; one replica of a cluster lets its sessions go instead
// (records left for a takeover when the apps come back). New sessions are
// refused from the first call on.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	m.closing = true
	actors := make([]*actor, 0, len(m.actors))
	for _, a := range m.actors {
		actors = append(actors, a)
	}
	m.mu.Unlock()
	reason := m.peers.closeReason()
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
