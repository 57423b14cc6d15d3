package sessionmgr_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

// storedObserver is a SessionObserver that records the events it is told.
type storedObserver struct {
	recObserver
	mu   sync.Mutex
	seqs []uint64
}

func (o *storedObserver) SessionEventOf(_ sessionmgr.SessionRef, e sessionmgr.Event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seqs = append(o.seqs, e.Seq)
}

func (o *storedObserver) told() []uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]uint64(nil), o.seqs...)
}

// A SessionObserver (webhooks) hears of an event only once it is stored:
// the events of an owner fenced by a takeover never reach the timeline,
// and no one is told of them.
func TestSessionObserverHearsOnlyStoredEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memstore.New()
		obs := &storedObserver{}
		h := newHarnessStore(t, &fakeCamera{answerFrom: 1}, st, sessionmgr.WithObserver(obs))
		s := h.create(t, "fenced")
		synctest.Wait()
		if got := obs.told(); len(got) != 2 {
			t.Fatalf("after create: told of events %v, want the 2 stored", got)
		}
		// Another replica takes the session over: this one's writes are
		// refused from now on.
		if _, err := st.Takeover(context.Background(), s.ID, "replica-b", s.Epoch); err != nil {
			t.Fatal(err)
		}
		// The app never joins: after the resume grace the actor ends the
		// session (CLIENT_GONE), and its write is refused.
		time.Sleep(sessionmgr.DefaultOptions().ResumeGrace + time.Second) // fake time
		synctest.Wait()
		stored, err := st.Events(context.Background(), s.ID, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		var want []uint64
		for _, e := range stored {
			want = append(want, e.Seq)
		}
		if len(want) != 2 {
			t.Fatalf("the timeline after the takeover holds %v, want only the 2 events of the create (this replica is fenced)", want)
		}
		if got := obs.told(); len(got) != len(want) {
			t.Errorf("told of events %v, the timeline holds %v: an event that was never stored was told", got, want)
		}
	})
}
