package redisstore_test

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/internal/redistest"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/redisstore"
	"github.com/acme/viewersession/sessionmgr/storetest"
)

// The suite's short TTLs: its retention and idempotency-window subtests
// wait them out in real time, in parallel (about 2*retention+1s).
const (
	retention = 3 * time.Second
	window    = 3 * time.Second
	slice     = 250 * time.Millisecond
)

// TestConformance runs the storetest suite against a standalone server
// (REDIS_URL under `make test`, else a private one).
func TestConformance(t *testing.T) {
	t.Parallel()
	// A server of its own: the suite keeps time by the server's TTLs (a
	// terminal session lives retention, 3 s), and its listings filtered by
	// viewer or state walk every session's listing, which on make test's
	// shared server holds every other test's sessions too (thousands):
	// under load such a walk outlasted both the 1 s per-call timeout and
	// the retention (CI: ListFilter's CLOSED session expired mid-test).
	runSuite(t, newClient(t, redistest.Start(t).URL()))
}

// TestConformanceCluster runs the storetest suite against a three-master
// Redis Cluster: any command whose keys spanned slots would fail with
// CROSSSLOT. It then checks that the sessions spread over every master, so
// the suite did cross nodes.
func TestConformanceCluster(t *testing.T) {
	t.Parallel()
	rdb := startCluster(t)
	t.Run("suite", func(t *testing.T) { runSuite(t, rdb) })

	err := rdb.ForEachMaster(t.Context(), func(ctx context.Context, c *redis.Client) error {
		n, err := c.DBSize(ctx).Result()
		if err == nil && n == 0 {
			err = errors.New("holds no keys")
		}
		if err != nil {
			return errors.New(c.Options().Addr + ": " + err.Error())
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the suite, a master %v", err)
	}
}

func runSuite(t *testing.T, rdb redis.UniversalClient) {
	storetest.Harness{
		New: func(t *testing.T, _ func() time.Time) sessionmgr.Store {
			st := redisstore.New(rdb,
				redisstore.WithRetention(retention),
				redisstore.WithIdempotencyWindow(window),
				redisstore.WithWaitSlice(slice))
			t.Cleanup(st.Close)
			return st
		},
		RealTime:          true,
		Retention:         retention,
		IdempotencyWindow: window,
	}.Run(t)
}

// newClient returns a client of the server at url, closed when the test
// ends, with the options the package doc asks for.
func newClient(tb testing.TB, url string) *redis.Client {
	tb.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("parse %s: %v", url, err)
	}
	opt.DialTimeout = time.Second
	opt.ReadTimeout = 2 * time.Second
	opt.WriteTimeout = 2 * time.Second
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = 32
	rdb := redis.NewClient(opt)
	tb.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// TestUnavailable checks that with the server gone every method fails
// fast with an error wrapping ErrUnavailable and no go-redis error, and
// that the store works again once the server is back.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const timeout = 250 * time.Millisecond
	st := redisstore.New(newClient(t, srv.URL()), redisstore.WithTimeout(timeout), redisstore.WithWaitSlice(slice))
	t.Cleanup(st.Close)
	ctx := t.Context()
	s := newSession(newChannel())
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatalf("Create(server up) = %v", err)
	}
	srv.Stop()

	tests := []struct {
		name string
		call func(context.Context) error
	}{
		{"Create", func(ctx context.Context) error {
			_, err := st.Create(ctx, newSession(s.Channel), 10)
			return err
		}},
		{"Get", func(ctx context.Context) error { _, err := st.Get(ctx, s.ID); return err }},
		{"Put", func(ctx context.Context) error { return st.Put(ctx, s) }},
		{"Delete", func(ctx context.Context) error { return st.Delete(ctx, s.ID) }},
		{"List", func(ctx context.Context) error {
			_, _, err := st.List(ctx, sessionmgr.ListFilter{ChannelARN: s.Channel.ARN}, 10, "")
			return err
		}},
		{"Append", func(ctx context.Context) error { return st.Append(ctx, s.ID, s.Epoch, sessionmgr.Event{Seq: 1}) }},
		{"Takeover", func(ctx context.Context) error { _, err := st.Takeover(ctx, s.ID, "replica-b", s.Epoch); return err }},
		{"Events", func(ctx context.Context) error { _, err := st.Events(ctx, s.ID, 0, 0, false); return err }},
		{"Events wait", func(ctx context.Context) error { _, err := st.Events(ctx, s.ID, 0, 0, true); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			err := tt.call(ctx)
			took := time.Since(start)
			if !errors.Is(err, sessionmgr.ErrUnavailable) {
				t.Fatalf("%s(server down) = %v, want ErrUnavailable", tt.name, err)
			}
			if limit := 2 * timeout; took > limit {
				t.Errorf("%s(server down) took %v, want at most %v", tt.name, took, limit)
			}
			var reply redis.Error
			if errors.As(err, &reply) {
				t.Errorf("%s(server down) = %v, which wraps a go-redis error", tt.name, err)
			}
		})
	}

	srv.Restart() // empty: no persistence
	if _, err := st.Get(ctx, s.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Get(after a restart that lost the data) = %v, want ErrNotFound", err)
	}
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Errorf("Create(server back) = %v", err)
	}
}

