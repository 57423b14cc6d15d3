package sessionmgr_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// gatedStore is a memstore whose Append blocks while the gate is shut: the
// actor is then busy inside a step, as it is during a slow store write.
type gatedStore struct {
	sessionmgr.Store
	mu   sync.Mutex
	gate chan struct{} // nil: open
}

func (g *gatedStore) shut() {
	g.mu.Lock()
	g.gate = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) open() {
	g.mu.Lock()
	close(g.gate)
	g.gate = nil
	g.mu.Unlock()
}

func (g *gatedStore) Save(ctx context.Context, s sessionmgr.Session, events []sessionmgr.Event) error {
	g.wait()
	return g.Store.Save(ctx, s, events)
}

func (g *gatedStore) wait() {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
}

func (g *gatedStore) Append(ctx context.Context, id sessionmgr.SessionID, epoch uint64, e sessionmgr.Event) error {
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return g.Store.Append(ctx, id, epoch, e)
}

// Defect 1 (issue 15): a join whose caller gives up after the actor took
// it (a phone whose network resets right after joining) must not leave the
// session attached for ever. The caller sees an error and detaches
// nothing; the session must still end CLIENT_GONE after the resume grace,
// freeing its slot and clientId.
func TestJoinCancelledMidFlightStillEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &gatedStore{Store: memstore.New()}
		h := newHarnessStore(t, &fakeCamera{answerFrom: 1}, store)
		s := h.create(t, "phone")
		synctest.Wait()

		store.shut() // the actor will block writing APP_ATTACHED
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() {
			_, err := h.m.Attach(ctx, s.ID)
			done <- err
		}()
		synctest.Wait() // the actor took the join and is inside its step
		cancel()        // the caller gives up mid-flight
		synctest.Wait()
		store.open()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Attach with its context cancelled mid-flight = %v, want context.Canceled", err)
		}

		time.Sleep(sessionmgr.DefaultOptions().ResumeGrace + time.Second) // fake time
		synctest.Wait()
		got, err := h.m.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseClientGone {
			t.Fatalf("a resume grace after the cancelled join: %s/%s, want CLOSED/CLIENT_GONE (the attach leaked)", got.State, got.Close)
		}
		if n := h.ids.liveIDs(); n != 0 {
			t.Errorf("%d clientIds leased after CLIENT_GONE, want 0", n)
		}
	})
}

// A Join's attachment detached before its attach arrived (the two raced
// through another replica's inbox) cancels it.
func TestDetachOvertakingJoin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &gatedStore{Store: memstore.New()}
		h := newHarnessStore(t, &fakeCamera{answerFrom: 1}, store)
		s := h.create(t, "racer")
		synctest.Wait()
		// 50 joins, each given up at once, each detached as a stream ends.
		for range 50 {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, att, _ := h.m.Join(ctx, s.ID)
			att.Detach(t.Context())
		}
		_, att, err := h.m.Join(t.Context(), s.ID) // the one stream that stays
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * sessionmgr.DefaultOptions().ResumeGrace)
		synctest.Wait()
		if got, _ := h.m.Get(t.Context(), s.ID); got.Terminal() {
			t.Fatalf("session %s/%s with a stream attached, want live", got.State, got.Close)
		}
		att.Detach(t.Context())
		att.Detach(t.Context()) // idempotent
		time.Sleep(sessionmgr.DefaultOptions().ResumeGrace + time.Second)
		synctest.Wait()
		if got, _ := h.m.Get(t.Context(), s.ID); got.Close != sessionmgr.CloseClientGone {
			t.Fatalf("after the last detach and the grace: %s/%s, want CLOSED/CLIENT_GONE", got.State, got.Close)
		}
	})
}

