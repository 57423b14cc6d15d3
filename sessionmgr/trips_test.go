package sessionmgr_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisstore"
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
// Redis server (issue 14, Build 2): CreateSession takes 2 (the clientId's
// lease; the record with its first events and the channel's slot, in one
// script), and a whole session (create, join, offer and answer, CONNECTED,
// close) at most 15. Background loops are slowed so that the count is the
// session's own.
func TestCreateRoundTrips(t *testing.T) {
	url := redistest.URL(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	trips := &roundTrips{}
	rdb.AddHook(trips)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	reader, _ := redisStore(t, url)

	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	cfg.TokenSecret = []byte("round trips")
	cfg.OwnerCheck, cfg.SweepEvery, cfg.LeaseRenew = time.Hour, time.Hour, time.Hour
	ids := bind.NewClientIDs(clientid.NewRedis(rdb, clientid.DefaultConfig()))
	m := sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, ids, quietLogger())
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
		s, _, err := m.Create(ctx, sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam-" + viewer}, ViewerID: viewer})
		if err != nil {
			t.Fatalf("Create(%s) = %v", viewer, err)
		}
		return s, trips.n.Load() - before
	}
	create("warm-up") // loads the scripts (EVALSHA, then EVAL once)
	for i := range 5 {
		if _, n := create(fmt.Sprintf("v%d", i)); n != 2 {
			t.Errorf("CreateSession #%d took %d Redis round trips, want 2", i, n)
		}
	}

	// A whole session on a Manager of its own, counted from before its
	// create to after its actor has ended (Manager.Close waits for it).
	closed = true
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m = sessionmgr.New(cfg, st, &fakeCamera{answerFrom: 1}, ids, quietLogger())
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
	first, _, err := m.Create(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	cam.ViewerID = "second"
	for range 3 {
		if _, _, err := m.Create(ctx, cam); !errors.Is(err, sessionmgr.ErrChannelFull) {
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
	s, _, err := m.Create(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	if s.ClientID != "second" {
		t.Errorf("clientId after 3 refused creates = %q, want %q (the refused leases were given back)", s.ClientID, "second")
	}
}
