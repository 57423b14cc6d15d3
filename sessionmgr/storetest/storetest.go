// Package storetest is the conformance suite of sessionmgr.Store, in the
// style of testing/fstest: every Store implementation runs it, so that all
// of them behave the same for not-found, conflict, limits, paging, the
// timeline and expiry.
//
// A store that takes an injected clock runs the whole suite with
// Harness.Run and Clock set. One that cannot (Redis, whose TTLs run on the
// server's clock) sets RealTime instead and short TTLs: the subtests that
// need time to pass then wait for it, in parallel with each other. Run
// skips those subtests (they report SKIP, naming the Harness fields).
// Every subtest uses session IDs, channels and request IDs of its own, so
// the stores handed out may share one backend.
package storetest

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/acme/viewersession/sessionmgr"
)

// Run runs the suite against the stores newStore returns, one per subtest.
// The subtests that need time to pass (terminal retention, the idempotency
// window) are skipped; use Harness.Run with Clock or RealTime set to run
// them.
func Run(t *testing.T, newStore func(t *testing.T) sessionmgr.Store) {
	Harness{New: func(t *testing.T, _ func() time.Time) sessionmgr.Store { return newStore(t) }}.Run(t)
}

// Harness describes the Store under test.
type Harness struct {
	// New returns the store for one subtest. When Clock is set, the store
	// must read the time from now, a fake clock that starts at a fixed
	// instant and moves only when the subtest advances it; otherwise now
	// may be ignored. Required.
	New func(t *testing.T, now func() time.Time) sessionmgr.Store
	// Clock reports that New's stores read the time from now. Without it
	// or RealTime, the subtests that need time to pass are skipped.
	Clock bool
	// RealTime reports that New's stores keep time by a real clock that
	// the suite cannot move (a Redis server's TTLs); now is then
	// time.Now. The subtests that need time to pass run in parallel with
	// each other and wait for it in real time, about 2*Retention+1s, so
	// Retention and IdempotencyWindow should be a few seconds. Not with
	// Clock.
	RealTime bool
	// Retention is how long New's stores keep a terminal session, and
	// IdempotencyWindow how long they remember a (Caller, RequestID) pair.
	// Required when Clock or RealTime is set, and over 2s each: the
	// subtests look one second either side of them.
	Retention, IdempotencyWindow time.Duration
}

// Run runs the suite, each behaviour in a subtest of its own.
func (h Harness) Run(t *testing.T) {
	if h.New == nil {
		t.Fatal("storetest: Harness.New is nil")
	}
	if h.Clock && h.RealTime {
		t.Fatal("storetest: Harness with both Clock and RealTime")
	}
	if (h.Clock || h.RealTime) && (h.Retention <= 2*time.Second || h.IdempotencyWindow <= 2*time.Second) {
		t.Fatalf("storetest: Harness with Clock or RealTime needs Retention (%v) and IdempotencyWindow (%v) over 2s", h.Retention, h.IdempotencyWindow)
	}
	t.Run("CreateGet", h.testCreateGet)
	t.Run("Copies", h.testCopies)
	t.Run("DuplicateID", h.testDuplicateID)
	t.Run("ChannelLimit", h.testChannelLimit)
	t.Run("ChannelLimitConcurrent", h.testChannelLimitConcurrent)
	t.Run("Idempotent", h.testIdempotent)
	t.Run("IdempotentConcurrent", h.testIdempotentConcurrent)
	t.Run("IdempotencyWindow", h.testIdempotencyWindow)
	t.Run("Put", h.testPut)
	t.Run("PutEnded", h.testPutEnded)
	t.Run("PutChannel", h.testPutChannel)
	t.Run("Takeover", h.testTakeover)
	t.Run("TakeoverConcurrent", h.testTakeoverConcurrent)
	t.Run("OwnerIndex", h.testOwnerIndex)
	t.Run("Delete", h.testDelete)
	t.Run("ListOrder", h.testListOrder)
	t.Run("ListFilter", h.testListFilter)
	t.Run("ListBadCursor", h.testListBadCursor)
	t.Run("CreateWithEvents", h.testCreateWithEvents)
	t.Run("Save", h.testSave)
	t.Run("SaveFence", h.testSaveFence)
	t.Run("SaveWakes", h.testSaveWakes)
	t.Run("ConflictKinds", h.testConflictKinds)
	t.Run("AppendSeq", h.testAppendSeq)
	t.Run("AppendFence", h.testAppendFence)
	t.Run("AppendRetention", h.testAppendRetention)
	t.Run("Events", h.testEvents)
	t.Run("EventsWait", h.testEventsWait)
	t.Run("EventsFollow", h.testEventsFollow)
	t.Run("EventsWaitDone", h.testEventsWaitDone)
	t.Run("EventsManyWaiters", h.testEventsManyWaiters)
	t.Run("EventsFollowBursts", h.testEventsFollowBursts)
	t.Run("TerminalRetention", h.testTerminalRetention)
	t.Run("RecoveryHint", h.testRecoveryHint)
	t.Run("RecoveryHintExpiry", h.testRecoveryHintExpiry)
}

// store returns a new store and its clock.
func (h Harness) store(t *testing.T) (sessionmgr.Store, *clock) {
	t.Helper()
	c := &clock{real: h.RealTime, now: t0()}
	return h.New(t, c.Now), c
}

// needTime skips a subtest that needs time to pass unless the store reads
// the harness's clock or real time; with real time, the subtest runs in
// parallel with the others that wait.
func (h Harness) needTime(t *testing.T) {
	t.Helper()
	switch {
	case h.RealTime:
		t.Parallel()
	case !h.Clock:
		t.Skip("the store takes no clock (Harness.Clock and Harness.RealTime unset)")
	}
}

// long is a time far longer than the retention: ten times it with a fake
// clock, and with real time just the retention (the test's patience).
func (h Harness) long() time.Duration {
	if h.RealTime {
		return h.Retention
	}
	return 10 * h.Retention
}

