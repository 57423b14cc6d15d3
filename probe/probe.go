// Package probe is a viewer inside the service that tells whether a KVS
// channel's camera streams right now (the ProbeChannel RPC): it takes a
// slot on the channel as a session would (a place under the channel's
// viewer limit and a clientId from the sessions' allocator, through
// sessionmgr), connects to KVS signaling as a viewer, offers on a pion
// peer connection that receives video, and waits for the camera's answer
// and its first video RTP packet within a deadline. It reports how long
// each took, the codec, and the ICE candidate pair the video came over.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/acme/viewersession/sessionmgr"
)

// The bounds of a probe's deadline.
const (
	DefaultDeadline = 10 * time.Second
	MinDeadline     = time.Second
	MaxDeadline     = 30 * time.Second
)

// Reserver holds channel slots for probes (*sessionmgr.Manager).
type Reserver interface {
	ReserveProbe(ctx context.Context, ch sessionmgr.Channel, hold time.Duration) (*sessionmgr.ProbeSlot, error)
}

var _ Reserver = (*sessionmgr.Manager)(nil)

// Config configures a Prober.
type Config struct {
	// Loopback gathers loopback candidates too: for a camera on the same
	// host (the -dev emulator's, tests). Default false.
	Loopback bool
	// Observe, when set, is told each probe's outcome: ok, no_answer,
	// no_media, channel_full, rejected, canceled or error (metrics:
	// vss_probes_total). It must not block.
	Observe func(outcome string)
}

// Prober runs probes. Create it with New; it is safe for concurrent use
// and holds nothing between probes (each probe closes what it opened).
type Prober struct {
	r       Reserver
	api     *webrtc.API
	log     *slog.Logger
	observe func(outcome string)
}

// Option configures optional seams of a Prober.
type Option func(*Prober)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Prober) { p.log = l } }

// New returns a Prober taking its slots from r.
func New(r Reserver, cfg Config, opts ...Option) (*Prober, error) {
	p := &Prober{r: r, log: slog.Default(), observe: cfg.Observe}
	for _, o := range opts {
		o(p)
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: p.log.With("component", "probe")}
	// A server has no use for mDNS (and its multicast socket).
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.Loopback)
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("probe: codecs: %w", err)
	}
	p.api = webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me))
	return p, nil
}

// Result is what a probe measured. The latencies of answer and first
// packet run from the offer's sending.
type Result struct {
	ClientID string
	// Connect is the signaling connect, Answer the wait for the camera's
	// answer, FirstPacket the wait for the first video packet, Elapsed
	// the whole probe (slot taken to first packet).
	Connect, Answer, FirstPacket, Elapsed time.Duration
	Answered, Media                       bool
	// Codec is the video codec's MIME type, e.g. video/H264.
	Codec string
	// Path is the selected ICE candidate pair; zero until one is.
	Path Path
}

// CandidateType is an ICE candidate type: host, srflx, prflx or relay.
type CandidateType string

// The candidate types (RFC 8445 section 5.1.1.1).
const (
	Host  CandidateType = "host"
	Srflx CandidateType = "srflx"
	Prflx CandidateType = "prflx"
	Relay CandidateType = "relay"
)

// Path is a selected ICE candidate pair: the probe's (local) candidate
// and the camera's (remote) one.
type Path struct {
	Local, Remote CandidateType
	// Protocol is the pair's transport, udp or tcp.
	Protocol string
	// RelayProtocol is, for a relay local candidate, how the service
	// reaches the TURN server: udp, tcp or tls.
	RelayProtocol string
}

// String is e.g. "host/udp -> srflx" or "relay(tls)/udp -> host".
func (p Path) String() string {
	local := string(p.Local)
	if p.RelayProtocol != "" {
		local += "(" + p.RelayProtocol + ")"
	}
	return local + "/" + p.Protocol + " -> " + string(p.Remote)
}

// Probe probes ch within deadline (from its start to the first video
// packet): it takes a slot (sessionmgr errors: ErrChannelFull,
// ErrClientIDExhausted, ...), connects, offers and waits. A probe that
// runs out of time fails with a *DeadlineError wrapping ErrNoAnswer or
// ErrNoMedia; one whose ctx ends first returns ctx's error. The slot is
// released (its clientId into cooldown) before Probe returns.
func (p *Prober) Probe(ctx context.Context, ch sessionmgr.Channel, deadline time.Duration) (Result, error) {
	res, err := p.probe(ctx, ch, deadline)
	if p.observe != nil {
		p.observe(outcome(ctx, err))
	}
	return res, err
}

func (p *Prober) probe(ctx context.Context, ch sessionmgr.Channel, deadline time.Duration) (Result, error) {
	start := time.Now()
	pctx, cancel := context.WithTimeoutCause(ctx, deadline, errDeadline)
	defer cancel()
	slot, err := p.r.ReserveProbe(pctx, ch, deadline)
	if err != nil {
		if context.Cause(pctx) == errDeadline && ctx.Err() == nil {
			return Result{}, &DeadlineError{Err: ErrNoAnswer, Deadline: deadline}
		}
		return Result{}, err
	}
	defer slot.Release(ctx)
	log := p.log.With("channel", ch.ARN, "client_id", slot.ClientID)
	r := &run{log: log, res: Result{ClientID: slot.ClientID}}
	err = r.run(pctx, p.api, slot)
	r.res.Elapsed = time.Since(start)
	switch {
	case err == nil:
		log.Info("probe: video arrived", "answer", r.res.Answer, "first_packet", r.res.FirstPacket, "codec", r.res.Codec, "ice_path", r.res.Path.String())
		return r.res, nil
	case ctx.Err() != nil:
		return r.res, ctx.Err()
	case context.Cause(pctx) == errDeadline:
		de := &DeadlineError{Err: ErrNoAnswer, Deadline: deadline, Result: r.res}
		if r.res.Answered {
			de.Err = ErrNoMedia
		}
		log.Info("probe: deadline", "error", de)
		return r.res, de
	}
	return r.res, err
}

// errDeadline is the cause of a probe's own deadline.
var errDeadline = errors.New("probe deadline")

// outcome is the vss_probes_total label of a probe's error.
func outcome(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNoAnswer):
		return "no_answer"
	case errors.Is(err, ErrNoMedia):
		return "no_media"
	case errors.Is(err, sessionmgr.ErrChannelFull):
		return "channel_full"
	case errors.Is(err, ErrRejected):
		return "rejected"
	case ctx.Err() != nil:
		return "canceled"
	}
	return "error"
}
