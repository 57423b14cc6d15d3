package sessionmgr_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// readCounter is a memstore that counts the reads Watch makes.
type readCounter struct {
	*memstore.Store
	gets, owners, reads, waits atomic.Int64
	// ownersC, when set, gets a value per Owners call that finds it ready.
	ownersC chan struct{}
}

func (c *readCounter) Owners(ctx context.Context, ids []sessionmgr.SessionID) ([]sessionmgr.Ownership, error) {
	c.owners.Add(1)
	o, err := c.Store.Owners(ctx, ids)
	select {
	case c.ownersC <- struct{}{}:
	default:
	}
	return o, err
}

func (c *readCounter) Get(ctx context.Context, id sessionmgr.SessionID) (sessionmgr.Session, error) {
	c.gets.Add(1)
	return c.Store.Get(ctx, id)
}

func (c *readCounter) Events(ctx context.Context, id sessionmgr.SessionID, after uint64, limit int, wait bool) ([]sessionmgr.Event, error) {
	if wait {
		c.waits.Add(1)
	} else {
		c.reads.Add(1)
	}
	return c.Store.Events(ctx, id, after, limit, wait)
}

// TestWatchFollowsWithoutReads: after its replay, a watch follows the
// timeline through waiting reads only (no record read, no plain read per
// event), sees every event once, in order, and ends at the terminal one.
func TestWatchFollowsWithoutReads(t *testing.T) {
	st := &readCounter{Store: memstore.New()}
	m := sessionmgr.New(sessionmgr.DefaultConfig(), st, nil, nil)
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	now := time.Now()
	s := sessionmgr.Session{
		ID: "watchtestwatchtestwatchtes", Channel: sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:1:channel/w/1", Name: "w"},
		State: sessionmgr.StatePending, Created: now, Updated: now, Expires: now.Add(time.Hour), Owner: "r", Epoch: 1,
	}
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatal(err)
	}
	appendEv := func(seq uint64, typ sessionmgr.EventType) {
		t.Helper()
		if err := st.Append(ctx, s.ID, s.Epoch, sessionmgr.Event{Seq: seq, Type: typ, Message: fmt.Sprint(seq)}); err != nil {
			t.Fatalf("Append(%d) = %v", seq, err)
		}
	}
	for seq := uint64(1); seq <= 3; seq++ {
		appendEv(seq, sessionmgr.EventStateChanged)
	}
	const last = 100
	got := make(chan uint64, last)
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, s.ID, 1, func(e sessionmgr.Event) error {
			got <- e.Seq
			return nil
		})
	}()
	// Each event is appended once the previous one was delivered, so the
	// watch waits in between.
	for seq := uint64(2); seq <= last; seq++ {
		if seq > 3 {
			typ := sessionmgr.EventStateChanged
			if seq == last {
				typ = sessionmgr.EventClosed
			}
			appendEv(seq, typ)
		}
		select {
		case g := <-got:
			if g != seq {
				t.Fatalf("Watch delivered %d, want %d", g, seq)
			}
		case <-ctx.Done():
			t.Fatalf("Watch did not deliver %d", seq)
		}
	}
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v, want nil after the terminal event", err)
	}
	// The replay: one plain read; then only waiting reads, one per event
	// or fewer.
	if g, r, w := st.gets.Load(), st.reads.Load(), st.waits.Load(); g != 0 || r != 1 || w > last {
		t.Errorf("Watch over %d events made %d record reads, %d plain reads and %d waiting reads; want 0, 1 and at most %d", last-1, g, r, w, last)
	}
}

// TestWatchRecheckEnds: a watch whose timeline never brings the terminal
// event (trimmed past it, or missed) ends at its periodic check, once the
// record reads terminal; that check reads the record's owner fields, never
// the whole record. A watch of a session that does not exist fails with
// ErrNotFound, as before.
func TestWatchRecheckEnds(t *testing.T) {
	st := &readCounter{Store: memstore.New(), ownersC: make(chan struct{})}
	m := sessionmgr.New(sessionmgr.DefaultConfig(), st, nil, nil, sessionmgr.WithWatchCheck(20*time.Millisecond))
	defer m.Close(context.Background())
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	now := time.Now()
	s := sessionmgr.Session{
		ID: "watchrecheckwatchrecheckwa", Channel: sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:1:channel/w/1", Name: "w"},
		State: sessionmgr.StatePending, Created: now, Updated: now, Expires: now.Add(time.Hour), Owner: "r", Epoch: 1,
	}
	if _, err := st.Create(ctx, s, 10); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, s.ID, s.Epoch, sessionmgr.Event{Seq: 1, Type: sessionmgr.EventStateChanged}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- m.Watch(ctx, s.ID, 1, func(e sessionmgr.Event) error {
			return fmt.Errorf("Watch delivered event %d, want none", e.Seq)
		})
	}()
	// The watch checks the live session at least twice before it ends.
	for range 2 {
		select {
		case <-st.ownersC:
		case err := <-done:
			t.Fatalf("Watch of a live session = %v before it ended", err)
		case <-ctx.Done():
			t.Fatal("Watch did not check the session")
		}
	}
	// The session ends with no terminal event on its timeline.
	s.State = sessionmgr.StateClosed
	if err := st.Put(ctx, s); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch = %v, want nil once the record reads terminal", err)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not end after the session ended")
	}
	if g := st.gets.Load(); g != 0 {
		t.Errorf("Watch's checks read the whole record %d times, want 0", g)
	}
	err := m.Watch(ctx, "watchnonewatchnonewatchnon", 0, func(sessionmgr.Event) error { return nil })
	if !errors.Is(err, sessionmgr.ErrNotFound) {
		t.Errorf("Watch of a missing session = %v, want ErrNotFound", err)
	}
}