// t0 returns the fake clock's start, the base of the records' times (whole
// seconds, so that every store can keep them exactly).
func t0() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// clock is a fake clock, or the real one; safe for concurrent use.
type clock struct {
	// real makes Now time.Now, and Advance wait for d to pass.
	real bool

	// mu guards now.
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	if c.real {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the fake clock by d. With the real clock it lets d pass:
// the store's own TTLs run on a clock the suite cannot move, so this wait
// is the behaviour under test, not a synchronisation.
func (c *clock) Advance(d time.Duration) {
	if c.real {
		time.Sleep(d)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// ample is the channel limit of the subtests that do not test it.
const ample = 100

func (h Harness) testCreateGet(t *testing.T) {
	st, _ := h.store(t)
	want := newSession(newChannel())

	got, err := st.Create(t.Context(), want, ample)
	if err != nil {
		t.Fatalf("Create = %v", err)
	}
	diff(t, "Create", got, want)
	got, err = st.Get(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Get = %v", err)
	}
	diff(t, "Get", got, want)

	if _, err := st.Get(t.Context(), newID()); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(unknown id) = %v, want ErrNotFound", err)
	}
}

// testCopies checks that a store shares no memory with its callers.
func (h Harness) testCopies(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.Failure = &sessionmgr.Failure{Reason: sessionmgr.FailureAnswerTimeout, Message: "no answer"}
	want := cloneSession(s)

	got := create(t, st, s, ample)
	scribble(&s)
	scribble(&got)
	stored := get(t, st, s.ID)
	diff(t, "Get after changing what went in and came out of Create", stored, want)

	scribble(&stored)
	list, _, err := st.List(ctx, sessionmgr.ListFilter{ChannelARN: want.Channel.ARN}, 10, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %d sessions, %v; want 1, nil", len(list), err)
	}
	scribble(&list[0])
	diff(t, "Get after changing what came out of Get and List", get(t, st, s.ID), want)

	s = cloneSession(want)
	s.Attempt = 2
	want = cloneSession(s)
	if err := st.Put(ctx, s); err != nil {
		t.Fatalf("Put = %v", err)
	}
	scribble(&s)
	diff(t, "Get after changing what went into Put", get(t, st, s.ID), want)

	idx := uint16(1)
	e := sessionmgr.Event{
		Seq:         1,
		Time:        t0(),
		Type:        sessionmgr.EventRemoteCandidate,
		Failure:     &sessionmgr.Failure{Message: "f"},
		Candidate:   &sessionmgr.Candidate{Candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ host", SDPMLineIndex: &idx},
		Renegotiate: &sessionmgr.Renegotiate{Action: sessionmgr.RenegotiateNewPeerConnection, IceServers: iceServers()},
		ConnState:   &sessionmgr.ConnState{ICE: sessionmgr.ICEConnected, Peer: sessionmgr.PeerConnected},
		IceServers:  iceServers(),
	}
	wantEvents := []sessionmgr.Event{cloneEvent(e)}
	if err := st.Append(ctx, s.ID, s.Epoch, e); err != nil {
		t.Fatalf("Append = %v", err)
	}
	scribbleEvent(&e)
	evs := events(t, st, s.ID, 0, 0)
	diff(t, "Events after changing what went into Append", evs, wantEvents)
	scribbleEvent(&evs[0])
	diff(t, "Events after changing what came out of Events", events(t, st, s.ID, 0, 0), wantEvents)
}

func (h Harness) testDuplicateID(t *testing.T) {
	st, _ := h.store(t)
	first := newSession(newChannel())
	create(t, st, first, ample)

	second := newSession(newChannel())
	second.ID = first.ID
	second.ViewerID = "someone-else"
	if _, err := st.Create(t.Context(), second, ample); !errors.Is(err, sessionmgr.ErrAlreadyExists) {
		t.Fatalf("Create(same id) = %v, want ErrAlreadyExists", err)
	}
	diff(t, "Get", get(t, st, first.ID), first)
}

func (h Harness) testChannelLimit(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	const maxLive = 3
	ch := newChannel()
	var live []sessionmgr.Session
	for range maxLive {
		live = append(live, create(t, st, newSession(ch), maxLive))
	}
	full := newSession(ch)
	if _, err := st.Create(ctx, full, maxLive); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("Create(session %d of %d) = %v, want ErrChannelFull", maxLive+1, maxLive, err)
	}
	if _, err := st.Get(ctx, full.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(refused session) = %v, want ErrNotFound", err)
	}

	// The limit is per channel.
	create(t, st, newSession(newChannel()), maxLive)

	// A terminal Put frees a slot, and so does a Delete.
	closed := live[0]
	closed.State = sessionmgr.StateClosed
	if err := st.Put(ctx, closed); err != nil {
		t.Fatalf("Put(CLOSED) = %v", err)
	}
	create(t, st, newSession(ch), maxLive)
	if _, err := st.Create(ctx, newSession(ch), maxLive); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("Create(after one slot was freed and taken) = %v, want ErrChannelFull", err)
	}
	if err := st.Delete(ctx, live[1].ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	create(t, st, newSession(ch), maxLive)
	if _, err := st.Create(ctx, newSession(ch), maxLive); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("Create(after the deleted slot was taken) = %v, want ErrChannelFull", err)
	}
}

func (h Harness) testChannelLimitConcurrent(t *testing.T) {
	st, _ := h.store(t)
	const (
		racers  = 32
		maxLive = 10
	)
	ch := newChannel()
	sessions := make([]sessionmgr.Session, racers)
	for i := range sessions {
		sessions[i] = newSession(ch)
		// Created now, as a Manager creates: a store may take a listing
		// entry without its record for a create in flight while it is
		// young (redisstore on a Cluster writes both at once, on
		// different nodes), and must not drop it as gone.
		sessions[i].Created = time.Now()
	}
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			_, errs[i] = st.Create(t.Context(), sessions[i], maxLive)
		})
	}
	close(start)
	wg.Wait()

	created, full := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case errors.Is(err, sessionmgr.ErrChannelFull):
			full++
		default:
			t.Errorf("Create = %v, want nil or ErrChannelFull", err)
		}
	}
	if created != maxLive || full != racers-maxLive {
		t.Errorf("%d racing creates, limit %d: %d created and %d ErrChannelFull, want %d and %d", racers, maxLive, created, full, maxLive, racers-maxLive)
	}
	if got := listAll(t, st, sessionmgr.ListFilter{ChannelARN: ch.ARN}, 100); len(got) != maxLive {
		t.Errorf("List(channel) = %d sessions, want %d", len(got), maxLive)
	}
}

func (h Harness) testIdempotent(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	ch := newChannel()
	caller, requestID := "caller-"+string(newID()), "request-"+string(newID())
	first := newSession(ch)
	first.Caller, first.RequestID = caller, requestID
	create(t, st, first, 1)

	// The record as it is now is what a repeat returns.
	first.State = sessionmgr.StateSignaling
	if err := st.Put(ctx, first); err != nil {
		t.Fatalf("Put = %v", err)
	}

	// A repeat is answered before the limit (1, taken by first) is checked.
	repeat := newSession(ch)
	repeat.Caller, repeat.RequestID = caller, requestID
	got, err := st.Create(ctx, repeat, 1)
	if !errors.Is(err, sessionmgr.ErrAlreadyExists) {
		t.Fatalf("Create(repeat) = %v, want ErrAlreadyExists", err)
	}
	diff(t, "Create(repeat)", got, first)
	if _, err := st.Get(ctx, repeat.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(repeat's id) = %v, want ErrNotFound", err)
	}

	// Only the full pair makes a repeat.
	tests := []struct {
		name              string
		caller, requestID string
	}{
		{name: "other caller", caller: "other-" + caller, requestID: requestID},
		{name: "other request", caller: caller, requestID: "other-" + requestID},
		{name: "no caller", requestID: requestID},
		{name: "no request id", caller: caller},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(ch)
			s.Caller, s.RequestID = tt.caller, tt.requestID
			create(t, st, s, ample)
		})
	}

	// Once the first session is gone, the pair creates again.
	if err := st.Delete(ctx, first.ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	create(t, st, repeat, ample)
}

// testIdempotentConcurrent races repeats of one request: exactly one
// creates, and the others return its session.
func (h Harness) testIdempotentConcurrent(t *testing.T) {
	st, _ := h.store(t)
	const racers = 16
	ch := newChannel()
	caller, requestID := "caller-"+string(newID()), "request-"+string(newID())
	type result struct {
		s   sessionmgr.Session
		err error
	}
	results := make([]result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		s := newSession(ch)
		s.Caller, s.RequestID = caller, requestID
		wg.Go(func() {
			<-start
			got, err := st.Create(t.Context(), s, ample)
			results[i] = result{got, err}
		})
	}
	close(start)
	wg.Wait()

	var created []sessionmgr.Session
	for _, r := range results {
		if r.err == nil {
			created = append(created, r.s)
		} else if !errors.Is(r.err, sessionmgr.ErrAlreadyExists) {
			t.Errorf("Create(repeat) = %v, want nil or ErrAlreadyExists", r.err)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d racing repeats of one request: %d created, want 1", racers, len(created))
	}
	for i, r := range results {
		if r.err != nil {
			diff(t, fmt.Sprintf("Create(repeat %d)", i), r.s, created[0])
		}
	}
	diff(t, "List(channel) after the race", ids(listAll(t, st, sessionmgr.ListFilter{ChannelARN: ch.ARN}, 100)), []sessionmgr.SessionID{created[0].ID})
}

func (h Harness) testIdempotencyWindow(t *testing.T) {
	h.needTime(t)
	st, clk := h.store(t)
	ch := newChannel()
	caller, requestID := "caller-"+string(newID()), "request-"+string(newID())
	first := newSession(ch)
	first.Caller, first.RequestID = caller, requestID
	create(t, st, first, ample)

	clk.Advance(h.IdempotencyWindow - time.Second)
	repeat := newSession(ch)
	repeat.Caller, repeat.RequestID = caller, requestID
	got, err := st.Create(t.Context(), repeat, ample)
	if !errors.Is(err, sessionmgr.ErrAlreadyExists) || got.ID != first.ID {
		t.Fatalf("Create(repeat, within the window) = %s, %v; want %s, ErrAlreadyExists", got.ID, err, first.ID)
	}

	// Past the window the pair creates again, and opens a new window.
	clk.Advance(2 * time.Second)
	create(t, st, repeat, ample)
	got, err = st.Create(t.Context(), first, ample)
	if !errors.Is(err, sessionmgr.ErrAlreadyExists) || got.ID != repeat.ID {
		t.Errorf("Create(repeat of the second create) = %s, %v; want %s, ErrAlreadyExists", got.ID, err, repeat.ID)
	}
}

func (h Harness) testPut(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.Epoch = 5
	create(t, st, s, ample)

	tests := []struct {
		name string
		give uint64
		want error
	}{
		{name: "older epoch", give: 4, want: sessionmgr.ErrConflict},
		{name: "newer epoch", give: 6, want: sessionmgr.ErrConflict},
		{name: "zero epoch", give: 0, want: sessionmgr.ErrConflict},
		{name: "same epoch", give: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := get(t, st, s.ID)
			put := before
			put.Epoch = tt.give
			put.Attempt++
			put.Owner = "replica-" + tt.name
			err := st.Put(ctx, put)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Put(epoch %d over %d) = %v, want %v", tt.give, before.Epoch, err, tt.want)
			}
			want := before
			if err == nil {
				want = put
			}
			diff(t, "Get after Put", get(t, st, s.ID), want)
		})
	}

	unknown := newSession(newChannel())
	if err := st.Put(ctx, unknown); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Put(unknown id) = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, unknown.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(id of a failed Put) = %v, want ErrNotFound", err)
	}
}

