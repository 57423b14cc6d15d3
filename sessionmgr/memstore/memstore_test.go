package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/storetest"
)

func TestConformance(t *testing.T) {
	const (
		retention = 2 * time.Hour
		window    = 5 * time.Minute
	)
	storetest.Harness{
		New: func(_ *testing.T, now func() time.Time) sessionmgr.Store {
			return memstore.New(memstore.WithClock(now), memstore.WithRetention(retention), memstore.WithIdempotencyWindow(window))
		},
		Clock:             true,
		Retention:         retention,
		IdempotencyWindow: window,
	}.Run(t)
}

// TestConformanceShared runs the clockless suite against one store that
// every subtest shares, as a Redis store would be.
func TestConformanceShared(t *testing.T) {
	st := memstore.New()
	storetest.Run(t, func(*testing.T) sessionmgr.Store { return st })
}

// TestEventsWait checks, in a synctest bubble, that a waiting Events call
// is blocked until an Append to its own session, and that Delete ends it.
func TestEventsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		st := memstore.New()
		a, b := newSession("a"), newSession("b")
		for _, s := range []sessionmgr.Session{a, b} {
			if _, err := st.Create(ctx, s, 10); err != nil {
				t.Fatalf("Create(%s) = %v", s.ID, err)
			}
		}
		type result struct {
			evs []sessionmgr.Event
			err error
		}
		wait := func(id sessionmgr.SessionID) <-chan result {
			c := make(chan result, 1)
			go func() {
				evs, err := st.Events(ctx, id, 0, 0, true)
				c <- result{evs, err}
			}()
			return c
		}
		blocked := func(c <-chan result, when string) {
			t.Helper()
			synctest.Wait()
			select {
			case r := <-c:
				t.Fatalf("Events(wait) returned %s: %d events, %v", when, len(r.evs), r.err)
			default:
			}
		}

		ca, cb := wait(a.ID), wait(b.ID)
		blocked(ca, "with no events")
		if err := st.Append(ctx, b.ID, b.Epoch, sessionmgr.Event{Seq: 1}); err != nil {
			t.Fatalf("Append(b) = %v", err)
		}
		blocked(ca, "after an Append to another session")
		if r := <-cb; r.err != nil || len(r.evs) != 1 || r.evs[0].Seq != 1 {
			t.Fatalf("Events(b, wait) = %+v, %v; want the event of seq 1", r.evs, r.err)
		}
		if err := st.Append(ctx, a.ID, a.Epoch, sessionmgr.Event{Seq: 1, Message: "hello"}); err != nil {
			t.Fatalf("Append(a) = %v", err)
		}
		if r := <-ca; r.err != nil || len(r.evs) != 1 || r.evs[0].Message != "hello" {
			t.Fatalf("Events(a, wait) = %+v, %v; want the event appended", r.evs, r.err)
		}

		cb = wait(b.ID) // after 0 again: returns at once
		if r := <-cb; r.err != nil || len(r.evs) != 1 {
			t.Fatalf("Events(b, wait) with an event there = %+v, %v", r.evs, r.err)
		}
		c := make(chan result, 1)
		go func() {
			evs, err := st.Events(ctx, b.ID, 1, 0, true)
			c <- result{evs, err}
		}()
		blocked(c, "with no events after 1")
		if err := st.Delete(ctx, b.ID); err != nil {
			t.Fatalf("Delete(b) = %v", err)
		}
		if r := <-c; !errors.Is(r.err, sessionmgr.ErrNotFound) {
			t.Errorf("Events(b, wait) across Delete = %v, want ErrNotFound", r.err)
		}
	})
}

