// Package memstore is an in-memory sessionmgr.Store: the store of a single
// replica, and the store of tests. It passes sessionmgr/storetest.
package memstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// The defaults of the options.
const (
	DefaultRetention         = time.Hour
	DefaultIdempotencyWindow = 10 * time.Minute
)

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read time from now instead of time.Now. Time
// must not go backwards. It drives terminal retention and the idempotency
// window, never the records' own times.
func WithClock(now func() time.Time) Option {
	return func(s *Store) { s.now = now }
}

// WithRetention sets how long a terminal session stays readable after it
// became terminal. Default DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = d }
}

// WithIdempotencyWindow sets how long after a create a repeat with the
// same (Caller, RequestID) returns the first session. Default
// DefaultIdempotencyWindow.
func WithIdempotencyWindow(d time.Duration) Option {
	return func(s *Store) { s.window = d }
}

// Store is an in-memory sessionmgr.Store. Records are copied in and out,
// so callers never share memory with it. Expired records are dropped
// lazily, on the next call; there is no background goroutine and nothing
// to close. A Store is safe for concurrent use; use New to make one.
type Store struct {
	now       func() time.Time
	retention time.Duration
	window    time.Duration

	// mu guards everything that follows.
	mu sync.Mutex
	// sessions holds every record, live or retained after it ended.
	sessions map[sessionmgr.SessionID]*entry
	// live holds, per channel ARN, the sessions whose State.Live().
	live map[string]map[sessionmgr.SessionID]struct{}
	// requests maps a (Caller, RequestID) pair to the last session created
	// with it, while that session exists; it counts only within the
	// idempotency window of the session.
	requests map[request]sessionmgr.SessionID
	// ending lists terminal sessions in the order they became terminal,
	// which is the order they expire in. An item whose record is gone or
	// ended at another time is stale and skipped.
	ending []ended
	// hints holds the recovery step remembered per channel ARN; an
	// expired one is dropped when it is read or replaced.
	hints map[string]hint
	// owned is the owner index: per replica, its live sessions.
	owned map[string]map[sessionmgr.SessionID]struct{}
	// moved holds, per replica, the sessions taken over from it that
	// Forget has not dropped.
	moved map[string]map[sessionmgr.SessionID]struct{}
	// endingByChannel is ending per channel; endedCount and
	// endedPerChannel count the ended sessions kept; maxEnded and
	// maxEndedPerChannel bound them (ended.go).
	endingByChannel    map[string][]ended
	endedCount         int
	endedPerChannel    map[string]int
	maxEnded           int
	maxEndedPerChannel int
	// all, byChannel and byViewer list every session, a channel's and a
	// viewer's, oldest first (listing.go).
	all       listing
	byChannel map[string]listing
	byViewer  map[string]listing
}

// hint is a remembered recovery step and when it expires.
type hint struct {
	step    sessionmgr.RecoveryStep
	expires time.Time
}

var _ sessionmgr.Store = (*Store)(nil)

// entry is one session and its timeline.
type entry struct {
	s sessionmgr.Session
	// key is its place in the listings, fixed at Create.
	key listKey
	// created is when the store created it (the idempotency window starts).
	created time.Time
	// req is the (Caller, RequestID) it was created with, if both were set.
	req request
	// ended is when it became terminal; zero while it is not.
	ended time.Time
	// events is the timeline, oldest first, at most EventRetention long.
	// By pointer: a slice grown by append has room for up to as many
	// events again, and an empty slot costs 8 bytes instead of an event's
	// 112 (a joined session holds about seven; see stored).
	events []*stored
	// lastSeq is the Seq of the last event appended (0: none yet).
	lastSeq uint64
	// appended is closed and replaced on every Append, and closed when the
	// session is removed, to wake the waiting Events calls.
	appended chan struct{}
}

type request struct{ caller, id string }

type ended struct {
	id sessionmgr.SessionID
	at time.Time
}

