package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// ServerMemoryConfig configures ServerMemory: figure (c) for joined
// sessions, measured on the real server binary.
type ServerMemoryConfig struct {
	// ServerBin is the server binary; empty: go build ./cmd/server of the
	// module this runs in.
	ServerBin string
	// Steps are the numbers of joined sessions at which the server is
	// measured, cumulative. Default 1,000, 5,000 and 10,000.
	Steps []int
	// PerChannel is the sessions per channel (KVS allows 10 viewers).
	// Default 10.
	PerChannel int
	// ConnPerStream gives every app stream a gRPC connection of its own,
	// as apps on their own devices have; otherwise the streams share
	// connections, 80 to one (the server's default allows 100).
	ConnPerStream bool
	// OpenConcurrency bounds the streams being opened at once. Default 32.
	OpenConcurrency int
	// GCWait bounds the wait, at each step, for a garbage collection in
	// the server after the sessions settled (an idle Go process collects
	// at least every 2 minutes). Default 150 s; negative: no wait.
	GCWait time.Duration
	// GCs is how many of the server's collections each step waits for
	// (each within GCWait). Default 1. The runtime halves a parked
	// goroutine's stack at most once per collection, so a stack that
	// started large needs more than one to shrink to what it uses.
	GCs int
	// ProfileDir, if set, starts the server with -pprof and writes its
	// profiles at the last step, after the measurement, into this
	// directory: heap.pb.gz (taken after a forced collection: what the
	// sessions hold live), goroutine.pb.gz and goroutine.txt (debug=2:
	// where each goroutine is parked).
	ProfileDir string
	// RedisURL, if set, runs the server on this Redis (-redis-url: the
	// default pool, the cluster-enabled manager), as a replica of a
	// deployment does; empty: state in memory, the single-replica default.
	RedisURL string
	// Log, if set, gets progress lines.
	Log io.Writer
}

func (c ServerMemoryConfig) withDefaults() ServerMemoryConfig {
	if len(c.Steps) == 0 {
		c.Steps = []int{1000, 5000, 10000}
	}
	c.Steps = slices.Sorted(slices.Values(c.Steps))
	if c.PerChannel <= 0 {
		c.PerChannel = 10
	}
	if c.OpenConcurrency <= 0 {
		c.OpenConcurrency = 32
	}
	if c.GCs <= 0 {
		c.GCs = 1
	}
	if c.GCWait == 0 {
		c.GCWait = 150 * time.Second
	}
	return c
}

// ServerMemSnap is the server process at one moment: VmRSS, and its
// go_memstats and go_goroutines metrics.
type ServerMemSnap struct {
	Sessions   int
	RSS        int64
	HeapInuse  int64
	StackInuse int64
	// HeapFree is heap memory the runtime freed but has not returned to
	// the OS (go_memstats_heap_idle_bytes less heap_released_bytes): the
	// collector's headroom, resident until the scavenger takes it.
	HeapFree int64
	// Runtime is the runtime's own structures: spans, GC metadata, the
	// profiling buckets and the rest (mspan, mcache, gc_sys, buck_hash,
	// other_sys).
	Runtime    int64
	Goroutines int
	FDs        int
	// GCs is go_gc_duration_seconds_count: the collections so far.
	GCs     int
	LoadAvg string
	// Allocated is go_memstats_alloc_bytes_total (every byte allocated so
	// far) at At; with an earlier snapshot it gives the allocation rate.
	Allocated int64
	At        time.Time
	// IdleAlloc is the bytes allocated per second between the first and
	// the last collection the step waited for (zero with one): the
	// server's allocation while its sessions idle, which sets how far the
	// heap climbs towards the collector's goal between collections.
	IdleAlloc float64
}

// ServerMemoryResult is figure (c) on the server binary.
type ServerMemoryResult struct {
	Config   ServerMemoryConfig
	Channels int
	Base     ServerMemSnap
	Steps    []ServerMemSnap
	// OpenErrors are streams that failed to open; StreamErrors streams
	// that ended while they should have stayed open.
	OpenErrors, StreamErrors int
	FirstErrors              []string
}

