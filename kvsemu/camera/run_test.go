package camera

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
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

// newOfferRun returns a run that is never started, in mode, and a function
// that hands it one offer from client id and returns what the camera did.
// The run's sessions are closed when the test ends.
func newOfferRun(t *testing.T, mode Mode) (*run, func(id string) outcome) {
	t.Helper()
	c, err := New(Config{Mode: mode, Dial: dialNothing})
	if err != nil {
		t.Fatal(err)
	}
	var last outcome
	c.hooks.offerDone = func(_ string, o outcome) { last = o }
	r, err := newRun(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.closeAll()
		r.sessWG.Wait()
	})
	return r, func(id string) outcome {
		last = outcomeUnknown
		r.offer(event{kind: evOffer, clientID: id, offer: viewerOffer(t), received: time.Now()})
		return last
	}
}

// viewerOffer returns the SDP offer of a fresh receive-only video peer
// connection, which is closed when the test ends.
func viewerOffer(t *testing.T) webrtc.SessionDescription {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.GracefulClose() })
	if _, err := pc.AddTransceiverFromKind(webrtc.RTPCodecTypeVideo,
		webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	o, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestCSampleOnlyCleanupRemoves: a c-sample camera ignores every offer from
// a client id while its session exists, also once the session's peer
// connection is dead; only a cleanup pass removes the session, and the next
// offer is answered from a new peer connection.
func TestCSampleOnlyCleanupRemoves(t *testing.T) {
	r, offer := newOfferRun(t, CSample)
	if got := offer("v1"); got != outcomeAnswered {
		t.Fatalf("first offer: %v, want %v", got, outcomeAnswered)
	}
	if got := offer("v1"); got != outcomeLiveSession {
		t.Fatalf("offer from a live client id: %v, want %v", got, outcomeLiveSession)
	}

	// The peer connection dies: its state callback marks the session and
	// wakes the loop (which does not run here).
	s := r.sessions["v1"]
	if err := s.pc.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(waitFor)
	for !s.terminated.Load() {
		select {
		case <-r.wake:
		case <-deadline:
			t.Fatalf("session not marked dead within %v of its peer connection closing", waitFor)
		}
	}
	if got := offer("v1"); got != outcomeLiveSession {
		t.Fatalf("offer before the cleanup pass: %v, want %v", got, outcomeLiveSession)
	}
	r.cleanup()
	if _, ok := r.sessions["v1"]; ok {
		t.Fatal("cleanup pass kept the dead session")
	}
	if got := offer("v1"); got != outcomeAnswered {
		t.Fatalf("offer after the cleanup pass: %v, want %v", got, outcomeAnswered)
	}
	if r.sessions["v1"] == s {
		t.Error("answered from the dead session, want a new one")
	}
	if got := r.c.Stats(); got.AnswersSent != 2 || got.IgnoredOffers != 2 || got.Sessions != 1 {
		t.Errorf("Stats() = %+v, want 2 answers, 2 ignored, 1 session", got)
	}
}

// TestCleanupPeriod: the loop runs a cleanup pass every 5 s by default
// (the C sample's SAMPLE_SESSION_CLEANUP_WAIT_PERIOD), and at once when
// woken, which restarts the period.
func TestCleanupPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{Dial: dialNothing})
		if err != nil {
			t.Fatal(err)
		}
		var passes atomic.Int32
		c.hooks.cleanupDone = func() { passes.Add(1) }
		r, err := newRun(c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.loop(ctx)
		}()
		check := func(after time.Duration, want int32) {
			t.Helper()
			time.Sleep(after)
			synctest.Wait()
			if got := passes.Load(); got != want {
				t.Fatalf("%d cleanup passes, want %d", got, want)
			}
		}
		check(5*time.Second-time.Nanosecond, 0)
		check(time.Nanosecond, 1)
		check(5*time.Second, 2)
		check(2*time.Second, 2)
		r.wakeCleanup()
		check(0, 3)
		check(5*time.Second-time.Nanosecond, 3)
		check(time.Nanosecond, 4)
		cancel()
		<-done
	})
}

func TestIsDead(t *testing.T) {
	tests := []struct {
		mode Mode
		give webrtc.PeerConnectionState
		want bool
	}{
		{CSample, webrtc.PeerConnectionStateConnected, false},
		{CSample, webrtc.PeerConnectionStateDisconnected, true},
		{CSample, webrtc.PeerConnectionStateFailed, true},
		{CSample, webrtc.PeerConnectionStateClosed, true},
		{JSSample, webrtc.PeerConnectionStateDisconnected, false},
		{JSSample, webrtc.PeerConnectionStateFailed, true},
		{RestartCapable, webrtc.PeerConnectionStateDisconnected, false},
		{RestartCapable, webrtc.PeerConnectionStateClosed, true},
	}
	for _, tt := range tests {
		if got := isDead(tt.mode, tt.give); got != tt.want {
			t.Errorf("isDead(%s, %s) = %v, want %v", tt.mode, tt.give, got, tt.want)
		}
	}
}
