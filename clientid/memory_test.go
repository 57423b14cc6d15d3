package clientid_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/clientid"
)

// memoryHarness runs each conformance test in a synctest bubble, so the
// suite's waits take no real time and the timing checks are exact.
func memoryHarness() harness {
	return harness{
		newAlloc: func(_ *testing.T, cfg clientid.Config, opts ...clientid.Option) allocator {
			return clientid.NewMemory(cfg, opts...)
		},
		run: func(t *testing.T, name string, f func(t *testing.T)) {
			t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
		},
		poll:  100 * time.Microsecond, // fake time: fine polls cost nothing
		slack: 100 * time.Microsecond,
	}
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, memoryHarness())
}

// TestMemoryWithClock drives Memory by an injected clock instead of synctest.
func TestMemoryWithClock(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	m := clientid.NewMemory(suiteConfig(), clientid.WithClock(func() time.Time { return now }))
	req := clientid.Request{Channel: chanA, Base: "clock"}
	l := mustAcquire(t, m, req)
	if err := m.Release(t.Context(), l); err != nil {
		t.Fatalf("Release = %v; want nil", err)
	}
	now = now.Add(suiteCooldown - time.Nanosecond)
	if got := mustAcquire(t, m, req); got.ID == l.ID {
		t.Fatalf("Acquire 1ns before the cooldown ends = %q; want another id", got.ID)
	}
	now = now.Add(time.Nanosecond)
	if got := mustAcquire(t, m, req); got.ID != l.ID {
		t.Fatalf("Acquire when the cooldown ends = %q; want %q", got.ID, l.ID)
	}
}
