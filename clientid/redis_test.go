package clientid_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/internal/redistest"
)

// newRedisClient returns a client of the server at url, closed when the
// test ends. Like the service's, it honours context deadlines: without
// ContextTimeoutEnabled go-redis waits out its ReadTimeout (5s) on a server
// that does not answer, whatever Config.Timeout says.
func newRedisClient(tb testing.TB, url string, poolSize int) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("parse %s: %v", url, err)
	}
	opt.PoolSize = poolSize
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// testPrefix returns a key prefix no other test (or run) shares, so tests
// may share one server without seeing each other's keys.
func testPrefix() string {
	return "test:" + strings.ToLower(rand.Text())
}

// redisHarness runs the conformance tests in parallel against the server
// at url, each with a key prefix of its own, on real time.
func redisHarness(url string) harness {
	return harness{
		newAlloc: func(t *testing.T, cfg clientid.Config, opts ...clientid.Option) allocator {
			cfg.KeyPrefix = testPrefix()
			return clientid.NewRedis(newRedisClient(t, url, 4), cfg, opts...)
		},
		run: func(t *testing.T, name string, f func(t *testing.T)) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f(t)
			})
		},
		poll:  2 * time.Millisecond,
		slack: 250 * time.Millisecond,
	}
}

func TestRedisConformance(t *testing.T) {
	runConformance(t, redisHarness(redistest.URL(t)))
}

// TestRedisKeys checks the key layout and life cycle in Redis itself: a
// hash-tagged key per (channel, id) that lives LeaseTTL+cooldown, becomes a
// cooldown-only tombstone on Release, and is never deleted early.
func TestRedisKeys(t *testing.T) {
	rdb := newRedisClient(t, redistest.URL(t), 2)
	cfg := suiteConfig()
	cfg.KeyPrefix = testPrefix()
	a := clientid.NewRedis(rdb, cfg)
	ctx := t.Context()

	l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "k"})
	key := cfg.KeyPrefix + ":cid:{" + chanA + "}:k"
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got != l.Token {
		t.Fatalf("GET %s = %q, %v; want the lease's token", key, got, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= suiteCooldown || ttl > suiteTTL+suiteCooldown {
		t.Errorf("PTTL of a fresh lease = %v; want in (%v, %v]", ttl, suiteCooldown, suiteTTL+suiteCooldown)
	}
	if err := a.Release(ctx, l); err != nil {
		t.Fatalf("Release = %v; want nil", err)
	}
	if got, err := rdb.Get(ctx, key).Result(); err != nil || got == l.Token {
		t.Fatalf("GET %s after Release = %q, %v; want a tombstone (not deleted, not the token)", key, got, err)
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > suiteCooldown {
		t.Errorf("PTTL of a released key = %v; want in (0, %v]", ttl, suiteCooldown)
	}
}

// countHook counts the commands a client sends, pipelines included.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisRoundTrips counts the commands each Acquire sends: one plain
// SET NX when the first candidate is free; when it is busy, one EVALSHA more
// that tries every candidate; and one more (EVAL) on a server that lost its
// script cache. A request whose caller found the first candidate taken
// (FirstTaken) sends the EVALSHA alone, which tries that one first again.
func TestRedisRoundTrips(t *testing.T) {
	srv := redistest.Start(t) // private: the test flushes its script cache
	rdb := newRedisClient(t, srv.URL(), 2)
	cfg := suiteConfig()
	cfg.KeyPrefix = testPrefix()
	a := clientid.NewRedis(rdb, cfg)
	for range 2 { // connect, and cache the script (the second is contended)
		mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "warm"})
	}
	hook := &countHook{}
	rdb.AddHook(hook)

	tests := []struct {
		name       string
		flush      bool
		base       string
		firstTaken bool
		wantID     string
		want       int64
	}{
		{name: "uncontended", base: "rt", wantID: "rt", want: 1},
		{name: "no base", want: 1},
		{name: "contended", base: "rt", wantID: "rt-2", want: 2},
		{name: "contended, no script cache", flush: true, base: "rt", wantID: "rt-3", want: 3},
		{name: "contended, script cached again", base: "rt", wantID: "", want: 2}, // rt-<random>
		{name: "first taken, but free", base: "ft", firstTaken: true, wantID: "ft", want: 1},
		{name: "first taken", base: "ft", firstTaken: true, wantID: "ft-2", want: 1},
	}
	for _, tt := range tests {
		if tt.flush {
			if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
				t.Fatalf("SCRIPT FLUSH = %v", err)
			}
		}
		before := hook.n.Load()
		l := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: tt.base, FirstTaken: tt.firstTaken})
		if got := hook.n.Load() - before; got != tt.want || tt.wantID != "" && string(l.ID) != tt.wantID {
			t.Errorf("%s: Acquire(base %q, first taken %v) = %q in %d commands; want %q in %d", tt.name, tt.base, tt.firstTaken, l.ID, got, tt.wantID, tt.want)
		}
	}
}

