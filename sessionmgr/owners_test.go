package sessionmgr_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// countingStore counts the reads a Manager makes of its Store.
type countingStore struct {
	sessionmgr.Store
	gets, owners, moved atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *countingStore) Owners(ctx context.Context, ids []sessionmgr.SessionID) ([]sessionmgr.Ownership, error) {
	c.owners.Add(1)
	return c.Store.Owners(ctx, ids)
}

func (c *countingStore) Moved(ctx context.Context, replica string) ([]sessionmgr.SessionID, error) {
	c.moved.Add(1)
	return c.Store.Moved(ctx, replica)
}

func quietLogger() sessionmgr.Option {
	return sessionmgr.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// newReplica starts a Manager that is one replica of c on store.
func newReplica(t *testing.T, id string, cfg sessionmgr.Config, store sessionmgr.Store, c sessionmgr.Cluster, ids *fakeIDs) *sessionmgr.Manager {
	t.Helper()
	cfg.DialsPerSecond = 1000
	cfg.ReplicaID = id
	m := sessionmgr.New(cfg, store, &fakeCamera{answerFrom: 1}, ids, sessionmgr.WithCluster(c), quietLogger())
	t.Cleanup(func() {
		if err := m.Close(context.Background()); err != nil {
			t.Errorf("Close %s: %v", id, err)
		}
	})
	return m
}

// A takeover elsewhere fences the old owner's actor within one owner
// check, through the replica's moved sessions: the replica reads nothing
// per session (no Get), one Moved per interval, and the owner fields of
// the one session named.
func TestTakeoverFencesWithinAnInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &countingStore{Store: memstore.New()}
		ids := &fakeIDs{}
		c := newFakeCluster()
		_ = c.Heartbeat(t.Context(), "replica-b", time.Hour) // B lives
		cfg := sessionmgr.DefaultConfig()
		a := newReplica(t, "replica-a", cfg, store, c, ids)
		var sessions []sessionmgr.Session
		for i := range 20 {
			s, err := a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: fmt.Sprintf("cam-%d", i)}, ViewerID: "v"})
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		synctest.Wait()
		store.gets.Store(0)

		// Another replica takes one session over (its store step).
		if _, err := store.Takeover(t.Context(), sessions[0].ID, "replica-b", sessions[0].Epoch); err != nil {
			t.Fatal(err)
		}
		if n := ids.liveIDs(); n != 20 {
			t.Fatalf("%d clientIds leased before the check, want 20", n)
		}
		time.Sleep(cfg.OwnerCheck) // fake time: one owner check
		synctest.Wait()
		if n := ids.liveIDs(); n != 19 {
			t.Errorf("%d clientIds leased one owner check after the takeover, want 19 (the fenced actor let go)", n)
		}
		if n := store.gets.Load(); n != 0 {
			t.Errorf("the owner check read %d records, want 0", n)
		}
		if m, o := store.moved.Load(), store.owners.Load(); m != 1 || o != 1 {
			t.Errorf("one owner check made %d Moved and %d Owners calls, want 1 and 1", m, o)
		}

		// Nine more intervals, nothing moved: one Moved each, nothing else.
		time.Sleep(9 * cfg.OwnerCheck)
		synctest.Wait()
		if m, o, g := store.moved.Load(), store.owners.Load(), store.gets.Load(); m != 10 || o != 1 || g != 0 {
			t.Errorf("ten owner checks: %d Moved, %d Owners, %d Get calls, want 10, 1, 0", m, o, g)
		}
		got, err := a.Get(t.Context(), sessions[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-b" || got.Terminal() {
			t.Errorf("after the fence: %s owned by %s, want live on replica-b (the fenced actor wrote nothing)", got.State, got.Owner)
		}
	})
}

