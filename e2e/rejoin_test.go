package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/stacktest"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// TestForwardedStreamOutlivesOwner: an app's stream on replica B whose
// session A owns (B forwarded the join to A) stays the session's after A
// is killed, though the app sends nothing. B adopts the session and joins
// the stream again, so the new actor counts it and recovers from the move
// at once (a new clientId on the timeline), and the session outlives its
// resume grace. A replica that forgot the stream let the adopted session
// end CLOSED/CLIENT_GONE a grace later, under the open stream.
func TestForwardedStreamOutlivesOwner(t *testing.T) {
	c := newClusterOf(t, clusterSpec{ids: []string{"A", "B"}})
	a, b := c.replicas[0], c.replicas[1]
	arn := c.channel(t, "rejoin")
	cs := create(t, a.api, arn, "quiet") // A owns the session
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := b.api.WatchSession(stacktest.WithToken(ctx, token), &vspb.WatchSessionRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan *vspb.SessionEvent, 256)
	go func() {
		defer close(events)
		for {
			r, err := w.Recv()
			if err != nil {
				return
			}
			if e := r.GetEvent(); e != nil {
				events <- e
			}
		}
	}()
	var seen []*vspb.SessionEvent
	next := func(what string, within time.Duration, match func(*vspb.SessionEvent) bool) *vspb.SessionEvent {
		t.Helper()
		timeout := time.After(within)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("waiting for %s: the app's stream ended (timeline:%s)", what, summary(seen))
				}
				seen = append(seen, e)
				if match(e) {
					return e
				}
			case <-timeout:
				t.Fatalf("no %s within %v (timeline:%s)", what, within, summary(seen))
			}
		}
	}
	isState := func(s vspb.SessionState) func(*vspb.SessionEvent) bool {
		return func(e *vspb.SessionEvent) bool {
			return e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED && e.GetState() == s
		}
	}
	next("SIGNALING (joined through B)", 30*time.Second, isState(vspb.SessionState_SESSION_STATE_SIGNALING))

	a.Kill()
	if _, _, err := a.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	moved := next("OWNER_CHANGED", 60*time.Second, isType(vspb.EventType_EVENT_TYPE_OWNER_CHANGED))
	t.Logf("OWNER_CHANGED %v after the kill: %s", time.Since(killed).Round(time.Millisecond), moved.GetMessage())
	next("a new clientId after the move (the stream joined again)", 20*time.Second, isType(vspb.EventType_EVENT_TYPE_CLIENT_ID_ALLOCATED))
	t.Logf("new clientId %v after the kill", time.Since(killed).Round(time.Millisecond))

	// A resume grace and a margin after the move: the session is still
	// the open stream's.
	quiet := time.After(time.Until(moved.GetTime().AsTime().Add(resumeGrace + 5*time.Second)))
	for done := false; !done; {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("the app's stream ended after the move (timeline:%s)", summary(seen))
			}
			seen = append(seen, e)
			if e.GetType() == vspb.EventType_EVENT_TYPE_CLOSED || isState(vspb.SessionState_SESSION_STATE_CLOSED)(e) {
				t.Fatalf("the session closed %v after the kill with the app's stream open: %s (timeline:%s)",
					time.Since(killed).Round(time.Millisecond), e.GetMessage(), summary(seen))
			}
		case <-quiet:
			done = true
		}
	}
	gctx, gcancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer gcancel()
	resp, err := b.api.GetSession(backend(gctx), &vspb.GetSessionRequest{Name: name})
	if err != nil || resp.GetSession().GetState() == vspb.SessionState_SESSION_STATE_CLOSED {
		t.Fatalf("GetSession on B %v after the kill = %v, %v; want a live session", time.Since(killed).Round(time.Millisecond), resp.GetSession().GetState(), err)
	}
	t.Logf("%v after the kill the session is %v (timeline:%s)", time.Since(killed).Round(time.Millisecond), resp.GetSession().GetState(), summary(seen))
}