// testPutEnded checks that an ended session stays ended: a Put may not
// make it live again (else the channel's limit could be exceeded), but
// may change it otherwise, and the fence still comes first.
func (h Harness) testPutEnded(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	ch := newChannel()
	ended := create(t, st, newSession(ch), 1)
	ended.State = sessionmgr.StateClosed
	ended.Close = sessionmgr.CloseClientLeft
	if err := st.Put(ctx, ended); err != nil {
		t.Fatalf("Put(CLOSED) = %v", err)
	}
	create(t, st, newSession(ch), 1) // in the slot the ended session freed

	tests := []struct {
		name  string
		state sessionmgr.State
		epoch uint64
		want  error
	}{
		{name: "live again", state: sessionmgr.StateConnected, epoch: ended.Epoch, want: sessionmgr.ErrSessionClosed},
		{name: "pending again", state: sessionmgr.StatePending, epoch: ended.Epoch, want: sessionmgr.ErrSessionClosed},
		{name: "live again at another epoch", state: sessionmgr.StateConnected, epoch: ended.Epoch + 1, want: sessionmgr.ErrConflict},
		{name: "another terminal state", state: sessionmgr.StateFailed, epoch: ended.Epoch},
		{name: "closed again", state: sessionmgr.StateClosed, epoch: ended.Epoch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := get(t, st, ended.ID)
			put := before
			put.State = tt.state
			put.Epoch = tt.epoch
			put.Attempt++
			err := st.Put(ctx, put)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Put(%v at epoch %d over %v at epoch %d) = %v, want %v", tt.state, tt.epoch, before.State, before.Epoch, err, tt.want)
			}
			want := before
			if err == nil {
				want = put
			}
			diff(t, "Get after Put", get(t, st, ended.ID), want)
		})
	}
	// The refused Puts took no slot: the one live session still fills the
	// channel.
	if _, err := st.Create(ctx, newSession(ch), 1); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Errorf("Create(limit 1, one live session and one ended) = %v, want ErrChannelFull", err)
	}
}

// testPutChannel checks that a session's channel is fixed at Create: the
// channel's live count and listing are kept by it.
func (h Harness) testPutChannel(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	moved := s
	moved.Channel = newChannel()
	moved.Attempt++
	if err := st.Put(t.Context(), moved); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
		t.Fatalf("Put(another channel) = %v, want ErrInvalidArgument", err)
	}
	diff(t, "Get after Put(another channel)", get(t, st, s.ID), s)
}

// testTakeover checks the compare-and-set on the epoch, and that the
// previous owner's writes fail the fence afterwards.
func (h Harness) testTakeover(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	old := newSession(newChannel())
	old.Epoch = 3
	create(t, st, old, ample)
	appendEvents(t, st, old, 1, 2)

	got, err := st.Takeover(ctx, old.ID, "replica-b", 3)
	if err != nil {
		t.Fatalf("Takeover(from epoch 3) = %v", err)
	}
	want := old
	want.Epoch = 4
	want.Owner = "replica-b"
	diff(t, "Takeover", got, want)
	diff(t, "Get after Takeover", get(t, st, old.ID), want)

	// The previous owner is fenced off.
	stale := old
	stale.Attempt++
	if err := st.Put(ctx, stale); !errors.Is(err, sessionmgr.ErrConflict) {
		t.Errorf("Put(previous owner, epoch 3) = %v, want ErrConflict", err)
	}
	if err := st.Append(ctx, old.ID, old.Epoch, event(3)); !errors.Is(err, sessionmgr.ErrConflict) {
		t.Errorf("Append(previous owner, epoch 3) = %v, want ErrConflict", err)
	}
	diff(t, "Get after the previous owner's writes", get(t, st, old.ID), want)
	diff(t, "Events after the previous owner's Append", events(t, st, old.ID, 0, 0), []sessionmgr.Event{event(1), event(2)})

	// The new owner writes on, from the same sequence.
	appendEvents(t, st, want, 3, 3)
	want.Attempt++
	if err := st.Put(ctx, want); err != nil {
		t.Fatalf("Put(new owner, epoch 4) = %v", err)
	}
	diff(t, "Get after the new owner's Put", get(t, st, old.ID), want)

	tests := []struct {
		name string
		id   sessionmgr.SessionID
		from uint64
		want error
	}{
		{name: "epoch moved on", id: old.ID, from: 3, want: sessionmgr.ErrConflict},
		{name: "future epoch", id: old.ID, from: 5, want: sessionmgr.ErrConflict},
		{name: "zero epoch", id: old.ID, from: 0, want: sessionmgr.ErrConflict},
		{name: "unknown id", id: newID(), from: 1, want: sessionmgr.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := st.Takeover(ctx, tt.id, "replica-c", tt.from); !errors.Is(err, tt.want) {
				t.Errorf("Takeover(from epoch %d) = %v, want %v", tt.from, err, tt.want)
			}
			diff(t, "Get after a failed Takeover", get(t, st, old.ID), want)
		})
	}

	// An ended session is not taken over, whatever the epoch.
	want.State = sessionmgr.StateFailed
	if err := st.Put(ctx, want); err != nil {
		t.Fatalf("Put(FAILED) = %v", err)
	}
	for _, from := range []uint64{want.Epoch, old.Epoch} {
		if _, err := st.Takeover(ctx, old.ID, "replica-c", from); !errors.Is(err, sessionmgr.ErrSessionClosed) {
			t.Errorf("Takeover(ended, from epoch %d) = %v, want ErrSessionClosed", from, err)
		}
	}
	diff(t, "Get after a Takeover of the ended session", get(t, st, old.ID), want)
}

// testTakeoverConcurrent races takeovers from the same epoch: exactly one
// wins, and the record is the winner's.
func (h Harness) testTakeoverConcurrent(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	const racers = 16
	type result struct {
		s   sessionmgr.Session
		err error
	}
	results := make([]result, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			got, err := st.Takeover(t.Context(), s.ID, fmt.Sprintf("replica-%d", i), s.Epoch)
			results[i] = result{got, err}
		})
	}
	close(start)
	wg.Wait()

	winner := -1
	for i, r := range results {
		switch {
		case r.err == nil && winner >= 0:
			t.Errorf("Takeover by replica-%d and replica-%d both won", winner, i)
		case r.err == nil:
			winner = i
		case !errors.Is(r.err, sessionmgr.ErrConflict):
			t.Errorf("Takeover(replica-%d) = %v, want nil or ErrConflict", i, r.err)
		}
	}
	if winner < 0 {
		t.Fatalf("%d racing takeovers from epoch %d: none won", racers, s.Epoch)
	}
	want := s
	want.Epoch++
	want.Owner = fmt.Sprintf("replica-%d", winner)
	diff(t, "the winning Takeover", results[winner].s, want)
	diff(t, "Get after the race", get(t, st, s.ID), want)
}

func (h Harness) testDelete(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	ch := newChannel()
	s := create(t, st, newSession(ch), ample)
	other := create(t, st, newSession(ch), ample)
	appendEvents(t, st, s, 1, 3)

	if err := st.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
	if _, err := st.Events(ctx, s.ID, 0, 0, false); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Events(deleted) = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, s.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Delete(deleted) = %v, want ErrNotFound", err)
	}
	got := ids(listAll(t, st, sessionmgr.ListFilter{ChannelARN: ch.ARN}, 10))
	diff(t, "List after Delete", got, []sessionmgr.SessionID{other.ID})
}