// TestRedisUnavailable stops the server under a live allocator: calls fail
// fast with ErrUnavailable and no id; when the server is back, Acquire
// works again at once.
func TestRedisUnavailable(t *testing.T) {
	srv := redistest.Start(t)
	rdb := newRedisClient(t, srv.URL(), 4)
	cfg := suiteConfig()
	cfg.Timeout = 500 * time.Millisecond
	cfg.KeyPrefix = testPrefix()
	a := clientid.NewRedis(rdb, cfg)
	ctx := t.Context()
	req := clientid.Request{Channel: chanA, Base: "outage"}
	live := mustAcquire(t, a, req)

	srv.Stop()
	const fast = time.Second // Timeout plus go-redis's own quick retries
	start := time.Now()
	l, err := a.Acquire(ctx, req)
	if took := time.Since(start); !errors.Is(err, clientid.ErrUnavailable) || l != (clientid.Lease{}) || took > fast {
		t.Errorf("Acquire with Redis down = %+v, %v after %v; want no lease, ErrUnavailable within %v", l, err, took, fast)
	}
	if err := a.Renew(ctx, live); !errors.Is(err, clientid.ErrUnavailable) {
		t.Errorf("Renew with Redis down = %v; want ErrUnavailable", err)
	}
	if err := a.Release(ctx, live); !errors.Is(err, clientid.ErrUnavailable) {
		t.Errorf("Release with Redis down = %v; want ErrUnavailable", err)
	}

	srv.Restart() // no persistence: the server comes back empty
	// go-redis's pool stops dialling after PoolSize failed dials and probes
	// the server once a second in the background, so the first calls after
	// the restart may still fail: within that second, and only with
	// ErrUnavailable and no id.
	const recovery = 1500 * time.Millisecond
	back := time.Now()
	for {
		l, err := a.Acquire(ctx, req)
		if err == nil {
			if l.ID != "outage" {
				t.Errorf("Acquire after restart = %q; want %q (the restarted server is empty)", l.ID, "outage")
			}
			break
		}
		if !errors.Is(err, clientid.ErrUnavailable) || l != (clientid.Lease{}) {
			t.Fatalf("Acquire right after restart = %+v, %v; want no lease and ErrUnavailable until it works", l, err)
		}
		if time.Since(back) > recovery {
			t.Fatalf("Acquire still fails %v after the restart: %v", recovery, err)
		}
		time.Sleep(10 * time.Millisecond) // polling another process
	}
	t.Logf("Acquire worked again %v after redis-server was back", time.Since(back))
	if err := a.Renew(ctx, live); !errors.Is(err, clientid.ErrNotOwner) {
		t.Errorf("Renew of a lease the restarted server forgot = %v; want ErrNotOwner", err)
	}
}

