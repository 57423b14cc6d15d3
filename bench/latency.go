package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/acme/viewersession/kvsemu"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
	"github.com/acme/viewersession/sessionmgr"
)

// Load tuning of the offer->answer figure. Connects are paced far above
// KVS's 3/s per channel so that rounds do not wait on the pacer (the
// measured exchange starts once signaling is open, so pacing is outside
// it either way). The camera's socket may send far more than KVS's 5 SDP
// and 20 ICE messages per second per connection: a master answering ten
// viewers at once is throttled by real KVS, which would measure the quota,
// not the service.
const (
	oaConnectsPerSecond = 200
	oaDialsPerSecond    = 200
	oaSDPPerSecond      = 10000
	oaICEPerSecond      = 10000
)

// OfferAnswerConfig sizes the offer->answer figure.
type OfferAnswerConfig struct {
	// Sessions is the number of concurrent sessions per round.
	Sessions int
	// Channels spreads them; default ceil(Sessions/10) (at most 10 viewers
	// per channel).
	Channels int
	// Rounds is the number of rounds of each path; default
	// max(3, ceil(200/Sessions)).
	Rounds int
	// Conns is the number of gRPC client connections; default Channels.
	Conns int
	// Spacing is the time between two offers of a round, all sessions
	// staying live until the last answer; default 20ms (50 offers/s).
	// Burst fires every offer of a round at once instead.
	Spacing time.Duration
	Burst   bool
}

func (c OfferAnswerConfig) withDefaults() OfferAnswerConfig {
	c.Sessions = max(c.Sessions, 1)
	if c.Channels <= 0 {
		c.Channels = (c.Sessions + 9) / 10
	}
	if c.Rounds <= 0 {
		c.Rounds = max(3, (200+c.Sessions-1)/c.Sessions)
	}
	if c.Conns <= 0 {
		c.Conns = c.Channels
	}
	if c.Burst {
		c.Spacing = 0
	} else if c.Spacing <= 0 {
		c.Spacing = 20 * time.Millisecond
	}
	return c
}

// OfferAnswerResult is the offer->answer figure at one concurrency.
type OfferAnswerResult struct {
	Config OfferAnswerConfig
	// Direct is the baseline: a viewer's own signaling WebSocket on the
	// emulator, SDP_OFFER written -> SDP_ANSWER read. Service is the same
	// exchange through the service: offer sent on Connect -> answer
	// received by the app.
	Direct, Service Dist
	// DirectHops and ServiceHops are the same samples minus the camera's
	// turnaround seen at the emulator (offer in -> answer in): the time
	// spent outside the camera, per exchange.
	DirectHops, ServiceHops Dist
	// SchedLatency is how long runnable goroutines of this process waited
	// for a CPU during the rounds, GCPauses the stop-the-world pauses: a
	// tail that is the machine's, not the service's, shows here.
	SchedLatency, GCPauses HistQuantiles
}

// OfferAnswer measures offer->answer latency through the service and
// directly on the emulator on one Stack with fast cameras. Each round
// holds cfg.Sessions service sessions (joined, signaling open) and as many
// direct viewers live on separate channels of their own, and fires their
// offers interleaved, direct and service in turn (the order swapped every
// round), so that both paths see the same machine.
func OfferAnswer(ctx context.Context, cfg OfferAnswerConfig) (OfferAnswerResult, error) {
	cfg = cfg.withDefaults()
	res := OfferAnswerResult{Config: cfg}
	st, err := StartStack(ctx, StackConfig{
		Channels: 2 * cfg.Channels,
		Camera:   CameraFast,
		Conns:    cfg.Conns,
		Emulator: func(c *kvsemu.Config) {
			c.Limits.ViewerConnectsPerSecond = oaConnectsPerSecond
			c.Limits.SDPPerSecond = oaSDPPerSecond
			c.Limits.ICEPerSecond = oaICEPerSecond
		},
		Manager: func(c *sessionmgr.Config) { c.DialsPerSecond = oaDialsPerSecond },
	})
	if err != nil {
		return res, err
	}
	defer st.Close()
	if err := st.Warm(ctx, 8); err != nil {
		return res, fmt.Errorf("warm: %w", err)
	}
	offers, err := makeOffers(offerSlots)
	if err != nil {
		return res, err
	}
	directARNs, serviceARNs := st.ARNs[:cfg.Channels], st.ARNs[cfg.Channels:]
	var direct, service []sample
	before := readRuntimeHists()
	for r := range cfg.Rounds {
		got, err := round(ctx, 2*cfg.Sessions, cfg.Spacing, func(ctx context.Context, k int, life time.Duration) (exchange, error) {
			i, isDirect := k/2, (k%2 == 0) == (r%2 == 0)
			ch := i % cfg.Channels
			sdp := offers[(i/cfg.Channels)%len(offers)]
			if isDirect {
				return directExchange(ctx, st.Emu, st.hc, life, directARNs[ch], fmt.Sprintf("d%d-%d", r, i), sdp)
			}
			return st.serviceExchange(ctx, life, serviceARNs[ch], fmt.Sprintf("s%d-%d", r, i), sdp)
		})
		if err != nil {
			return res, fmt.Errorf("round %d: %w", r, err)
		}
		for _, g := range got {
			if g.direct {
				direct = append(direct, g)
			} else {
				service = append(service, g)
			}
		}
		if err := st.WaitNoViewers(ctx); err != nil {
			return res, err
		}
	}
	after := readRuntimeHists()
	res.SchedLatency, res.GCPauses = since(after.sched, before.sched), since(after.gc, before.gc)
	turn := turnarounds(st.Emu, st.ARNs)
	res.Direct, res.DirectHops = split(direct, turn)
	res.Service, res.ServiceHops = split(service, turn)
	return res, nil
}

