package sessionmgr_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// timedCamera is a fakeCamera that notes when each signaling connection
// was dialled.
type timedCamera struct {
	*fakeCamera
	mu sync.Mutex
	at []time.Time
}

func (c *timedCamera) Dial(ctx context.Context, ch sessionmgr.Channel, clientID string) (sessionmgr.SignalingConn, error) {
	c.mu.Lock()
	c.at = append(c.at, time.Now())
	c.mu.Unlock()
	return c.fakeCamera.Dial(ctx, ch, clientID)
}

func (c *timedCamera) dialTimes() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.at...)
}

// A single replica (no WithCluster) paces a channel's signaling connects
// with its own limiter: DialsPerSecond apart.
func TestSingleReplicaPacesLocally(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := &timedCamera{fakeCamera: &fakeCamera{}}
		cfg := sessionmgr.DefaultConfig()
		cfg.DialsPerSecond = 2
		m := sessionmgr.New(cfg, memstore.New(), cam, &fakeIDs{}, quietLogger())
		defer func() { _ = m.Close(context.Background()) }()
		for _, v := range []string{"ann", "bob", "cy"} {
			s, err := m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: v})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Attach(t.Context(), s.ID); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		at := cam.dialTimes()
		if len(at) != 3 {
			t.Fatalf("%d dials, want 3", len(at))
		}
		for i := 1; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap < 500*time.Millisecond {
				t.Errorf("dial %d came %v after the one before, want at least 500ms (2 per second on this replica)", i+1, gap)
			}
		}
	})
}

// A single replica drains at once (it has nowhere to send apps: no
// GOING_AWAY, joins still served), reads no owner fields before serving a
// request, and Close ends its sessions SERVER_SHUTDOWN.
func TestSingleReplicaDrainAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &countingStore{Store: memstore.New()}
		ids := &fakeIDs{}
		cfg := sessionmgr.DefaultConfig()
		cfg.DialsPerSecond = 1000
		m := sessionmgr.New(cfg, store, &fakeCamera{answerFrom: 1}, ids, quietLogger())
		s, err := m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		store.owners.Store(0)
		if _, err := m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: offer}); err != nil {
			t.Fatalf("Send(offer): %v", err)
		}
		synctest.Wait()
		if n := store.owners.Load(); n != 0 {
			t.Errorf("a join and an offer read the owner fields %d times, want 0 (nobody else can take the session)", n)
		}

		m.Drain(t.Context()) // no deadline: it must not wait for the session
		if _, err := m.Attach(t.Context(), s.ID); err != nil {
			t.Errorf("Attach while draining: %v, want it served here", err)
		}
		synctest.Wait()
		evs, err := store.Events(t.Context(), s.ID, 0, 256, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Type == sessionmgr.EventGoingAway {
				t.Errorf("GOING_AWAY (seq %d) on a single replica's drain, want none", e.Seq)
			}
		}

		if err := m.Close(t.Context()); err != nil {
			t.Fatalf("Close: %v", err)
		}
		got, err := store.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseServerShutdown {
			t.Errorf("after Close: %s %s, want CLOSED SERVER_SHUTDOWN", got.State, got.Close)
		}
		if n := ids.liveIDs(); n != 0 {
			t.Errorf("%d clientIds still leased after Close, want 0", n)
		}
	})
}

// A single replica never forwards nor takes over: a live session that no
// actor here runs (another Manager without a Cluster runs it on the same
// store) is UNAVAILABLE, and its record stays where it is.
func TestSingleReplicaNeverTakesOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		cfg := sessionmgr.DefaultConfig()
		cfg.DialsPerSecond = 1000
		ids := &fakeIDs{}
		a := sessionmgr.New(cfg, store, &fakeCamera{answerFrom: 1}, ids, quietLogger())
		b := sessionmgr.New(cfg, store, &fakeCamera{answerFrom: 1}, ids, quietLogger())
		defer func() {
			_ = b.Close(context.Background())
			_ = a.Close(context.Background())
		}()
		s, err := a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Attach(t.Context(), s.ID); !errors.Is(err, sessionmgr.ErrUnavailable) {
			t.Errorf("Attach on the other Manager: %v, want ErrUnavailable", err)
		}
		if _, err := b.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: offer}); !errors.Is(err, sessionmgr.ErrUnavailable) {
			t.Errorf("Send on the other Manager: %v, want ErrUnavailable", err)
		}
		synctest.Wait()
		got, err := store.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != s.Owner || got.Epoch != s.Epoch || got.Terminal() {
			t.Errorf("after the other Manager's requests: %s owned by %q epoch %d, want live, %q epoch %d", got.State, got.Owner, got.Epoch, s.Owner, s.Epoch)
		}
	})
}
