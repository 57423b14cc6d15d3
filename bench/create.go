package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redisinfo"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// CreateRateConfig sizes the CreateSession-rate figure.
type CreateRateConfig struct {
	// RedisURL is the Redis server for the session store, the clientId
	// allocator and the SET NX baseline. "" measures the in-memory store
	// and allocator, with no baseline.
	RedisURL string
	// Concurrency is the number of concurrent callers. Default 16.
	Concurrency int
	// Count is the number of CreateSession calls (and SET NX commands) in
	// a run. Default 2,000.
	Count int
	// Runs is the number of runs of each, alternating. Default 3.
	Runs int
	// PoolSize sizes the go-redis pool of the service's store and
	// allocator. Default 0: go-redis's default (10 x GOMAXPROCS), as the
	// server has; an enlarged pool hides what production gets.
	PoolSize int
}

func (c CreateRateConfig) withDefaults() CreateRateConfig {
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.Count <= 0 {
		c.Count = 2000
	}
	if c.Runs <= 0 {
		c.Runs = 3
	}
	return c
}

// CreateRateResult is the CreateSession-rate figure at one concurrency.
type CreateRateResult struct {
	Config CreateRateConfig
	// CreatePerSecond and SetNXPerSecond are the rates over all runs
	// (calls / summed wall time); SetNX is zero without Redis.
	CreatePerSecond, SetNXPerSecond float64
	// CreateLatency and SetNXLatency are the per-call latencies.
	CreateLatency, SetNXLatency Dist
	// RoundTripsPerCreate is the number of Redis round trips (a command,
	// a script call or a pipeline) the service made per CreateSession;
	// CommandsPerCreate the commands the server ran for them (INFO
	// commandstats, which counts the commands inside scripts too: exact
	// only on a server no one else uses).
	RoundTripsPerCreate, CommandsPerCreate float64
	// RoundTrips counts the round trips per CreateSession by what they
	// sent (a pipeline by its commands).
	RoundTrips map[string]float64
}

// tripCounter is a go-redis hook that counts round trips, in total and by
// what they sent.
type tripCounter struct {
	n atomic.Int64

	// mu guards byName.
	mu     sync.Mutex
	byName map[string]int64
}

func (t *tripCounter) add(name string) {
	t.n.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byName == nil {
		t.byName = make(map[string]int64)
	}
	t.byName[name]++
}

// names returns a copy of the counts by name.
func (t *tripCounter) names() map[string]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.byName)
}

func (t *tripCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *tripCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		t.add(cmd.Name())
		return next(ctx, cmd)
	}
}

func (t *tripCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name()
		}
		t.add("pipeline(" + strings.Join(names, ",") + ")")
		return next(ctx, cmds)
	}
}

// newRedisClient returns a client configured as cmd/server's, with
// go-redis's default pool unless poolSize > 0.
func newRedisClient(url string, poolSize int) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = time.Second, time.Second, time.Second
	opts.ContextTimeoutEnabled = true
	if poolSize > 0 {
		opts.PoolSize = poolSize
	}
	return redis.NewClient(opts), nil
}

