package clientid_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/clientid/internal/leaselog"
	"github.com/acme/viewersession/internal/redistest"
)

// The many-process test runs this test binary again as workers; these
// environment variables tell a worker what to do (see TestMain).
const (
	workerEnv       = "CLIENTID_TEST_WORKER" // set: run as a worker
	workerRedisEnv  = "CLIENTID_TEST_WORKER_REDIS"
	workerPrefixEnv = "CLIENTID_TEST_WORKER_PREFIX"
	workerLogEnv    = "CLIENTID_TEST_WORKER_LOG"
	workerSeedEnv   = "CLIENTID_TEST_WORKER_SEED"
)

const (
	procs            = 4                      // worker processes alive at once
	workerGoroutines = 8                      // allocating goroutines per worker
	chaosFor         = 6 * time.Second        // how long the test kills and restarts workers
	workerLifetime   = 2 * time.Minute        // a worker's backstop if its parent vanished
	workerHoldMax    = 200 * time.Millisecond // a lease is held for a random time up to this
)

// workerConfig is shared by the test and its workers: short durations so
// ids held by killed workers come back within a second.
func workerConfig(prefix string) clientid.Config {
	return clientid.Config{
		LeaseTTL:        300 * time.Millisecond,
		DefaultCooldown: 500 * time.Millisecond,
		MaxSuffix:       5,
		KeyPrefix:       prefix,
		Timeout:         5 * time.Second,
	}
}

// runWorker is a worker process's main: it allocates against Redis and
// logs every lease until it is killed, its parent goes away (stdin closes)
// or workerLifetime passes. Anything it writes to stderr fails the test.
func runWorker() int {
	if err := work(); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	return 0
}

func work() error {
	ctx, cancel := context.WithTimeout(context.Background(), workerLifetime)
	defer cancel()
	seed, err := strconv.ParseUint(os.Getenv(workerSeedEnv), 10, 64)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	opt, err := redis.ParseURL(os.Getenv(workerRedisEnv))
	if err != nil {
		return err
	}
	opt.ContextTimeoutEnabled = true
	opt.PoolSize = workerGoroutines
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	cfg := workerConfig(os.Getenv(workerPrefixEnv))
	a := clientid.NewRedis(rdb, cfg)
	w, err := leaselog.Create(os.Getenv(workerLogEnv))
	if err != nil {
		return err
	}
	defer w.Close()

	var wg sync.WaitGroup
	// The parent keeps our stdin open; EOF means it is gone. This reader
	// ends with the process (a blocked read of stdin cannot be cancelled).
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	var seq atomic.Int64
	errs := make(chan error, workerGoroutines)
	for g := range workerGoroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			if err := workerLoop(ctx, a, cfg, w, &seq, rng); err != nil {
				errs <- err
				cancel()
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// workerLoop acquires, holds (renewing every TTL/3), and releases leases
// until ctx ends. It logs each step the way leaselog wants: acquire and
// renew after they succeed, release before it is called.
func workerLoop(ctx context.Context, a allocator, cfg clientid.Config, w *leaselog.Writer, seq *atomic.Int64, rng *rand.Rand) error {
	for ctx.Err() == nil {
		ch := stressChannels[rng.IntN(len(stressChannels))]
		req := clientid.Request{Channel: ch.arn, Base: stressBases[rng.IntN(len(stressBases))], MessageTTL: ch.messageTTL}
		call := time.Now()
		l, err := a.Acquire(ctx, req)
		ret := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("acquire: %w", err)
		}
		n := seq.Add(1)
		if err := w.Acquired(n, l.Channel, string(l.ID), call, ret, cfg.LeaseTTL, l.Cooldown); err != nil {
			return err
		}
		held, err := hold(ctx, a, cfg, w, n, l, time.Duration(rng.Int64N(int64(workerHoldMax))))
		if err != nil || !held {
			return err
		}
		if err := w.Releasing(n, time.Now()); err != nil {
			return err
		}
		if err := a.Release(ctx, l); err != nil && ctx.Err() == nil && !errors.Is(err, clientid.ErrNotOwner) {
			return fmt.Errorf("release: %w", err)
		}
	}
	return nil
}

// hold keeps lease n for d, renewing it every LeaseTTL/3. It reports false
// when the lease is gone: ctx ended, or the worker was starved past
// LeaseTTL and the lease expired into its cooldown (then, as a session
// would, it stops using the id and does not release it).
func hold(ctx context.Context, a allocator, cfg clientid.Config, w *leaselog.Writer, n int64, l clientid.Lease, d time.Duration) (bool, error) {
	every := cfg.LeaseTTL / 3
	for ; d > 0; d -= every {
		select {
		case <-ctx.Done():
			return false, nil
		case <-time.After(min(d, every)): // holding the lease, as a session would
		}
		call := time.Now()
		err := a.Renew(ctx, l)
		switch {
		case ctx.Err() != nil || errors.Is(err, clientid.ErrNotOwner):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("renew: %w", err)
		}
		if err := w.Renewed(n, call); err != nil {
			return false, err
		}
	}
	return true, nil
}

// worker is one running worker process.
type worker struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr string // path of its stderr file
}

