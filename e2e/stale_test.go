package e2e

import (
	"context"
	"github.com/acme/viewersession/internal/stacktest"
	"testing"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// A regression test (sessionmgr, Manager.send): after replica C takes a
// session over (the app attached there), the old owner A still has the
// session's actor until it learns of the takeover (its next write, or A's
// ownership watch within OwnerCheck). A request A receives meanwhile must
// be forwarded to C, not answered by the stale actor: a Signal(offer)
// that a round-robin client sends to A was refused FAILED_PRECONDITION
// NOT_JOINED although the session was joined on C, and the session stayed
// AWAITING_OFFER.
func TestSignalToOldOwnerAfterTakeover(t *testing.T) {
	c := newCluster(t)
	a, cc := c.replicas[0], c.replicas[2]
	arn := c.channel(t, "stale")
	cs := create(t, a.api, arn, "stale") // A owns the session (PENDING)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()

	// The app attaches on C (WatchSession with its token): C takes over.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w, err := cc.api.WatchSession(stacktest.WithToken(ctx, token), &vspb.WatchSessionRequest{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	for {
		r, err := w.Recv()
		if err != nil {
			t.Fatalf("WatchSession on C: %v", err)
		}
		if e := r.GetEvent(); e.GetType() == vspb.EventType_EVENT_TYPE_STATE_CHANGED && e.GetState() == vspb.SessionState_SESSION_STATE_SIGNALING {
			break // joined on C
		}
	}
	// Its first Signal goes to A.
	sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer scancel()
	resp, err := a.api.Signal(stacktest.WithToken(sctx, token), &vspb.SignalRequest{Name: name,
		Message: &vspb.SignalRequest_Offer{Offer: &vspb.SessionDescription{Sdp: stacktest.PionOffer(t)}}})
	if err != nil {
		t.Fatalf("Signal(offer) on A right after C took the session over = %v (reason %s), want OK: "+
			"A's stale actor answered instead of forwarding to the owner C", err, reason(err))
	}
	t.Logf("Signal(offer) on A: state %v", resp.GetState())
}
