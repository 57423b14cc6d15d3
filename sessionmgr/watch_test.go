package sessionmgr_test

import (
	"context"
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
	gets, reads, waits atomic.Int64
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