// sample is one exchange: its duration, the viewer's clientId and its
// path (direct or not, and which of several where a figure has more).
type sample struct {
	d        time.Duration
	clientID string
	direct   bool
	path     int
}

// split returns the durations, and the durations minus the camera's
// turnaround where the emulator saw both messages.
func split(ss []sample, turn map[string]time.Duration) (all, hops Dist) {
	var a, h []time.Duration
	for _, s := range ss {
		a = append(a, s.d)
		if t, ok := turn[s.clientID]; ok {
			h = append(h, s.d-t)
		}
	}
	return NewDist(a), NewDist(h)
}

// exchange is one prepared session of a round: fire runs the measured
// exchange, done releases it.
type exchange struct {
	clientID string
	direct   bool
	path     int // which of a figure's paths, where it has more than two
	fire     func() (time.Duration, error)
	done     func() error
}

// round prepares n exchanges concurrently (all n sessions live), fires
// exchange i at spacing*i after the last is ready, and releases them all
// once every one has fired, so that n sessions are live throughout.
// spacing 0 fires them all at once (a burst).
//
// prepare gets the time its exchange must live: through the round's
// preparation, its turn and its own exchange.
func round(ctx context.Context, n int, spacing time.Duration, prepare func(ctx context.Context, i int, life time.Duration) (exchange, error)) ([]sample, error) {
	life := 2*exchangeTimeout + time.Duration(n)*spacing
	var (
		mu      sync.Mutex
		errs    []error
		samples []sample
		ready   sync.WaitGroup
		fired   sync.WaitGroup
		wg      sync.WaitGroup
		t0      time.Time
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	start, release := make(chan struct{}), make(chan struct{})
	ready.Add(n)
	fired.Add(n)
	for i := range n {
		wg.Go(func() {
			ex, err := prepare(ctx, i, life)
			ready.Done()
			if err != nil {
				fired.Done()
				fail(err)
				return
			}
			<-start
			if wait := time.Until(t0.Add(time.Duration(i) * spacing)); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
			d, err := ex.fire()
			fired.Done()
			if err != nil {
				fail(err)
			} else {
				mu.Lock()
				samples = append(samples, sample{d: d, clientID: ex.clientID, direct: ex.direct, path: ex.path})
				mu.Unlock()
			}
			<-release
			if err := ex.done(); err != nil {
				fail(err)
			}
		})
	}
	ready.Wait()
	t0 = time.Now()
	close(start)
	fired.Wait()
	close(release)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("%d of %d exchanges failed, first: %w", len(errs), n, errors.Join(distinct(errs, 5)...))
	}
	return samples, nil
}

// exchangeTimeout bounds one prepared exchange.
const exchangeTimeout = 30 * time.Second

// directExchange prepares a baseline exchange: a viewer straight on the
// emulator, with its own signaling WebSocket, living at most timeout.
func directExchange(ctx context.Context, emu *kvsemu.Emulator, hc *http.Client, timeout time.Duration, arn, id, sdp string) (exchange, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	ws, err := dialViewer(ctx, emu, hc, arn, id)
	if err != nil {
		cancel()
		return exchange{}, err
	}
	frame := offerFrame(sdp)
	return exchange{
		clientID: id,
		direct:   true,
		fire:     func() (time.Duration, error) { return rawOfferAnswer(ctx, ws, frame) },
		done: func() error {
			defer cancel()
			return ws.Close(websocket.StatusNormalClosure, "")
		},
	}, nil
}

// serviceExchange prepares an exchange through the Stack's service.
func (s *Stack) serviceExchange(ctx context.Context, timeout time.Duration, arn, viewer, sdp string) (exchange, error) {
	return appExchange(ctx, timeout, s.client(), func(ctx context.Context) (*vspb.CreateSessionResponse, error) {
		return s.CreateOn(ctx, arn, viewer, nil)
	}, sdp)
}

// appExchange prepares an exchange through a service: create, join on api
// (signaling open); the measured part is offer -> answer; then leave. The
// session lives at most timeout.
func appExchange(ctx context.Context, timeout time.Duration, api vspb.ViewerSessionServiceClient, create func(context.Context) (*vspb.CreateSessionResponse, error), sdp string) (exchange, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	cs, err := create(ctx)
	if err != nil {
		cancel()
		return exchange{}, fmt.Errorf("create: %w", err)
	}
	a, err := joinOn(ctx, api, cs)
	if err != nil {
		cancel()
		return exchange{}, err
	}
	return exchange{
		clientID: a.clientID,
		fire:     func() (time.Duration, error) { return a.offerAnswer(sdp) },
		done: func() error {
			defer cancel()
			if err := a.leave(); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("leave: %w", err)
			}
			return nil
		},
	}, nil
}

// distinct returns up to n errors with distinct messages.
func distinct(errs []error, n int) []error {
	seen := make(map[string]bool)
	var out []error
	for _, err := range errs {
		if m := err.Error(); !seen[m] && len(out) < n {
			seen[m] = true
			out = append(out, err)
		}
	}
	return out
}
