// Command vsload runs the Viewer Session Service's load figures (package
// bench) at full size and prints them as the Markdown tables of
// docs/BENCHMARKS.md, each with the machine it ran on.
//
//	go run ./bench/cmd/vsload -figures a -sessions 1,100,1000
//	go run ./bench/cmd/vsload -figures a -web-port both -sessions 1,10,100
//	go run ./bench/cmd/vsload -figures b,c,d,e,f
//
//	go run ./bench/cmd/vsload -figures g -streams 10000
//	go run ./bench/cmd/vsload -figures i
//
// Figures: a offer->answer latency, b CreateSession rate on Redis,
// c memory per live session, d KVS control-plane calls, e recovery after a
// network change, f retry-timer accuracy, g open streams on one replica,
// i a session's cost (CreateSession rate, server CPU and Redis commands per
// full session) on Redis against memory.
// Figures a-f run the service in this process on loopback (figure b
// against a redis-server: -redis-url, else $REDIS_URL, else a private one
// started from REDIS_SERVER_BIN or PATH; with go-redis's default pool
// unless -create-pool-size says otherwise). Figure g runs what production
// runs: the real server binary (go build ./cmd/server, or -server-bin)
// with its default settings on a private redis-server (the default pool,
// the cluster-enabled manager), the KVS emulator in this process. Figure i
// runs the same binary twice, in memory (no -redis-url) and on a private
// redis-server, both up and loaded one at a time.
// -web-port both runs figure a instead on two real server binaries (as
// -server-bin, else go build) started together with default settings and
// in-memory state, one with the web port off and one with -web-addr set,
// the direct baseline and both servers' exchanges interleaved in every
// round (issue 13, acceptance 3). The whole run is bounded by -timeout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	err := run(os.Args[1:], os.Stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "vsload:", err)
		os.Exit(1)
	}
}

// options are the command's flags.
type options struct {
	figures string
	timeout time.Duration
	cpuProf string

	sessions, channels, rounds string
	spacing                    time.Duration
	burst                      bool
	webPort                    string

	redisURL          string
	createConcurrency string
	creates, runs     int
	createPool        int

	streams, streamsMarks, streamsKinds, serverBin string
	probes                                         int
	hold                                           time.Duration

	costCreates, costSessions, costConcurrency, costRuns int
	costProfileDir                                       string
	costProfileSeconds                                   int
	costIdle                                             time.Duration

	memSessions string
	memJoined   bool
	memServer   string
	memRedis    bool
	memProfiles string
	memGCs      int

	callsSessions, callsSpeedup int

	recoveryRuns int

	timerSessions, timerPerChannel int
	timerAnswer, timerRetry        time.Duration
}

