package sessionmgr_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// fakeCluster is an in-process Cluster for unit tests: replicas are
// managers in one test, forwarding is a direct call.
type fakeCluster struct {
	mu       sync.Mutex
	beats    map[string]time.Time
	ttl      map[string]time.Duration
	handlers map[string]func(context.Context, sessionmgr.Forwarded) sessionmgr.ForwardReply
	silent   map[string]bool // replicas whose heartbeats are lost (dead)
	down     bool            // the shared store is out: every heartbeat fails
}

func (c *fakeCluster) setSilent(r string, silent bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.silent[r] = silent
}

func (c *fakeCluster) setDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = down
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{beats: map[string]time.Time{}, ttl: map[string]time.Duration{},
		handlers: map[string]func(context.Context, sessionmgr.Forwarded) sessionmgr.ForwardReply{}, silent: map[string]bool{}}
}

func (c *fakeCluster) Heartbeat(_ context.Context, r string, ttl time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return sessionmgr.ErrUnavailable
	}
	if !c.silent[r] {
		c.beats[r], c.ttl[r] = time.Now(), ttl
	}
	return nil
}

func (c *fakeCluster) Alive(_ context.Context, r string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.beats[r]
	return ok && time.Since(b) < c.ttl[r], nil
}

func (c *fakeCluster) Forward(ctx context.Context, owner string, f sessionmgr.Forwarded) (sessionmgr.ForwardReply, error) {
	c.mu.Lock()
	h := c.handlers[owner]
	c.mu.Unlock()
	if h == nil {
		return sessionmgr.ForwardReply{}, sessionmgr.ErrUnavailable
	}
	return h(ctx, f), nil
}

func (c *fakeCluster) Serve(ctx context.Context, r string, h func(context.Context, sessionmgr.Forwarded) sessionmgr.ForwardReply) error {
	c.mu.Lock()
	c.handlers[r] = h
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	delete(c.handlers, r)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeCluster) Pace(context.Context, string, float64) (time.Duration, error) { return 0, nil }

func (c *fakeCluster) kill(r string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.silent[r] = true
	delete(c.handlers, r)
}

type replicas struct {
	a, b *sessionmgr.Manager
	cam  *fakeCamera
	ids  *fakeIDs
	c    *fakeCluster
}

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	store := memstore.New()
	r := &replicas{cam: &fakeCamera{answerFrom: 1}, ids: &fakeIDs{}, c: newFakeCluster()}
	mk := func(id string) *sessionmgr.Manager {
		cfg := sessionmgr.DefaultConfig()
		cfg.DialsPerSecond = 1000
		cfg.ReplicaID = id
		m := sessionmgr.New(cfg, store, r.cam, r.ids, sessionmgr.WithCluster(r.c),
			sessionmgr.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
		t.Cleanup(func() {
			if err := m.Close(context.Background()); err != nil {
				t.Errorf("Close %s: %v", id, err)
			}
		})
		return m
	}
	r.a, r.b = mk("replica-a"), mk("replica-b")
	return r
}

func kinds(t *testing.T, m *sessionmgr.Manager, id sessionmgr.SessionID, upTo uint64) []sessionmgr.EventType {
	t.Helper()
	var out []sessionmgr.EventType
	var last uint64
	_ = m.Watch(t.Context(), id, 0, func(e sessionmgr.Event) error {
		if last != 0 && e.Seq != last+1 {
			t.Errorf("timeline gap: %d after %d", e.Seq, last)
		}
		last = e.Seq
		out = append(out, e.Type)
		if e.Seq >= upTo {
			return io.EOF
		}
		return nil
	})
	return out
}

func TestClusterForwardAndTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := r.a.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		// A Signal on B reaches the owner A.
		got, err := r.b.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: offer})
		if err != nil {
			t.Fatalf("Send on B: %v", err)
		}
		synctest.Wait()
		if got.Owner != "replica-a" {
			t.Errorf("after a forwarded Send the owner is %s, want replica-a", got.Owner)
		}
		got, _ = r.b.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{Peer: sessionmgr.PeerConnected}})
		if got.State != sessionmgr.StateConnected {
			t.Fatalf("state %s, want CONNECTED", got.State)
		}

		// The app comes back on B while A lives: forwarded, nothing moves.
		got, err = r.b.Attach(t.Context(), s.ID)
		if err != nil {
			t.Fatalf("Attach on B: %v", err)
		}
		if got.Owner != "replica-a" || got.Epoch != 1 {
			t.Fatalf("after a join on B with A alive: owner %s epoch %d, want replica-a, 1 (forwarded, no takeover)", got.Owner, got.Epoch)
		}
		r.b.Detach(t.Context(), s.ID)

		// A stops heartbeating: the next join on B takes over, with a
		// full reconnect.
		r.c.kill("replica-a")
		time.Sleep(10 * time.Second) // fake time: A's heartbeat goes stale
		synctest.Wait()
		got, err = r.b.Attach(t.Context(), s.ID)
		if err != nil {
			t.Fatalf("Attach on B: %v", err)
		}
		if got.Owner != "replica-b" || got.Epoch != 2 || got.ClientID == s.ClientID {
			t.Fatalf("after takeover: owner %s epoch %d clientId %s (was %s), want replica-b, 2, a new clientId", got.Owner, got.Epoch, got.ClientID, s.ClientID)
		}
		time.Sleep(3 * time.Second) // fake time: A's ownership check runs
		synctest.Wait()
		if n := r.ids.liveIDs(); n != 1 {
			t.Errorf("%d clientIds leased after the takeover, want 1 (A released its own)", n)
		}
		got, err = r.b.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: "v=0 new pc"})
		if err != nil {
			t.Fatalf("new offer on B: %v", err)
		}
		synctest.Wait()
		got, _ = r.a.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{Peer: sessionmgr.PeerConnected}})
		if got.State != sessionmgr.StateRecovering {
			t.Errorf("after a connected report (through A): %s, want RECOVERING until video flows", got.State)
		}
		got, _ = r.a.Send(t.Context(), s.ID, sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: 2, Packets: 30}})
		if got.State != sessionmgr.StateConnected || got.Owner != "replica-b" {
			t.Errorf("after video on the new peer connection (reported through A): %s owned by %s, want CONNECTED on replica-b", got.State, got.Owner)
		}
		ev := kinds(t, r.b, s.ID, got.LastSeq)
		var owner, renegotiate bool
		for _, k := range ev {
			owner = owner || k == sessionmgr.EventOwnerChanged
			renegotiate = renegotiate || k == sessionmgr.EventRenegotiate
		}
		if !owner || !renegotiate {
			t.Errorf("timeline %v lacks OWNER_CHANGED or RENEGOTIATE", ev)
		}
	})
}

func TestClusterDeadOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "bo"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		r.c.kill("replica-a")
		time.Sleep(10 * time.Second) // fake time: A's heartbeat goes stale
		synctest.Wait()
		// A state report before join is accepted; what matters is who runs it.
		if _, err := r.b.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICENew}}); err != nil {
			t.Fatalf("Send on B with A dead: %v", err)
		}
		s2, err := r.b.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s2.Owner != "replica-b" {
			t.Errorf("owner after the old owner died = %s, want replica-b", s2.Owner)
		}
	})
}

func TestClusterDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "cy"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.a.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		drained := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			r.a.Drain(ctx)
			close(drained)
		}()
		synctest.Wait()
		if _, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "late"}); err == nil {
			t.Error("Create on a draining replica succeeded, want ErrShuttingDown")
		}
		var goingAway bool
		_ = r.b.Watch(t.Context(), s.ID, 0, func(e sessionmgr.Event) error {
			if e.Type == sessionmgr.EventGoingAway {
				goingAway = true
				return io.EOF
			}
			return nil
		})
		if !goingAway {
			t.Fatal("no GOING_AWAY on the timeline after Drain")
		}
		// The app follows the going-away to B.
		if _, err := r.b.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		<-drained
		if d := time.Since(start); d > time.Second {
			t.Errorf("drain took %v after the takeover, want it to end as soon as its last session moved", d)
		}
		got, _ := r.b.Get(t.Context(), s.ID)
		if got.Owner != "replica-b" || got.Terminal() {
			t.Errorf("after drain: %s owned by %s, want live on replica-b", got.State, got.Owner)
		}
	})
}

func TestClusterSweepAdoptsOrphans(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "orphan"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.a.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		r.c.kill("replica-a") // A stops heartbeating; its actor is frozen in time
		time.Sleep(15 * time.Second)
		synctest.Wait()
		got, err := r.b.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-b" || got.Terminal() {
			t.Fatalf("after A died: %s owned by %s, want live, adopted by replica-b", got.State, got.Owner)
		}
		// Nobody comes back: CLIENT_GONE after the resume grace, slot freed.
		time.Sleep(sessionmgr.DefaultOptions().ResumeGrace + time.Second)
		synctest.Wait()
		got, _ = r.b.Get(t.Context(), s.ID)
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseClientGone {
			t.Errorf("orphan after the grace: %s/%s, want CLOSED/CLIENT_GONE", got.State, got.Close)
		}
	})
}

// TestClusterForwardedStreamFollowsTakeover: an app's stream on B whose
// session A owns (B forwarded the join) outlives A. B's sweep adopts the
// session and joins the stream again, so the new actor counts it: the
// session stays live past the resume grace while the stream is open, and
// ends CLIENT_GONE a grace after the stream's Detach, which reaches the
// new owner.
func TestClusterForwardedStreamFollowsTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "forwarded"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // A serves forwarded requests
		_, att, err := r.b.Join(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if got, _ := r.b.Get(t.Context(), s.ID); got.Owner != "replica-a" {
			t.Fatalf("before A died the session is owned by %s, want replica-a (B's join forwarded)", got.Owner)
		}
		r.c.kill("replica-a")
		time.Sleep(15*time.Second + sessionmgr.DefaultOptions().ResumeGrace)
		synctest.Wait()
		got, err := r.b.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-b" || got.Terminal() {
			t.Fatalf("a grace after A died, with B's stream open: %s/%s owned by %s, want live, owned by replica-b", got.State, got.Close, got.Owner)
		}
		att.Detach(t.Context())
		time.Sleep(sessionmgr.DefaultOptions().ResumeGrace + time.Second)
		synctest.Wait()
		got, _ = r.b.Get(t.Context(), s.ID)
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseClientGone {
			t.Errorf("a grace after the stream's Detach: %s/%s, want CLOSED/CLIENT_GONE", got.State, got.Close)
		}
	})
}

func TestClusterOutageStealsNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		time.Sleep(10 * time.Second) // both replicas healthy for a while
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "dee"})
		if err != nil {
			t.Fatal(err)
		}
		// t=10..18: the store is out, longer than ReplicaTTL, so every
		// heartbeat lapses. A's heartbeats resume 3s late (its first call
		// after the outage is slow); B's sweep at t=20 falls in that gap.
		r.c.setDown(true)
		r.c.setSilent("replica-a", true)
		time.Sleep(8 * time.Second)
		r.c.setDown(false)
		time.Sleep(3 * time.Second)
		r.c.setSilent("replica-a", false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		got, err := r.b.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-a" || got.Epoch != 1 {
			t.Errorf("after a store outage the session is owned by %s (epoch %d), want replica-a untouched", got.Owner, got.Epoch)
		}
	})
}
