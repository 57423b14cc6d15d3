package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// waitFor polls cond until it holds or 10 s pass (the follower runs on
// another connection: there is nothing to wait on but its state).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func appendSeqs(t *testing.T, st *redisstore.Store, s sessionmgr.Session, from, to uint64) {
	t.Helper()
	for seq := from; seq <= to; seq++ {
		e := sessionmgr.Event{Seq: seq, Type: sessionmgr.EventStateChanged, Message: fmt.Sprintf("event %d", seq)}
		if err := st.Append(t.Context(), s.ID, s.Epoch, e); err != nil {
			t.Fatalf("Append(seq %d) = %v", seq, err)
		}
	}
}

// follow reads the timeline from after to last, as a watcher does, and
// returns the sequences it read.
func follow(ctx context.Context, st *redisstore.Store, id sessionmgr.SessionID, after, last uint64) ([]uint64, error) {
	var seqs []uint64
	for after < last {
		evs, err := st.Events(ctx, id, after, 0, true)
		if err != nil {
			return seqs, err
		}
		for _, e := range evs {
			seqs = append(seqs, e.Seq)
			after = e.Seq
		}
	}
	return seqs, nil
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for q := from; q <= to; q++ {
		out = append(out, q)
	}
	return out
}

// TestWaitersHoldNoPooledConnection: 50 readers wait with a pool of 2;
// the store holds one subscription connection besides the pool, and
// serves other calls meanwhile.
func TestWaitersHoldNoPooledConnection(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t) // private: CLIENT LIST counts only us
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize, opt.PoolTimeout, opt.ContextTimeoutEnabled = 2, 500*time.Millisecond, true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	const readers = 50
	ss := make([]sessionmgr.Session, readers)
	type result struct {
		seqs []uint64
		err  error
	}
	results := make(chan result, readers)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range ss {
		ss[i] = newSession(newChannel())
		if _, err := st.Create(ctx, ss[i], 10); err != nil {
			t.Fatalf("Create = %v", err)
		}
		wg.Go(func() {
			seqs, err := follow(ctx, st, ss[i].ID, 0, 3)
			results <- result{seqs, err}
		})
	}
	waitFor(t, "every timeline is followed", func() bool { _, active, _ := redisstore.Following(st); return active == readers })
	for i := range 20 {
		if _, err := st.Get(ctx, ss[i].ID); err != nil {
			t.Fatalf("Get with %d readers waiting on a pool of 2 = %v", readers, err)
		}
	}
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// Our client's connections: the pool's (at most 2), go-redis's
	// separate pipeline pool's (MULTI reads; at most its default 10), and
	// the follower's subscription: fewer than the readers.
	if n, most := strings.Count(list, "\n"), 2+10+1; n > most {
		t.Errorf("with %d readers waiting, the server has %d clients, want at most %d (pool of 2, pipeline pool of 10, one subscription):\n%s", readers, n, most, list)
	}
	if n := strings.Count(list, "cmd=subscribe") + strings.Count(list, "cmd=ping"); n != 1 {
		t.Errorf("subscription connections = %d, want 1:\n%s", n, list)
	}
	for i := range ss {
		appendSeqs(t, st, ss[i], 1, 3)
	}
	for range readers {
		r := <-results
		if r.err != nil {
			t.Fatalf("follow = %v", r.err)
		}
		diff(t, "Seqs read", r.seqs, seqRange(1, 3))
	}
}

// TestFollowerSurvivesKill: the follower's connection is killed while a
// reader waits and events are appended around the kill; the reader still
// reads every event once, in order.
func TestFollowerSurvivesKill(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := newClient(t, srv.URL())
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := newSession(newChannel())
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatalf("Create = %v", err)
	}
	const last = 30
	done := make(chan error, 1)
	var seqs []uint64
	go func() {
		var err error
		seqs, err = follow(ctx, st, s.ID, 0, last)
		done <- err
	}()
	waitFor(t, "the timeline is followed", func() bool { _, active, _ := redisstore.Following(st); return active == 1 })
	appendSeqs(t, st, s, 1, 5)
	for round := range 5 {
		if err := rdb.ClientKillByFilter(ctx, "TYPE", "pubsub").Err(); err != nil {
			t.Fatalf("CLIENT KILL TYPE pubsub = %v", err)
		}
		from := uint64(6 + 5*round)
		appendSeqs(t, st, s, from, from+4) // while the follower reconnects
	}
	if err := <-done; err != nil {
		t.Fatalf("follow = %v", err)
	}
	diff(t, "Seqs read across 5 kills", seqs, seqRange(1, last))
}

// TestFollowerStops: a linger after its last reader left, the follower
// unsubscribes and stops its goroutines and connection; the next reader
// starts it again.
func TestFollowerStops(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := newClient(t, srv.URL())
	st := redisstore.New(rdb, redisstore.WithLinger(50*time.Millisecond))
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := newSession(newChannel())
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatalf("Create = %v", err)
	}
	for round := range 2 {
		done := make(chan error, 1)
		go func() {
			_, err := follow(ctx, st, s.ID, uint64(round), uint64(round+1))
			done <- err
		}()
		waitFor(t, "the timeline is followed", func() bool { _, active, _ := redisstore.Following(st); return active == 1 })
		appendSeqs(t, st, s, uint64(round+1), uint64(round+1))
		if err := <-done; err != nil {
			t.Fatalf("follow = %v", err)
		}
		waitFor(t, "the follower stops", func() bool { n, _, running := redisstore.Following(st); return n == 0 && !running })
		waitFor(t, "no subscription connection is left", func() bool {
			list, err := rdb.ClientList(ctx).Result()
			return err == nil && !strings.Contains(list, "sub=1")
		})
	}
}

