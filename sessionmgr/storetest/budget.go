package storetest

import (
	"testing"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// ListBudget checks that a List whose filter skips more than budget
// sessions (the store's scan budget) returns a short page with a cursor,
// and that following the cursors finds what matches: n sessions on one
// channel, n > budget, of which only the oldest is CONNECTED.
func ListBudget(t *testing.T, st sessionmgr.Store, budget int) {
	t.Helper()
	ch := newChannel()
	n := budget + budget/2
	var oldest sessionmgr.Session
	for i := range n {
		s := newSession(ch)
		s.Created = t0().Add(time.Duration(i) * time.Millisecond)
		if i == 0 {
			s.State = sessionmgr.StateConnected
			oldest = s
		}
		create(t, st, s, n+1)
	}
	f := sessionmgr.ListFilter{ChannelARN: ch.ARN, State: sessionmgr.StateConnected}
	page, next, err := st.List(t.Context(), f, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 0 || next == "" {
		t.Errorf("List(the oldest of %d) first page: %d sessions, cursor %q; want a short page with a cursor (budget %d)", n, len(page), next, budget)
	}
	diff(t, "List(state) followed to the end", ids(listAll(t, st, f, 10)), []sessionmgr.SessionID{oldest.ID})
	diff(t, "List(viewer) followed to the end", ids(listAll(t, st, sessionmgr.ListFilter{ViewerID: oldest.ViewerID}, 10)), []sessionmgr.SessionID{oldest.ID})
}
