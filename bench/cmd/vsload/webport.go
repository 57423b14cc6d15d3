package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/acme/viewersession/bench"
)

// figureAWebPort: figure (a) on two real server processes, the web port
// off and on (issue 13, acceptance 3).
func figureAWebPort(ctx context.Context, o options, out io.Writer) error {
	levels, chans, rounds, err := figureALevels(o)
	if err != nil {
		return err
	}
	if o.burst {
		return fmt.Errorf("-burst: not with -web-port both")
	}
	bin, cleanup, err := serverBinary(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	var results []bench.WebPortResult
	for i, n := range levels {
		r, err := bench.WebPort(ctx, bench.WebPortConfig{
			ServerBin: bin, Sessions: n, Channels: pick(chans, i), Rounds: pick(rounds, i), Spacing: o.spacing, Log: os.Stderr,
		})
		if err != nil {
			return fmt.Errorf("%d sessions: %w", n, err)
		}
		results = append(results, r)
	}
	fmt.Fprintf(out, "### (a) offer -> answer latency, web port off and on (offers %v apart; two server binaries, default settings, in-memory state)\n\n", o.spacing)
	fmt.Fprintln(out, "| sessions/path | channels/path | rounds | samples/path | direct p50 | web off p50 | web on p50 | on/off p50 | direct p99 | web off p99 | web on p99 | on/off p99 |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		c := r.Config
		fmt.Fprintf(out, "| %d | %d | %d | %d | %.2f ms | %.2f ms | %.2f ms | %.3fx | %.2f ms | %.2f ms | %.2f ms | %.3fx |\n",
			c.Sessions, c.Channels, c.Rounds, len(r.WebOn),
			msf(r.Direct.P50()), msf(r.WebOff.P50()), msf(r.WebOn.P50()), ratio(r.WebOn.P50(), r.WebOff.P50()),
			msf(r.Direct.P99()), msf(r.WebOff.P99()), msf(r.WebOn.P99()), ratio(r.WebOn.P99(), r.WebOff.P99()))
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "The servers over the rounds (CPU time user + system; resident memory after them) and the load average after them:")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| sessions/path | web off CPU | web on CPU | web off RSS | web on RSS | load average |")
	fmt.Fprintln(out, "|---:|---:|---:|---:|---:|---|")
	for _, r := range results {
		fmt.Fprintf(out, "| %d | %.2f s | %.2f s | %.1f MiB | %.1f MiB | %s |\n", r.Config.Sessions,
			r.OffCPU.Seconds(), r.OnCPU.Seconds(), mib(r.OffRSS), mib(r.OnRSS), r.LoadAvg)
	}
	fmt.Fprintln(out)
	if len(results) > 0 {
		fmt.Fprintf(out, "The web-on server's web port, Connect health check (HTTP/1.1, JSON): %s\n\n", results[0].WebCheck)
	}
	return nil
}
