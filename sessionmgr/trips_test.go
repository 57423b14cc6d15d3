package sessionmgr_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisreplicas"
)

// waitFor follows a session's timeline on reader (a store of its own, so
// that following costs the counted client nothing) until an event with
// state want.
func waitFor(t *testing.T, reader sessionmgr.Store, id sessionmgr.SessionID, after *uint64, want sessionmgr.State) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for {
		evs, err := reader.Events(ctx, id, *after, 0, true)
		if err != nil {
			t.Fatalf("waiting for %s after seq %d: %v", want, *after, err)
		}
		for _, e := range evs {
			*after = e.Seq
			if e.State == want {
				return
			}
		}
	}
}

// TestCreateRoundTrips pins the Redis round trips of a session on a single
// Redis server (issue 14, Build 2): CreateSession takes 1 when the store
// takes the clientId's lease in its script (WithOneTripCreate, as the
// server assembles a standalone Redis), else 2 (the lease; the record with
// its first events and the channel's slot, in one script); a returning
// viewer's (its first choice of clientId taken) 3; a whole session
// (create, join, offer and answer, CONNECTED, close) at most 15.
// Background loops are slowed so that the count is the session's own.
func TestCreateRoundTrips(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  []sessionmgr.Option
		trips int64
		// returning is a viewer's create while its clientId is taken
		// (live, or cooling down): the allocator's other candidates
		// (one script), then the record. The one-trip create learns it
		// from its refused write, and goes straight to the script.
		returning int64
	}{
		{"one trip", []sessionmgr.Option{sessionmgr.WithOneTripCreate()}, 1, 3},
		{"two trips", nil, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) { testCreateRoundTrips(t, tc.trips, tc.returning, tc.opts...) })
	}
}

func testCreateRoundTrips(t *testing.T, want, wantReturning int64, opts ...sessionmgr.Option) {
	run := rand.Text()
	url := redistest.URL(t)
	rdb, st, trips := countedRedis(t, url)
	reader, _ := redisStore(t, url)

	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.OwnerCheck, cfg.SweepEvery, cfg.LeaseRenew = time.Hour, time.Hour, time.Hour
	ids := bind.NewClientIDs(clientid.NewRedis(rdb, clientid.DefaultConfig()))
	opts = append(opts, quietLogger())
	m := sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, ids, opts...)
	closed := false
	t.Cleanup(func() {
		if !closed {
			m.Close(context.Background())
		}
	})
	ctx := t.Context()
	create := func(viewer string) (sessionmgr.Session, int64) {
		t.Helper()
		before := trips.n.Load()
		// Channels of this run's own: with REDIS_URL set (make test) the
		// server is shared, and another run's clientIds cool down on it.
		ch := sessionmgr.ChannelRef{Name: "cam-" + run + "-" + viewer}
		s, err := m.Create(ctx, sessionmgr.CreateParams{Channel: ch, ViewerID: viewer})
		if err != nil {
			t.Fatalf("Create(%s) = %v", viewer, err)
		}
		return s, trips.n.Load() - before
	}
	// Loads the scripts (EVALSHA, then EVAL once): the create's, then the
	// allocator's of every candidate (the same viewer again).
	create("warm-up")
	create("warm-up")
	for i := range 5 {
		if _, n := create(fmt.Sprintf("v%d", i)); n != want {
			t.Errorf("CreateSession #%d took %d Redis round trips, want %d", i, n, want)
		}
	}
	// The same viewer on the same channel while its first session lives:
	// its first choice of clientId is taken.
	if s, n := create("v0"); n != wantReturning || s.ClientID == "v0" {
		t.Errorf("a returning viewer's CreateSession took %d Redis round trips with clientId %q, want %d and another than v0", n, s.ClientID, wantReturning)
	}

	// A whole session on a Manager of its own, counted from before its
	// create to after its actor has ended (Manager.Close waits for it).
	closed = true
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m = sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, ids, opts...)
	before := trips.n.Load()
	phases := []string{}
	mark := func(what string) {
		phases = append(phases, fmt.Sprintf("%s %d", what, trips.n.Load()-before))
	}
	s, _ := create("whole")
	mark("create")
	var seen uint64
	if _, err := m.Attach(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reader, s.ID, &seen, sessionmgr.StateAwaitingOffer)
	mark("join")
	if _, err := m.Send(ctx, s.ID, sessionmgr.AppMessage{AppSeq: 1, Offer: offer}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reader, s.ID, &seen, sessionmgr.StateConnecting)
	mark("answer")
	if _, err := m.Send(ctx, s.ID, sessionmgr.AppMessage{AppSeq: 2, StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICEConnected, Peer: sessionmgr.PeerConnected}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reader, s.ID, &seen, sessionmgr.StateConnected)
	mark("connected")
	if _, err := m.CloseSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reader, s.ID, &seen, sessionmgr.StateClosed)
	mark("closed")
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	mark("ended")
	n := trips.n.Load() - before
	t.Logf("a whole session: %d Redis round trips, cumulative: %v", n, phases)
	if n > 15 {
		t.Errorf("a whole session took %d Redis round trips, want at most 15 (cumulative: %v)", n, phases)
	}
}

