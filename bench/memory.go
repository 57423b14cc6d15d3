package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// MemoryConfig sizes the memory figure.
type MemoryConfig struct {
	// Steps are the numbers of live sessions at which memory is measured,
	// cumulative; default 1,000, 5,000 and 10,000.
	Steps []int
	// PerChannel is the number of sessions per channel: the channels are
	// max(Steps)/PerChannel. Default 10, the KVS viewer limit (so 10,000
	// sessions take 1,000 channels and MaxPerChannel stays at its default).
	PerChannel int
	// Joined makes every session join over Connect and open its KVS
	// signaling (AWAITING_OFFER) instead of staying PENDING. The app's side
	// of each gRPC stream and the emulator's side of each WebSocket are in
	// this process too, so the figure is an upper bound.
	Joined bool
	// Workers is the number of concurrent creators. Default 16.
	Workers int
}

func (c MemoryConfig) withDefaults() MemoryConfig {
	if len(c.Steps) == 0 {
		c.Steps = []int{1000, 5000, 10000}
	}
	c.Steps = slices.Sorted(slices.Values(c.Steps))
	if c.PerChannel <= 0 {
		c.PerChannel = 10
	}
	if c.Workers <= 0 {
		c.Workers = 16
	}
	return c
}

// MemSnap is the process's memory after a forced GC.
type MemSnap struct {
	HeapInuse  int64 // runtime.MemStats.HeapInuse
	StackInuse int64 // runtime.MemStats.StackInuse (goroutine stacks)
	RSS        int64 // /proc/self/status VmRSS, bytes
	Goroutines int
}

// MemoryStep is the memory with Sessions live sessions, less the memory
// before the first was created.
type MemoryStep struct {
	Sessions   int
	Delta      MemSnap
	PerSession MemSnap
}

// MemoryResult is the memory figure.
type MemoryResult struct {
	Config   MemoryConfig
	Channels int
	Base     MemSnap
	Steps    []MemoryStep
}

// Memory creates sessions up to each step, holds them live and measures
// the heap in use and the RSS per session against the memory of the same
// Stack, warmed (every channel resolved and its ICE servers cached), before
// the first session.
func Memory(ctx context.Context, cfg MemoryConfig) (MemoryResult, error) {
	cfg = cfg.withDefaults()
	total := cfg.Steps[len(cfg.Steps)-1]
	channels := (total + cfg.PerChannel - 1) / cfg.PerChannel
	res := MemoryResult{Config: cfg, Channels: channels}
	sc := StackConfig{Channels: channels, Conns: 4}
	if cfg.Joined {
		sc.Emulator = func(c *kvsemu.Config) { c.Limits.ViewerConnectsPerSecond = oaConnectsPerSecond }
		sc.Manager = func(c *sessionmgr.Config) { c.DialsPerSecond = oaDialsPerSecond }
	}
	st, err := StartStack(ctx, sc)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := st.Warm(ctx, 8); err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	// The sessions outlive the run: no resume grace runs out meanwhile.
	opts := &vspb.SessionOptions{ResumeGrace: durationpb.New(10 * time.Minute)}
	var apps []*app
	defer func() {
		for _, a := range apps {
			a.cancel()
		}
	}()
	appsCh := make(chan *app, total)
	res.Base = memSnapshot()
	made := 0
	for _, step := range cfg.Steps {
		from := made
		err := forEach(ctx, step-from, cfg.Workers, func(ctx context.Context, k int) error {
			i := from + k
			cs, err := st.Create(ctx, i%channels, fmt.Sprintf("m-%d", i), opts)
			if err != nil {
				return fmt.Errorf("create session %d: %w", i, err)
			}
			if !cfg.Joined {
				return nil
			}
			// The stream must outlive forEach's ctx: the run's ctx bounds it.
			a, err := st.join(context.WithoutCancel(ctx), cs)
			if err != nil {
				return err
			}
			appsCh <- a
			return nil
		})
		for len(appsCh) > 0 {
			apps = append(apps, <-appsCh)
		}
		if err != nil {
			return res, err
		}
		made = step
		m := memSnapshot()
		d := MemSnap{
			HeapInuse:  m.HeapInuse - res.Base.HeapInuse,
			StackInuse: m.StackInuse - res.Base.StackInuse,
			RSS:        m.RSS - res.Base.RSS,
			Goroutines: m.Goroutines - res.Base.Goroutines,
		}
		res.Steps = append(res.Steps, MemoryStep{
			Sessions: step,
			Delta:    d,
			PerSession: MemSnap{
				HeapInuse:  d.HeapInuse / int64(step),
				StackInuse: d.StackInuse / int64(step),
				RSS:        d.RSS / int64(step),
				Goroutines: d.Goroutines / step,
			},
		})
	}
	return res, nil
}

// memSnapshot collects garbage, returns freed memory to the OS and reads
// the heap in use, the RSS and the number of goroutines.
func memSnapshot() MemSnap {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return MemSnap{HeapInuse: int64(ms.HeapInuse), StackInuse: int64(ms.StackInuse), RSS: vmRSS(), Goroutines: runtime.NumGoroutine()}
}

// vmRSS reads VmRSS from /proc/self/status, in bytes (0 where there is
// none).
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