// ServerMemory starts the real server binary with default settings (state
// in memory) and
// the KVS emulator in this process, warms it (a session created and closed
// on every channel, so each is resolved and its ICE servers cached),
// measures it, then opens Connect streams (each on a session of its own,
// joined) up to each step, waits until every session is AWAITING_OFFER
// (its KVS signaling open) and for the server's next garbage collection,
// and measures it again. The app and the emulator are in this process:
// the server's figures are the service's alone.
func ServerMemory(ctx context.Context, cfg ServerMemoryConfig) (res ServerMemoryResult, err error) {
	cfg = cfg.withDefaults()
	res.Config = cfg
	logf := logTo(cfg.Log)
	raiseFileLimit()
	dir, bin, err := serverWorkdir(ctx, "vsload-memserver-", cfg.ServerBin)
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)

	total := cfg.Steps[len(cfg.Steps)-1]
	res.Channels = (total + cfg.PerChannel - 1) / cfg.PerChannel
	ecfg := kvsemu.DefaultConfig()
	ecfg.Addr = "127.0.0.1:0"
	emu, err := kvsemu.Start(ctx, ecfg)
	if err != nil {
		return res, err
	}
	defer emu.Close()
	arns := make([]string, res.Channels)
	for i := range arns {
		if arns[i], err = emu.CreateChannel(fmt.Sprintf("mem-%d", i), 60*time.Second); err != nil {
			return res, err
		}
	}
	caFile, err := writeCA(dir, emu)
	if err != nil {
		return res, err
	}
	// Default settings: state in memory (no -redis-url) unless a Redis
	// was given.
	args := []string{"-log-level", "warn"}
	if cfg.RedisURL != "" {
		args = append(args, "-redis-url", cfg.RedisURL)
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return res, err
		}
		args = append(args, "-pprof")
	}
	// The runtime's trace of each collection (gctrace, one line on the
	// server's stderr) tells when one happened without asking the server:
	// the metrics scrape allocates about 200 KB in it, and one a second
	// while waiting would add its garbage to what the figure measures (30
	// times the chart's ServiceMonitor, which scrapes every 30 s).
	srv, err := startServerEnv(ctx, bin, dir, emu, caFile, []string{"gctrace=1"}, args...)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nserver log (tail):\n%s", err, srv.logTail(3000))
		}
	}()

	var conns []*grpc.ClientConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dial := func() (*grpc.ClientConn, error) {
		c, err := grpc.NewClient("passthrough:///"+srv.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err == nil {
			conns = append(conns, c)
		}
		return c, err
	}
	// The warm-up's connection; a shared run's streams use it too.
	warm, err := dial()
	if err != nil {
		return res, err
	}
	if p, err := probeCalls(ctx, vspb.NewViewerSessionServiceClient(warm), arns, "warm", len(arns), 8); err != nil || p.Errors > 0 {
		return res, fmt.Errorf("warm: %v, %d errors %q", err, p.Errors, p.FirstErrors)
	}
	// The app's connections: one per stream, or one per 80 streams.
	perConn := 80
	if cfg.ConnPerStream {
		perConn = 1
	}
	// Each step dials the connections of its streams, so that the server's
	// share of a connection (its goroutines, its buffers) counts.
	apis := make([]vspb.ViewerSessionServiceClient, (total+perConn-1)/perConn)
	dialUpTo := func(streams int) error {
		for i := range (streams + perConn - 1) / perConn {
			if apis[i] != nil {
				continue
			}
			c, err := dial()
			if err != nil {
				return err
			}
			c.Connect()
			apis[i] = vspb.NewViewerSessionServiceClient(c)
		}
		return nil
	}

	snap := func(sessions int) (ServerMemSnap, error) {
		m, err := srv.scrape(ctx)
		if err != nil {
			return ServerMemSnap{}, err
		}
		return ServerMemSnap{
			Sessions: sessions, RSS: srv.rss(), FDs: srv.fds(), LoadAvg: loadAvg(),
			HeapInuse: int64(m["go_memstats_heap_inuse_bytes"]), StackInuse: int64(m["go_memstats_stack_inuse_bytes"]),
			HeapFree: int64(m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]),
			Runtime: int64(m["go_memstats_mspan_inuse_bytes"] + m["go_memstats_mcache_inuse_bytes"] + m["go_memstats_gc_sys_bytes"] +
				m["go_memstats_buck_hash_sys_bytes"] + m["go_memstats_other_sys_bytes"]),
			Goroutines: int(m["go_goroutines"]), GCs: int(m["go_gc_duration_seconds_count"]),
			Allocated: int64(m["go_memstats_alloc_bytes_total"]), At: time.Now(),
		}, nil
	}
	// afterGC waits for the server's next GCs collections (up to GCWait
	// each). With profile, it writes the server's allocation profile at the
	// first (second, of three or more) collection and at the last
	// (idle-allocs-first.pb.gz and idle-allocs-last.pb.gz in ProfileDir):
	// `go tool pprof -base` of the two is what the server allocated in
	// between, its sessions idle. The runtime publishes a collection's
	// allocations in the profile a cycle or two late: with three
	// collections or more, the first profile is at the second, past the
	// ramp's.
	afterGC := func(sessions int, profile bool) (ServerMemSnap, error) {
		s, err := snap(sessions)
		if err != nil || cfg.GCWait < 0 {
			return s, err
		}
		var first ServerMemSnap
		firstProfile := min(1, cfg.GCs-2)
		for i := range cfg.GCs {
			before := srv.gcs()
			deadline := time.Now().Add(cfg.GCWait)
			for srv.gcs() == before && time.Now().Before(deadline) {
				select {
				case <-ctx.Done():
					return s, ctx.Err()
				case <-time.After(time.Second):
				}
			}
			if s, err = snap(sessions); err != nil {
				return s, err
			}
			if profile && (i == firstProfile || i == cfg.GCs-1) {
				name := "idle-allocs-first.pb.gz"
				if i > firstProfile {
					name = "idle-allocs-last.pb.gz"
				}
				if err := srv.fetch(ctx, "/debug/pprof/allocs", filepath.Join(cfg.ProfileDir, name)); err != nil {
					return s, fmt.Errorf("profile %s: %w", name, err)
				}
			}
			if i == 0 {
				first = s
			} else if dt := s.At.Sub(first.At).Seconds(); dt > 0 {
				s.IdleAlloc = float64(s.Allocated-first.Allocated) / dt
			}
		}
		return s, nil
	}
	if res.Base, err = afterGC(0, false); err != nil {
		return res, err
	}
	logf("baseline: RSS %.1f MiB, heap %.1f MiB, stacks %.1f MiB, %d goroutines, %d fds, load %s",
		mib(res.Base.RSS), mib(res.Base.HeapInuse), mib(res.Base.StackInuse), res.Base.Goroutines, res.Base.FDs, res.Base.LoadAvg)

	sctx, cancelStreams := context.WithCancel(ctx)
	var (
		settled, openErrs, streamErrs atomic.Int64
		errMu                         sync.Mutex
		wg                            sync.WaitGroup
	)
	defer func() {
		cancelStreams()
		wg.Wait()
	}()
	noteErr := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(res.FirstErrors) < 5 {
			res.FirstErrors = append(res.FirstErrors, fmt.Sprintf(format, args...))
		}
	}
	opened := 0
	for _, step := range cfg.Steps {
		start := time.Now()
		if err := dialUpTo(step); err != nil {
			return res, err
		}
		err := forEach(ctx, step-opened, cfg.OpenConcurrency, func(ctx context.Context, j int) error {
			i := opened + j
			if err := openStream(ctx, sctx, apis[i/perConn], arns[i/cfg.PerChannel], i, "connect", &wg, func() { settled.Add(1) }, func(err error) {
				streamErrs.Add(1)
				noteErr("stream %d ended: %v", i, err)
			}); err != nil {
				openErrs.Add(1)
				noteErr("stream %d: %v", i, err)
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		opened = step
		if err := pollUntil(ctx, 10*time.Minute, func() bool { return settled.Load() >= int64(step)-openErrs.Load() }); err != nil {
			return res, fmt.Errorf("%d of %d sessions reached AWAITING_OFFER: %w", settled.Load(), step, err)
		}
		logf("%6d streams open, every session AWAITING_OFFER after %v", step, time.Since(start).Round(time.Millisecond))
		s, err := afterGC(step, cfg.ProfileDir != "" && cfg.GCs > 1 && step == cfg.Steps[len(cfg.Steps)-1])
		if err != nil {
			return res, err
		}
		res.Steps = append(res.Steps, s)
		d := float64(step)
		logf("%6d joined: RSS %.1f KiB/session, heap %.1f KiB, stacks %.1f KiB, freed heap not returned %.1f KiB, runtime %.1f KiB, %.2f goroutines/session, fds %d, load %s", step,
			kib(s.RSS-res.Base.RSS)/d, kib(s.HeapInuse-res.Base.HeapInuse)/d, kib(s.StackInuse-res.Base.StackInuse)/d,
			kib(s.HeapFree-res.Base.HeapFree)/d, kib(s.Runtime-res.Base.Runtime)/d,
			float64(s.Goroutines-res.Base.Goroutines)/d, s.FDs, s.LoadAvg)
		if s.IdleAlloc > 0 {
			logf("%6d joined: idle allocation %.0f B/s per session (the baseline's %.0f B/s less), between the collections awaited",
				step, (s.IdleAlloc-res.Base.IdleAlloc)/d, res.Base.IdleAlloc)
		}
	}
	if cfg.ProfileDir != "" {
		for name, path := range map[string]string{
			"heap.pb.gz":      "heap?gc=1",
			"goroutine.pb.gz": "goroutine",
			"goroutine.txt":   "goroutine?debug=2",
		} {
			if err := srv.fetch(ctx, "/debug/pprof/"+path, filepath.Join(cfg.ProfileDir, name)); err != nil {
				return res, fmt.Errorf("profile %s: %w", name, err)
			}
		}
		logf("profiles written to %s", cfg.ProfileDir)
	}
	res.OpenErrors, res.StreamErrors = int(openErrs.Load()), int(streamErrs.Load())
	return res, nil
}

// gcs counts the collections the server's runtime traced (gctrace lines,
// "gc N @..."), read from its log.
func (s *serverProc) gcs() int {
	b, _ := os.ReadFile(s.logPath)
	n := 0
	for line := range bytes.Lines(b) {
		if gcTraceLine.Match(line) {
			n++
		}
	}
	return n
}

var gcTraceLine = regexp.MustCompile(`^gc \d+ @`)

func mib(b int64) float64 { return float64(b) / (1 << 20) }
func kib(b int64) float64 { return float64(b) / (1 << 10) }

// fetch GETs path from the server's HTTP port and writes the body to file.
func (s *serverProc) fetch(ctx context.Context, path, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.httpAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
