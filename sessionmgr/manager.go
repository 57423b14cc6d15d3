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
	"strings"
	"sync"
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

	// mu guards the fields below.
	mu      sync.Mutex
	actors  map[SessionID]*actor
	pacers  map[string]*rate.Limiter // per channel ARN
	closing bool
	wg      sync.WaitGroup // one per actor goroutine
}

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
		pacers: make(map[string]*rate.Limiter),
	}
	for _, o := range opts {
		o(m)
	}
	return m
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
// channel, reserves a slot on it, leases a clientId, fetches ICE servers,
// and starts the session's actor. It returns the session and its token.
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
	id := newSessionID()
	token := m.token(id)
	now := m.now()
	s := Session{
		ID:        id,
		Channel:   ch,
		ViewerID:  p.ViewerID,
		State:     StatePending,
		Options:   opts,
		Created:   now,
		Updated:   now,
		Expires:   now.Add(opts.MaxLifetime),
		TokenHash: hashToken(token),
		Caller:    p.Caller,
		RequestID: p.RequestID,
		Owner:     m.cfg.ReplicaID,
		Epoch:     1,
	}
	stored, err := m.store.Create(ctx, s, m.cfg.MaxPerChannel)
	if errors.Is(err, ErrAlreadyExists) && stored.ID != s.ID {
		return m.repeat(stored, p, ch)
	}
	if err != nil {
		return Session{}, "", err
	}
	undo := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.StoreTimeout)
		defer cancel()
		if err := m.store.Delete(dctx, s.ID); err != nil {
			m.log.Warn("undo create", "session_id", s.ID, "error", err)
		}
	}
	lease, err := m.acquire(ctx, ch, p.ViewerID)
	if err != nil {
		undo()
		return Session{}, "", fmt.Errorf("allocate clientId: %w", err)
	}
	ice, err := m.sig.IceServers(ctx, ch, lease.ClientID, false)
	if err != nil {
		m.release(ctx, lease)
		undo()
		return Session{}, "", fmt.Errorf("get ICE servers: %w", err)
	}
	s.ClientID = lease.ClientID
	s.Attempt = 1
	s.IceServers = ice

	a := newActor(m, s, lease)
	a.emit(Event{Type: EventCreated, Message: fmt.Sprintf("session created for viewer %q on channel %s", p.ViewerID, ch.Name)})
	a.emit(Event{Type: EventClientIDAllocated, Message: fmt.Sprintf("clientId %s allocated (attempt 1)", lease.ClientID)})
	if err := a.persist(ctx); err != nil {
		m.release(ctx, lease)
		undo()
		return Session{}, "", fmt.Errorf("store session: %w", err)
	}
	created := a.snapshot() // before the actor runs: then it owns a.s
	m.obs.SessionState(StateUnknown, StatePending)
	m.obs.Attempt()
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		m.release(ctx, lease)
		undo()
		return Session{}, "", ErrShuttingDown
	}
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
	if a := m.actor(id); a != nil {
		s, err := a.call(ctx, request{kind: reqClose, reason: CloseByBackend})
		if err == nil || !errors.Is(err, ErrSessionClosed) {
			return s, err
		}
	}
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if s.Terminal() {
		return s, nil
	}
	return Session{}, fmt.Errorf("session %s is owned by replica %s: %w", id, s.Owner, ErrUnavailable)
}

// Attach attaches an app stream (Connect's join, or the app's WatchSession)
// to the session: the first attach starts signaling, a later one resumes.
// It returns the session with fresh ICE servers. Call Detach when the
// stream ends.
func (m *Manager) Attach(ctx context.Context, id SessionID) (Session, error) {
	return m.send(ctx, id, request{kind: reqAttach})
}

// Detach marks an app stream gone; with no stream left the resume grace
// starts. leave=true closes the session (CLIENT_LEFT).
func (m *Manager) Detach(ctx context.Context, id SessionID) {
	if a := m.actor(id); a != nil {
		_, _ = a.call(ctx, request{kind: reqDetach})
	}
}

// Send delivers one app message to the session and returns once the
// session has taken it. Errors: ErrInvalidArgument, ErrNotJoined,
// ErrOfferInFlight, ErrOfferNotExpected, ErrSessionClosed, ErrNotFound.
func (m *Manager) Send(ctx context.Context, id SessionID, msg AppMessage) (Session, error) {
	return m.send(ctx, id, request{kind: reqApp, msg: msg})
}

func (m *Manager) send(ctx context.Context, id SessionID, r request) (Session, error) {
	if a := m.actor(id); a != nil {
		return a.call(ctx, r)
	}
	s, err := m.store.Get(ctx, id)
	if err != nil {
		return Session{}, err
	}
	if s.Terminal() {
		return s, ErrSessionClosed
	}
	return Session{}, fmt.Errorf("session %s is owned by replica %s: %w", id, s.Owner, ErrUnavailable)
}

// Watch calls fn with every event after `after`, oldest first, then with
// live events, until the session's terminal event (then it returns nil),
// ctx ends, or fn fails.
func (m *Manager) Watch(ctx context.Context, id SessionID, after uint64, fn func(Event) error) error {
	for {
		evs, err := m.store.Events(ctx, id, after, 256, false)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			// Nothing new: an ended session has nothing more to say (the
			// caller saw its terminal event already); a live one is waited
			// on. The terminal event is appended before the record turns
			// terminal, so it cannot slip between the two reads.
			s, err := m.store.Get(ctx, id)
			if err != nil {
				return err
			}
			if s.Terminal() {
				return nil
			}
			if evs, err = m.store.Events(ctx, id, after, 256, true); err != nil {
				return err
			}
		}
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
	for _, a := range actors {
		a.stop(CloseServerShutdown)
	}
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close sessions: %w", ctx.Err())
	}
}

func (m *Manager) isClosing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closing
}

func (m *Manager) actor(id SessionID) *actor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.actors[id]
}

func (m *Manager) removeActor(id SessionID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.actors, id)
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