func (h Harness) testListOrder(t *testing.T) {
	st, _ := h.store(t)
	ch := newChannel()
	// Two pairs share a Created time; ID breaks the tie.
	offsets := []time.Duration{0, 3 * time.Second, time.Second, 3 * time.Second, -time.Second, time.Second, 2 * time.Second}
	var want []sessionmgr.Session
	for _, d := range offsets {
		s := newSession(ch)
		s.Created = t0().Add(d)
		want = append(want, create(t, st, s, len(offsets)))
	}
	slices.SortFunc(want, func(a, b sessionmgr.Session) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})

	for _, size := range []int{1, 2, 3, len(want), len(want) + 1} {
		t.Run(fmt.Sprintf("pages of %d", size), func(t *testing.T) {
			pages := 0
			var got []sessionmgr.Session
			cursor := ""
			for {
				page, next, err := st.List(t.Context(), sessionmgr.ListFilter{ChannelARN: ch.ARN}, size, cursor)
				if err != nil {
					t.Fatalf("List(page %d) = %v", pages+1, err)
				}
				pages++
				if len(page) > size || len(page) == 0 {
					t.Fatalf("List(page %d) = %d sessions, want 1..%d", pages, len(page), size)
				}
				got = append(got, page...)
				if next == "" || pages > len(want) {
					break
				}
				cursor = next
			}
			diff(t, "List, all pages", got, want)
			if want := (len(want) + size - 1) / size; pages != want {
				t.Errorf("List took %d pages, want %d (the next cursor must be empty on the last page)", pages, want)
			}
		})
	}
}

func (h Harness) testListFilter(t *testing.T) {
	st, _ := h.store(t)
	a, b := newChannel(), newChannel()
	add := func(ch sessionmgr.Channel, state sessionmgr.State) sessionmgr.SessionID {
		s := newSession(ch)
		s.State = state
		return create(t, st, s, ample).ID
	}
	aPending1 := add(a, sessionmgr.StatePending)
	aPending2 := add(a, sessionmgr.StatePending)
	aConnected := add(a, sessionmgr.StateConnected)
	aClosed := add(a, sessionmgr.StateClosed)
	bPending := add(b, sessionmgr.StatePending)
	// Two sessions of one viewer, on two channels; the viewer's id is this
	// run's own (a shared server keeps earlier runs' sessions).
	aliceID := "alice-" + string(newID()[:8])
	alice := func(ch sessionmgr.Channel, state sessionmgr.State) sessionmgr.SessionID {
		s := newSession(ch)
		s.State, s.ViewerID = state, aliceID
		return create(t, st, s, ample).ID
	}
	aAlice := alice(a, sessionmgr.StateConnected)
	bAlice := alice(b, sessionmgr.StateClosed)

	tests := []struct {
		name string
		give sessionmgr.ListFilter
		want []sessionmgr.SessionID
	}{
		{name: "channel", give: sessionmgr.ListFilter{ChannelARN: a.ARN}, want: []sessionmgr.SessionID{aPending1, aPending2, aConnected, aClosed, aAlice}},
		{name: "viewer", give: sessionmgr.ListFilter{ViewerID: aliceID}, want: []sessionmgr.SessionID{aAlice, bAlice}},
		{name: "viewer and channel", give: sessionmgr.ListFilter{ChannelARN: b.ARN, ViewerID: aliceID}, want: []sessionmgr.SessionID{bAlice}},
		{name: "viewer and state", give: sessionmgr.ListFilter{ViewerID: aliceID, State: sessionmgr.StateConnected}, want: []sessionmgr.SessionID{aAlice}},
		{name: "unknown viewer", give: sessionmgr.ListFilter{ChannelARN: a.ARN, ViewerID: "bob"}},
		{name: "channel and state", give: sessionmgr.ListFilter{ChannelARN: a.ARN, State: sessionmgr.StatePending}, want: []sessionmgr.SessionID{aPending1, aPending2}},
		{name: "terminal state", give: sessionmgr.ListFilter{ChannelARN: a.ARN, State: sessionmgr.StateClosed}, want: []sessionmgr.SessionID{aClosed}},
		{name: "no match", give: sessionmgr.ListFilter{ChannelARN: a.ARN, State: sessionmgr.StateFailed}},
		{name: "other channel", give: sessionmgr.ListFilter{ChannelARN: b.ARN}, want: []sessionmgr.SessionID{bPending, bAlice}},
		{name: "unknown channel", give: sessionmgr.ListFilter{ChannelARN: newChannel().ARN}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(listAll(t, st, tt.give, 2))
			slices.Sort(got)
			slices.Sort(tt.want)
			diff(t, fmt.Sprintf("List(%+v)", tt.give), got, tt.want)
		})
	}

	// Across channels the store may hold others' sessions too: ours must
	// all be there, and every session listed must match.
	t.Run("state only", func(t *testing.T) {
		got := listAll(t, st, sessionmgr.ListFilter{State: sessionmgr.StatePending}, 100)
		seen := make(map[sessionmgr.SessionID]bool)
		for _, s := range got {
			if s.State != sessionmgr.StatePending {
				t.Errorf("List(state PENDING) has %s in state %v", s.ID, s.State)
			}
			seen[s.ID] = true
		}
		for _, id := range []sessionmgr.SessionID{aPending1, aPending2, bPending} {
			if !seen[id] {
				t.Errorf("List(state PENDING) lacks %s", id)
			}
		}
	})
	t.Run("any", func(t *testing.T) {
		seen := make(map[sessionmgr.SessionID]bool)
		for _, s := range listAll(t, st, sessionmgr.ListFilter{}, 100) {
			seen[s.ID] = true
		}
		for _, id := range []sessionmgr.SessionID{aPending1, aPending2, aConnected, aClosed, bPending} {
			if !seen[id] {
				t.Errorf("List(no filter) lacks %s", id)
			}
		}
	})
}

func (h Harness) testListBadCursor(t *testing.T) {
	st, _ := h.store(t)
	f := sessionmgr.ListFilter{ChannelARN: newChannel().ARN}
	for _, give := range []string{"!", "%%% not a cursor %%%", "\x00\xff"} {
		t.Run(fmt.Sprintf("%q", give), func(t *testing.T) {
			if _, _, err := st.List(t.Context(), f, 10, give); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
				t.Errorf("List(cursor %q) = %v, want ErrInvalidArgument", give, err)
			}
		})
	}
}

// testCreateWithEvents: Create's events start the timeline, numbered
// from 1, and the timeline goes on from the last.
func (h Harness) testCreateWithEvents(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.LastSeq = 2
	got, err := st.Create(ctx, s, ample, event(1), event(2))
	if err != nil {
		t.Fatalf("Create with 2 events = %v", err)
	}
	diff(t, "Create's copy", got, s)
	diff(t, "Events after Create", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2)})
	if err := st.Append(ctx, s.ID, s.Epoch, event(2)); !errors.Is(err, sessionmgr.ErrConflict) {
		t.Errorf("Append(seq 2) after Create's 2 events = %v, want ErrConflict", err)
	}
	appendEvents(t, st, s, 3, 3)

	bad := newSession(newChannel())
	if _, err := st.Create(ctx, bad, ample, event(2)); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
		t.Errorf("Create with a first event of seq 2 = %v, want ErrInvalidArgument", err)
	}
	if _, err := st.Get(ctx, bad.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get after a refused Create = %v, want ErrNotFound", err)
	}
}

// testSave: Save appends the events the timeline lacks and replaces the
// record in one step; a terminal Save frees the channel's slot.
func (h Harness) testSave(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	ch := newChannel()
	s := create(t, st, newSession(ch), 1)

	s.State, s.LastSeq = sessionmgr.StateConnecting, 2
	if err := st.Save(ctx, s, []sessionmgr.Event{event(1), event(2)}); err != nil {
		t.Fatalf("Save(events 1-2) = %v", err)
	}
	diff(t, "Get after Save", get(t, st, s.ID), s)
	diff(t, "Events after Save", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2)})

	// A repeat of a write that landed (it timed out for its writer) and
	// what followed: only the new events are added.
	s.LastSeq = 3
	if err := st.Save(ctx, s, []sessionmgr.Event{event(1), event(2), event(3)}); err != nil {
		t.Fatalf("Save(events 1-3) after 1-2 = %v", err)
	}
	diff(t, "Events after the repeat", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2), event(3)})

	// Out of order: nothing changes.
	before := get(t, st, s.ID)
	s2 := s
	s2.State = sessionmgr.StateAwaitingOffer
	if err := st.Save(ctx, s2, []sessionmgr.Event{event(5), event(4)}); !errors.Is(err, sessionmgr.ErrConflict) {
		t.Errorf("Save(events 5, 4) = %v, want ErrConflict", err)
	}
	diff(t, "Get after an out-of-order Save", get(t, st, s.ID), before)
	diff(t, "Events after an out-of-order Save", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2), event(3)})

	// A gap (events dropped in a long outage) is kept as it is.
	s.LastSeq = 7
	if err := st.Save(ctx, s, []sessionmgr.Event{event(6), event(7)}); err != nil {
		t.Fatalf("Save(events 6-7) after 3 = %v", err)
	}
	diff(t, "Events after a gap", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2), event(3), event(6), event(7)})
	if err := st.Append(ctx, s.ID, s.Epoch, event(8)); err != nil {
		t.Errorf("Append(seq 8) after Save's 7 = %v", err)
	}

	// The channel (limit 1) is full until a terminal Save.
	if _, err := st.Create(ctx, newSession(ch), 1); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("Create on the full channel = %v, want ErrChannelFull", err)
	}
	s.State, s.Close, s.LastSeq = sessionmgr.StateClosed, sessionmgr.CloseClientLeft, 9
	if err := st.Save(ctx, s, []sessionmgr.Event{event(9)}); err != nil {
		t.Fatalf("terminal Save = %v", err)
	}
	create(t, st, newSession(ch), 1)
	s.State = sessionmgr.StateConnected
	if err := st.Save(ctx, s, nil); !errors.Is(err, sessionmgr.ErrSessionClosed) {
		t.Errorf("Save(live) after a terminal Save = %v, want ErrSessionClosed", err)
	}
	if err := st.Save(ctx, newSession(ch), nil); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Save(unknown) = %v, want ErrNotFound", err)
	}
}