// TestClosedStore: Close ends waiting readers with ErrUnavailable, and
// later waits fail at once; other calls still work.
func TestClosedStore(t *testing.T) {
	t.Parallel()
	st := redisstore.New(newClient(t, redistest.URL(t)))
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s := newSession(newChannel())
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatalf("Create = %v", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := st.Events(ctx, s.ID, 0, 0, true)
		errc <- err
	}()
	waitFor(t, "the timeline is followed", func() bool { n, _, _ := redisstore.Following(st); return n == 1 })
	st.Close()
	if err := <-errc; !errors.Is(err, sessionmgr.ErrUnavailable) {
		t.Errorf("Events(wait) across Close = %v, want ErrUnavailable", err)
	}
	if _, err := st.Events(ctx, s.ID, 0, 0, true); !errors.Is(err, sessionmgr.ErrUnavailable) {
		t.Errorf("Events(wait) after Close = %v, want ErrUnavailable", err)
	}
	if _, err := st.Get(ctx, s.ID); err != nil {
		t.Errorf("Get after Close = %v", err)
	}
	st.Close() // idempotent
}

// TestPoolExhausted: with every pooled connection busy, a call fails
// within the pool timeout with ErrUnavailable saying so, instead of
// hanging.
func TestPoolExhausted(t *testing.T) {
	t.Parallel()
	opt, err := redis.ParseURL(redistest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize, opt.PoolTimeout, opt.ContextTimeoutEnabled = 1, 100*time.Millisecond, true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	busy := make(chan error, 1)
	key := "redisstore-test:block:" + string(newID())
	go func() { busy <- rdb.BLPop(ctx, 2*time.Second, key).Err() }()
	waitFor(t, "the only pooled connection is busy", func() bool { return rdb.PoolStats().IdleConns == 0 && rdb.PoolStats().TotalConns == 1 })
	start := time.Now()
	_, err = st.Get(ctx, newID())
	took := time.Since(start)
	if !errors.Is(err, sessionmgr.ErrUnavailable) || !strings.Contains(err.Error(), "pool exhausted") {
		t.Errorf("Get with the pool exhausted = %v, want ErrUnavailable naming the exhausted pool", err)
	}
	if took > time.Second {
		t.Errorf("Get with the pool exhausted took %v, want about the pool timeout (100ms)", took)
	}
	if err := <-busy; !errors.Is(err, redis.Nil) {
		t.Errorf("BLPOP = %v, want redis.Nil (timed out)", err)
	}
}

func diff[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if d := gocmp.Diff(want, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", what, d)
	}
}

// readCounter counts a client's reads of a timeline (the MULTI with an
// XRANGE that Events sends); of one session's only, once only is set.
type readCounter struct {
	n    atomic.Int64
	only atomic.Value // a session id (string)
}

func (c *readCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *readCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (c *readCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			if cmd.Name() != "xrange" {
				continue
			}
			if id, _ := c.only.Load().(string); id == "" || strings.Contains(fmt.Sprint(cmd.Args()...), id) {
				c.n.Add(1)
			}
			break
		}
		return next(ctx, cmds)
	}
}

// TestFollowingReaderReadsOnce: a watcher that takes each event and comes
// back for the next (lockstep with the writer) reads the stream once, when
// its new follow's subscription is confirmed (the follower's connection
// being up), not once per event: the follower's memory shows it has
// everything, and the next event is notified.
func TestFollowingReaderReadsOnce(t *testing.T) {
	t.Parallel()
	rdb := newClient(t, redistest.URL(t))
	reads := &readCounter{}
	rdb.AddHook(reads)
	st := redisstore.New(rdb)
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, other := newSession(newChannel()), newSession(newChannel())
	for _, x := range []sessionmgr.Session{s, other} {
		if _, err := st.Create(ctx, x, 10); err != nil {
			t.Fatal(err)
		}
	}
	const events = 20
	got := make(chan uint64)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Another timeline followed first: the follower's connection is up,
	// as on a replica with sessions.
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	wg.Go(func() { _, _ = st.Events(octx, other.ID, 0, 0, true) })
	waitFor(t, "another timeline is followed", func() bool { _, active, _ := redisstore.Following(st); return active == 1 })
	reads.only.Store(string(s.ID)) // the other reader reads its own timeline again after its confirmation
	reads.n.Store(0)
	wg.Go(func() {
		defer close(got)
		after := uint64(0)
		for after < events {
			evs, err := st.Events(ctx, s.ID, after, 0, true)
			if err != nil {
				t.Errorf("Events(after %d) = %v", after, err)
				return
			}
			for _, e := range evs {
				after = e.Seq
				got <- e.Seq
			}
		}
	})
	waitFor(t, "the timeline is followed", func() bool { _, active, _ := redisstore.Following(st); return active == 2 })
	for seq := uint64(1); seq <= events; seq++ {
		appendSeqs(t, st, s, seq, seq)
		if r := <-got; r != seq {
			t.Fatalf("read event %d, want %d", r, seq)
		}
	}
	// One read, after the subscription's confirmation (a read before it
	// would have to be repeated).
	if n := reads.n.Load(); n != 1 {
		t.Errorf("a reader following %d events one at a time read the stream %d times, want once", events, n)
	}
}