func startWorker(t *testing.T, exe, dir, url, prefix string, slot, incarnation int, seed uint64) *worker {
	t.Helper()
	name := fmt.Sprintf("w%d-%02d", slot, incarnation)
	stderr, err := os.Create(filepath.Join(dir, name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		workerEnv+"=1",
		workerRedisEnv+"="+url,
		workerPrefixEnv+"="+prefix,
		workerLogEnv+"="+filepath.Join(dir, name+".log"),
		workerSeedEnv+"="+strconv.FormatUint(seed, 10),
	)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start worker %s: %v", name, err)
	}
	return &worker{cmd: cmd, stdin: stdin, stderr: stderr.Name()}
}

// kill SIGKILLs the worker and reaps it.
func (w *worker) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	_ = w.cmd.Wait()
	_ = w.stdin.Close()
}

// TestRedisManyProcesses runs 4 worker processes against one Redis, killing
// (SIGKILL) and restarting one at random every 100..300ms; the checker over
// the merged logs must find no overlap and no early reuse, counting the
// leases that killed workers never released.
func TestRedisManyProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs worker processes for several seconds")
	}
	t.Parallel() // with TestRedisConcurrency: no timing here depends on a quiet machine
	url := redistest.URL(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	prefix := testPrefix()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	var workers [procs]*worker
	incarnations, kills := 0, 0
	// Rounds of chaosFor until the logs hold enough leases to judge: a
	// loaded machine runs fewer per second, never a weaker check.
	const wantLeases, maxRounds = 1000, 5
	for round := 1; ; round++ {
		for slot := range workers {
			workers[slot] = startWorker(t, exe, dir, url, prefix, slot, incarnations, rng.Uint64())
			incarnations++
		}
		for end := time.Now().Add(chaosFor); time.Now().Before(end); {
			time.Sleep(100*time.Millisecond + time.Duration(rng.Int64N(int64(200*time.Millisecond)))) // the chaos schedule
			slot := rng.IntN(procs)
			workers[slot].kill()
			kills++
			workers[slot] = startWorker(t, exe, dir, url, prefix, slot, incarnations, rng.Uint64())
			incarnations++
		}
		for _, w := range workers {
			w.kill() // the last ones die with leases in hand too
		}
		logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		leases, err := leaselog.Read(logs...)
		if err != nil || len(leases) >= wantLeases || round == maxRounds {
			break
		}
		t.Logf("round %d: %d leases so far, want %d: another round", round, len(leases), wantLeases)
	}

	stderrs, _ := filepath.Glob(filepath.Join(dir, "*.stderr"))
	for _, path := range stderrs {
		if b, _ := os.ReadFile(path); len(strings.TrimSpace(string(b))) > 0 {
			t.Errorf("%s:\n%s", filepath.Base(path), b)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	leases, err := leaselog.Read(logs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d worker processes, %d SIGKILLed and restarted (rounds of %v), %d logs merged", procs, kills, chaosFor, len(logs))
	r := checkLog(t, leases, wantLeases)
	if r.CrashReuses == 0 || r.Unreleased == 0 {
		t.Errorf("no id was re-leased after a killed worker's lease (%v); the run did not test crashes", r)
	}
	if errors.Is(r.Err(), leaselog.ErrViolations) {
		t.Logf("logs kept in %s", dir)
	}
}
