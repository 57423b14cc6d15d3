package bench

import (
	"context"
	"testing"
	"time"
)

// TestServerMemoryGoroutines joins 40 sessions on the real server binary
// (default settings, state in memory), each with its Connect stream open
// and its KVS signaling up, and checks issue 14's bound on what each holds
// in the server: at most 5 goroutines, its app stream's included (today:
// the Connect handler, its receiver, the session's actor and its KVS
// socket's reader). VS_SERVER_BIN runs it against another build.
func TestServerMemoryGoroutines(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := serverBin(ctx, t)
	const sessions = 40
	res, err := ServerMemory(ctx, ServerMemoryConfig{ServerBin: bin, Steps: []int{sessions}, GCWait: -1, OpenConcurrency: 8, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OpenErrors+res.StreamErrors > 0 {
		t.Fatalf("%d streams failed to open, %d ended early: %q", res.OpenErrors, res.StreamErrors, res.FirstErrors)
	}
	if len(res.Steps) != 1 {
		t.Fatalf("steps measured = %d, want 1", len(res.Steps))
	}
	if res.Base.Goroutines == 0 {
		t.Fatal("go_goroutines not scraped from the server")
	}
	got := float64(res.Steps[0].Goroutines-res.Base.Goroutines) / sessions
	if got > 5 {
		t.Errorf("server goroutines per joined session = %.2f (%d with %d joined, %d before), want at most 5",
			got, res.Steps[0].Goroutines, sessions, res.Base.Goroutines)
	}
}
