package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

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

// TestCreateOneRoundTrip pins Create on a single server to one round trip
// (issue 14, Build 2): a first create, one with a request id, its
// idempotent repeat, and a create on a full channel each send one script
// and nothing else. The script is loaded by a create before counting
// (go-redis sends EVALSHA, then EVAL once when the server lacks it).
func TestCreateOneRoundTrip(t *testing.T) {
	t.Parallel()
	rdb := newClient(t, redistest.URL(t))
	trips := &tripCounter{}
	rdb.AddHook(trips)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
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