// Defect 6 (issue 15): one app joining alternately on two replicas moved
// the session at every join (a new clientId and KVS connect each time).
// While the owner lives a join elsewhere is forwarded: no takeover at all.
func TestAlternatingJoinsDoNotTakeOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "flip"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		for i := range 25 {
			m := r.a
			if i%2 == 1 {
				m = r.b
			}
			got, err := m.Attach(t.Context(), s.ID)
			if err != nil {
				t.Fatalf("join %d: %v", i, err)
			}
			if got.Owner != "replica-a" || got.Epoch != 1 {
				t.Fatalf("join %d: owner %s epoch %d, want replica-a epoch 1", i, got.Owner, got.Epoch)
			}
			time.Sleep(200 * time.Millisecond)
			m.Detach(t.Context(), s.ID)
		}
		synctest.Wait()
		got, _ := r.a.Get(t.Context(), s.ID)
		for _, k := range kinds(t, r.b, s.ID, got.LastSeq) {
			if k == sessionmgr.EventOwnerChanged {
				t.Fatal("OWNER_CHANGED on the timeline: a join on a live owner's session took it over")
			}
		}
		if n := len(r.cam.dialed()); n != 1 {
			t.Errorf("%d KVS connects for 25 joins, want 1", n)
		}
	})
}

// A stream attached through another replica is detached when that replica
// stops heartbeating (its detach will never come), so the session still
// ends when its app is gone.
func TestForwardedStreamOfDeadReplicaDetached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "remote"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := r.b.Attach(t.Context(), s.ID); err != nil { // never detached: B dies
			t.Fatal(err)
		}
		time.Sleep(2 * sessionmgr.DefaultOptions().ResumeGrace)
		synctest.Wait()
		if got, _ := r.a.Get(t.Context(), s.ID); got.Terminal() {
			t.Fatalf("session %s with B's stream attached and B alive, want live", got.State)
		}
		r.c.kill("replica-b")
		time.Sleep(sessionmgr.DefaultConfig().ReplicaTTL + sessionmgr.DefaultOptions().ResumeGrace + 5*time.Second)
		synctest.Wait()
		got, _ := r.a.Get(t.Context(), s.ID)
		if got.Owner != "replica-a" || got.Close != sessionmgr.CloseClientGone {
			t.Fatalf("after B died: %s/%s owned by %s, want CLOSED/CLIENT_GONE on replica-a", got.State, got.Close, got.Owner)
		}
	})
}

func (f *fakeCamera) dialed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.dials...)
}

// Defect 5 (issue 15): 3,000 state reports pushed CREATED and ANSWER out of
// the 1,000-event timeline a backend reads. Reports are coalesced: a
// repeat adds no event and their events are capped, so the milestones
// stay in the retained window (a real Redis, which trims the timeline).
// 1,200 changing reports are enough to push CREATED out without the cap.
func TestStateReportsKeepMilestones(t *testing.T) {
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() }) // after the manager's Close, which flushes
	h := newHarnessStore(t, &fakeCamera{answerFrom: 1}, redisstore.New(rdb))
	s := h.create(t, "chatty")
	if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
		t.Fatal(err)
	}
	defer h.m.Detach(t.Context(), s.ID)
	states := []sessionmgr.ICEState{sessionmgr.ICENew, sessionmgr.ICEChecking}
	for i := range 1200 { // more than the retained 1,000, every one a change
		report := &sessionmgr.ConnState{ICE: states[i%2]}
		if _, err := h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: report}); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	evs, err := h.store.Events(t.Context(), s.ID, 0, sessionmgr.EventRetention, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) == 0 || evs[0].Type != sessionmgr.EventCreated || evs[0].Seq != 1 {
		first := "none"
		if len(evs) > 0 {
			first = fmt.Sprintf("%v #%d", evs[0].Type, evs[0].Seq)
		}
		t.Fatalf("after 1,200 state reports the timeline starts with %s (%d events), want CREATED #1", first, len(evs))
	}
	n := 0
	for _, e := range evs {
		if e.Type == sessionmgr.EventConnectionState {
			n++
		}
	}
	if n > 200 {
		t.Errorf("%d CONNECTION_STATE events for 1,200 reports, want at most 200", n)
	}
}

// A repeated report adds no event.
func TestRepeatedStateReportCoalesced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{answerFrom: 1})
		s := h.create(t, "same")
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		defer h.m.Detach(t.Context(), s.ID)
		synctest.Wait() // signaling is open: nothing else moves the timeline
		var last uint64
		for i := range 5 {
			got, err := h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICEChecking}})
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && got.LastSeq != last {
				t.Fatalf("repeat %d of one report moved the timeline from #%d to #%d", i, last, got.LastSeq)
			}
			last = got.LastSeq
		}
	})
}
