package bench

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/redistest"
)

// TestStreamsBeyondPool opens 60 app streams, three times go-redis's
// default pool here (10 x GOMAXPROCS, 20 on 2 CPUs), on the real server
// binary with default settings, first as Connect streams, then as
// WatchSession streams: CreateSession and GetSession must keep working
// with zero errors and no pool timeouts, no stream may end, no Redis call
// may fail, and Redis's client connections must not grow with the streams.
// VS_SERVER_BIN runs it against another build of the server.
func TestStreamsBeyondPool(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	bin := serverBin(ctx, t)
	for _, kind := range []string{"connect", "watch"} {
		t.Run(kind, func(t *testing.T) {
			url := redistest.Start(t).URL() // private: INFO clients counts only this server
			res, err := Streams(ctx, StreamsConfig{
				ServerBin: bin, RedisURL: url, Streams: 60, Kind: kind,
				Marks: []int{30}, Probes: 60, ProbeConcurrency: 4, OpenConcurrency: 8,
				Log: testWriter{t},
			})
			if err != nil {
				t.Fatal(err)
			}
			if res.OpenErrors+res.StreamErrors+res.Idle.Errors+res.Busy.Errors > 0 {
				t.Errorf("errors: %d streams failed to open, %d ended early, %d idle and %d busy probes failed; first: %q",
					res.OpenErrors, res.StreamErrors, res.Idle.Errors, res.Busy.Errors, res.FirstErrors)
			}
			// The two probes compare like with like: no create of either
			// found its viewer's first clientId taken (which sends it the
			// allocator's longer way).
			if res.Idle.Collisions+res.Busy.Collisions > 0 {
				t.Errorf("clientId collisions in the probes: %v idle, %v open; want none (each probe's viewers are its own)", res.Idle.Collisions, res.Busy.Collisions)
			}
			if res.StoreErrors+res.PoolTimeouts > 0 {
				t.Errorf("the server counted %v failed Redis commands and %v pool timeouts: %q", res.StoreErrors, res.PoolTimeouts, res.FirstErrors)
			}
			// How fast the calls are with the streams open is a benchmark's
			// claim, not this test's: vsload's figure (g) measures it on an
			// idle machine (docs/BENCHMARKS.md). A call that waited for a
			// pooled connection shows above as a pool timeout or an error.
			// The pools grow with the calls in flight (opening runs 8 at a
			// time), never with the streams: the server's connections stay
			// within its default pool (10 per CPU), go-redis's pipeline
			// pool (DefaultPipelinePoolSize, 10: the lease renewals and the
			// ownership watch pipeline) and the few it holds outside them
			// (the timeline follower, heartbeats) and this test's own, far
			// below one per stream.
			half, full := res.Marks[1], res.Marks[2]
			limit := 10*runtime.NumCPU() + 10 + 6
			if half.Streams != 30 || full.Streams != 60 || full.RedisClients > limit || half.RedisClients > limit {
				t.Errorf("Redis connected_clients %d with %d streams open, %d with %d: want at most %d (the pool and a few), whatever the streams",
					half.RedisClients, half.Streams, full.RedisClients, full.Streams, limit)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