// TestDefaults checks the default retention and idempotency window, with
// time.Now in a synctest bubble.
func TestDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		st := memstore.New()
		s := newSession("a")
		s.Caller, s.RequestID = "caller", "request"
		if _, err := st.Create(ctx, s, 10); err != nil {
			t.Fatalf("Create = %v", err)
		}
		repeat := newSession("b")
		repeat.Caller, repeat.RequestID = s.Caller, s.RequestID

		time.Sleep(memstore.DefaultIdempotencyWindow - time.Second)
		if _, err := st.Create(ctx, repeat, 10); !errors.Is(err, sessionmgr.ErrAlreadyExists) {
			t.Fatalf("Create(repeat, within the default window) = %v, want ErrAlreadyExists", err)
		}
		time.Sleep(time.Second)
		if _, err := st.Create(ctx, repeat, 10); err != nil {
			t.Fatalf("Create(repeat, after the default window) = %v", err)
		}

		s.State = sessionmgr.StateClosed
		if err := st.Put(ctx, s); err != nil {
			t.Fatalf("Put = %v", err)
		}
		time.Sleep(memstore.DefaultRetention - time.Second)
		if _, err := st.Get(ctx, s.ID); err != nil {
			t.Fatalf("Get(within the default retention) = %v", err)
		}
		time.Sleep(time.Second)
		if _, err := st.Get(ctx, s.ID); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Fatalf("Get(after the default retention) = %v, want ErrNotFound", err)
		}
	})
}

func newSession(id sessionmgr.SessionID) sessionmgr.Session {
	return sessionmgr.Session{
		ID:      id,
		Channel: sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:123456789012:channel/memstore/1"},
		State:   sessionmgr.StatePending,
		Epoch:   1,
	}
}

// A filter that skips more than the scan budget gets short pages with
// cursors, never a scan of the whole store under its lock.
func TestListBudget(t *testing.T) {
	storetest.ListBudget(t, memstore.New(), memstore.ListScanBudget)
}

// Ended sessions are bounded by count, in all and per channel: past a
// bound the oldest ended goes first, live sessions never.
func TestEndedLimits(t *testing.T) {
	now := time.Date(2026, 12, 5, 22, 0, 0, 0, time.UTC)
	st := memstore.New(memstore.WithClock(func() time.Time { return now }), memstore.WithEndedLimits(5, 3))
	ctx := t.Context()
	mk := func(ch string, i int) sessionmgr.Session {
		s := sessionmgr.Session{
			ID: sessionmgr.SessionID(fmt.Sprintf("%s-%d", ch, i)), Channel: sessionmgr.Channel{ARN: "arn:" + ch},
			ViewerID: "v", State: sessionmgr.StatePending, Created: now, Epoch: 1,
		}
		if _, err := st.Create(ctx, s, 100); err != nil {
			t.Fatal(err)
		}
		return s
	}
	end := func(s sessionmgr.Session) {
		now = now.Add(time.Second)
		s.State, s.Close = sessionmgr.StateClosed, sessionmgr.CloseClientLeft
		if err := st.Put(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(id string) bool {
		_, err := st.Get(ctx, sessionmgr.SessionID(id))
		return err == nil
	}
	live := mk("a", 99)
	for i := range 4 { // channel a: 4 ended, bound 3
		end(mk("a", i))
	}
	if exists("a-0") || !exists("a-1") || !exists("a-3") || !exists(string(live.ID)) {
		t.Errorf("after 4 ended on a channel bounded at 3: a-0 %v a-1 %v a-3 %v live %v; want only a-0 gone",
			exists("a-0"), exists("a-1"), exists("a-3"), exists(string(live.ID)))
	}
	for i := range 3 { // channel b: 3 more ended: 6 in all, bound 5
		end(mk("b", i))
	}
	if exists("a-1") || !exists("a-2") || !exists("b-0") {
		t.Errorf("after 6 ended in all, bounded at 5: a-1 %v a-2 %v b-0 %v; want only a-1 (the oldest) gone", exists("a-1"), exists("a-2"), exists("b-0"))
	}
	if !exists(string(live.ID)) {
		t.Errorf("a live session went with the ended ones")
	}
}

func TestEndedLimitsSuite(t *testing.T) {
	storetest.EndedLimits(t, memstore.New(memstore.WithEndedLimits(5, 3)))
}
