package camera

import (
	"fmt"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// newTestRun returns a run that is never started, with a settable clock.
func newTestRun(t *testing.T, now *time.Time) *run {
	t.Helper()
	c, err := New(Config{Dial: dialNothing, PendingCandidateTTL: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return *now }
	r, err := newRun(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func candidateEvent(id string, n int, at time.Time) event {
	return event{kind: evCandidate, clientID: id, received: at,
		cand: webrtc.ICECandidateInit{Candidate: fmt.Sprintf("candidate:%d 1 udp 1 127.0.0.1 5000 typ host", n)}}
}

func TestPendingCandidates(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	now := start
	r := newTestRun(t, &now)

	r.candidate(candidateEvent("v1", 1, start))
	r.candidate(candidateEvent("v1", 2, start.Add(19*time.Second)))
	r.candidate(candidateEvent("v2", 1, start.Add(10*time.Second)))
	if got := len(r.pending["v1"].cands); got != 2 {
		t.Fatalf("pending[v1] holds %d candidates, want 2", got)
	}

	// 21 s after v1's first candidate its queue is dropped; v2's (11 s old)
	// stays.
	now = start.Add(21 * time.Second)
	r.cleanup()
	if _, ok := r.pending["v1"]; ok {
		t.Errorf("pending[v1] survived %v, want dropped after 20s", now.Sub(start))
	}
	if q := r.pending["v2"]; q == nil || len(q.cands) != 1 {
		t.Errorf("pending[v2] = %+v, want 1 candidate", q)
	}

	// A candidate that finds an expired queue starts a fresh one.
	r.candidate(candidateEvent("v2", 2, start.Add(31*time.Second)))
	if q := r.pending["v2"]; len(q.cands) != 1 || !q.first.Equal(start.Add(31*time.Second)) {
		t.Errorf("pending[v2] = %+v, want a fresh queue of 1 from t+31s", q)
	}

	// The queue is bounded.
	for i := range maxPending + 10 {
		r.candidate(candidateEvent("v3", i, now))
	}
	if got := len(r.pending["v3"].cands); got != maxPending {
		t.Errorf("pending[v3] holds %d candidates, want the cap %d", got, maxPending)
	}
}