// A replica whose own heartbeat lapsed checks every session it runs once
// (one Owners call), since the others may have taken them over as a dead
// replica's.
func TestLapsedHeartbeatChecksEverySession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &countingStore{Store: memstore.New()}
		ids := &fakeIDs{}
		c := newFakeCluster()
		_ = c.Heartbeat(t.Context(), "replica-b", time.Hour) // B lives
		cfg := sessionmgr.DefaultConfig()
		a := newReplica(t, "replica-a", cfg, store, c, ids)
		var sessions []sessionmgr.Session
		for i := range 3 {
			s, err := a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: fmt.Sprintf("cam-%d", i)}, ViewerID: "v"})
			if err != nil {
				t.Fatal(err)
			}
			sessions = append(sessions, s)
		}
		synctest.Wait()
		c.setDown(true) // A's heartbeats fail for longer than its TTL
		// Meanwhile B took a session over, and its note to A is lost (a
		// store that lost it, or a B of an older build).
		if _, err := store.Takeover(t.Context(), sessions[1].ID, "replica-b", 1); err != nil {
			t.Fatal(err)
		}
		if err := store.Forget(t.Context(), "replica-a", []sessionmgr.SessionID{sessions[1].ID}, nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(cfg.ReplicaTTL + time.Second)
		synctest.Wait()
		if n := ids.liveIDs(); n != 3 {
			t.Fatalf("%d clientIds leased while the store is out, want 3", n)
		}
		c.setDown(false)
		time.Sleep(2 * cfg.OwnerCheck)
		synctest.Wait()
		if n := ids.liveIDs(); n != 2 {
			t.Errorf("%d clientIds leased after the heartbeat came back, want 2 (the taken session fenced)", n)
		}
	})
}

// roundTrips counts a client's round trips (a pipeline is one).
type roundTrips struct {
	n      atomic.Int64
	hmgets atomic.Int64 // HMGETs sent, alone or in a pipeline (owner reads)
}

func (c *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		if cmd.Name() == "hmget" {
			c.hmgets.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		for _, cmd := range cmds {
			if cmd.Name() == "hmget" {
				c.hmgets.Add(1)
			}
		}
		return next(ctx, cmds)
	}
}

func redisStore(t *testing.T, url string) (*redisstore.Store, *roundTrips) {
	t.Helper()
	_, st, trips := countedRedis(t, url)
	return st, trips
}

// countedRedis returns a client of the Redis at url whose round trips are
// counted, and a store on it; both closed when the test ends.
func countedRedis(t *testing.T, url string) (*redis.Client, *redisstore.Store, *roundTrips) {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() }) // after the managers' Close
	trips := &roundTrips{}
	rdb.AddHook(trips)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	return rdb, st, trips
}

// A replica with N live sessions on Redis makes O(1) store round trips per
// owner check and sweep, not O(N): with 300 idle sessions, a check and a
// sweep every 100 ms, at most 4 round trips per interval (the moved set,
// the replicas; the old per-session check made 300).
func TestOwnerCheckRoundTripsDoNotGrowWithSessions(t *testing.T) {
	const sessions = 300
	st, trips := redisStore(t, redistest.URL(t))
	cfg := sessionmgr.DefaultConfig()
	cfg.OwnerCheck, cfg.SweepEvery = 100*time.Millisecond, 100*time.Millisecond
	replica := "replica-" + string(newTestID(t))
	a := newReplica(t, replica, cfg, st, newFakeCluster(), &fakeIDs{})
	for i := range sessions {
		if _, err := a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: fmt.Sprintf("cam-%d", i)}, ViewerID: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	const window = time.Second
	before := trips.n.Load()
	time.Sleep(window) // a measurement window, not a synchronisation
	n := trips.n.Load() - before
	intervals := int64(window / cfg.OwnerCheck)
	t.Logf("%d idle sessions: %d store round trips in %v (%d intervals)", sessions, n, window, intervals)
	if n > 4*intervals {
		t.Errorf("%d idle sessions made %d store round trips in %d owner-check intervals, want at most %d", sessions, n, intervals, 4*intervals)
	}
	owned, err := st.Owned(t.Context(), replica)
	if err != nil || len(owned) != sessions {
		t.Errorf("Owned(%s) = %d sessions, %v; want %d", replica, len(owned), err, sessions)
	}
}

