package clientid

import (
	"testing"
	"time"
)

// TestMemorySweep checks that Memory forgets ids once they are free, so a
// long-running -dev server does not grow without bound.
func TestMemorySweep(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := Config{LeaseTTL: time.Second, DefaultCooldown: time.Minute}
	m := NewMemory(cfg, WithClock(func() time.Time { return now }))
	for i := range 100 {
		l, err := m.Acquire(t.Context(), Request{Channel: "ch", Base: "v"})
		if err != nil {
			t.Fatalf("Acquire #%d = %v", i, err)
		}
		if err := m.Release(t.Context(), l); err != nil {
			t.Fatalf("Release #%d = %v", i, err)
		}
	}
	if got := len(m.channels["ch"]); got != 100 {
		t.Fatalf("entries while cooling down = %d; want 100", got)
	}
	now = now.Add(cfg.DefaultCooldown) // every id is free now
	if _, err := m.Acquire(t.Context(), Request{Channel: "other"}); err != nil {
		t.Fatal(err)
	}
	if got, ok := m.channels["ch"]; ok {
		t.Errorf("channel ch after its ids are free: %d entries; want it swept", len(got))
	}
	if got := len(m.channels["other"]); got != 1 {
		t.Errorf("entries of channel other = %d; want 1 (the live lease)", got)
	}
}
