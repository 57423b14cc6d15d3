package redisstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
)

// trips counts round trips: each command, and each pipeline once.
type trips struct{ n atomic.Int64 }

func (c *trips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *trips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *trips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// A group answers every call with its own script's reply; concurrent calls
// share round trips (group commit) with at most groupInFlight in flight; a
// lone call is one round trip; and a server that lost its scripts
// (SCRIPT FLUSH) gets them again without failing a call.
func TestGroupSharesRoundTrips(t *testing.T) {
	opts, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	count := &trips{}
	rdb.AddHook(count)
	ctx := t.Context()
	incr := redis.NewScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`)
	g := newGroup(rdb, 5*time.Second, groupInFlight)

	key := "group-test:" + time.Now().Format(time.RFC3339Nano)
	if n, err := g.run(ctx, incr, []string{key}, 1).Int(); err != nil || n != 1 {
		t.Fatalf("a lone call (loads the script) = %d, %v; want 1", n, err)
	}
	before := count.n.Load()
	if n, err := g.run(ctx, incr, []string{key}, 1).Int(); err != nil || n != 2 {
		t.Fatalf("a lone call = %d, %v; want 2", n, err)
	}
	if n := count.n.Load() - before; n != 1 {
		t.Errorf("a lone call took %d round trips, want 1", n)
	}

	for round, flush := range []bool{false, true} {
		if flush {
			if err := rdb.ScriptFlush(ctx).Err(); err != nil {
				t.Fatal(err)
			}
		}
		const calls = 200
		before := count.n.Load()
		var wg sync.WaitGroup
		got := make([]int, calls)
		errs := make([]error, calls)
		for i := range calls {
			wg.Go(func() {
				k := fmt.Sprintf("%s:%d:%d", key, round, i)
				got[i], errs[i] = g.run(ctx, incr, []string{k}, i+1).Int()
			})
		}
		wg.Wait()
		for i := range calls {
			if errs[i] != nil || got[i] != i+1 {
				t.Fatalf("round %d: call %d = %d, %v; want its own reply %d", round, i, got[i], errs[i], i+1)
			}
		}
		n := count.n.Load() - before
		t.Logf("round %d (script flushed: %v): %d concurrent calls took %d round trips", round, flush, calls, n)
		if n >= calls {
			t.Errorf("round %d: %d concurrent calls took %d round trips: none shared", round, calls, n)
		}
	}
}
