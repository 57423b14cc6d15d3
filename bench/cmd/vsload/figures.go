package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/acme/viewersession/bench"
)

func figureA(ctx context.Context, o options, out io.Writer) error {
	levels, chans, rounds, err := figureALevels(o)
	if err != nil {
		return err
	}
	var results []bench.OfferAnswerResult
	for i, n := range levels {
		r, err := bench.OfferAnswer(ctx, bench.OfferAnswerConfig{
			Sessions: n, Channels: pick(chans, i), Rounds: pick(rounds, i), Spacing: o.spacing, Burst: o.burst,
		})
		if err != nil {
			return fmt.Errorf("%d sessions: %w", n, err)
		}
		results = append(results, r)
	}
	mode := fmt.Sprintf("offers %v apart", o.spacing)
	if o.burst {
		mode = "all offers of a round at once"
	}
	fmt.Fprintf(out, "### (a) offer -> answer latency (%s)\n\n", mode)
	fmt.Fprintln(out, "| sessions | channels | rounds | samples/path | direct p50 | service p50 | added p50 | ratio p50 | direct p99 | service p99 | added p99 | ratio p99 |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		c := r.Config
		fmt.Fprintf(out, "| %d | %d | %d | %d | %.2f ms | %.2f ms | %+.2f ms | %.2fx | %.2f ms | %.2f ms | %+.2f ms | %.2fx |\n",
			c.Sessions, c.Channels, c.Rounds, len(r.Service),
			msf(r.Direct.P50()), msf(r.Service.P50()), msf(r.Service.P50()-r.Direct.P50()), ratio(r.Service.P50(), r.Direct.P50()),
			msf(r.Direct.P99()), msf(r.Service.P99()), msf(r.Service.P99()-r.Direct.P99()), ratio(r.Service.P99(), r.Direct.P99()))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Outside the camera (each exchange less the camera's turnaround at the emulator):")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| sessions | direct p50 | service p50 | added p50 | direct p99 | service p99 | added p99 |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(out, "| %d | %.2f ms | %.2f ms | %+.2f ms | %.2f ms | %.2f ms | %+.2f ms |\n", r.Config.Sessions,
			msf(r.DirectHops.P50()), msf(r.ServiceHops.P50()), msf(r.ServiceHops.P50()-r.DirectHops.P50()),
			msf(r.DirectHops.P99()), msf(r.ServiceHops.P99()), msf(r.ServiceHops.P99()-r.DirectHops.P99()))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "The process meanwhile (runtime/metrics): how long runnable goroutines waited for a CPU, and GC stop-the-world pauses:")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| sessions | scheduling wait p50 | p99 | max | GC pauses | p99 | max |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(out, "| %d | %.3f ms | %.2f ms | %.0f ms | %d | %.2f ms | %.2f ms |\n", r.Config.Sessions,
			msf(r.SchedLatency.P50), msf(r.SchedLatency.P99), msf(r.SchedLatency.Max), r.GCPauses.N, msf(r.GCPauses.P99), msf(r.GCPauses.Max))
	}
	fmt.Fprintln(out)
	return nil
}

// figureALevels parses figure (a)'s -sessions, -channels and -rounds.
func figureALevels(o options) (levels, chans, rounds []int, err error) {
	if levels, err = ints(o.sessions); err != nil {
		return nil, nil, nil, fmt.Errorf("-sessions: %w", err)
	}
	if chans, err = ints(o.channels); err != nil {
		return nil, nil, nil, fmt.Errorf("-channels: %w", err)
	}
	if rounds, err = ints(o.rounds); err != nil {
		return nil, nil, nil, fmt.Errorf("-rounds: %w", err)
	}
	return levels, chans, rounds, nil
}

