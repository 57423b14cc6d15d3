package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/sessionmgr"
)

// The KVS values the control-plane figure scales.
const (
	kvsTURNTTL          = 5 * time.Minute  // GetIceServerConfig's Ttl
	kvsICERefreshBefore = 30 * time.Second // refetch this long before it
)

// ControlPlaneConfig sizes the control-plane figure.
type ControlPlaneConfig struct {
	// Sessions is the number of viewer sessions on the one channel over the
	// simulated window, at most 10 live at once. Default 100.
	Sessions int
	// Window is the simulated time. Default 10 minutes.
	Window time.Duration
	// Speedup divides every duration of the run: the TURN credential
	// lifetime (5 min), the ICE refresh margin (30 s), the session start
	// interval and each session's lifetime. The emulator's TURNTTL must come
	// out in whole seconds: 300 / Speedup. Default 10 (a real minute).
	Speedup int
}

func (c ControlPlaneConfig) withDefaults() ControlPlaneConfig {
	if c.Sessions <= 0 {
		c.Sessions = 100
	}
	if c.Window <= 0 {
		c.Window = 10 * time.Minute
	}
	if c.Speedup <= 0 {
		c.Speedup = 10
	}
	return c
}

// ControlPlaneResult is the control-plane figure: the emulator's counters
// over the run (the service started cold: nothing cached).
type ControlPlaneResult struct {
	Config ControlPlaneConfig
	// Real is how long the run took.
	Real time.Duration
	// Calls are the control-plane calls by operation
	// (DescribeSignalingChannel, GetSignalingChannelEndpoint,
	// GetIceServerConfig) and Connects the accepted viewer connects.
	Calls    map[string]int64
	Connects int64
	// Answered is the number of sessions whose offer was answered.
	Answered int
}

// ControlPlane runs cfg.Sessions sessions on one channel over the simulated
// window: session i starts at i*Window/Sessions, joins, offers, gets its
// answer, stays live for 0.9*Window*10/Sessions (so at most ten are live
// at once, the channel's limit) and leaves. Time is compressed by scaling
// the TTLs that drive the calls (TURN credentials and the refresh margin,
// in the emulator, the kvs client and the session manager alike), not the
// clock, so SigV4 runs on real time; the per-second rate limits (KVS's and
// the service's connect pacing) are multiplied by the same factor, since
// the run makes the same calls in less time.
func ControlPlane(ctx context.Context, cfg ControlPlaneConfig) (ControlPlaneResult, error) {
	cfg = cfg.withDefaults()
	res := ControlPlaneResult{Config: cfg}
	k := time.Duration(cfg.Speedup)
	turnTTL, refresh := kvsTURNTTL/k, kvsICERefreshBefore/k
	if turnTTL%time.Second != 0 {
		return res, fmt.Errorf("speedup %d: the TURN lifetime %v is not whole seconds", cfg.Speedup, turnTTL)
	}
	st, err := StartStack(ctx, StackConfig{
		Channels: 1,
		Camera:   CameraFast,
		Emulator: func(c *kvsemu.Config) {
			c.TURNTTL = turnTTL
			l := kvsemu.DefaultLimits()
			c.Limits.ViewerConnectsPerSecond = l.ViewerConnectsPerSecond * float64(k)
			c.Limits.DescribePerSecond = l.DescribePerSecond * float64(k)
			c.Limits.IceConfigPerSecond = l.IceConfigPerSecond * float64(k)
			c.Limits.SDPPerSecond = l.SDPPerSecond * float64(k)
			c.Limits.ICEPerSecond = l.ICEPerSecond * float64(k)
		},
		KVS: func(c *kvs.Config) { c.ICERefreshBefore = refresh },
		Manager: func(c *sessionmgr.Config) {
			c.ICERefreshBefore = refresh
			c.DialsPerSecond = sessionmgr.DefaultConfig().DialsPerSecond * float64(k)
		},
	})
	if err != nil {
		return res, err
	}
	defer st.Close()
	offers, err := makeOffers(offerSlots)
	if err != nil {
		return res, err
	}
	window := cfg.Window / k
	every := window / time.Duration(cfg.Sessions)
	live := every * 10 * 9 / 10
	start := time.Now()
	answered := make(chan struct{}, cfg.Sessions)
	err = forEach(ctx, cfg.Sessions, cfg.Sessions, func(ctx context.Context, i int) error {
		if err := sleepUntil(ctx, start.Add(time.Duration(i)*every)); err != nil {
			return err
		}
		ex, err := st.serviceExchange(ctx, live+exchangeTimeout, st.ARNs[0], fmt.Sprintf("cp-%d", i), offers[i%len(offers)])
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		if _, err := ex.fire(); err != nil {
			_ = ex.done()
			return fmt.Errorf("session %d: %w", i, err)
		}
		answered <- struct{}{}
		if err := sleepUntil(ctx, start.Add(time.Duration(i)*every+live)); err != nil {
			_ = ex.done()
			return err
		}
		return ex.done()
	})
	res.Real = time.Since(start)
	res.Answered = len(answered)
	if err != nil {
		return res, err
	}
	c := st.Emu.Counters()
	res.Calls = c.Calls
	res.Connects = c.Connects["VIEWER"]
	return res, nil
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