// testSaveFence: only the stored epoch may Save, and a fenced Save
// changes nothing.
func (h Harness) testSaveFence(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.Epoch = 5
	create(t, st, s, ample)
	for _, epoch := range []uint64{4, 6, 0} {
		stale := s
		stale.Epoch, stale.State, stale.LastSeq = epoch, sessionmgr.StateConnecting, 1
		if err := st.Save(ctx, stale, []sessionmgr.Event{event(1)}); !errors.Is(err, sessionmgr.ErrConflict) {
			t.Errorf("Save(epoch %d over 5) = %v, want ErrConflict", epoch, err)
		}
	}
	diff(t, "Get after fenced Saves", get(t, st, s.ID), s)
	diff(t, "Events after fenced Saves", events(t, st, s.ID, 0, 0), []sessionmgr.Event(nil))
}

// testSaveWakes: a Save's events wake the waiting readers, as an Append's
// do.
func (h Harness) testSaveWakes(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	type result struct {
		evs []sessionmgr.Event
		err error
	}
	done := make(chan result, 1)
	go func() {
		evs, err := st.Events(ctx, s.ID, 0, 0, true)
		done <- result{evs, err}
	}()
	s.LastSeq = 2
	if err := st.Save(ctx, s, []sessionmgr.Event{event(1), event(2)}); err != nil {
		t.Fatalf("Save = %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Events(wait) = %v", r.err)
	}
	if len(r.evs) == 0 || r.evs[0].Seq != 1 {
		t.Fatalf("Events(wait) woken by Save = %v, want event 1 first", r.evs)
	}
}

// testConflictKinds: a write at a stale epoch is ErrFenced, one whose
// sequence does not follow is ErrSeqConflict; both are ErrConflict, and
// neither is the other.
func (h Harness) testConflictKinds(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.Epoch = 3
	create(t, st, s, ample)
	stale := s
	stale.Epoch = 2
	kind := func(what string, err, want, not error) {
		t.Helper()
		if !errors.Is(err, want) || !errors.Is(err, sessionmgr.ErrConflict) || errors.Is(err, not) {
			t.Errorf("%s = %v, want %v (an ErrConflict, not %v)", what, err, want, not)
		}
	}
	kind("Put(stale epoch)", st.Put(ctx, stale), sessionmgr.ErrFenced, sessionmgr.ErrSeqConflict)
	kind("Save(stale epoch)", st.Save(ctx, stale, []sessionmgr.Event{event(1)}), sessionmgr.ErrFenced, sessionmgr.ErrSeqConflict)
	kind("Append(stale epoch)", st.Append(ctx, s.ID, 2, event(1)), sessionmgr.ErrFenced, sessionmgr.ErrSeqConflict)
	kind("Append(seq 2 first)", st.Append(ctx, s.ID, s.Epoch, event(2)), sessionmgr.ErrSeqConflict, sessionmgr.ErrFenced)
	kind("Save(events 5, 4)", st.Save(ctx, s, []sessionmgr.Event{event(5), event(4)}), sessionmgr.ErrSeqConflict, sessionmgr.ErrFenced)
	_, err := st.Takeover(ctx, s.ID, "replica-b", 2)
	kind("Takeover(from a stale epoch)", err, sessionmgr.ErrFenced, sessionmgr.ErrSeqConflict)
}

func (h Harness) testAppendSeq(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := create(t, st, newSession(newChannel()), ample)

	tests := []struct {
		give uint64
		want error
	}{
		{give: 0, want: sessionmgr.ErrConflict},
		{give: 2, want: sessionmgr.ErrConflict},
		{give: 1},
		{give: 1, want: sessionmgr.ErrConflict},
		{give: 3, want: sessionmgr.ErrConflict},
		{give: 2},
		{give: 3},
	}
	for i, tt := range tests {
		err := st.Append(ctx, s.ID, s.Epoch, event(tt.give))
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Fatalf("step %d: Append(seq %d) = %v, want %v", i, tt.give, err, tt.want)
		}
	}
	diff(t, "Events", events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2), event(3)})
	diff(t, "Get after Append (Append changes no record)", get(t, st, s.ID), s)

	if err := st.Append(ctx, newID(), 1, event(1)); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Append(unknown id) = %v, want ErrNotFound", err)
	}
}

// testAppendFence checks that only the stored epoch may append, and that
// a fenced Append changes nothing.
func (h Harness) testAppendFence(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	s := newSession(newChannel())
	s.Epoch = 5
	create(t, st, s, ample)
	appendEvents(t, st, s, 1, 1)

	tests := []struct {
		name string
		give uint64
		want error
	}{
		{name: "older epoch", give: 4, want: sessionmgr.ErrConflict},
		{name: "newer epoch", give: 6, want: sessionmgr.ErrConflict},
		{name: "zero epoch", give: 0, want: sessionmgr.ErrConflict},
		{name: "stored epoch", give: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := events(t, st, s.ID, 0, 0)
			e := event(uint64(len(before)) + 1)
			err := st.Append(ctx, s.ID, tt.give, e)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Append(epoch %d over %d) = %v, want %v", tt.give, s.Epoch, err, tt.want)
			}
			want := before
			if err == nil {
				want = append(want, e)
			}
			diff(t, "Events after Append", events(t, st, s.ID, 0, 0), want)
		})
	}
	diff(t, "Get after Append (Append changes no record)", get(t, st, s.ID), s)
}

func (h Harness) testAppendRetention(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	const n = sessionmgr.EventRetention + 5
	appendEvents(t, st, s, 1, n)

	got := events(t, st, s.ID, 0, 0)
	if len(got) != sessionmgr.EventRetention {
		t.Fatalf("Events after %d appends = %d events, want %d", n, len(got), sessionmgr.EventRetention)
	}
	for i, e := range got {
		if want := uint64(6 + i); e.Seq != want {
			t.Fatalf("Events[%d].Seq = %d, want %d", i, e.Seq, want)
		}
	}
	diff(t, "Events(after 1000, limit 2)", events(t, st, s.ID, 1000, 2), []sessionmgr.Event{event(1001), event(1002)})

	// The sequence goes on from the last event, not from what is kept.
	if err := st.Append(t.Context(), s.ID, s.Epoch, event(6)); !errors.Is(err, sessionmgr.ErrConflict) {
		t.Errorf("Append(seq 6) = %v, want ErrConflict", err)
	}
	if err := st.Append(t.Context(), s.ID, s.Epoch, event(n+1)); err != nil {
		t.Errorf("Append(seq %d) = %v", n+1, err)
	}
}

func (h Harness) testEvents(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	noEvents := create(t, st, newSession(newChannel()), ample)
	appendEvents(t, st, s, 1, 10)

	tests := []struct {
		name     string
		after    uint64
		limit    int
		wantFrom uint64 // first Seq
		wantTo   uint64 // last Seq; 0: none
	}{
		{name: "all", after: 0, limit: 0, wantFrom: 1, wantTo: 10},
		{name: "negative limit", after: 0, limit: -1, wantFrom: 1, wantTo: 10},
		{name: "after", after: 3, limit: 0, wantFrom: 4, wantTo: 10},
		{name: "after and limit", after: 3, limit: 2, wantFrom: 4, wantTo: 5},
		{name: "limit past the end", after: 8, limit: 5, wantFrom: 9, wantTo: 10},
		{name: "after the last", after: 10, limit: 5},
		{name: "after the future", after: 100, limit: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []sessionmgr.Event
			for seq := tt.wantFrom; tt.wantTo > 0 && seq <= tt.wantTo; seq++ {
				want = append(want, event(seq))
			}
			diff(t, fmt.Sprintf("Events(after %d, limit %d)", tt.after, tt.limit), events(t, st, s.ID, tt.after, tt.limit), want)
		})
	}

	if got := events(t, st, noEvents.ID, 0, 0); len(got) != 0 {
		t.Errorf("Events(no events yet) = %d events, want 0", len(got))
	}
	for _, wait := range []bool{false, true} {
		// A store that wrongly blocks fails at the deadline instead of hanging.
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if _, err := st.Events(ctx, newID(), 0, 0, wait); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Events(unknown id, wait %t) = %v, want ErrNotFound", wait, err)
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := st.Events(ctx, s.ID, 8, 0, true)
	if err != nil {
		t.Fatalf("Events(after 8, wait) = %v", err)
	}
	diff(t, "Events(after 8, wait) with events there", got, []sessionmgr.Event{event(9), event(10)})
}