// New returns an empty store.
func New(opts ...Option) *Store {
	s := &Store{
		now:       time.Now,
		retention: DefaultRetention,
		window:    DefaultIdempotencyWindow,
		sessions:  make(map[sessionmgr.SessionID]*entry),
		live:      make(map[string]map[sessionmgr.SessionID]struct{}),
		byChannel: make(map[string]listing),
		byViewer:  make(map[string]listing),

		endingByChannel:    make(map[string][]ended),
		endedPerChannel:    make(map[string]int),
		maxEnded:           DefaultMaxEnded,
		maxEndedPerChannel: DefaultMaxEndedPerChannel,
		requests:           make(map[request]sessionmgr.SessionID),
		hints:              make(map[string]hint),
		owned:              make(map[string]map[sessionmgr.SessionID]struct{}),
		moved:              make(map[string]map[sessionmgr.SessionID]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Create inserts sess unless a session created with the same (Caller,
// RequestID) is within the idempotency window (that session and
// sessionmgr.ErrAlreadyExists), the ID is taken (ErrAlreadyExists), or the
// channel has limit live sessions (ErrChannelFull). events, when given,
// start its timeline (Seq 1, 2, ...). It returns the stored copy.
func (s *Store) Create(_ context.Context, sess sessionmgr.Session, limit int, events ...sessionmgr.Event) (sessionmgr.Session, error) {
	for i, ev := range events {
		if ev.Seq != uint64(i+1) {
			return sessionmgr.Session{}, fmt.Errorf("%w: create session %s: event %d has seq %d", sessionmgr.ErrInvalidArgument, sess.ID, i, ev.Seq)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.expireLocked()

	req := request{sess.Caller, sess.RequestID}
	idempotent := req.caller != "" && req.id != ""
	if id, ok := s.requests[req]; idempotent && ok {
		if e, ok := s.sessions[id]; ok && now.Sub(e.created) < s.window {
			return cloneSession(e.s), sessionmgr.ErrAlreadyExists
		}
	}
	if _, ok := s.sessions[sess.ID]; ok {
		return sessionmgr.Session{}, sessionmgr.ErrAlreadyExists
	}
	if len(s.live[sess.Channel.ARN]) >= limit {
		return sessionmgr.Session{}, sessionmgr.ErrChannelFull
	}

	e := &entry{s: cloneSession(sess), key: listKey{sess.Created, sess.ID}, created: now, appended: make(chan struct{})}
	e.addLocked(events) // nobody waits on it yet
	s.sessions[sess.ID] = e
	s.listLocked(e)
	s.indexLocked(e, now)
	if idempotent {
		e.req = req
		s.requests[req] = sess.ID
	}
	return cloneSession(e.s), nil
}

// Get returns a copy of the session, or sessionmgr.ErrNotFound.
func (s *Store) Get(_ context.Context, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	e, ok := s.sessions[id]
	if !ok {
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	}
	return cloneSession(e.s), nil
}

// Put replaces the session's record: Save with no events (see Save for
// its errors).
func (s *Store) Put(ctx context.Context, sess sessionmgr.Session) error {
	return s.Save(ctx, sess, nil)
}

// Save appends events to the session's timeline and replaces its record
// with sess, as one step: the checks and errors of Put, and events that
// the timeline already holds (Seq <= its last: a write of this epoch that
// landed after it timed out) are skipped. The rest must have increasing
// Seq after the last stored (a gap is allowed: events dropped during a
// long outage), else ErrSeqConflict and nothing changes; ErrFenced at
// another epoch.
func (s *Store) Save(_ context.Context, sess sessionmgr.Session, events []sessionmgr.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.expireLocked()
	e, ok := s.sessions[sess.ID]
	if !ok {
		return sessionmgr.ErrNotFound
	}
	if e.s.Epoch != sess.Epoch {
		return fmt.Errorf("save session %s at epoch %d, stored epoch %d: %w", sess.ID, sess.Epoch, e.s.Epoch, sessionmgr.ErrFenced)
	}
	if e.s.Channel.ARN != sess.Channel.ARN {
		return fmt.Errorf("%w: save session %s: its channel is %s, not %s", sessionmgr.ErrInvalidArgument, sess.ID, e.s.Channel.ARN, sess.Channel.ARN)
	}
	if e.s.Terminal() && !sess.Terminal() {
		return fmt.Errorf("save session %s in state %v: it is %v: %w", sess.ID, sess.State, e.s.State, sessionmgr.ErrSessionClosed)
	}
	last := e.lastSeq
	for _, ev := range events {
		if ev.Seq > last {
			last = ev.Seq
		} else if ev.Seq > e.lastSeq {
			return fmt.Errorf("save session %s: seq %d after %d: %w", sess.ID, ev.Seq, last, sessionmgr.ErrSeqConflict)
		}
	}
	s.unindexLocked(e)
	e.s = cloneSession(sess)
	s.indexLocked(e, now)
	e.addLocked(events)
	return nil
}

// Takeover makes owner the session's owner when its stored Epoch is
// fromEpoch: the record gets Epoch fromEpoch+1 and Owner owner, and a copy
// of it is returned. It fails, in this order, with sessionmgr.ErrNotFound,
// sessionmgr.ErrSessionClosed when the session has ended, and
// sessionmgr.ErrFenced when the epoch moved on.
func (s *Store) Takeover(_ context.Context, id sessionmgr.SessionID, owner string, fromEpoch uint64) (sessionmgr.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	e, ok := s.sessions[id]
	switch {
	case !ok:
		return sessionmgr.Session{}, sessionmgr.ErrNotFound
	case e.s.Terminal():
		return sessionmgr.Session{}, fmt.Errorf("take over session %s: it is %v: %w", id, e.s.State, sessionmgr.ErrSessionClosed)
	case e.s.Epoch != fromEpoch:
		return sessionmgr.Session{}, fmt.Errorf("take over session %s from epoch %d, stored epoch %d: %w", id, fromEpoch, e.s.Epoch, sessionmgr.ErrFenced)
	}
	s.unindexLocked(e)
	add(s.moved, e.s.Owner, id)
	e.s.Epoch = fromEpoch + 1
	e.s.Owner = owner
	s.indexLocked(e, s.now())
	return cloneSession(e.s), nil
}

// Delete removes the session and its timeline, or returns
// sessionmgr.ErrNotFound. Events calls waiting on it return ErrNotFound.
func (s *Store) Delete(_ context.Context, id sessionmgr.SessionID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	e, ok := s.sessions[id]
	if !ok {
		return sessionmgr.ErrNotFound
	}
	s.removeLocked(e)
	return nil
}

// List returns the sessions matching f, newest first (by Created, then by
// ID, both descending), at most limit of them (limit <= 0: all), starting
// after cursor, and the cursor of the next page ("" on the last page). A
// malformed cursor is an error wrapping sessionmgr.ErrInvalidArgument.
func (s *Store) List(_ context.Context, f sessionmgr.ListFilter, limit int, cursor string) ([]sessionmgr.Session, string, error) {
	var (
		after    sessionmgr.Session // the last session of the previous page
		paginate = cursor != ""
	)
	if paginate {
		var err error
		if after.Created, after.ID, err = parseCursor(cursor); err != nil {
			return nil, "", err
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	l := s.listingLocked(f)
	i := len(l) - 1
	if paginate {
		i = l.search(listKey{after.Created, after.ID}) - 1
	}
	var (
		matches []sessionmgr.Session
		last    listKey // the last session examined
	)
	for examined := 0; i >= 0; i, examined = i-1, examined+1 {
		e := l[i]
		if examined >= ListScanBudget {
			// Out of budget: a short page, and a cursor past what was
			// examined.
			return cloneAll(matches), formatCursor(last.created, last.id), nil
		}
		last = e.key
		if f.ChannelARN != "" && e.s.Channel.ARN != f.ChannelARN ||
			f.State != sessionmgr.StateUnknown && e.s.State != f.State ||
			f.ViewerID != "" && e.s.ViewerID != f.ViewerID {
			continue
		}
		matches = append(matches, e.s) // cloned below, once paged
		if limit > 0 && len(matches) > limit {
			break
		}
	}
	next := ""
	if limit > 0 && len(matches) > limit {
		matches = matches[:limit]
		last := matches[limit-1]
		next = formatCursor(last.Created, last.ID)
	}
	return cloneAll(matches), next, nil
}

// cloneAll clones each of ss in place and returns it.
func cloneAll(ss []sessionmgr.Session) []sessionmgr.Session {
	for i := range ss {
		ss[i] = cloneSession(ss[i])
	}
	return ss
}

// Append adds a copy of ev to the session's timeline, dropping events
// beyond the newest sessionmgr.EventRetention. It fails with
// sessionmgr.ErrNotFound for an unknown session, and with
// sessionmgr.ErrFenced, the timeline unchanged, when epoch is not the
// stored Epoch (a newer owner took over), and with ErrSeqConflict when ev.Seq
// is not the last Seq + 1.
// It changes nothing in the session's record.
func (s *Store) Append(_ context.Context, id sessionmgr.SessionID, epoch uint64, ev sessionmgr.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	e, ok := s.sessions[id]
	if !ok {
		return sessionmgr.ErrNotFound
	}
	if e.s.Epoch != epoch {
		return fmt.Errorf("append to session %s at epoch %d, stored epoch %d: %w", id, epoch, e.s.Epoch, sessionmgr.ErrFenced)
	}
	if ev.Seq != e.lastSeq+1 {
		return fmt.Errorf("append to session %s: seq %d after %d: %w", id, ev.Seq, e.lastSeq, sessionmgr.ErrSeqConflict)
	}
	e.addLocked([]sessionmgr.Event{ev})
	return nil
}

// addLocked adds copies of the events after the timeline's last (the
// others it already holds), keeps the newest EventRetention, and wakes the
// waiting Events calls when it added any. The caller has checked their
// order.
func (e *entry) addLocked(events []sessionmgr.Event) {
	added := false
	for _, ev := range events {
		if ev.Seq <= e.lastSeq {
			continue
		}
		e.events = append(e.events, store(ev))
		e.lastSeq = ev.Seq
		added = true
	}
	if !added {
		return
	}
	if n := len(e.events); n > sessionmgr.EventRetention {
		clear(e.events[:n-sessionmgr.EventRetention]) // let the dropped payloads go
		e.events = e.events[n-sessionmgr.EventRetention:]
	}
	close(e.appended)
	e.appended = make(chan struct{})
}

// Events returns copies of the session's events with Seq > after, oldest
// first, at most limit of them (limit <= 0: all). When there are none and
// wait is set, it blocks until an Append to the session (then it reads
// again) or until ctx ends (then it returns ctx.Err()). An unknown
// session, or one removed while waiting, is sessionmgr.ErrNotFound.
func (s *Store) Events(ctx context.Context, id sessionmgr.SessionID, after uint64, limit int, wait bool) ([]sessionmgr.Event, error) {
	for {
		s.mu.Lock()
		s.expireLocked()
		e, ok := s.sessions[id]
		if !ok {
			s.mu.Unlock()
			return nil, sessionmgr.ErrNotFound
		}
		evs := e.eventsAfterLocked(after, limit)
		appended := e.appended
		s.mu.Unlock()

		if len(evs) > 0 || !wait {
			return evs, nil
		}
		select {
		case <-appended:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// RecoveryHint returns the step remembered for the channel, or
// sessionmgr.StepUnknown when none is or it expired.
func (s *Store) RecoveryHint(_ context.Context, channelARN string) (sessionmgr.RecoveryStep, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hints[channelARN]
	if !ok {
		return sessionmgr.StepUnknown, nil
	}
	if !s.now().Before(h.expires) {
		delete(s.hints, channelARN)
		return sessionmgr.StepUnknown, nil
	}
	return h.step, nil
}

// SetRecoveryHint remembers step for the channel for ttl. An unknown step
// or a ttl that is not positive is an error wrapping
// sessionmgr.ErrInvalidArgument.
func (s *Store) SetRecoveryHint(_ context.Context, channelARN string, step sessionmgr.RecoveryStep, ttl time.Duration) error {
	if err := validHint(channelARN, step, ttl); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hints[channelARN] = hint{step: step, expires: s.now().Add(ttl)}
	return nil
}

func validHint(channelARN string, step sessionmgr.RecoveryStep, ttl time.Duration) error {
	switch {
	case channelARN == "":
		return fmt.Errorf("%w: recovery hint without a channel", sessionmgr.ErrInvalidArgument)
	case sessionmgr.ParseRecoveryStep(step.String()) != step || step == sessionmgr.StepUnknown:
		return fmt.Errorf("%w: recovery hint with step %v", sessionmgr.ErrInvalidArgument, step)
	case ttl <= 0:
		return fmt.Errorf("%w: recovery hint with ttl %v", sessionmgr.ErrInvalidArgument, ttl)
	}
	return nil
}

// eventsAfterLocked returns copies of the events with Seq > after, at most
// limit of them (limit <= 0: all). The Store's mu must be held.
func (e *entry) eventsAfterLocked(after uint64, limit int) []sessionmgr.Event {
	evs := e.events[sort.Search(len(e.events), func(i int) bool { return e.events[i].seq > after }):]
	if limit > 0 && len(evs) > limit {
		evs = evs[:limit]
	}
	if len(evs) == 0 {
		return nil
	}
	out := make([]sessionmgr.Event, len(evs))
	for i, ev := range evs {
		out[i] = ev.event()
	}
	return out
}

// expireLocked removes the terminal sessions whose retention is over and
// returns the time it checked against.
func (s *Store) expireLocked() time.Time {
	now := s.now()
	for len(s.ending) > 0 {
		it := s.ending[0]
		if now.Sub(it.at) < s.retention {
			break
		}
		s.ending[0] = ended{}
		s.ending = s.ending[1:]
		if e, ok := s.sessions[it.id]; ok && e.ended.Equal(it.at) {
			s.removeLocked(e)
		}
	}
	return now
}

// indexLocked adds e, whose record just changed, to the live index or,
// when it has just become terminal, to the expiry queue.
func (s *Store) indexLocked(e *entry, now time.Time) {
	if !e.s.Terminal() {
		e.ended = time.Time{}
	} else if e.ended.IsZero() {
		e.ended = now
		defer s.endedLocked(e) // after the live index: it may remove e
	}
	if e.s.State.Live() {
		arn := e.s.Channel.ARN
		if s.live[arn] == nil {
			s.live[arn] = make(map[sessionmgr.SessionID]struct{})
		}
		s.live[arn][e.s.ID] = struct{}{}
		add(s.owned, e.s.Owner, e.s.ID)
	}
}

// add adds id to the set of key in sets.
func add(sets map[string]map[sessionmgr.SessionID]struct{}, key string, id sessionmgr.SessionID) {
	if sets[key] == nil {
		sets[key] = make(map[sessionmgr.SessionID]struct{})
	}
	sets[key][id] = struct{}{}
}

// drop removes id from the set of key in sets.
func drop(sets map[string]map[sessionmgr.SessionID]struct{}, key string, id sessionmgr.SessionID) {
	delete(sets[key], id)
	if len(sets[key]) == 0 {
		delete(sets, key)
	}
}

// unindexLocked removes e from the live index before its record changes.
func (s *Store) unindexLocked(e *entry) {
	arn := e.s.Channel.ARN
	delete(s.live[arn], e.s.ID)
	if len(s.live[arn]) == 0 {
		delete(s.live, arn)
	}
	drop(s.owned, e.s.Owner, e.s.ID)
}

// removeLocked removes e and everything that refers to it, and wakes the
// Events calls waiting on it.
func (s *Store) removeLocked(e *entry) {
	s.unendLocked(e)
	s.unindexLocked(e)
	for r := range s.moved {
		drop(s.moved, r, e.s.ID)
	}
	delete(s.sessions, e.s.ID)
	s.unlistLocked(e)
	if s.requests[e.req] == e.s.ID {
		delete(s.requests, e.req)
	}
	close(e.appended)
}

// A cursor is base64url("<Created, RFC 3339 with nanoseconds> <ID>") of
// the last session of a page.

func formatCursor(created time.Time, id sessionmgr.SessionID) string {
	return base64.RawURLEncoding.EncodeToString([]byte(created.UTC().Format(time.RFC3339Nano) + " " + string(id)))
}

func parseCursor(c string) (time.Time, sessionmgr.SessionID, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", fmt.Errorf("%w: malformed list cursor", sessionmgr.ErrInvalidArgument)
	}
	created, id, ok := strings.Cut(string(b), " ")
	t, err := time.Parse(time.RFC3339Nano, created)
	if !ok || err != nil || id == "" {
		return time.Time{}, "", fmt.Errorf("%w: malformed list cursor", sessionmgr.ErrInvalidArgument)
	}
	return t, sessionmgr.SessionID(id), nil
}

// Moved returns the sessions taken over from replica that Forget has not
// dropped.
func (s *Store) Moved(_ context.Context, replica string) ([]sessionmgr.SessionID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.moved[replica])), nil
}

// Owned returns the live sessions replica owns.
func (s *Store) Owned(_ context.Context, replica string) ([]sessionmgr.SessionID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	return slices.Collect(maps.Keys(s.owned[replica])), nil
}

// Owners returns each session's owner and epoch, in the order of ids.
func (s *Store) Owners(_ context.Context, ids []sessionmgr.SessionID) ([]sessionmgr.Ownership, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireLocked()
	out := make([]sessionmgr.Ownership, len(ids))
	for i, id := range ids {
		if e, ok := s.sessions[id]; ok {
			out[i] = sessionmgr.Ownership{Owner: e.s.Owner, Epoch: e.s.Epoch, Live: !e.s.Terminal()}
		}
	}
	return out, nil
}

// Replicas returns the replicas that own live sessions.
func (s *Store) Replicas(context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Keys(s.owned)), nil
}

// Forget drops moved from replica's moved sessions. The owner index of
// this store is exact (it follows every record change), so owned is
// dropped only where the record no longer says so.
func (s *Store) Forget(_ context.Context, replica string, moved, owned []sessionmgr.SessionID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range moved {
		drop(s.moved, replica, id)
	}
	for _, id := range owned {
		if e, ok := s.sessions[id]; !ok || e.s.Owner != replica || !e.s.State.Live() {
			drop(s.owned, replica, id)
		}
	}
	return nil
}
