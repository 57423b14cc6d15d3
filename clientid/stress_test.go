package clientid_test

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/clientid/internal/leaselog"
	"github.com/acme/viewersession/internal/redistest"
)

// The counts: 64 goroutines x 2,000 acquire/release cycles on 3
// channels.
const (
	stressGoroutines = 64
	stressCycles     = 2000
	stressClients    = 8 // allocators (and go-redis clients) the goroutines share
)

// stressChannels are the three channels; the last one's MessageTTL is
// longer than the default cooldown, so its ids rest longer.
var stressChannels = [3]struct {
	arn        string
	messageTTL time.Duration
}{
	{"arn:aws:kinesisvideo:eu-west-1:111122223333:channel/porch/1", 0},
	{"arn:aws:kinesisvideo:eu-west-1:111122223333:channel/garage/2", 0},
	{"arn:aws:kinesisvideo:eu-west-1:111122223333:channel/garden/3", 150 * time.Millisecond},
}

// stressBases are the hot bases: few, so goroutines fight over base,
// base-2 .. down to the random fallback. One acquire in hotShare (1 in 8)
// picks one of them; the others pick one of coldBases bases, which are
// mostly free (one round trip) and each reused dozens of times a run.
var stressBases = []string{"alice", "bob", "carol", "dave"}

const (
	hotShare  = 8
	coldBases = 1024
)

// stressBase picks a request's base.
func stressBase(rng *rand.Rand) string {
	if rng.IntN(hotShare) == 0 {
		return stressBases[rng.IntN(len(stressBases))]
	}
	return "v" + strconv.Itoa(rng.IntN(coldBases))
}

func stressConfig() clientid.Config {
	return clientid.Config{
		LeaseTTL:        5 * time.Second, // every lease is released well within it, even on a starved machine
		DefaultCooldown: 100 * time.Millisecond,
		MaxSuffix:       20,
		Timeout:         5 * time.Second, // a loaded race-enabled run is slow, not down
	}
}

// stressErrors counts failed calls by kind; a healthy run has none.
type stressErrors struct {
	acquire, renew, release atomic.Int64
	first                   atomic.Value // error
}

func (e *stressErrors) add(n *atomic.Int64, err error) {
	n.Add(1)
	e.first.CompareAndSwap(nil, err)
}

// runStress runs goroutines x cycles tight acquire/(every 16th: renew)/
// release cycles, goroutine g against allocs[g%len(allocs)], and returns the
// log of every lease.
func runStress(t *testing.T, allocs []allocator, goroutines, cycles int) []leaselog.Lease {
	t.Helper()
	ctx := t.Context()
	ttl := stressConfig().LeaseTTL
	var errs stressErrors
	logs := make([][]leaselog.Lease, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		a := allocs[g%len(allocs)]
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 42))
			log := make([]leaselog.Lease, 0, cycles)
			for c := range cycles {
				ch := stressChannels[rng.IntN(len(stressChannels))]
				req := clientid.Request{Channel: ch.arn, Base: stressBase(rng), MessageTTL: ch.messageTTL}
				call := time.Now()
				l, err := a.Acquire(ctx, req)
				ret := time.Now()
				if err != nil {
					errs.add(&errs.acquire, err)
					continue
				}
				valid := call
				if c%16 == 0 {
					rc := time.Now()
					if err := a.Renew(ctx, l); err != nil {
						errs.add(&errs.renew, err)
					} else {
						valid = rc
					}
				}
				end := time.Now()
				if err := a.Release(ctx, l); err != nil {
					errs.add(&errs.release, err)
				}
				log = append(log, leaselog.Lease{
					Name: l.Token[:8], Channel: l.Channel, ID: string(l.ID),
					Start: ret, Valid: valid, End: end, TTL: ttl, Cooldown: l.Cooldown,
				})
			}
			logs[g] = log
		})
	}
	wg.Wait()
	if n := errs.acquire.Load() + errs.renew.Load() + errs.release.Load(); n > 0 {
		t.Errorf("%d acquire, %d renew, %d release errors; want none (first: %v)",
			errs.acquire.Load(), errs.renew.Load(), errs.release.Load(), errs.first.Load())
	}
	var all []leaselog.Lease
	for _, log := range logs {
		all = append(all, log...)
	}
	return all
}

// checkLog runs the checker over a full allocation log, prints its counts,
// and fails on any overlap or early reuse.
func checkLog(t *testing.T, leases []leaselog.Lease, wantLeases int) leaselog.Report {
	t.Helper()
	r := leaselog.Check(leases)
	t.Logf("checker: %v", r)
	if err := r.Err(); err != nil {
		t.Error(err)
	}
	if r.Leases < wantLeases {
		t.Errorf("checker saw %d leases; want at least %d", r.Leases, wantLeases)
	}
	if r.Reuses == 0 {
		t.Errorf("checker saw no reuse of an id; the run did not test the cooldown")
	}
	return r
}

func TestRedisConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("128k acquire/release cycles against Redis")
	}
	t.Parallel() // with TestRedisManyProcesses, whose workers mostly sleep
	cfg := stressConfig()
	cfg.KeyPrefix = testPrefix()
	// Several allocators, each with a client of its own, as replicas have:
	// they share nothing but the Redis server.
	url := redistest.URL(t)
	var allocs []allocator
	for range stressClients {
		allocs = append(allocs, clientid.NewRedis(newRedisClient(t, url, stressGoroutines/stressClients), cfg))
	}
	start := time.Now()
	leases := runStress(t, allocs, stressGoroutines, stressCycles)
	took := time.Since(start)
	t.Logf("%d goroutines x %d cycles on %d channels: %d leases in %v (%.0f acquire+release/s)",
		stressGoroutines, stressCycles, len(stressChannels), len(leases), took.Round(time.Millisecond), float64(len(leases))/took.Seconds())
	checkLog(t, leases, stressGoroutines*stressCycles)
}

// TestMemoryConcurrency runs the same workload on Memory, with fewer
// goroutines (its lock, not a network, is what they contend for).
func TestMemoryConcurrency(t *testing.T) {
	a := clientid.NewMemory(stressConfig())
	leases := runStress(t, []allocator{a}, 16, stressCycles)
	checkLog(t, leases, 16*stressCycles)
}

// TestCheckerCatchesReuse makes sure the stress tests' checker can fail:
// an allocator with no cooldown must be caught reusing ids early.
func TestCheckerCatchesReuse(t *testing.T) {
	cfg := stressConfig()
	cfg.DefaultCooldown = time.Nanosecond // an id is free again at once
	leases := runStress(t, []allocator{clientid.NewMemory(cfg)}, 4, 200)
	for i := range leases {
		leases[i].Cooldown = stressConfig().DefaultCooldown // what it should have been
	}
	r := leaselog.Check(leases)
	if !errors.Is(r.Err(), leaselog.ErrViolations) || len(r.EarlyReuses) == 0 {
		t.Errorf("checker over a log with no cooldown: %v; want early reuses", r)
	}
}