// TestRedisHung points the allocator at a server that accepts connections
// and never answers: every call ends with ErrUnavailable after Timeout.
func TestRedisHung(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // read nothing, answer nothing
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	rdb := newRedisClient(t, "redis://"+ln.Addr().String()+"/0", 2)
	cfg := suiteConfig()
	cfg.Timeout = 300 * time.Millisecond
	a := clientid.NewRedis(rdb, cfg)
	start := time.Now()
	l, err := a.Acquire(t.Context(), clientid.Request{Channel: chanA, Base: "hung"})
	took := time.Since(start)
	if !errors.Is(err, clientid.ErrUnavailable) || l != (clientid.Lease{}) {
		t.Fatalf("Acquire against a silent server = %+v, %v; want no lease, ErrUnavailable", l, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Acquire against a silent server = %v; want it not to look like the caller's deadline", err)
	}
	if took < cfg.Timeout || took > cfg.Timeout+700*time.Millisecond {
		t.Errorf("Acquire against a silent server took %v; want about Timeout (%v)", took, cfg.Timeout)
	}
}

// TestRedisConformanceCompat runs the suite on the acquire script's path
// for servers older than Redis 7 (SET NX, then GET).
func TestRedisConformanceCompat(t *testing.T) {
	h := redisHarness(redistest.URL(t))
	newAlloc := h.newAlloc
	h.newAlloc = func(t *testing.T, cfg clientid.Config, opts ...clientid.Option) allocator {
		a := newAlloc(t, cfg, opts...).(*clientid.Redis)
		clientid.UseCompatScript(a)
		return a
	}
	runConformance(t, h)
}

// TestRedisAcquireRetry replays an Acquire with the same owner token, as
// go-redis does when a reply is lost: the replay gets the id the first
// attempt took instead of taking a second one, whether that first attempt
// was the plain SET NX (uncontended) or the script (contended).
func TestRedisAcquireRetry(t *testing.T) {
	url := redistest.URL(t)
	const token = "TOKENTOKENTOKENTOKENTOKEN2"
	for _, compat := range []bool{false, true} {
		cfg := suiteConfig()
		cfg.KeyPrefix = testPrefix()
		a := clientid.NewRedis(newRedisClient(t, url, 2), cfg)
		if compat {
			clientid.UseCompatScript(a)
		}
		tests := []struct {
			name   string
			base   string
			wantID clientid.ID
		}{
			{name: "uncontended", base: "retry", wantID: "retry"},
			{name: "contended", base: "retry", wantID: "retry-2"}, // retry is held by the case above
		}
		for _, tt := range tests {
			req := clientid.Request{Channel: chanA, Base: tt.base}
			first, err1 := clientid.AcquireWithToken(t.Context(), a, req, token+tt.name)
			again, err2 := clientid.AcquireWithToken(t.Context(), a, req, token+tt.name)
			if err1 != nil || err2 != nil || first.ID != tt.wantID || again.ID != first.ID {
				t.Errorf("compat=%v, %s: Acquire and its replay = %q, %v and %q, %v; want %q twice",
					compat, tt.name, first.ID, err1, again.ID, err2, tt.wantID)
			}
		}
	}
}

// TestRedisPrepare: a Prepared lease names Acquire's first candidate and
// key, touches nothing, and once another script sets its key as it says
// (SET NX PX) it is a lease like Acquire's: the allocator sees the id as
// busy, Renew and Release work with it.
func TestRedisPrepare(t *testing.T) {
	rdb := newRedisClient(t, redistest.URL(t), 2)
	cfg := suiteConfig()
	cfg.KeyPrefix = testPrefix()
	a := clientid.NewRedis(rdb, cfg)
	ctx := t.Context()

	p, err := a.Prepare(clientid.Request{Channel: chanA, Base: "k"})
	if err != nil {
		t.Fatal(err)
	}
	key := cfg.KeyPrefix + ":cid:{" + chanA + "}:k"
	if p.Key != key || p.Lease.ID != "k" || p.Lease.Token == "" || p.TTL != suiteTTL+suiteCooldown {
		t.Fatalf("Prepare = key %q id %q ttl %v; want key %q, id k, a token, ttl %v", p.Key, p.Lease.ID, p.TTL, key, suiteTTL+suiteCooldown)
	}
	if n := rdb.Exists(ctx, key).Val(); n != 0 {
		t.Fatalf("Prepare wrote %s", key)
	}
	if ok, err := rdb.SetNX(ctx, p.Key, p.Lease.Token, p.TTL).Result(); err != nil || !ok {
		t.Fatalf("SET NX of the prepared key = %v, %v", ok, err)
	}
	other := mustAcquire(t, a, clientid.Request{Channel: chanA, Base: "k"})
	if other.ID == "k" {
		t.Fatalf("Acquire after the prepared lease was taken got %q too", other.ID)
	}
	if err := a.Renew(ctx, p.Lease); err != nil {
		t.Fatalf("Renew of the taken prepared lease = %v", err)
	}
	if err := a.Release(ctx, p.Lease); err != nil {
		t.Fatalf("Release of the taken prepared lease = %v", err)
	}
	if r, err := a.Prepare(clientid.Request{Channel: chanA}); err != nil || r.Lease.ID == "" || !strings.HasSuffix(r.Key, string(r.Lease.ID)) {
		t.Errorf("Prepare without a base = %+v, %v; want a random id", r, err)
	}
	if _, err := a.Prepare(clientid.Request{}); !errors.Is(err, clientid.ErrInvalid) {
		t.Errorf("Prepare without a channel = %v, want ErrInvalid", err)
	}
}
