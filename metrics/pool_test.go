package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
)

// TestRedisPoolTimeouts: a call that finds every pooled connection busy
// for the pool timeout counts in vss_redis_pool_timeouts_total (once, as a
// command or as a pipeline) and in vss_redis_errors_total; a call that
// fails otherwise counts only in the latter.
func TestRedisPoolTimeouts(t *testing.T) {
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize, opt.PipelinePoolSize, opt.PoolTimeout = 1, 1, 50*time.Millisecond
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	m := New(prometheus.NewRegistry())
	rdb.AddHook(m.RedisHook())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	busy := make(chan error, 1)
	go func() { busy <- rdb.BLPop(ctx, time.Second, "metrics-test:block:"+time.Now().String()).Err() }()
	deadline := time.Now().Add(5 * time.Second)
	for rdb.PoolStats().IdleConns != 0 || rdb.PoolStats().TotalConns != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the only pooled connection never got busy")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := rdb.Get(ctx, "metrics-test:x").Err(); !errors.Is(err, redis.ErrPoolTimeout) {
		t.Fatalf("GET with the pool busy = %v, want the pool timeout", err)
	}
	if err := <-busy; !errors.Is(err, redis.Nil) {
		t.Fatalf("BLPOP = %v, want redis.Nil", err)
	}
	if err := rdb.Do(ctx, "NO-SUCH-COMMAND").Err(); err == nil {
		t.Fatal("an unknown command succeeded")
	}
	// NOSCRIPT is go-redis's business (it sends EVAL next): not counted.
	if err := redis.NewScript("return 1 -- "+time.Now().String()).Run(ctx, rdb, nil).Err(); err != nil {
		t.Fatalf("script = %v", err)
	}
	if got := testutil.ToFloat64(m.redisErrors.WithLabelValues("evalsha")); got != 0 {
		t.Errorf(`vss_redis_errors_total{command="evalsha"} after a NOSCRIPT fallback = %v, want 0`, got)
	}
	if got := testutil.ToFloat64(m.redisErrors.WithLabelValues("no-such-command")); got != 1 {
		t.Errorf(`vss_redis_errors_total{command="no-such-command"} = %v, want 1`, got)
	}
	if got := testutil.ToFloat64(m.poolTimeouts); got != 1 {
		t.Errorf("vss_redis_pool_timeouts_total = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.redisErrors.WithLabelValues("get")); got != 1 {
		t.Errorf(`vss_redis_errors_total{command="get"} = %v, want 1`, got)
	}
	// The second of two pipelines (the first dials the pipeline pool's
	// connection, whose handshake is a pipeline too).
	var pipelines float64
	for range 2 {
		pipelines = testutil.ToFloat64(m.redisTrips.WithLabelValues("pipeline"))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, "metrics-test:a")
			p.Get(ctx, "metrics-test:b")
			return nil
		}); !errors.Is(err, redis.Nil) {
			t.Fatalf("pipeline = %v, want redis.Nil", err)
		}
	}
	// Round trips: the GET that timed out never left; NOSCRIPT took two.
	if got := testutil.ToFloat64(m.redisTrips.WithLabelValues("pipeline")) - pipelines; got != 1 {
		t.Errorf("a pipeline of two commands counted %v round trips, want 1", got)
	}
	for cmd, want := range map[string]float64{"get": 0, "blpop": 1, "evalsha": 1, "eval": 1, "no-such-command": 1} {
		if got := testutil.ToFloat64(m.redisTrips.WithLabelValues(cmd)); got != want {
			t.Errorf(`vss_redis_round_trips_total{command=%q} = %v, want %v`, cmd, got, want)
		}
	}
}
