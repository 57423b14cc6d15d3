package testclock

import (
	"sync"
	"testing"
	"time"
)

// The clock stands still until moved, and concurrent moves all count.
func TestClock(t *testing.T) {
	start := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	c := New(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { c.Advance(time.Millisecond) })
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(10*time.Millisecond); !got.Equal(want) {
		t.Errorf("after ten moves of 1 ms: %v, want %v", got, want)
	}
}
