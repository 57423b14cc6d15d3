package camera

import (
	"context"
	"sync"
)

// Camera is a simulated KVS master. Create it with New and run it with Run.
// All methods are safe for concurrent use.
type Camera struct {
	cfg Config

	// mu guards the fields below.
	mu      sync.Mutex
	running bool
	fault   Fault
	stats   Stats
}

// Stats is a snapshot of a Camera's counters.
type Stats struct {
	// Offers counts SDP offers received.
	Offers uint64
	// AnswersSent counts SDP answers written to the signaling socket.
	AnswersSent uint64
	// IgnoredOffers counts offers the camera chose not to answer (live
	// session in c-sample mode, session cap, or a fault).
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
	return &Camera{cfg: cfg}, nil
}

// Run connects to signaling as MASTER, answers viewers and streams video,
// reconnecting through Config.Dial until ctx is done. It closes every peer
// connection and returns after all goroutines it started have ended. It
// returns nil when ctx ends, or ErrRunning if Run is already active.
func (c *Camera) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// SetFault replaces the injected faults. It resets the AnswerFromOffer count.
func (c *Camera) SetFault(f Fault) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fault = f
}

// Stats returns a snapshot of the counters.
func (c *Camera) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}
