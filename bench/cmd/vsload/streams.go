package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/acme/viewersession/bench"
)

// figureG: open app streams on one replica (issue 14, Acceptance 1).
func figureG(ctx context.Context, o options, out io.Writer) error {
	n, err := strconv.Atoi(o.streams)
	if err != nil {
		return fmt.Errorf("-streams: %w", err)
	}
	marks, err := ints(o.streamsMarks)
	if err != nil {
		return fmt.Errorf("-streams-marks: %w", err)
	}
	bin, cleanup, err := serverBinary(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	for _, kind := range strings.Split(o.streamsKinds, ",") {
		kind = strings.TrimSpace(kind)
		srv, err := startRedis(ctx)
		if err != nil {
			return err
		}
		res, err := bench.Streams(ctx, bench.StreamsConfig{
			ServerBin: bin, RedisURL: srv.url, Streams: n, Kind: kind, Marks: marks,
			Probes: o.probes, Hold: o.hold, Log: os.Stderr,
		})
		srv.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", kind, err)
		}
		printStreams(out, res, srv.version)
	}
	return nil
}

func printStreams(out io.Writer, r bench.StreamsResult, redisVersion string) {
	c := r.Config
	what := "Connect streams (joined)"
	if c.Kind == "watch" {
		what = "WatchSession streams (the app's, with the session token)"
	}
	fmt.Fprintf(out, "### (g) %d %s on one replica: the server binary, default settings, a private redis-server %s\n\n", c.Streams, what, redisVersion)
	fmt.Fprintf(out, "Opened in %v (%d at a time, %d sessions per channel, no video), every session AWAITING_OFFER after %v; server RSS with every stream open %.0f MiB.\n\n",
		r.Opened.Round(1e8), c.OpenConcurrency, c.PerChannel, r.Settled.Round(1e8), float64(r.ServerRSS)/(1<<20))
	fmt.Fprintln(out, "| streams open | Redis connected_clients | server fds | load average |")
	fmt.Fprintln(out, "|---:|---:|---:|---|")
	for _, m := range r.Marks {
		fmt.Fprintf(out, "| %d | %d | %d | %s |\n", m.Streams, m.RedisClients, m.ServerFDs, m.LoadAvg)
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "| %d CreateSession + GetSession pairs, %d at a time | CreateSession p50 / p99 | GetSession p50 / p99 | errors | load average |\n", c.Probes, c.ProbeConcurrency)
	fmt.Fprintln(out, "|---|---:|---:|---:|---|")
	for _, p := range []bench.StreamsProbe{r.Idle, r.Busy} {
		fmt.Fprintf(out, "| %d streams open | %.2f / %.2f ms | %.2f / %.2f ms | %d | %s |\n", p.Streams,
			msf(p.Create.P50()), msf(p.Create.P99()), msf(p.Get.P50()), msf(p.Get.P99()), p.Errors, p.LoadAvg)
	}
	ratio := func(busy, idle float64) float64 {
		if idle == 0 {
			return 0
		}
		return busy / idle
	}
	fmt.Fprintf(out, "| ratio (open / idle) | %.2fx / %.2fx | %.2fx / %.2fx | | |\n\n",
		ratio(msf(r.Busy.Create.P50()), msf(r.Idle.Create.P50())), ratio(msf(r.Busy.Create.P99()), msf(r.Idle.Create.P99())),
		ratio(msf(r.Busy.Get.P50()), msf(r.Idle.Get.P50())), ratio(msf(r.Busy.Get.P99()), msf(r.Idle.Get.P99())))
	fmt.Fprintf(out, "Streams that failed to open: %d; that ended while they should have stayed open: %d; the server's failed Redis commands (vss_redis_errors_total): %v; pool timeouts (vss_redis_pool_timeouts_total): %v.\n",
		r.OpenErrors, r.StreamErrors, r.StoreErrors, r.PoolTimeouts)
	fmt.Fprintf(out, "Probe creates whose viewer's first clientId was taken (vss_client_id_collisions_total; 0 when the probes compare like with like): idle %v, open %v.\n",
		r.Idle.Collisions, r.Busy.Collisions)
	if len(r.FirstErrors) > 0 {
		fmt.Fprintf(out, "First errors: %q\n", r.FirstErrors)
	}
	fmt.Fprintln(out)
}
