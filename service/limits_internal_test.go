package service

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gatedLimiter is a RateLimiter whose answers the test decides: each Take
// is counted and, while gate is set, says so on entered and waits for it.
type gatedLimiter struct {
	calls   atomic.Int32
	answer  atomic.Int64 // the delay Take returns
	mu      sync.Mutex
	gate    chan struct{}
	entered chan struct{}
}

func (g *gatedLimiter) Take(ctx context.Context, _ string, _ float64, _ int) (time.Duration, error) {
	g.calls.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	if gate != nil {
		g.entered <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return time.Duration(g.answer.Load()), nil
}

// A refused key whose next token is due is asked about by one call at a
// time: while that probe is out, the others are refused here with the
// refill interval, without reaching the shared limiter. A granted probe
// ends the refusal.
func TestRefusedKeyProbesTheLimiterOnce(t *testing.T) {
	g := &gatedLimiter{entered: make(chan struct{}, 1)}
	s := New(nil, nil, slog.New(slog.DiscardHandler), WithRateLimiter(g))
	const key, perSecond, burst = "create:k", 50.0, 100

	g.answer.Store(int64(time.Nanosecond)) // refused, the next token due at once
	if d := s.take(t.Context(), key, perSecond, burst); d != time.Nanosecond {
		t.Fatalf("first take = %v, want the limiter's refusal 1ns", d)
	}

	// The token is due: the next call probes, and waits at the gate.
	gate := make(chan struct{})
	g.mu.Lock()
	g.gate = gate
	g.mu.Unlock()
	g.answer.Store(0)
	probe := make(chan time.Duration)
	go func() { probe <- s.take(t.Context(), key, perSecond, burst) }()
	<-g.entered
	// (Were they to reach the gated limiter, its deadline would end them.)
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for i := range 20 {
		if d := s.take(ctx, key, perSecond, burst); d != refill(perSecond) {
			t.Fatalf("call %d while the probe is out = %v, want refused for one refill (%v)", i, d, refill(perSecond))
		}
		if d := s.blockedFor(key, time.Now(), perSecond); d != refill(perSecond) {
			t.Fatalf("Tap's view while the probe is out = %v, want %v", d, refill(perSecond))
		}
	}
	if n := g.calls.Load(); n != 2 {
		t.Fatalf("the shared limiter was asked %d times, want 2 (the refusal and the probe)", n)
	}
	g.mu.Lock()
	g.gate = nil
	g.mu.Unlock()
	close(gate)
	if d := <-probe; d != 0 {
		t.Fatalf("the probe = %v, want granted", d)
	}
	// Granted: the key is no longer refused here; calls ask the limiter.
	if d := s.take(t.Context(), key, perSecond, burst); d != 0 {
		t.Fatalf("take after the granted probe = %v, want granted", d)
	}
	if n := g.calls.Load(); n != 3 {
		t.Fatalf("the shared limiter was asked %d times, want 3", n)
	}
}