// TestLiveGrace checks that a live session stops counting against its
// channel's limit once its Expires and the grace have passed by the
// server's clock (its owner is presumed gone), and that one without
// Expires counts until it ends.
func TestLiveGrace(t *testing.T) {
	t.Parallel()
	const grace = time.Minute
	st := redisstore.New(newClient(t, redistest.URL(t)), redisstore.WithLiveGrace(grace))
	t.Cleanup(st.Close)
	ctx := t.Context()

	ch := newChannel()
	abandoned := newSession(ch)
	abandoned.Expires = time.Now().Add(-grace - time.Minute)
	if _, err := st.Create(ctx, abandoned, 1); err != nil {
		t.Fatalf("Create(abandoned) = %v", err)
	}
	within := newSession(ch)
	within.Expires = time.Now().Add(-grace / 2) // past Expires, within the grace
	if _, err := st.Create(ctx, within, 1); err != nil {
		t.Fatalf("Create(limit 1, beside a session past its Expires and grace) = %v", err)
	}
	if _, err := st.Create(ctx, newSession(ch), 1); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Errorf("Create(limit 1, beside a session within its grace) = %v, want ErrChannelFull", err)
	}
	if _, err := st.Get(ctx, abandoned.ID); err != nil {
		t.Errorf("Get(abandoned) = %v; its record outlives its slot by the retention", err)
	}

	forever := newSession(newChannel())
	forever.Expires = time.Time{}
	if _, err := st.Create(ctx, forever, 1); err != nil {
		t.Fatalf("Create(no Expires) = %v", err)
	}
	if _, err := st.Create(ctx, newSession(forever.Channel), 1); !errors.Is(err, sessionmgr.ErrChannelFull) {
		t.Errorf("Create(limit 1, beside a session without Expires) = %v, want ErrChannelFull", err)
	}
}

// TestEventsWaitDeleted checks that a waiting Events call on a session
// that is deleted returns ErrNotFound, within a wait slice.
func TestEventsWaitDeleted(t *testing.T) {
	t.Parallel()
	st := redisstore.New(newClient(t, redistest.URL(t)), redisstore.WithWaitSlice(slice))
	t.Cleanup(st.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
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
	if err := st.Delete(ctx, s.ID); err != nil {
		t.Fatalf("Delete = %v", err)
	}
	if err := <-errc; !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Events(wait) across Delete = %v, want ErrNotFound", err)
	}
}

// TestInvalidID checks that an ID that cannot name keys is refused at
// Create and not found elsewhere.
func TestInvalidID(t *testing.T) {
	t.Parallel()
	st := redisstore.New(newClient(t, redistest.URL(t)))
	t.Cleanup(st.Close)
	ctx := t.Context()
	for _, id := range []sessionmgr.SessionID{"", "a{b}c", "{x", "y}"} {
		s := newSession(newChannel())
		s.ID = id
		if _, err := st.Create(ctx, s, 10); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
			t.Errorf("Create(id %q) = %v, want ErrInvalidArgument", id, err)
		}
		if _, err := st.Get(ctx, id); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Get(id %q) = %v, want ErrNotFound", id, err)
		}
	}
}

func newID() sessionmgr.SessionID { return sessionmgr.SessionID(strings.ToLower(rand.Text())) }

func newChannel() sessionmgr.Channel {
	name := "redisstore-" + string(newID())
	return sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/" + name + "/1", Name: name}
}

func newSession(ch sessionmgr.Channel) sessionmgr.Session {
	now := time.Now().Truncate(time.Millisecond)
	return sessionmgr.Session{
		ID:      newID(),
		Channel: ch,
		State:   sessionmgr.StatePending,
		Created: now,
		Updated: now,
		Expires: now.Add(time.Hour),
		Owner:   "replica-a",
		Epoch:   1,
	}
}

// A filter that skips more than the scan budget gets short pages with
// cursors, never a walk over the whole listing that outlasts the timeout.
func TestListBudget(t *testing.T) {
	t.Parallel()
	// What is under test is the budget (a short page and a cursor), not
	// the speed: a generous per-call timeout, because a List that reads
	// the whole budget can outlast the default 1 s on a loaded machine
	// under the race detector (seen in a full test run), which says nothing
	// of the budget.
	// Its own server too: the 3,072 sessions it lists would otherwise sit in
	// the shared server's listing of every session for the other tests to
	// walk.
	st := redisstore.New(newClient(t, redistest.Start(t).URL()), redisstore.WithTimeout(30*time.Second))
	t.Cleanup(st.Close)
	storetest.ListBudget(t, st, redisstore.ListScanBudget)
}

// Ended sessions are bounded by count on a single server (in the save
// script) and on a Cluster (after it).
func TestEndedLimits(t *testing.T) {
	t.Run("single", func(t *testing.T) {
		// A server of its own: the bound in total is over the whole
		// keyspace, and on make test's shared server it would drop the
		// ended sessions of the other tests (seen: ListFilter's CLOSED
		// session gone mid-test).
		st := redisstore.New(newClient(t, redistest.Start(t).URL()), redisstore.WithEndedLimits(5, 3))
		t.Cleanup(st.Close)
		storetest.EndedLimits(t, st)
	})
	t.Run("cluster", func(t *testing.T) {
		st := redisstore.New(startCluster(t), redisstore.WithEndedLimits(5, 3))
		t.Cleanup(st.Close)
		storetest.EndedLimits(t, st)
	})
}
