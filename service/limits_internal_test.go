package service

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/testclock"
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

// bucketLimiter is a BatchRateLimiter with a token bucket that never
// refills: the tokens it started with are all there ever are. It counts
// the calls and what each asked for.
type bucketLimiter struct {
	mu     sync.Mutex
	tokens int
	asked  []int
}

func (b *bucketLimiter) Take(ctx context.Context, key string, perSecond float64, burst int) (time.Duration, error) {
	n, d, err := b.TakeUpTo(ctx, key, 1, perSecond, burst)
	if n == 0 && err == nil {
		return d, nil
	}
	return 0, err
}

func (b *bucketLimiter) TakeUpTo(_ context.Context, _ string, n int, _ float64, _ int) (int, time.Duration, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.asked = append(b.asked, n)
	if b.tokens == 0 {
		return 0, time.Hour, nil
	}
	got := min(n, b.tokens)
	b.tokens -= got
	return got, 0, nil
}

func (b *bucketLimiter) calls() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.asked...)
}

// newFakeClock is the limits' clock, moved by the test.
func newFakeClock() *testclock.Clock {
	return testclock.New(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
}

func withClock(s *Server, c *testclock.Clock) *Server { s.now = c.Now; return s }

// A busy key borrows its tokens in doubling batches (1, 2, 4, 8, then the
// cap: a fifth of a second's refill), so 100 creates in a burst ask the
// shared limiter 13 times instead of 100; a quiet key (a call every
// 300 ms, past the borrowed tokens' life) asks for one at a time.
func TestBusyKeyBorrowsInBatches(t *testing.T) {
	b := &bucketLimiter{tokens: 1000}
	clk := newFakeClock()
	s := withClock(New(nil, nil, slog.New(slog.DiscardHandler), WithRateLimiter(b)), clk)
	const perSecond, burst = 50.0, 100 // the defaults: batches of at most 10
	for i := range 100 {
		if d := s.take(t.Context(), "create:busy", perSecond, burst); d != 0 {
			t.Fatalf("take %d = %v, want granted", i, d)
		}
		clk.Advance(time.Millisecond)
	}
	asked := b.calls()
	want := []int{1, 2, 4, 8}
	for len(want) < 13 {
		want = append(want, 10)
	}
	if fmt.Sprint(asked) != fmt.Sprint(want) {
		t.Fatalf("a busy key asked the shared limiter for %v (%d calls), want %v", asked, len(asked), want)
	}
	if taken := 1000 - b.tokens; taken > 100+9 {
		t.Errorf("borrowed %d tokens for 100 grants: more than one batch left over", taken)
	}

	for i := range 5 {
		clk.Advance(300 * time.Millisecond)
		if d := s.take(t.Context(), "create:quiet", perSecond, burst); d != 0 {
			t.Fatalf("quiet take %d = %v, want granted", i, d)
		}
	}
	if got := b.calls()[len(asked):]; fmt.Sprint(got) != "[1 1 1 1 1]" {
		t.Errorf("a quiet key asked for %v, want one token at a time", got)
	}
}

// Borrowed tokens never stretch the shared bucket: two replicas borrowing
// from one bucket of 20 grant 20 creates between them, then refuse; and
// tokens left unspent past their life are dropped, not spent later.
func TestBorrowedTokensStayWithinTheBucket(t *testing.T) {
	b := &bucketLimiter{tokens: 20}
	clk := newFakeClock()
	log := slog.New(slog.DiscardHandler)
	r1 := withClock(New(nil, nil, log, WithRateLimiter(b)), clk)
	r2 := withClock(New(nil, nil, log, WithRateLimiter(b)), clk)
	const perSecond, burst = 50.0, 100
	granted := 0
	for i := range 60 {
		s := r1
		if i%3 == 2 {
			s = r2
		}
		if s.take(t.Context(), "create:k", perSecond, burst) == 0 {
			granted++
		}
	}
	if granted > 20 {
		t.Fatalf("granted %d creates from a shared bucket of 20", granted)
	}
	if left := b.tokens; granted+left > 20 || granted < 20-2*9 {
		t.Fatalf("granted %d with %d left in the bucket: at most one unspent batch per replica may be lost", granted, left)
	}

	// A replica's unspent tokens die after creditTTL.
	b2 := &bucketLimiter{tokens: 100}
	s := withClock(New(nil, nil, log, WithRateLimiter(b2)), clk)
	for range 2 { // batches of 1 and 2: one token left over
		s.take(t.Context(), "create:x", perSecond, burst)
	}
	n := len(b2.calls())
	clk.Advance(creditTTL + time.Millisecond)
	s.take(t.Context(), "create:x", perSecond, burst)
	if got := b2.calls(); len(got) != n+1 || got[n] != 1 {
		t.Errorf("after the borrowed tokens' life the next take asked %v (calls before: %d); want one new call for one token", got, n)
	}
}