// testEventsWait checks that waiting Events calls return what an Append
// adds. Whether they were blocked before the Append cannot be known from
// here (testEventsFollow makes it all but certain); either way they must
// return the event.
func (h Harness) testEventsWait(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	other := create(t, st, newSession(newChannel()), ample)
	appendEvents(t, st, s, 1, 2)

	type result struct {
		evs []sessionmgr.Event
		err error
	}
	const waiters = 3
	results := make(chan result, waiters)
	var wg sync.WaitGroup
	defer wg.Wait()
	// The deadline turns a waiter that is never woken into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel() // before wg.Wait, should a check below fail
	for range waiters {
		wg.Go(func() {
			evs, err := st.Events(ctx, s.ID, 2, 0, true)
			results <- result{evs, err}
		})
	}

	select {
	case r := <-results:
		t.Fatalf("Events(after the last, wait) returned before any Append: %d events, %v", len(r.evs), r.err)
	default:
	}
	// An Append to another session wakes no one for good.
	appendEvents(t, st, other, 1, 1)
	appendEvents(t, st, s, 3, 3)
	for range waiters {
		r := <-results
		if r.err != nil {
			t.Fatalf("Events(after 2, wait) = %v", r.err)
		}
		diff(t, "Events(after 2, wait)", r.evs, []sessionmgr.Event{event(3)})
	}
}

// testEventsFollow has a reader follow the timeline, as a watcher does,
// while events are appended one by one. The reader keeps catching up and
// waiting, so an Append that fails to wake a waiter shows up as a reader
// stuck until its deadline.
func (h Harness) testEventsFollow(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	const n = 200
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	type result struct {
		seqs []uint64
		err  error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for after := uint64(0); after < n; {
			evs, err := st.Events(ctx, s.ID, after, 0, true)
			if err != nil {
				r.err = fmt.Errorf("Events(after %d, wait): %w", after, err)
				break
			}
			for _, e := range evs {
				r.seqs = append(r.seqs, e.Seq)
				after = e.Seq
			}
		}
		done <- r
	}()
	for seq := uint64(1); seq <= n; seq++ {
		if err := st.Append(ctx, s.ID, s.Epoch, event(seq)); err != nil {
			cancel()
			<-done
			t.Fatalf("Append(seq %d) = %v", seq, err)
		}
		runtime.Gosched() // let the reader catch up and wait
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("following the timeline: %v", r.err)
	}
	want := make([]uint64, n)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	diff(t, "Seqs read while following", r.seqs, want)
}

func (h Harness) testEventsWaitDone(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	appendEvents(t, st, s, 1, 1)

	t.Run("cancelled while waiting", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := st.Events(ctx, s.ID, 1, 0, true)
			errc <- err
		}()
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Errorf("Events(wait, cancelled) = %v, want context.Canceled", err)
		}
	})
	t.Run("past deadline", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel()
		if _, err := st.Events(ctx, s.ID, 1, 0, true); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Events(wait, past deadline) = %v, want context.DeadlineExceeded", err)
		}
	})
}

// testEventsManyWaiters has more readers wait than a store's client
// keeps connections (the Redis suite's pool has 32): while 128 of them
// wait on 64 timelines, creating, reading and appending to other sessions
// must work as usual, and every reader then gets exactly its events.
// A store that holds a pooled connection per waiting reader fails here.
func (h Harness) testEventsManyWaiters(t *testing.T) {
	st, _ := h.store(t)
	const sessions, perSession = 64, 2
	// The deadline turns a reader never woken, or a call stuck behind
	// the readers, into a failure.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ss := make([]sessionmgr.Session, sessions)
	for i := range ss {
		ss[i] = create(t, st, newSession(newChannel()), ample)
		appendEvents(t, st, ss[i], 1, 1)
	}
	type result struct {
		i   int
		evs []sessionmgr.Event
		err error
	}
	results := make(chan result, sessions*perSession)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait, should a check below fail
	for i := range ss {
		for range perSession {
			wg.Go(func() {
				evs, err := st.Events(ctx, ss[i].ID, 1, 0, true)
				results <- result{i, evs, err}
			})
		}
	}
	// The readers are (all but certainly) waiting while these run; each
	// call must succeed, and within a second.
	other := create(t, st, newSession(newChannel()), ample)
	for seq := uint64(1); seq <= 20; seq++ {
		start := time.Now()
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		s := newSession(other.Channel)
		_, cerr := st.Create(cctx, s, ample)
		_, gerr := st.Get(cctx, other.ID)
		aerr := st.Append(cctx, other.ID, other.Epoch, event(seq))
		ccancel()
		if err := errors.Join(cerr, gerr, aerr); err != nil {
			t.Fatalf("with %d readers waiting, Create/Get/Append #%d = %v", sessions*perSession, seq, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("with %d readers waiting, Create+Get+Append #%d took %v, want under 1s", sessions*perSession, seq, took)
		}
	}
	select {
	case r := <-results:
		t.Fatalf("Events(after the last, wait) on session %d returned before any Append: %d events, %v", r.i, len(r.evs), r.err)
	default:
	}
	for i := range ss {
		appendEvents(t, st, ss[i], 2, 2)
	}
	for range sessions * perSession {
		r := <-results
		if r.err != nil {
			t.Fatalf("Events(after 1, wait) on session %d = %v", r.i, r.err)
		}
		diff(t, fmt.Sprintf("Events(after 1, wait) on session %d", r.i), r.evs, []sessionmgr.Event{event(2)})
	}
}

// testEventsFollowBursts has readers follow one timeline from different
// places with different limits while events are appended in bursts, some
// longer than any buffer a store might keep: each must read every event
// after its start exactly once, in order.
func (h Harness) testEventsFollowBursts(t *testing.T) {
	st, _ := h.store(t)
	s := create(t, st, newSession(newChannel()), ample)
	appendEvents(t, st, s, 1, 5)
	bursts := []uint64{1, 3, 40, 1, 1, 7, 100, 2, 33, 1}
	var n uint64 = 5
	for _, b := range bursts {
		n += b
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	type reader struct {
		after uint64
		limit int
	}
	readers := []reader{{0, 0}, {0, 1}, {3, 2}, {5, 0}, {5, 5}, {5, 1}}
	type result struct {
		seqs []uint64
		err  error
	}
	results := make([]chan result, len(readers))
	for i, rd := range readers {
		results[i] = make(chan result, 1)
		go func() {
			var r result
			for after := rd.after; after < n; {
				evs, err := st.Events(ctx, s.ID, after, rd.limit, true)
				if err != nil {
					r.err = fmt.Errorf("Events(after %d, limit %d, wait): %w", after, rd.limit, err)
					break
				}
				if rd.limit > 0 && len(evs) > rd.limit {
					r.err = fmt.Errorf("Events(after %d, limit %d, wait) = %d events", after, rd.limit, len(evs))
					break
				}
				for _, e := range evs {
					r.seqs = append(r.seqs, e.Seq)
					after = e.Seq
				}
			}
			results[i] <- r
		}()
	}
	seq := uint64(6)
	for _, b := range bursts {
		appendEvents(t, st, s, seq, seq+b-1)
		seq += b
		runtime.Gosched()
	}
	for i, rd := range readers {
		r := <-results[i]
		if r.err != nil {
			t.Fatalf("reader from %d, limit %d: %v", rd.after, rd.limit, r.err)
		}
		var want []uint64
		for q := rd.after + 1; q <= n; q++ {
			want = append(want, q)
		}
		diff(t, fmt.Sprintf("Seqs read from %d, limit %d", rd.after, rd.limit), r.seqs, want)
	}
}

// testTerminalRetention follows ended sessions on one timeline (so that
// with real time the wait is paid once): one CLOSED and one FAILED by a
// Put, one created CLOSED, and a live one beside them.
func (h Harness) testTerminalRetention(t *testing.T) {
	h.needTime(t)
	st, clk := h.store(t)
	ctx := t.Context()
	ch := newChannel()
	live := create(t, st, newSession(ch), ample)
	var ended []sessionmgr.Session
	for _, state := range []sessionmgr.State{sessionmgr.StateClosed, sessionmgr.StateFailed} {
		s := create(t, st, newSession(ch), ample)
		appendEvents(t, st, s, 1, 2)
		s.State = state
		if err := st.Put(ctx, s); err != nil {
			t.Fatalf("Put(%v) = %v", state, err)
		}
		ended = append(ended, s)
	}
	bornClosed := newSession(ch)
	bornClosed.State = sessionmgr.StateClosed
	ended = append(ended, create(t, st, bornClosed, ample))
	appendEvents(t, st, bornClosed, 1, 2)

	// Retention runs from the first terminal write, not the last.
	clk.Advance(h.Retention / 2)
	for i := range ended {
		ended[i].Close = sessionmgr.CloseFailed
		if err := st.Put(ctx, ended[i]); err != nil {
			t.Fatalf("Put(%v again) = %v", ended[i].State, err)
		}
	}
	clk.Advance(h.Retention - h.Retention/2 - time.Second)
	for _, s := range ended {
		diff(t, fmt.Sprintf("Get(%v) just before the retention ends", s.State), get(t, st, s.ID), s)
		diff(t, fmt.Sprintf("Events(%v) just before the retention ends", s.State), events(t, st, s.ID, 0, 0), []sessionmgr.Event{event(1), event(2)})
	}

	clk.Advance(2 * time.Second)
	for _, s := range ended {
		if _, err := st.Get(ctx, s.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Get(%v, after the retention) = %v, want ErrNotFound", s.State, err)
		}
		if _, err := st.Events(ctx, s.ID, 0, 0, false); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Events(%v, after the retention) = %v, want ErrNotFound", s.State, err)
		}
		if err := st.Append(ctx, s.ID, s.Epoch, event(3)); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Append(%v, after the retention) = %v, want ErrNotFound", s.State, err)
		}
		if err := st.Put(ctx, s); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Put(%v, after the retention) = %v, want ErrNotFound", s.State, err)
		}
		if _, err := st.Takeover(ctx, s.ID, "replica-b", s.Epoch); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Takeover(%v, after the retention) = %v, want ErrNotFound", s.State, err)
		}
	}
	diff(t, "List after the retention", ids(listAll(t, st, sessionmgr.ListFilter{ChannelARN: ch.ARN}, 10)), []sessionmgr.SessionID{live.ID})

	// A live session never expires.
	clk.Advance(h.long())
	diff(t, "Get(live, long after)", get(t, st, live.ID), live)
}