// CreateRate measures CreateSession through the service (gRPC, the session
// store, the clientId allocator; the channels resolved and their ICE
// servers cached, as on a warm replica) against SET NX PX round trips on
// the same Redis at the same concurrency. Runs alternate; between create
// runs the sessions are closed, untimed.
func CreateRate(ctx context.Context, cfg CreateRateConfig) (CreateRateResult, error) {
	cfg = cfg.withDefaults()
	res := CreateRateResult{Config: cfg}
	sc := StackConfig{Channels: (cfg.Count + 9) / 10, Conns: 4}
	var base *redis.Client
	trips := &tripCounter{}
	if cfg.RedisURL != "" {
		rdb, err := newRedisClient(cfg.RedisURL, cfg.PoolSize)
		if err != nil {
			return res, err
		}
		defer rdb.Close()
		rdb.AddHook(trips)
		if base, err = newRedisClient(cfg.RedisURL, cfg.PoolSize); err != nil {
			return res, err
		}
		defer base.Close()
		rs := redisstore.New(rdb)
		defer rs.Close()
		sc.Store = rs
		sc.Allocator = func(c clientid.Config) bind.Allocator {
			c.KeyPrefix = "vs:bench:" + strings.ToLower(rand.Text()[:8])
			return clientid.NewRedis(rdb, c)
		}
	}
	st, err := StartStack(ctx, sc)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := st.Warm(ctx, 8); err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	prefix := "bench:setnx:" + strings.ToLower(rand.Text()[:8])
	var createWall, setWall time.Duration
	var commands, roundTrips int64
	byName := make(map[string]int64)
	var createLat, setLat []time.Duration
	for r := range cfg.Runs {
		runCreate := func() error {
			names := make([]string, cfg.Count)
			before, tripsBefore, namesBefore := commandCalls(ctx, base), trips.n.Load(), trips.names()
			wall, lat, err := timed(ctx, cfg.Count, cfg.Concurrency, func(ctx context.Context, i int) error {
				cs, err := st.Create(ctx, i%len(st.ARNs), fmt.Sprintf("c%d-%d", r, i), nil)
				if err != nil {
					return err
				}
				names[i] = cs.GetSession().GetName()
				return nil
			})
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			createWall += wall
			createLat = append(createLat, lat...)
			commands += commandCalls(ctx, base) - before - 1 // this INFO
			roundTrips += trips.n.Load() - tripsBefore
			for k, v := range trips.names() {
				byName[k] += v - namesBefore[k]
			}
			return forEach(ctx, len(names), cfg.Concurrency, func(ctx context.Context, i int) error {
				_, err := st.client().CloseSession(backend(ctx), &vspb.CloseSessionRequest{Name: names[i]})
				return err
			})
		}
		runSetNX := func() error {
			if base == nil {
				return nil
			}
			wall, lat, err := timed(ctx, cfg.Count, cfg.Concurrency, func(ctx context.Context, i int) error {
				ok, err := base.SetNX(ctx, fmt.Sprintf("%s:%d:%d", prefix, r, i), "owner", time.Minute).Result()
				if err == nil && !ok {
					err = fmt.Errorf("SET NX of a fresh key did not set it")
				}
				return err
			})
			setWall += wall
			setLat = append(setLat, lat...)
			return err
		}
		first, second := runCreate, runSetNX
		if r%2 == 1 {
			first, second = second, first
		}
		if err := first(); err != nil {
			return res, err
		}
		if err := second(); err != nil {
			return res, err
		}
	}
	res.CreatePerSecond = float64(cfg.Runs*cfg.Count) / createWall.Seconds()
	res.CreateLatency = NewDist(createLat)
	if base != nil {
		res.SetNXPerSecond = float64(cfg.Runs*cfg.Count) / setWall.Seconds()
		res.SetNXLatency = NewDist(setLat)
		res.CommandsPerCreate = float64(commands) / float64(cfg.Runs*cfg.Count)
		res.RoundTripsPerCreate = float64(roundTrips) / float64(cfg.Runs*cfg.Count)
		res.RoundTrips = make(map[string]float64)
		for k, v := range byName {
			if v > 0 {
				res.RoundTrips[k] = float64(v) / float64(cfg.Runs*cfg.Count)
			}
		}
	}
	return res, nil
}

// timed runs n calls of fn on concurrency workers and returns the wall time
// and each call's latency.
func timed(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) (time.Duration, []time.Duration, error) {
	lat := make([]time.Duration, n) // each worker writes its own indexes
	start := time.Now()
	err := forEach(ctx, n, concurrency, func(ctx context.Context, i int) error {
		t := time.Now()
		err := fn(ctx, i)
		lat[i] = time.Since(t)
		return err
	})
	return time.Since(start), lat, err
}

// commandCalls is the total of calls in the server's INFO commandstats
// (0 without a client).
func commandCalls(ctx context.Context, rdb *redis.Client) int64 {
	if rdb == nil {
		return 0
	}
	in, err := redisinfo.Read(ctx, rdb, "commandstats")
	if err != nil {
		return 0
	}
	var total int64
	for _, c := range in.Commands {
		total += c.Calls
	}
	return total
}