func parse(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("vsload", flag.ContinueOnError)
	fs.StringVar(&o.figures, "figures", "a,b,c,d,e,f", "figures to run: a offer->answer, b create rate, c memory, d control-plane calls, e recovery, f retry timer, g open streams, i session cost on Redis against memory (g and i not run by default)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Minute, "bound of the whole run")
	fs.StringVar(&o.cpuProf, "cpuprofile", "", "write a CPU profile of the run to this file")

	fs.StringVar(&o.sessions, "sessions", "1,100,1000", "(a) concurrent sessions per level, comma-separated")
	fs.StringVar(&o.channels, "channels", "0", "(a) channels per level (0: sessions/10, rounded up), comma-separated or one for all")
	fs.StringVar(&o.rounds, "rounds", "0", "(a) rounds per level (0: max(3, 200/sessions)), comma-separated or one for all")
	fs.DurationVar(&o.spacing, "spacing", 20*time.Millisecond, "(a) time between two offers of a round")
	fs.BoolVar(&o.burst, "burst", false, "(a) fire every offer of a round at once")
	fs.StringVar(&o.webPort, "web-port", "", "(a) both: run figure a on two server binaries, the web port off and on, instead of in this process")

	fs.StringVar(&o.redisURL, "redis-url", "", "(b) Redis for the store, the clientIds and the SET NX baseline (default $REDIS_URL, else a private redis-server)")
	fs.StringVar(&o.createConcurrency, "create-concurrency", "1,16,64", "(b) concurrent callers, comma-separated")
	fs.IntVar(&o.creates, "creates", 2000, "(b) CreateSession calls (and SET NX commands) per run")
	fs.IntVar(&o.runs, "create-runs", 3, "(b) runs of each, alternating")
	fs.IntVar(&o.createPool, "create-pool-size", 0, "(b) go-redis pool size of the service (0: go-redis's default, as the server has)")

	fs.StringVar(&o.streams, "streams", "10000", "(g) app streams opened, each on a session of its own")
	fs.StringVar(&o.streamsMarks, "streams-marks", "1000", "(g) stream counts at which Redis's clients are also counted (0 and -streams always are)")
	fs.StringVar(&o.streamsKinds, "streams-kinds", "connect,watch", "(g) runs, one per kind: connect (Connect, joined) or watch (WatchSession with the session token)")
	fs.StringVar(&o.serverBin, "server-bin", "", "(g, i, a with -web-port both) the server binary (default: go build ./cmd/server)")
	fs.DurationVar(&o.hold, "streams-hold", 0, "(g) keep the streams open this long after the last probe (to profile the server)")
	fs.IntVar(&o.probes, "probes", 10000, "(g) CreateSession + GetSession pairs timed idle and with every stream open (enough to last several seconds: the loaded server's collections in their share)")

	fs.IntVar(&o.costCreates, "cost-creates", 2000, "(i) CreateSession calls per timed run")
	fs.IntVar(&o.costSessions, "cost-sessions", 500, "(i) full sessions per server")
	fs.IntVar(&o.costConcurrency, "cost-concurrency", 16, "(i) concurrent callers")
	fs.IntVar(&o.costRuns, "cost-runs", 3, "(i) create runs per server, and parts of the full sessions, the servers alternating")
	fs.StringVar(&o.costProfileDir, "cost-profile-dir", "", "(i) write CPU profiles of each server's first create run and first full-session part here (servers started with -pprof)")
	fs.IntVar(&o.costProfileSeconds, "cost-profile-seconds", 2, "(i) length of each -cost-profile-dir profile: size -cost-creates and -cost-sessions so that a part outlasts it")
	fs.DurationVar(&o.costIdle, "cost-idle", 5*time.Second, "(i) how long Redis's background commands are counted with both servers idle (negative: not counted)")

	fs.StringVar(&o.memSessions, "mem-sessions", "1000,5000,10000", "(c) live sessions at which memory is measured")
	fs.StringVar(&o.memProfiles, "mem-profile-dir", "", "(c) with -mem-server: start the server with -pprof and write its heap profile (after a forced GC) and goroutine profiles (pb.gz, and debug=2 text) at the last step into this directory, and with -mem-gcs 2 or more its allocation profiles at the first and the last collection awaited (idle-allocs-first/last.pb.gz: pprof -base gives what it allocated with its sessions idle)")
	fs.IntVar(&o.memGCs, "mem-gcs", 1, "(c) with -mem-server: the server's collections each step waits for before it measures (a parked goroutine's stack halves at most once per collection)")
	fs.BoolVar(&o.memJoined, "mem-joined", false, "(c) join every session (signaling open) instead of leaving it PENDING")
	fs.BoolVar(&o.memRedis, "mem-redis", false, "(c) with -mem-server: the server on a private redis-server (-redis-url: the default pool, the cluster-enabled manager) instead of state in memory")
	fs.StringVar(&o.memServer, "mem-server", "", "(c) shared or own: joined sessions on the server binary (-server-bin), the app streams sharing gRPC connections (80 to one) or each on its own, instead of in this process")

	fs.IntVar(&o.callsSessions, "calls-sessions", 100, "(d) sessions on the channel over the simulated 10 minutes")
	fs.IntVar(&o.callsSpeedup, "calls-speedup", 10, "(d) time compression (300 must divide by it)")

	fs.IntVar(&o.recoveryRuns, "recovery-runs", 5, "(e) runs per recovery path")

	fs.IntVar(&o.timerSessions, "timer-sessions", 100, "(f) sessions, all at once")
	fs.IntVar(&o.timerPerChannel, "timer-per-channel", 1, "(f) sessions per channel")
	fs.DurationVar(&o.timerAnswer, "timer-answer-timeout", 30*time.Second, "(f) answer timeout")
	fs.DurationVar(&o.timerRetry, "timer-retry-delay", 6*time.Second, "(f) retry delay")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

func run(args []string, out io.Writer) error {
	o, err := parse(args)
	if err != nil {
		return err
	}
	// The pion and emulator loggers default to discarding; keep the default
	// logger quiet too.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, o.timeout)
	defer cancelT()

	if o.cpuProf != "" {
		f, err := os.Create(o.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Fprintf(out, "%s\n\n", machine())
	for _, fig := range strings.Split(o.figures, ",") {
		start := time.Now()
		var err error
		switch strings.TrimSpace(fig) {
		case "a":
			switch o.webPort {
			case "":
				err = figureA(ctx, o, out)
			case "both":
				err = figureAWebPort(ctx, o, out)
			default:
				err = fmt.Errorf("-web-port %q: want both or nothing", o.webPort)
			}
		case "b":
			err = figureB(ctx, o, out)
		case "c":
			err = figureC(ctx, o, out)
		case "d":
			err = figureD(ctx, o, out)
		case "e":
			err = figureE(ctx, o, out)
		case "f":
			err = figureF(ctx, o, out)
		case "g":
			err = figureG(ctx, o, out)
		case "i":
			err = figureI(ctx, o, out)
		case "":
			continue
		default:
			err = fmt.Errorf("unknown figure %q", fig)
		}
		if err != nil {
			return fmt.Errorf("figure %s: %w", fig, err)
		}
		fmt.Fprintf(out, "(figure %s took %v)\n\n", fig, time.Since(start).Round(time.Second))
	}
	return nil
}

// machine describes where the run happens.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	return fmt.Sprintf("Machine: %s, %d CPUs (GOMAXPROCS %d), %s %s/%s; load average at start %s; %s",
		model, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH,
		load, time.Now().UTC().Format("2006-01-02 15:04 UTC"))
}

// ints parses a comma-separated list of integers.
func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", f, err)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

// pick returns list[i], or its only element, or 0.
func pick(list []int, i int) int {
	switch {
	case i < len(list):
		return list[i]
	case len(list) == 1:
		return list[0]
	}
	return 0
}

// msf is d in milliseconds.
func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