// testRecoveryHint: a channel's remembered step is read back, replaced,
// kept apart from other channels', and bad hints are refused.
func (h Harness) testRecoveryHint(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	a, b := newChannel().ARN, newChannel().ARN
	hintOf := func(arn string) sessionmgr.RecoveryStep {
		t.Helper()
		step, err := st.RecoveryHint(ctx, arn)
		if err != nil {
			t.Fatalf("RecoveryHint(%s) = %v", arn, err)
		}
		return step
	}
	if got := hintOf(a); got != sessionmgr.StepUnknown {
		t.Errorf("RecoveryHint(never set) = %v, want UNKNOWN", got)
	}
	for _, step := range []sessionmgr.RecoveryStep{sessionmgr.StepNewPeerConnection, sessionmgr.StepNewClientID, sessionmgr.StepICERestart} {
		if err := st.SetRecoveryHint(ctx, a, step, time.Hour); err != nil {
			t.Fatalf("SetRecoveryHint(%v) = %v", step, err)
		}
		if got := hintOf(a); got != step {
			t.Errorf("RecoveryHint after SetRecoveryHint(%v) = %v", step, got)
		}
	}
	if got := hintOf(b); got != sessionmgr.StepUnknown {
		t.Errorf("RecoveryHint(another channel) = %v, want UNKNOWN", got)
	}
	tests := []struct {
		name string
		arn  string
		step sessionmgr.RecoveryStep
		ttl  time.Duration
	}{
		{"unknown step", b, sessionmgr.StepUnknown, time.Hour},
		{"out of range step", b, sessionmgr.RecoveryStep(42), time.Hour},
		{"zero ttl", b, sessionmgr.StepICERestart, 0},
		{"no channel", "", sessionmgr.StepICERestart, time.Hour},
	}
	for _, tt := range tests {
		if err := st.SetRecoveryHint(ctx, tt.arn, tt.step, tt.ttl); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
			t.Errorf("SetRecoveryHint(%s) = %v, want ErrInvalidArgument", tt.name, err)
		}
	}
	if got := hintOf(b); got != sessionmgr.StepUnknown {
		t.Errorf("RecoveryHint after refused hints = %v, want UNKNOWN", got)
	}
}

// testRecoveryHintExpiry: a hint lives for its ttl; setting it again
// renews it.
func (h Harness) testRecoveryHintExpiry(t *testing.T) {
	h.needTime(t)
	st, clk := h.store(t)
	ctx := t.Context()
	arn := newChannel().ARN
	const ttl = 3 * time.Second
	if err := st.SetRecoveryHint(ctx, arn, sessionmgr.StepNewClientID, ttl); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl - time.Second)
	if got, err := st.RecoveryHint(ctx, arn); err != nil || got != sessionmgr.StepNewClientID {
		t.Errorf("RecoveryHint just before the ttl = %v, %v; want NEW_CLIENT_ID", got, err)
	}
	if err := st.SetRecoveryHint(ctx, arn, sessionmgr.StepNewClientID, ttl); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl - time.Second)
	if got, err := st.RecoveryHint(ctx, arn); err != nil || got != sessionmgr.StepNewClientID {
		t.Errorf("RecoveryHint just before the renewed ttl = %v, %v; want NEW_CLIENT_ID", got, err)
	}
	clk.Advance(2 * time.Second)
	if got, err := st.RecoveryHint(ctx, arn); err != nil || got != sessionmgr.StepUnknown {
		t.Errorf("RecoveryHint after the ttl = %v, %v; want UNKNOWN", got, err)
	}
}

// Helpers. Each fails the test on an unexpected error.

// testOwnerIndex checks what Create, Takeover, a terminal Put and Delete
// do to the owner index (Owned, Moved, Replicas), Owners, and Forget.
func (h Harness) testOwnerIndex(t *testing.T) {
	st, _ := h.store(t)
	ctx := t.Context()
	a, b := "replica-"+string(newID()[:10]), "replica-"+string(newID()[:10])
	ch := newChannel()
	var ss [3]sessionmgr.Session
	for i := range ss {
		ss[i] = newSession(ch)
		ss[i].Owner = a
		create(t, st, ss[i], ample)
	}
	ended := newSession(ch)
	ended.Owner = a
	create(t, st, ended, ample)
	ended.State, ended.Close = sessionmgr.StateClosed, sessionmgr.CloseByBackend
	if err := st.Put(ctx, ended); err != nil {
		t.Fatalf("Put(ended) = %v", err)
	}
	owned := func(what, replica string, want ...sessionmgr.SessionID) {
		t.Helper()
		got, err := st.Owned(ctx, replica)
		if err != nil {
			t.Fatalf("%s: Owned(%s) = %v", what, replica, err)
		}
		slices.Sort(got)
		slices.Sort(want)
		diff(t, what+": Owned", got, append([]sessionmgr.SessionID{}, want...))
	}
	moved := func(what, replica string, want ...sessionmgr.SessionID) {
		t.Helper()
		got, err := st.Moved(ctx, replica)
		if err != nil {
			t.Fatalf("%s: Moved(%s) = %v", what, replica, err)
		}
		diff(t, what+": Moved", got, append([]sessionmgr.SessionID{}, want...))
	}
	listed := func(what, replica string, want bool) {
		t.Helper()
		reps, err := st.Replicas(ctx)
		if err != nil {
			t.Fatalf("%s: Replicas = %v", what, err)
		}
		if got := slices.Contains(reps, replica); got != want {
			t.Errorf("%s: Replicas lists %s: %v, want %v", what, replica, got, want)
		}
	}
	owned("after Create", a, ss[0].ID, ss[1].ID, ss[2].ID)
	listed("after Create", a, true)
	moved("after Create", a)

	gotOwners, err := st.Owners(ctx, []sessionmgr.SessionID{ss[0].ID, ended.ID, newID()})
	if err != nil {
		t.Fatalf("Owners = %v", err)
	}
	diff(t, "Owners", gotOwners, []sessionmgr.Ownership{{Owner: a, Epoch: 1, Live: true}, {Owner: a, Epoch: 1}, {}})

	if _, err := st.Takeover(ctx, ss[0].ID, b, 1); err != nil {
		t.Fatalf("Takeover = %v", err)
	}
	owned("after Takeover", a, ss[1].ID, ss[2].ID)
	owned("after Takeover", b, ss[0].ID)
	moved("after Takeover", a, ss[0].ID)
	moved("after Takeover", b)
	listed("after Takeover", b, true)
	gotOwners, err = st.Owners(ctx, []sessionmgr.SessionID{ss[0].ID})
	if err != nil {
		t.Fatalf("Owners = %v", err)
	}
	diff(t, "Owners after Takeover", gotOwners, []sessionmgr.Ownership{{Owner: b, Epoch: 2, Live: true}})

	ss[1].State, ss[1].Close = sessionmgr.StateClosed, sessionmgr.CloseByBackend
	if err := st.Put(ctx, ss[1]); err != nil {
		t.Fatalf("Put(terminal) = %v", err)
	}
	owned("after a terminal Put", a, ss[2].ID)
	if err := st.Delete(ctx, ss[2].ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	owned("after Delete", a)

	if err := st.Forget(ctx, a, []sessionmgr.SessionID{ss[0].ID}, nil); err != nil {
		t.Fatalf("Forget = %v", err)
	}
	moved("after Forget", a)
	listed("after Forget, owning nothing", a, false)
	if err := st.Forget(ctx, b, nil, nil); err != nil {
		t.Fatalf("Forget = %v", err)
	}
	listed("after Forget, owning a session", b, true)
}

func create(t *testing.T, st sessionmgr.Store, s sessionmgr.Session, limit int) sessionmgr.Session {
	t.Helper()
	got, err := st.Create(t.Context(), s, limit)
	if err != nil {
		t.Fatalf("Create(%s) = %v", s.ID, err)
	}
	return got
}

func get(t *testing.T, st sessionmgr.Store, id sessionmgr.SessionID) sessionmgr.Session {
	t.Helper()
	s, err := st.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s) = %v", id, err)
	}
	return s
}

