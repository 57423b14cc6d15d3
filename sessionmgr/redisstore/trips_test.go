package redisstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// tripCounter counts the round trips a client makes: each command and
// each pipeline (a MULTI block too) is one.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countedStore returns a client of a test Redis whose round trips are
// counted, and a store on it, closed when the test ends.
func countedStore(t *testing.T) (*redis.Client, *redisstore.Store, *tripCounter) {
	t.Helper()
	rdb := newClient(t, redistest.URL(t))
	trips := &tripCounter{}
	rdb.AddHook(trips)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	return rdb, st, trips
}

// TestCreateOneRoundTrip pins Create on a single server to one round trip
// (issue 14, Build 2): a first create, one with a request id, its
// idempotent repeat, and a create on a full channel each send one script
// and nothing else. The script is loaded by a create before counting
// (go-redis sends EVALSHA, then EVAL once when the server lacks it).
func TestCreateOneRoundTrip(t *testing.T) {
	t.Parallel()
	_, st, trips := countedStore(t)
	ctx := t.Context()
	if _, err := st.Create(ctx, newSession(newChannel()), 10); err != nil {
		t.Fatalf("Create (loads the script) = %v", err)
	}
	count := func(what string, s sessionmgr.Session, limit int, wantErr error) {
		t.Helper()
		before := trips.n.Load()
		if _, err := st.Create(ctx, s, limit); !errors.Is(err, wantErr) {
			t.Fatalf("%s: Create = %v, want %v", what, err, wantErr)
		}
		if n := trips.n.Load() - before; n != 1 {
			t.Errorf("%s: Create took %d round trips, want 1", what, n)
		}
	}
	ch := newChannel()
	for i := range 32 { // one in 16 also sweeps the listings
		count(fmt.Sprintf("plain #%d", i), newSession(ch), 100, nil)
		s := newSession(ch)
		s.Caller, s.RequestID = "key-1", "req-"+string(newID())
		count(fmt.Sprintf("with a request id #%d", i), s, 100, nil)
		repeat := newSession(ch)
		repeat.Caller, repeat.RequestID = s.Caller, s.RequestID
		count(fmt.Sprintf("its idempotent repeat #%d", i), repeat, 100, sessionmgr.ErrAlreadyExists)
	}
	full := newChannel()
	count("first on a channel", newSession(full), 1, nil)
	count("on the full channel", newSession(full), 1, sessionmgr.ErrChannelFull)
}

// TestCreateOneRoundTripCluster pins Create on a Redis Cluster to one
// pipelined round trip (each node gets its part at once), two with a
// request id (its key is claimed after), now and then a few more for the
// listing's sampled sweep and prune; a refusal (a repeat, a full channel)
// may take more to undo what went through.
func TestCreateOneRoundTripCluster(t *testing.T) {
	rdb := startCluster(t)
	trips := &tripCounter{}
	rdb.AddHook(trips)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	ctx := t.Context()
	if st.TakesLeases() {
		t.Error("a store on a Cluster says it takes leases (a script cannot reach the lease's slot)")
	}
	if _, err := st.Create(ctx, newSession(newChannel()), 10); err != nil {
		t.Fatalf("Create (loads the scripts) = %v", err)
	}
	ch := newChannel()
	ones := 0
	const creates = 64
	for i := range creates {
		before := trips.n.Load()
		s := newSession(ch)
		want := int64(1)
		if i%2 == 1 {
			s.Caller, s.RequestID = "key-1", "req-"+string(newID())
			want = 2 // and the request's key
		}
		if _, err := st.Create(ctx, s, 1000); err != nil {
			t.Fatalf("Create #%d = %v", i, err)
		}
		switch n := trips.n.Load() - before; {
		case n == want:
			ones++
		case n > want+6: // the sweep and the prune, when sampled: up to 3 each
			t.Errorf("Create #%d took %d round trips, want %d (at most %d when it sweeps and prunes)", i, n, want, want+6)
		}
	}
	// Sweeps and prunes run on about 1 in 16 creates each.
	if ones < creates*3/4 {
		t.Errorf("%d of %d creates in one round trip, want most", ones, creates)
	}
}

// CreateTaking takes the prepared lease in Create's one round trip: it
// sets the lease's key to its token, refuses with ErrLeaseTaken when the
// key holds another's token (writing nothing: no record, no slot), and a
// full channel refuses before the lease is taken.
func TestCreateTakingTakesTheLease(t *testing.T) {
	t.Parallel()
	rdb, st, trips := countedStore(t)
	ctx := t.Context()
	if !st.TakesLeases() {
		t.Fatal("a store on one server does not take leases")
	}
	ch := newChannel()
	run := "test:lease:" + rand.Text() + ":" // a shared server (REDIS_URL) keeps earlier runs' keys
	pl := func(key string) sessionmgr.PreparedLease {
		return sessionmgr.PreparedLease{Lease: sessionmgr.Lease{ClientID: "v", Channel: ch.ARN, Token: "tok-" + key}, Key: run + key, TTL: time.Minute}
	}
	if _, err := st.CreateTaking(ctx, newSession(ch), 2, pl("a")); err != nil {
		t.Fatalf("CreateTaking (loads the script) = %v", err)
	}
	before := trips.n.Load()
	s := newSession(ch)
	if _, err := st.CreateTaking(ctx, s, 2, pl("b")); err != nil {
		t.Fatalf("CreateTaking = %v", err)
	}
	if n := trips.n.Load() - before; n != 1 {
		t.Errorf("CreateTaking took %d round trips, want 1", n)
	}
	if v, ttl := rdb.Get(ctx, run+"b").Val(), rdb.PTTL(ctx, run+"b").Val(); v != "tok-b" || ttl <= 0 || ttl > time.Minute {
		t.Errorf("the lease's key holds %q for %v, want the token for at most a minute", v, ttl)
	}

	other := newSession(newChannel())
	busy := pl("b")
	busy.Lease.Token = "someone-else"
	if _, err := st.CreateTaking(ctx, other, 2, busy); !errors.Is(err, sessionmgr.ErrLeaseTaken) {
		t.Fatalf("CreateTaking with a lease another holds = %v, want ErrLeaseTaken", err)
	}
	if _, err := st.Get(ctx, other.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("the refused CreateTaking wrote the session: Get = %v", err)
	}
	if _, err := st.CreateTaking(ctx, newSession(ch), 2, pl("c")); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Fatalf("CreateTaking on a full channel = %v, want ErrChannelFull", err)
	}
	if n := rdb.Exists(ctx, run+"c").Val(); n != 0 {
		t.Error("the create refused for a full channel took its lease")
	}
	// A retry of the same lease (its reply lost) is no refusal.
	again := newSession(newChannel())
	if _, err := st.CreateTaking(ctx, again, 2, pl("b")); err != nil {
		t.Errorf("CreateTaking with a lease already holding its token = %v, want nil", err)
	}
}