// serverBinary is -server-bin, or the server built into a temporary
// directory that cleanup removes.
func serverBinary(ctx context.Context, o options) (bin string, cleanup func(), err error) {
	if o.serverBin != "" {
		return o.serverBin, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "vsload-server-")
	if err != nil {
		return "", nil, err
	}
	if bin, err = bench.BuildServer(ctx, dir); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func figureB(ctx context.Context, o options, out io.Writer) error {
	levels, err := ints(o.createConcurrency)
	if err != nil {
		return fmt.Errorf("-create-concurrency: %w", err)
	}
	url := o.redisURL
	if url == "" {
		url = os.Getenv("REDIS_URL")
	}
	where := "the Redis at -redis-url / $REDIS_URL"
	if url == "" {
		srv, err := startRedis(ctx)
		if err != nil {
			return err
		}
		defer srv.stop()
		url, where = srv.url, "a private redis-server ("+srv.version+", no persistence)"
	}
	var results []bench.CreateRateResult
	for _, c := range levels {
		r, err := bench.CreateRate(ctx, bench.CreateRateConfig{RedisURL: url, Concurrency: c, Count: o.creates, Runs: o.runs, PoolSize: o.createPool})
		if err != nil {
			return fmt.Errorf("concurrency %d: %w", c, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(out, "### (b) CreateSession per second on Redis (%s)\n\n", where)
	fmt.Fprintln(out, "| concurrency | CreateSession/s | SET NX/s | ratio | create p50 / p99 | SET NX p50 / p99 | Redis round trips / commands per create |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Fprintf(out, "| %d | %.0f | %.0f | %.3fx | %.2f / %.2f ms | %.2f / %.2f ms | %.1f / %.1f |\n",
			r.Config.Concurrency, r.CreatePerSecond, r.SetNXPerSecond, r.CreatePerSecond/r.SetNXPerSecond,
			msf(r.CreateLatency.P50()), msf(r.CreateLatency.P99()), msf(r.SetNXLatency.P50()), msf(r.SetNXLatency.P99()),
			r.RoundTripsPerCreate, r.CommandsPerCreate)
	}
	fmt.Fprintln(out)
	if len(results) > 0 {
		last := results[len(results)-1]
		fmt.Fprintf(out, "Round trips per CreateSession by what they sent (concurrency %d):\n\n", last.Config.Concurrency)
		names := slices.Sorted(maps.Keys(last.RoundTrips))
		for _, n := range names {
			fmt.Fprintf(out, "- %s: %.2f\n", n, last.RoundTrips[n])
		}
		fmt.Fprintln(out)
	}
	return nil
}

func figureC(ctx context.Context, o options, out io.Writer) error {
	steps, err := ints(o.memSessions)
	if err != nil {
		return fmt.Errorf("-mem-sessions: %w", err)
	}
	if o.memServer != "" {
		return figureCServer(ctx, o, steps, out)
	}
	r, err := bench.Memory(ctx, bench.MemoryConfig{Steps: steps, Joined: o.memJoined})
	if err != nil {
		return err
	}
	kind := "PENDING (created, not joined)"
	if o.memJoined {
		kind = "joined, KVS signaling open (AWAITING_OFFER); the app's and the emulator's sides are in the process too"
	}
	fmt.Fprintf(out, "### (c) memory per live session: %s, %d channels of at most 10\n\n", kind, r.Channels)
	fmt.Fprintf(out, "Before the first session: heap in use %.1f MiB, RSS %.1f MiB, %d goroutines.\n\n",
		mib(r.Base.HeapInuse), mib(r.Base.RSS), r.Base.Goroutines)
	fmt.Fprintln(out, "| live sessions | heap in use (Δ) | heap/session | stacks/session | RSS (Δ) | RSS/session | goroutines/session |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Steps {
		fmt.Fprintf(out, "| %d | %.1f MiB | %.1f KiB | %.1f KiB | %.1f MiB | %.1f KiB | %d |\n",
			s.Sessions, mib(s.Delta.HeapInuse), kib(s.PerSession.HeapInuse), kib(s.PerSession.StackInuse),
			mib(s.Delta.RSS), kib(s.PerSession.RSS), s.PerSession.Goroutines)
	}
	fmt.Fprintln(out)
	return nil
}

// figureCServer is figure (c) for joined sessions on the server binary.
func figureCServer(ctx context.Context, o options, steps []int, out io.Writer) error {
	if o.memServer != "shared" && o.memServer != "own" {
		return fmt.Errorf("-mem-server %q: want shared or own", o.memServer)
	}
	state, redisURL := "state in memory", ""
	if o.memRedis {
		srv, err := startRedis(ctx)
		if err != nil {
			return err
		}
		defer srv.stop()
		state, redisURL = "state on a private redis-server "+srv.version, srv.url
	}
	r, err := bench.ServerMemory(ctx, bench.ServerMemoryConfig{ServerBin: o.serverBin, Steps: steps, ConnPerStream: o.memServer == "own", ProfileDir: o.memProfiles, GCs: o.memGCs, RedisURL: redisURL, Log: os.Stderr})
	if err != nil {
		return err
	}
	conns := "sharing gRPC connections, 80 streams to one"
	if r.Config.ConnPerStream {
		conns = "each on a gRPC connection of its own"
	}
	fmt.Fprintf(out, "### (c) memory per joined session on the server binary (default settings, %s): Connect streams %s, KVS signaling open (AWAITING_OFFER), %d channels of at most 10\n\n", state, conns, r.Channels)
	b := r.Base
	fmt.Fprintf(out, "Warmed, before the first session (after a GC): RSS %.1f MiB, heap in use %.1f MiB, stacks %.1f MiB, %d goroutines, %d fds; load %s.\n\n",
		mib(b.RSS), mib(b.HeapInuse), mib(b.StackInuse), b.Goroutines, b.FDs, b.LoadAvg)
	fmt.Fprintln(out, "| joined sessions | RSS (Δ) | RSS/session | heap/session | stacks/session | freed heap kept/session | runtime/session | goroutines/session | fds | load |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, s := range r.Steps {
		n := float64(s.Sessions)
		fmt.Fprintf(out, "| %d | %.1f MiB | %.1f KiB | %.1f KiB | %.1f KiB | %.1f KiB | %.1f KiB | %.2f | %d | %s |\n",
			s.Sessions, mib(s.RSS-b.RSS), kib(s.RSS-b.RSS)/n, kib(s.HeapInuse-b.HeapInuse)/n, kib(s.StackInuse-b.StackInuse)/n,
			kib(s.HeapFree-b.HeapFree)/n, kib(s.Runtime-b.Runtime)/n, float64(s.Goroutines-b.Goroutines)/n, s.FDs, s.LoadAvg)
	}
	fmt.Fprintf(out, "\n%d streams failed to open, %d ended early %q.\n\n", r.OpenErrors, r.StreamErrors, r.FirstErrors)
	return nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
func kib(b int64) float64 { return float64(b) / (1 << 10) }

func figureD(ctx context.Context, o options, out io.Writer) error {
	r, err := bench.ControlPlane(ctx, bench.ControlPlaneConfig{Sessions: o.callsSessions, Speedup: o.callsSpeedup})
	if err != nil {
		return err
	}
	n := float64(r.Config.Sessions)
	fmt.Fprintf(out, "### (d) KVS control-plane calls: %d sessions on one channel over a simulated %v (%dx: ran %v)\n\n",
		r.Config.Sessions, r.Config.Window, r.Config.Speedup, r.Real.Round(time.Second))
	fmt.Fprintln(out, "| call | per channel | per viewer |")
	fmt.Fprintln(out, "|---|---:|---:|")
	for _, op := range []string{"GetSignalingChannelEndpoint", "DescribeSignalingChannel", "GetIceServerConfig"} {
		fmt.Fprintf(out, "| %s | %d | %.3f |\n", op, r.Calls[op], float64(r.Calls[op])/n)
	}
	fmt.Fprintf(out, "| ConnectAsViewer (signaling connects, not control plane) | %d | %.3f |\n", r.Connects, float64(r.Connects)/n)
	fmt.Fprintf(out, "\n%d of %d sessions answered.\n\n", r.Answered, r.Config.Sessions)
	return nil
}

func figureE(ctx context.Context, o options, out io.Writer) error {
	fmt.Fprintf(out, "### (e) recovery after a network change (%d runs per path)\n\n", o.recoveryRuns)
	fmt.Fprintln(out, "| path | camera | policy | RECOVERY_STARTED -> RECOVERED p50 / max | switch -> app sees RECOVERED p50 | switch -> first video packet p50 / max |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|")
	for _, p := range bench.RecoveryPaths() {
		r, err := bench.Recovery(ctx, p, o.recoveryRuns)
		if err != nil {
			return err
		}
		policy := p.Policy.String()
		if p.ICERestartTimeout > 0 {
			policy += fmt.Sprintf(", ice_restart_timeout %v", p.ICERestartTimeout)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %.0f / %.0f ms | %.0f ms | %.0f / %.0f ms |\n", p.Name, p.Camera, policy,
			msf(r.Timeline.P50()), msf(r.Timeline.Max()), msf(r.Recovered.P50()), msf(r.Media.P50()), msf(r.Media.Max()))
	}
	fmt.Fprintln(out)
	return nil
}

func figureF(ctx context.Context, o options, out io.Writer) error {
	r, err := bench.TimerAccuracy(ctx, bench.TimerConfig{
		Sessions: o.timerSessions, PerChannel: o.timerPerChannel, AnswerTimeout: o.timerAnswer, RetryDelay: o.timerRetry,
	})
	if err != nil {
		return err
	}
	c := r.Config
	fmt.Fprintf(out, "### (f) retry timer: %d sessions at once, %d per channel, answer_timeout %v, retry_delay %v, camera fault NoAnswer\n\n",
		c.Sessions, c.PerChannel, c.AnswerTimeout, c.RetryDelay)
	fmt.Fprintln(out, "| what | p50 | p99 | max |")
	fmt.Fprintln(out, "|---|---:|---:|---:|")
	fmt.Fprintf(out, "| second offer vs first + answer_timeout + retry_delay, at the emulator (%d of %d late) | %.2f ms | %.2f ms | %.2f ms |\n",
		r.Late, len(r.RetryError), msf(r.RetryError.P50()), msf(r.RetryError.P99()), msf(r.RetryError.Max()))
	fmt.Fprintf(out, "| FAILED vs second offer + answer_timeout | %.2f ms | %.2f ms | %.2f ms |\n",
		msf(r.FailError.P50()), msf(r.FailError.P99()), msf(r.FailError.Max()))
	fmt.Fprintln(out)
	return nil
}
