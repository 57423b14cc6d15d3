package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// EndedLimits checks the bounds on ended sessions of a store built with
// 5 in all and 3 per channel (its New's limits), on channels of its own:
// past a bound the oldest ended session goes first, live ones never.
// Sessions end a few milliseconds apart, so that "oldest" is well defined
// on a store that stamps with a real clock.
func EndedLimits(t *testing.T, st sessionmgr.Store) {
	t.Helper()
	ctx := t.Context()
	a, b := newChannel(), newChannel()
	mk := func(ch sessionmgr.Channel, name string) sessionmgr.Session {
		s := newSession(ch)
		s.ID = sessionmgr.SessionID(fmt.Sprintf("%s-%s", name, newID()))
		return create(t, st, s, 100)
	}
	end := func(s sessionmgr.Session) {
		time.Sleep(5 * time.Millisecond) // distinct end times, not a synchronisation
		s.State, s.Close = sessionmgr.StateClosed, sessionmgr.CloseClientLeft
		if err := st.Save(ctx, s, nil); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(s sessionmgr.Session) bool {
		_, err := st.Get(ctx, s.ID)
		return err == nil
	}
	live := mk(a, "live")
	var onA []sessionmgr.Session
	for i := range 4 { // channel a: 4 ended, bound 3
		onA = append(onA, mk(a, fmt.Sprintf("a%d", i)))
		end(onA[i])
	}
	if exists(onA[0]) || !exists(onA[1]) || !exists(onA[3]) || !exists(live) {
		t.Errorf("after 4 ended on a channel bounded at 3: a0 %v a1 %v a3 %v live %v; want only a0 gone",
			exists(onA[0]), exists(onA[1]), exists(onA[3]), exists(live))
	}
	var onB []sessionmgr.Session
	for i := range 3 { // channel b: 3 more ended: 6 in all, bound 5
		onB = append(onB, mk(b, fmt.Sprintf("b%d", i)))
		end(onB[i])
	}
	if exists(onA[1]) || !exists(onA[2]) || !exists(onB[0]) {
		t.Errorf("after 6 ended in all, bounded at 5: a1 %v a2 %v b0 %v; want only a1 (the oldest) gone", exists(onA[1]), exists(onA[2]), exists(onB[0]))
	}
	if !exists(live) {
		t.Errorf("a live session went with the ended ones")
	}
	// One more on a: within a's bound (a2, a3, a4), past the global one:
	// a2, the oldest of all, goes.
	a4 := mk(a, "a4")
	end(a4)
	if exists(onA[2]) || !exists(onA[3]) || !exists(a4) || !exists(onB[0]) {
		t.Errorf("after a4 ended: a2 %v a3 %v a4 %v b0 %v; want only a2 gone", exists(onA[2]), exists(onA[3]), exists(a4), exists(onB[0]))
	}
}