// A sweep costs what the dead replicas owned, not what the store holds:
// its round trips with 1,000 ended sessions (of a dead replica and of this
// one) are those with 10, and it still adopts a dead replica's live one.
func TestSweepCostDoesNotGrowWithEndedSessions(t *testing.T) {
	measure := func(t *testing.T, ended int) int64 {
		st, trips := redisStore(t, redistest.Start(t).URL())
		ctx := t.Context()
		dead := "replica-dead"
		ch := sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/cam/1", Name: "cam"}
		mk := func(owner string) sessionmgr.Session {
			now := time.Now()
			s := sessionmgr.Session{ID: newTestID(t), Channel: ch, State: sessionmgr.StatePending, Owner: owner, Epoch: 1,
				Created: now, Updated: now, Expires: now.Add(time.Hour), Options: sessionmgr.DefaultOptions()}
			if _, err := st.Create(ctx, s, ended+10); err != nil {
				t.Fatal(err)
			}
			return s
		}
		for i := range ended {
			s := mk([]string{dead, "replica-a"}[i%2])
			s.State, s.Close = sessionmgr.StateClosed, sessionmgr.CloseByBackend
			if err := st.Put(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		orphan := mk(dead)

		cfg := sessionmgr.DefaultConfig()
		cfg.SweepEvery, cfg.ReplicaTTL = 100*time.Millisecond, 200*time.Millisecond
		cfg.OwnerCheck = 400 * time.Millisecond
		newReplica(t, "replica-a", cfg, st, newFakeCluster(), &fakeIDs{})
		// The orphan is adopted once this replica trusts its own heartbeat.
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := st.Get(ctx, orphan.ID)
			if err == nil && got.Owner == "replica-a" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the dead replica's live session is owned by %s after 5s, want replica-a (adopted)", got.Owner)
			}
			time.Sleep(20 * time.Millisecond)
		}
		const window = time.Second
		before := trips.n.Load()
		time.Sleep(window) // a measurement window, not a synchronisation
		n := trips.n.Load() - before
		t.Logf("%d ended sessions: %d store round trips in %v", ended, n, window)
		return n
	}
	few, many := measure(t, 10), measure(t, 1000)
	// 10 sweeps and 2-3 owner checks a second, a few round trips each.
	if many > few+5 || many > 40 {
		t.Errorf("a second of sweeps made %d store round trips with 1,000 ended sessions and %d with 10, want the same (and at most 40)", many, few)
	}
}

// newTestID returns a fresh session id (26 base32 characters, as
// sessionmgr makes them).
func newTestID(t *testing.T) sessionmgr.SessionID {
	t.Helper()
	return sessionmgr.SessionID(strings.ToLower(rand.Text()))
}

// The owner detaches the app streams of a replica that died (their detach
// will never come), so the session ends CLIENT_GONE after its resume grace
// instead of waiting for a lifetime.
func TestDeadReplicasStreamsDetached(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "far"})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(sessionmgr.DefaultConfig().ReplicaTTL) // fake time: A trusts its heartbeat
		got, err := r.b.Attach(t.Context(), s.ID)         // forwarded: A holds B's stream
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-a" {
			t.Fatalf("owner after a join on B: %s, want replica-a", got.Owner)
		}
		r.c.kill("replica-b")
		cfg := sessionmgr.DefaultConfig()
		time.Sleep(cfg.ReplicaTTL + 2*cfg.OwnerCheck + sessionmgr.DefaultOptions().ResumeGrace + time.Second)
		synctest.Wait()
		got, err = r.a.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseClientGone {
			t.Errorf("after its app's replica died: %s (%s), want CLOSED (CLIENT_GONE)", got.State, got.Close)
		}
	})
}
