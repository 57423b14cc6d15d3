package camera

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// Camera is a simulated KVS master. Create it with New and run it with Run.
// All methods are safe for concurrent use. A Camera owns nothing between Run
// calls, so it needs no Close: cancelling Run's ctx stops it.
type Camera struct {
	cfg  Config
	clip clip
	now  func() time.Time
	// hooks are test observation points; set before Run, read by Run.
	hooks hooks
	// packets counts RTP packets written to viewers; updated by pion.
	packets atomic.Uint64

	// mu guards the fields below.
	mu      sync.Mutex
	running bool
	fault   Fault
	// faultOffers counts offers received since the fault was last set.
	faultOffers int
	stats       Stats
}

// hooks lets tests observe the event loop without sleeping.
type hooks struct {
	// offerDone is called by the event loop after it decided an offer.
	offerDone func(clientID string, o outcome)
	// sessionDropped is called by the event loop after it removed and
	// closed a session, with its peer connection's state.
	sessionDropped func(clientID string, st webrtc.PeerConnectionState)
	// cleanupDone is called by the event loop after each cleanup pass.
	cleanupDone func()
}

// Stats is a snapshot of a Camera's counters. Counters accumulate over the
// Camera's lifetime, across Run calls.
type Stats struct {
	// Offers counts SDP offers received.
	Offers uint64
	// AnswersSent counts SDP answers queued to the signaling socket.
	AnswersSent uint64
	// IgnoredOffers counts offers the camera did not answer: a live session
	// in c-sample mode, the session cap, a fault, or an offer pion rejected.
	// An offer answered from a new peer connection (js-sample, or a
	// replaced session in restart-capable) counts as answered.
	// Frames too malformed to be offers (no sender, bad payload) are counted
	// nowhere.
	IgnoredOffers uint64
	// Sessions is the number of live viewer sessions.
	Sessions int
	// PacketsSent counts video RTP packets sent to all viewers.
	PacketsSent uint64
	// SignalingConnects counts successful Dials.
	SignalingConnects uint64
}

// New returns a Camera for cfg. It starts nothing; call Run.
func New(cfg Config) (*Camera, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	cl, err := parseClip(clipIVF)
	if err != nil {
		return nil, err
	}
	return &Camera{cfg: cfg, clip: cl, now: time.Now}, nil
}

// Run connects to signaling as MASTER, answers viewers and streams video,
// reconnecting through Config.Dial until ctx is done. Peer connections
// survive signaling reconnects. On return every peer connection is closed
// and every goroutine Run started has ended. Run returns nil when ctx ends,
// ErrRunning if another Run is active, or an error if pion cannot be set up.
func (c *Camera) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return ErrRunning
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running = false
		c.stats.Sessions = 0
		c.mu.Unlock()
	}()

	r, err := newRun(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r.wg.Go(func() { r.stream(ctx) })
	r.wg.Go(func() { r.signal(ctx) })
	r.loop(ctx)
	cancel()
	r.wg.Wait()
	r.closeAll()
	r.sessWG.Wait()
	return nil
}

// SetFault replaces the injected faults and restarts the AnswerFromOffer
// count. It takes effect for offers received after it returns; an offer
// already waiting out an AnswerDelay keeps its delay.
func (c *Camera) SetFault(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
	c.faultOffers = 0
}

// Stats returns a snapshot of the counters.
func (c *Camera) Stats() Stats {
	c.mu.Lock()
	s := c.stats
	c.mu.Unlock()
	s.PacketsSent = c.packets.Load()
	return s
}

// admitOffer counts a received offer and applies the faults to it. It
// reports whether to answer and after which delay (from receipt).
func (c *Camera) admitOffer() (ok bool, delay time.Duration, o outcome) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.Offers++
	c.faultOffers++
	switch f := c.fault; {
	case f.NoAnswer:
		return false, 0, outcomeFaultNoAnswer
	case f.AnswerFromOffer > 1 && c.faultOffers < f.AnswerFromOffer:
		return false, 0, outcomeFaultEarlyOffer
	default:
		return true, f.AnswerDelay, outcomeAnswered
	}
}

// count updates the counters under mu.
func (c *Camera) count(update func(s *Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	update(&c.stats)
}