// A create refused after its clientId was leased (the channel is full)
// gives the id back at once: KVS never saw it, so it needs no cooldown,
// and the viewer's next create gets the same id, not base-2.
func TestRefusedCreateReturnsItsClientID(t *testing.T) {
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.MaxPerChannel = 1
	ids := bind.NewClientIDs(clientid.NewMemory(clientid.DefaultConfig()))
	m := sessionmgr.New(cfg, memstore.New(), &fakeCamera{answerFrom: 1}, ids, quietLogger())
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := t.Context()
	cam := sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "full"}, ViewerID: "first"}
	first, err := m.Create(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	cam.ViewerID = "second"
	for range 3 {
		if _, err := m.Create(ctx, cam); !errors.Is(err, sessionmgr.ErrChannelFull) {
			t.Fatalf("Create on the full channel = %v, want ErrChannelFull", err)
		}
	}
	if _, err := m.CloseSession(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	// The slot is freed when the closed session's record is written, and
	// its CLOSED event with it.
	errClosed := errors.New("closed")
	if err := m.Watch(ctx, first.ID, 0, func(e sessionmgr.Event) error {
		if e.State == sessionmgr.StateClosed {
			return errClosed
		}
		return nil
	}); !errors.Is(err, errClosed) {
		t.Fatalf("Watch until CLOSED = %v", err)
	}
	s, err := m.Create(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientID != "second" {
		t.Errorf("clientId after 3 refused creates = %q, want %q (the refused leases were given back)", s.ClientID, "second")
	}
}

// The one-trip create on Redis takes the clientId's lease in the record's
// script, and only then: a viewer whose id is busy still gets the next
// candidate (the allocator's other candidates), a create refused for a full channel
// takes no lease at all (the key is never written), and the lease it took
// is the allocator's like any other (the id is busy for the next viewer,
// and CloseSession releases it into its cooldown).
func TestOneTripCreateTakesTheLease(t *testing.T) {
	rdb, st, _ := countedRedis(t, redistest.URL(t))
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.MaxPerChannel = 2
	idcfg := clientid.DefaultConfig()
	idcfg.KeyPrefix = "onetrip-" + rand.Text() // a shared server (REDIS_URL) keeps earlier runs' keys
	alloc := clientid.NewRedis(rdb, idcfg)
	m := sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, bind.NewClientIDs(alloc), sessionmgr.WithOneTripCreate(), quietLogger())
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := t.Context()
	ref := sessionmgr.ChannelRef{Name: "one-trip-" + rand.Text()}

	a, err := m.Create(ctx, sessionmgr.CreateParams{Channel: ref, ViewerID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Create(ctx, sessionmgr.CreateParams{Channel: ref, ViewerID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ClientID != "v" || b.ClientID != "v-2" {
		t.Fatalf("the same viewer twice got clientIds %q and %q, want v and v-2", a.ClientID, b.ClientID)
	}
	key := func(id string) string { return idcfg.KeyPrefix + ":cid:{" + a.Channel.ARN + "}:" + id }
	for _, id := range []string{"v", "v-2"} {
		if ttl := rdb.PTTL(ctx, key(id)).Val(); ttl <= idcfg.DefaultCooldown {
			t.Errorf("the lease of %s lives %v, want more than the cooldown (%v): a live lease", id, ttl, idcfg.DefaultCooldown)
		}
	}
	if _, err := m.Create(ctx, sessionmgr.CreateParams{Channel: ref, ViewerID: "w"}); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("a third create on a channel of 2 = %v, want ErrChannelFull", err)
	}
	if n := rdb.Exists(ctx, key("w")).Val(); n != 0 {
		t.Errorf("the refused create left its clientId's key %s", key("w"))
	}
	if _, err := m.CloseSession(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, st, a.ID, new(uint64), sessionmgr.StateClosed)
	deadline := time.Now().Add(10 * time.Second)
	for rdb.PTTL(ctx, key("v")).Val() > idcfg.DefaultCooldown {
		if time.Now().After(deadline) {
			t.Fatalf("the closed session's clientId v was not released into its cooldown (PTTL %v)", rdb.PTTL(ctx, key("v")).Val())
		}
		select { // poll: the actor releases the lease as it ends, after CLOSED
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	c, err := m.Create(ctx, sessionmgr.CreateParams{Channel: ref, ViewerID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ClientID != "v-3" {
		t.Errorf("the viewer's third create got %q while v cools down and v-2 is live, want v-3", c.ClientID)
	}
}

// A replica of a cluster reads a session's owner fields before serving a
// request only when another replica could have taken the session over:
// with its heartbeat fresh and no lapse unchecked, a state report reads
// nothing; after a lapse (others may have taken it for dead) each report
// reads the owner fields first, until the ownership watch has checked
// every session.
func TestOwnerReadOnlyWhenChallenged(t *testing.T) {
	url := redistest.URL(t)
	rdb, st, trips := countedRedis(t, url)
	reader, _ := redisStore(t, url)
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.OwnerCheck, cfg.SweepEvery, cfg.LeaseRenew = time.Hour, time.Hour, time.Hour // one heartbeat, at start
	ids := bind.NewClientIDs(clientid.NewRedis(rdb, clientid.DefaultConfig()))
	m := sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, ids, sessionmgr.WithCluster(redisreplicas.New(rdb)), sessionmgr.WithOneTripCreate(), quietLogger())
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := t.Context()
	s, err := m.Create(ctx, sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "challenged-" + rand.Text()}, ViewerID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	var seen uint64
	if _, err := m.Attach(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	waitFor(t, reader, s.ID, &seen, sessionmgr.StateAwaitingOffer)
	reads := func(what string) int64 {
		t.Helper()
		before := trips.hmgets.Load()
		for range 3 {
			if _, err := m.Send(ctx, s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{ICE: sessionmgr.ICEChecking, Peer: sessionmgr.PeerConnecting}}); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		return trips.hmgets.Load() - before
	}
	quiet := reads("unchallenged")
	sessionmgr.LapseHeartbeat(m)
	challenged := reads("after a lapse")
	t.Logf("owner reads for 3 state reports: %d unchallenged, %d after a heartbeat lapse", quiet, challenged)
	if quiet != 0 || challenged != 3 {
		t.Errorf("3 state reports read the owner fields %d times unchallenged and %d times after a heartbeat lapse; want 0 and 3", quiet, challenged)
	}
}

// A stream's detach that reaches its actor after the actor ended (the
// stream closes on the CLOSED event while the actor finishes) reads
// nothing: its caller wants no session.
func TestDetachFromEndedActorReadsNothing(t *testing.T) {
	url := redistest.URL(t)
	st, trips := redisStore(t, url)
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	m := sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, &fakeIDs{}, quietLogger())
	t.Cleanup(func() { m.Close(context.Background()) })
	ctx := t.Context()
	s, err := m.Create(ctx, sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "ended-" + rand.Text()}, ViewerID: "v"})
	if err != nil {
		t.Fatal(err)
	}
	held := sessionmgr.HoldActor(m, s.ID)
	if held == nil {
		t.Fatal("no actor runs the new session")
	}
	if _, err := m.CloseSession(ctx, s.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held.Ended():
	case <-ctx.Done():
		t.Fatal("the closed session's actor never ended")
	}
	before := trips.n.Load()
	if err := held.Detach(ctx); err != nil {
		t.Errorf("detach from the ended actor = %v, want nil", err)
	}
	if n := trips.n.Load() - before; n != 0 {
		t.Errorf("detach from the ended actor took %d Redis round trips, want 0", n)
	}
}
