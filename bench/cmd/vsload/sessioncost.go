package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/acme/viewersession/bench"
)

// figureI: a session's cost on the real server binary, Redis against
// memory (issue 14, Acceptance 2).
func figureI(ctx context.Context, o options, out io.Writer) error {
	bin, cleanup, err := serverBinary(ctx, o)
	if err != nil {
		return err
	}
	defer cleanup()
	rs, err := startRedis(ctx)
	if err != nil {
		return err
	}
	res, err := bench.SessionCost(ctx, bench.SessionCostConfig{
		ServerBin: bin, RedisURL: rs.url, Creates: o.costCreates, Sessions: o.costSessions,
		Concurrency: o.costConcurrency, Runs: o.costRuns, Idle: o.costIdle, Log: os.Stderr,
		ProfileDir: o.costProfileDir, ProfileSeconds: o.costProfileSeconds,
	})
	rs.stop()
	if err != nil {
		return err
	}
	printSessionCost(out, res, rs.version)
	return nil
}

func printSessionCost(out io.Writer, r bench.SessionCostResult, redisVersion string) {
	c := r.Config
	m, d := r.Memory, r.Redis
	fmt.Fprintf(out, "### (i) a session's cost on the server binary, default settings: in memory against a private %s\n\n", redisVersion)
	fmt.Fprintf(out, "Two server processes, both up, loaded one at a time: memory (no -redis-url) and Redis (-redis-url: the default pool, the cluster-enabled manager). "+
		"CreateSession: %d runs of %d calls each, %d at a time, over channels of at most 10, the servers alternating, the sessions closed untimed between runs. "+
		"Full sessions: %d on each (create; WatchSession with the session token; a pion offer by Signal; the camera's answer; "+
		"a state report of ICE and peer connected; CONNECTED; CloseSession; CLOSED), %d at a time on %d channels with a camera each, in %d parts alternating. "+
		"Load average at start %s, at end %s.\n\n",
		c.Runs, c.Creates, c.Concurrency, c.Sessions, c.Concurrency, c.SessionChannels, c.Runs, r.LoadStart, r.LoadEnd)
	fmt.Fprintln(out, "| mode | CreateSession/s | create p50 / p99 | server CPU per full session | full session p50 / p99 | Redis commands per create | Redis commands per full session | total_commands_processed per full session |")
	fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, x := range []bench.SessionCostMode{m, d} {
		perCreate, perSession, processed := "-", "-", "-"
		if x.Mode == "redis" {
			creates := float64(c.Runs * c.Creates)
			perCreate = fmt.Sprintf("%.2f", float64(x.CreateCommands)/creates)
			perSession = fmt.Sprintf("%.1f", float64(x.SessionCommands)/float64(x.Sessions))
			processed = fmt.Sprintf("%.1f", float64(x.SessionProcessed)/float64(x.Sessions))
		}
		fmt.Fprintf(out, "| %s | %.0f | %.2f / %.2f ms | %.2f ms | %.2f / %.2f ms | %s | %s | %s |\n", x.Mode,
			x.CreatePerSecond, msf(x.Create.P50()), msf(x.Create.P99()), msf(x.CPUPerSession()),
			msf(x.Session.P50()), msf(x.Session.P99()), perCreate, perSession, processed)
	}
	fmt.Fprintf(out, "| Redis / memory | %.2fx (target >= 0.70x) | %.2fx / %.2fx | %.2fx (target <= 1.50x) | %.2fx / %.2fx | | | |\n\n",
		d.CreatePerSecond/m.CreatePerSecond, ratio(d.Create.P50(), m.Create.P50()), ratio(d.Create.P99(), m.Create.P99()),
		ratio(d.CPUPerSession(), m.CPUPerSession()), ratio(d.Session.P50(), m.Session.P50()), ratio(d.Session.P99(), m.Session.P99()))

	if d.Sessions > 0 {
		names := slices.SortedFunc(maps.Keys(d.ByCommand), func(a, b string) int {
			return cmp.Or(cmp.Compare(d.ByCommand[b], d.ByCommand[a]), strings.Compare(a, b))
		})
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s %.2f", n, float64(d.ByCommand[n])/float64(d.Sessions)))
		}
		fmt.Fprintf(out, "Redis commands per full session by name (INFO commandstats; commands run inside scripts count too, so these are commands, not round trips): %s.\n\n", strings.Join(parts, ", "))
	}
	fmt.Fprintf(out, "With both servers idle Redis ran %.1f commands/s (the Redis-mode server's background, inside every count above: %.1f per full session at the full sessions' pace). "+
		"Full sessions took %.1f s (memory) and %.1f s (Redis) of wall time; server CPU over them %.2f s and %.2f s. "+
		"CreateSession calls that waited out the per-key rate limit: %d (memory), %d (Redis). "+
		"The Redis-mode server's failed Redis commands and pool timeouts: %v. Server RSS at the end: %.0f MiB (memory), %.0f MiB (Redis).\n\n",
		r.IdleCommandsPerSecond, r.IdleCommandsPerSecond*d.SessionWall.Seconds()/float64(max(d.Sessions, 1)),
		m.SessionWall.Seconds(), d.SessionWall.Seconds(), m.SessionCPU.Seconds(), d.SessionCPU.Seconds(),
		m.RateLimited, d.RateLimited, d.StoreErrors, mib(m.RSS), mib(d.RSS))
	creates := time.Duration(c.Runs * c.Creates)
	fmt.Fprintf(out, "CPU per CreateSession over the timed creates: the server %.0f us (memory) and %.0f us (Redis), %.2fx; redis-server %.0f us (INFO cpu), so Redis mode's two processes %.0f us, %.2fx memory mode's server. "+
		"Per full session: redis-server %.2f ms, so %.2f ms in all, %.2fx. (The load generator's CPU is the same in both modes and in neither figure.)\n\n",
		us(m.CreateCPU/creates), us(d.CreateCPU/creates), ratio(d.CreateCPU, m.CreateCPU), us(d.RedisCreateCPU/creates),
		us((d.CreateCPU+d.RedisCreateCPU)/creates), ratio(d.CreateCPU+d.RedisCreateCPU, m.CreateCPU),
		msf(d.RedisSessionCPU/time.Duration(max(d.Sessions, 1))), msf((d.SessionCPU+d.RedisSessionCPU)/time.Duration(max(d.Sessions, 1))),
		ratio(d.SessionCPU+d.RedisSessionCPU, m.SessionCPU))
	if d.Sessions > 0 {
		names := slices.SortedFunc(maps.Keys(d.SessionTripsBy), func(a, b string) int {
			return cmp.Or(cmp.Compare(d.SessionTripsBy[b], d.SessionTripsBy[a]), strings.Compare(a, b))
		})
		var parts []string
		for _, n := range names {
			if v := d.SessionTripsBy[n] / float64(d.Sessions); v >= 0.005 {
				parts = append(parts, fmt.Sprintf("%s %.2f", n, v))
			}
		}
		fmt.Fprintf(out, "The Redis-mode server's Redis round trips (vss_redis_round_trips_total): %.2f per create, %.2f per full session (%s).\n\n",
			d.CreateTrips/float64(c.Runs*c.Creates), d.SessionTrips/float64(d.Sessions), strings.Join(parts, ", "))
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