func events(t *testing.T, st sessionmgr.Store, id sessionmgr.SessionID, after uint64, limit int) []sessionmgr.Event {
	t.Helper()
	evs, err := st.Events(t.Context(), id, after, limit, false)
	if err != nil {
		t.Fatalf("Events(%s, after %d, limit %d) = %v", id, after, limit, err)
	}
	return evs
}

// appendEvents appends event(from) to event(to) to s's timeline, at s's
// epoch.
func appendEvents(t *testing.T, st sessionmgr.Store, s sessionmgr.Session, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		if err := st.Append(t.Context(), s.ID, s.Epoch, event(seq)); err != nil {
			t.Fatalf("Append(%s, epoch %d, seq %d) = %v", s.ID, s.Epoch, seq, err)
		}
	}
}

// listAll walks every page of List with pages of size.
func listAll(t *testing.T, st sessionmgr.Store, f sessionmgr.ListFilter, size int) []sessionmgr.Session {
	t.Helper()
	var all []sessionmgr.Session
	cursor := ""
	for range 10000 {
		page, next, err := st.List(t.Context(), f, size, cursor)
		if err != nil {
			t.Fatalf("List(%+v, %d, %q) = %v", f, size, cursor, err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		cursor = next
	}
	t.Fatalf("List(%+v, %d) did not end after 10000 pages", f, size)
	return nil
}

func ids(ss []sessionmgr.Session) []sessionmgr.SessionID {
	var out []sessionmgr.SessionID
	for _, s := range ss {
		out = append(out, s.ID)
	}
	return out
}

// diff fails the test when got differs from want. Nil and empty slices
// are equal: stores need not tell them apart.
func diff[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if d := gocmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", what, d)
	}
}

// newID returns a random session id: 26 characters of lower-case base32.
func newID() sessionmgr.SessionID {
	return sessionmgr.SessionID(strings.ToLower(rand.Text()))
}

// newChannel returns a channel no other subtest uses.
func newChannel() sessionmgr.Channel {
	name := "storetest-" + string(newID())
	return sessionmgr.Channel{
		ARN:        "arn:aws:kinesisvideo:us-west-2:123456789012:channel/" + name + "/1700000000000",
		Name:       name,
		Region:     "us-west-2",
		MessageTTL: time.Minute,
	}
}

// newSession returns a PENDING session on ch with every field set but
// Failure, Caller and RequestID.
func newSession(ch sessionmgr.Channel) sessionmgr.Session {
	id := newID()
	hash := sha256.Sum256([]byte(id))
	return sessionmgr.Session{
		ID:         id,
		Channel:    ch,
		ViewerID:   "viewer-" + string(id[:8]),
		ClientID:   "viewer-" + string(id[:8]),
		State:      sessionmgr.StatePending,
		Attempt:    1,
		IceServers: *iceServers(),
		Options: sessionmgr.Options{
			AnswerTimeout:     6 * time.Second,
			RetryDelay:        time.Second,
			MaxAttempts:       3,
			Recovery:          sessionmgr.RecoveryAuto,
			ResumeGrace:       30 * time.Second,
			ICERestartTimeout: 10 * time.Second,
			DisconnectedGrace: 5 * time.Second,
			MaxLifetime:       time.Hour,
		},
		Created: t0(),
		Updated: t0().Add(time.Second),
		// Far past any clock: a store may stop counting a live session
		// against its channel's limit once its Expires has passed (its
		// owner presumed gone), as redisstore does by the server's clock.
		Expires:   t0().AddDate(100, 0, 0),
		TokenHash: hash[:],
		Owner:     "replica-a",
		Epoch:     1,
	}
}

func iceServers() *sessionmgr.IceServers {
	return &sessionmgr.IceServers{
		Servers: []sessionmgr.IceServer{
			{URLs: []string{"stun:stun.kinesisvideo.us-west-2.amazonaws.com:443"}},
			{
				URLs:       []string{"turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349?transport=tcp"},
				Username:   "1700000300:user",
				Credential: "secret",
			},
		},
		Expires: t0().Add(5 * time.Minute),
	}
}

// event returns the timeline event with sequence number seq.
func event(seq uint64) sessionmgr.Event {
	return sessionmgr.Event{
		Seq:     seq,
		Time:    t0().Add(time.Duration(seq) * time.Second),
		Type:    sessionmgr.EventStateChanged,
		State:   sessionmgr.StateSignaling,
		Attempt: 1,
		Message: fmt.Sprintf("event %d", seq),
	}
}

// scribble changes everything a session's references reach, in place.
func scribble(s *sessionmgr.Session) {
	s.IceServers.Servers[0].URLs[0] = "scribbled"
	s.IceServers.Servers[1].Credential = "scribbled"
	if s.Failure != nil {
		s.Failure.Message = "scribbled"
	}
	s.TokenHash[0]++
}

// scribbleEvent changes everything an event's references reach, in place.
func scribbleEvent(e *sessionmgr.Event) {
	e.Failure.Message = "scribbled"
	e.Candidate.Candidate = "scribbled"
	*e.Candidate.SDPMLineIndex++
	e.Renegotiate.IceServers.Servers[0].URLs[0] = "scribbled"
	e.ConnState.ICE = sessionmgr.ICEFailed
	e.IceServers.Servers[1].URLs[1] = "scribbled"
}

// cloneSession and cloneEvent deep-copy the records whose references the
// copies subtest then changes.

func cloneSession(s sessionmgr.Session) sessionmgr.Session {
	s.IceServers = *cloneIceServers(&s.IceServers)
	if s.Failure != nil {
		f := *s.Failure
		s.Failure = &f
	}
	s.TokenHash = slices.Clone(s.TokenHash)
	return s
}

func cloneEvent(e sessionmgr.Event) sessionmgr.Event {
	f, c, idx, r, cs := *e.Failure, *e.Candidate, *e.Candidate.SDPMLineIndex, *e.Renegotiate, *e.ConnState
	c.SDPMLineIndex = &idx
	r.IceServers = cloneIceServers(r.IceServers)
	e.Failure, e.Candidate, e.Renegotiate, e.ConnState = &f, &c, &r, &cs
	e.IceServers = cloneIceServers(e.IceServers)
	return e
}

func cloneIceServers(s *sessionmgr.IceServers) *sessionmgr.IceServers {
	c := *s
	c.Servers = slices.Clone(c.Servers)
	for i := range c.Servers {
		c.Servers[i].URLs = slices.Clone(c.Servers[i].URLs)
	}
	return &c
}
