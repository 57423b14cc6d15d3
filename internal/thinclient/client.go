package thinclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Mode is how a Client talks to the service.
type Mode int

const (
	// ModeConnect uses one bidi Connect stream per attachment: join, then
	// app messages up and timeline (plus answer, candidates, renegotiate,
	// going-away) down.
	ModeConnect Mode = iota
	// ModeSignal sends every app message as a unary Signal call and reads
	// the timeline from a WatchSession stream, like a browser on gRPC-Web.
	ModeSignal
)

func (m Mode) String() string {
	switch m {
	case ModeConnect:
		return "connect"
	case ModeSignal:
		return "signal"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ICETimeouts tunes the client's ICE agent; zero fields keep pion's
// defaults (disconnected after 5 s without traffic, failed 25 s later,
// keepalive every 2 s). Tests shorten them so that a Switch kills the pair
// quickly.
type ICETimeouts struct {
	Disconnected time.Duration
	Failed       time.Duration
	Keepalive    time.Duration
}

// Config configures a Client. Conn, Session and Token are required.
type Config struct {
	// Conn is the connection to the service.
	Conn *grpc.ClientConn
	// Session is the session's name, "sessions/{id}".
	Session string
	// Token is the session token from CreateSession. Secret: sent as
	// `authorization: Bearer <token>` and never logged.
	Token string
	// Mode selects Connect or Signal + WatchSession. Default ModeConnect.
	Mode Mode
	// Net is the client's network. Default: a fixed SwitchNet on 127.0.0.1.
	Net *SwitchNet
	// Logger receives the client's logs. Default: discard.
	Logger *slog.Logger
	// OnEvent, if set, is called with every new timeline event, in sequence
	// order, on Run's goroutine (so it must not block, nor wait on this
	// client: NetworkChanged and Leave from inside it would deadlock). The
	// event is the caller's to keep.
	OnEvent func(*vspb.SessionEvent)

	// IceServers are the session's ICE servers as CreateSession returned
	// them (Session.ice_servers). Optional in Connect mode, where the join
	// reply carries a fresh set; in Signal mode they are the only source
	// until an ICE_SERVERS_REFRESHED event or a renegotiate brings new ones
	// (an app cannot call GetSession with its token). Secret.
	IceServers []*vspb.IceServer
	// ICETimeouts tunes ICE; zero keeps pion's defaults.
	ICETimeouts ICETimeouts
	// RelayOnly makes the peer connection use TURN relays only
	// (iceTransportPolicy "relay").
	RelayOnly bool
}

// Stats is a snapshot of what a Client has done and received.
type Stats struct {
	// PacketsReceived and BytesReceived count video RTP packets (whole
	// packets, header included) over every peer connection of the run.
	PacketsReceived int64
	BytesReceived   int64
	// FramesPerSecond estimates the video frame rate from the RTP
	// timestamps of the last frames (a frame ends with the marker bit); 0
	// when no frame arrived in the last second.
	FramesPerSecond float64
	// OffersSent counts offers handed to the service (first, ICE restart,
	// new peer connection, and an offer re-sent after a resume found it
	// lost).
	OffersSent int
	// ICERestarts counts ICE-restart offers made on the same peer
	// connection.
	ICERestarts int
	// NewPeerConnections counts peer connections built after the first.
	NewPeerConnections int
	// Resumes counts streams reopened after the first (going-away, a
	// dropped stream, or a catch-up on a session that ended meanwhile).
	Resumes int
	// SequenceGaps counts timeline events that did not follow the previous
	// one (sequence N+1 after N). The service promises none; tests assert 0.
	SequenceGaps int
	// DuplicateEvents counts events dropped because they were seen before
	// (a replay after a resume overlapping what arrived).
	DuplicateEvents int
	// LastSequence is the sequence of the newest event seen.
	LastSequence uint64
	// ICEState and PeerState are the states last reported to the service.
	ICEState  vspb.IceConnectionState
	PeerState vspb.PeerConnectionState
	// LocalAddress and LocalCandidateType describe the local candidate of
	// the ICE pair the current peer connection selected last, e.g.
	// "127.0.0.3:50123" and "host"; empty before one is selected (and
	// again from an ICE-restart offer or a new peer connection on).
	LocalAddress       string
	LocalCandidateType string
	// LocalRelatedAddress is that candidate's related address: for a relay
	// or server-reflexive candidate, the client's own socket ("ip:port"),
	// so it shows which address a relayed pair goes out from.
	LocalRelatedAddress string
}

// Client is one thin viewer app for one session. Create it with New, call
// Run once; the other methods are safe for concurrent use, before, during
// and after Run.
type Client struct {
	cfg    Config
	rpc    vspb.ViewerSessionServiceClient
	net    *SwitchNet
	log    *slog.Logger
	api    *webrtc.API
	runs   atomic.Bool
	reader sync.WaitGroup // RTP readers, one per remote track

	// mu guards the fields below.
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced whenever something below changes
	ended   bool          // Run has returned
	events  []*vspb.SessionEvent
	stats   Stats
	fps     fpsMeter
	pc      *webrtc.PeerConnection // current
	noRead  bool                   // no new RTP readers (Run is ending)
	out     *queue[outMsg]         // the running Run's outbox; nil when not running
	dropCur context.CancelFunc     // cancels the current stream
}

// New returns a Client for cfg. It validates cfg and prepares the pion API
// but does not touch the network.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Conn == nil:
		return nil, fmt.Errorf("%w: Conn is required", ErrConfig)
	case !strings.HasPrefix(cfg.Session, "sessions/") || len(cfg.Session) == len("sessions/"):
		return nil, fmt.Errorf("%w: Session must be sessions/{id}, got %q", ErrConfig, cfg.Session)
	case cfg.Token == "":
		return nil, fmt.Errorf("%w: Token is required", ErrConfig)
	case cfg.Mode != ModeConnect && cfg.Mode != ModeSignal:
		return nil, fmt.Errorf("%w: unknown mode %v", ErrConfig, cfg.Mode)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("session", cfg.Session, "mode", cfg.Mode.String())
	sw := cfg.Net
	if sw == nil {
		var err error
		if sw, err = NewSwitchNet("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	c := &Client{
		cfg:  cfg,
		rpc:  vspb.NewViewerSessionServiceClient(cfg.Conn),
		net:  sw,
		log:  log,
		wake: make(chan struct{}),
	}
	api, err := newAPI(sw, log, cfg.ICETimeouts, cfg.RelayOnly)
	if err != nil {
		return nil, err
	}
	c.api = api
	return c, nil
}

// newAPI builds the pion API of a client on n: loopback host candidates on
// n's current address only, UDP4, no mDNS, and the default codecs.
func newAPI(n *SwitchNet, log *slog.Logger, t ICETimeouts, relayOnly bool) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: log}
	se.SetNet(n)
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(n.live)
	if relayOnly {
		// Nothing better than a relay will come, so nominate at once.
		// (pion ice v4.4.2 means to, but its options path computes the
		// relay-only default before the candidate types are set, and waits
		// 2 s.)
		se.SetRelayAcceptanceMinWait(0)
	}
	if t != (ICETimeouts{}) {
		d, f, k := t.Disconnected, t.Failed, t.Keepalive
		if d == 0 {
			d = 5 * time.Second
		}
		if f == 0 {
			f = 25 * time.Second
		}
		if k == 0 {
			k = 2 * time.Second
		}
		se.SetICETimeouts(d, f, k)
	}
	var me webrtc.MediaEngine
	if err := me.RegisterDefaultCodecs(); err != nil {
		return nil, fmt.Errorf("thinclient: codecs: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me)), nil
}

// auth adds the session token to an outgoing call's metadata.
func (c *Client) auth(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.cfg.Token)
}

// Leave ends the session (CLOSED, CLIENT_LEFT). While Run is running the
// leave goes through its stream (Connect) or its Signal sender, and Run then
// returns nil once the CLOSED event arrives; otherwise it is one Signal call.
// It returns once the message is handed to the stream (Connect) or the
// Signal call returned.
func (c *Client) Leave(ctx context.Context) error {
	return c.deliver(ctx, outMsg{kind: kindLeave})
}

// NetworkChanged tells the service that the app's network changed;
// description is free text for the timeline (at most 256 bytes). Delivery
// is as for Leave.
func (c *Client) NetworkChanged(ctx context.Context, description string) error {
	return c.deliver(ctx, outMsg{kind: kindNetworkChanged, text: description})
}

// deliver sends m through the running Run, or as one Signal call.
func (c *Client) deliver(ctx context.Context, m outMsg) error {
	m.done = make(chan error, 1)
	c.mu.Lock()
	out := c.out
	c.mu.Unlock()
	if out != nil && out.push(m) {
		select {
		case err := <-m.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := c.rpc.Signal(c.auth(ctx), m.signalRequest(c.cfg.Session))
	return err
}

// DropStream abruptly ends the current Connect (or WatchSession) stream
// from the client side, as a lost network would; Run then resumes after the
// last sequence it saw. A test hook; without a stream it does nothing.
func (c *Client) DropStream() {
	c.mu.Lock()
	drop := c.dropCur
	c.mu.Unlock()
	if drop != nil {
		drop()
	}
}

// Events returns the timeline seen so far, in order, without duplicates.
// The events are copies.
func (c *Client) Events() []*vspb.SessionEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*vspb.SessionEvent, len(c.events))
	for i, e := range c.events {
		out[i] = proto.CloneOf(e)
	}
	return out
}

// WaitEvent blocks until an event for which match is true has been seen
// (one seen before the call counts) and returns a copy of the first such
// event. It fails with ctx's error, or with ErrStopped when Run has
// returned without such an event.
func (c *Client) WaitEvent(ctx context.Context, match func(*vspb.SessionEvent) bool) (*vspb.SessionEvent, error) {
	next := 0
	for {
		c.mu.Lock()
		evs, wake, ended := c.events[next:], c.wake, c.ended
		next = len(c.events)
		c.mu.Unlock()
		for _, e := range evs {
			if match(e) {
				return proto.CloneOf(e), nil
			}
		}
		if ended {
			return nil, ErrStopped
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// WaitRTP blocks until n video RTP packets have been received in total
// (over the whole run). It fails with ctx's error, or ErrStopped when Run
// has returned first.
func (c *Client) WaitRTP(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		got, wake, ended := c.stats.PacketsReceived, c.wake, c.ended
		c.mu.Unlock()
		if got >= int64(n) {
			return nil
		}
		if ended {
			return ErrStopped
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.FramesPerSecond = c.fps.rate(time.Now())
	return s
}

// onSelectedPair records the selected ICE pair of pc, if pc is current.
// (Pion's GetSelectedCandidatePair races with the transport's start, so
// the pair is taken from its change callback instead.)
func (c *Client) onSelectedPair(pc *webrtc.PeerConnection, pair *webrtc.ICECandidatePair) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pc != c.pc || pair == nil || pair.Local == nil {
		return
	}
	c.stats.LocalAddress = net.JoinHostPort(pair.Local.Address, strconv.Itoa(int(pair.Local.Port)))
	c.stats.LocalCandidateType = pair.Local.Typ.String()
	c.stats.LocalRelatedAddress = ""
	if pair.Local.RelatedAddress != "" {
		c.stats.LocalRelatedAddress = net.JoinHostPort(pair.Local.RelatedAddress, strconv.Itoa(int(pair.Local.RelatedPort)))
	}
	c.wakeLocked()
}

// setPC makes pc the current peer connection (nil: none) and forgets the
// selected pair until pc reports one.
func (c *Client) setPC(pc *webrtc.PeerConnection) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pc = pc
	c.stats.LocalAddress, c.stats.LocalCandidateType, c.stats.LocalRelatedAddress = "", "", ""
}

// wakeLocked tells waiters that something changed. c.mu must be held.
func (c *Client) wakeLocked() {
	close(c.wake)
	c.wake = make(chan struct{})
}

// record adds e to the timeline and reports whether it is new. An event at
// or below the last sequence is a duplicate (dropped); one that skips
// sequences is kept and counted as a gap.
func (c *Client) record(e *vspb.SessionEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.stats.LastSequence
	seq := e.GetSequence()
	if seq <= last {
		c.stats.DuplicateEvents++
		return false
	}
	if seq != last+1 {
		c.stats.SequenceGaps++
		c.log.Error("timeline gap: events lost", "after", last, "got", seq)
	}
	c.stats.LastSequence = seq
	c.events = append(c.events, e)
	c.wakeLocked()
	return true
}

func (c *Client) lastSequence() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats.LastSequence
}

// count applies f to the stats under the lock.
func (c *Client) count(f func(*Stats)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(&c.stats)
}

// readTrack starts a reader for a remote track; it ends when the track's
// peer connection closes.
func (c *Client) readTrack(tr *webrtc.TrackRemote) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.noRead {
		return
	}
	clock := tr.Codec().ClockRate
	if clock == 0 {
		clock = 90000
	}
	c.reader.Go(func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := tr.Read(buf)
			if err != nil {
				return
			}
			var h rtp.Header
			if _, err := h.Unmarshal(buf[:n]); err != nil {
				continue
			}
			c.onRTP(n, h, clock, time.Now())
		}
	})
}

func (c *Client) onRTP(size int, h rtp.Header, clock uint32, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stats.PacketsReceived++
	c.stats.BytesReceived += int64(size)
	if h.Marker {
		c.fps.frame(h.SSRC, h.Timestamp, clock, now)
	}
	c.wakeLocked()
}

// fpsMeter estimates a frame rate from the RTP timestamps of the last
// frames of one stream.
type fpsMeter struct {
	ssrc  uint32
	clock uint32
	ts    []uint32 // RTP timestamps of the last frames, oldest first
	last  time.Time
}

const fpsWindow = 16

func (m *fpsMeter) frame(ssrc, ts, clock uint32, now time.Time) {
	if ssrc != m.ssrc || clock != m.clock {
		*m = fpsMeter{ssrc: ssrc, clock: clock}
	}
	if n := len(m.ts); n > 0 && m.ts[n-1] == ts {
		return // a second marker for the same frame
	}
	m.ts = append(m.ts, ts)
	if len(m.ts) > fpsWindow {
		m.ts = m.ts[len(m.ts)-fpsWindow:]
	}
	m.last = now
}

func (m *fpsMeter) rate(now time.Time) float64 {
	if len(m.ts) < 2 || now.Sub(m.last) > time.Second || m.clock == 0 {
		return 0
	}
	span := m.ts[len(m.ts)-1] - m.ts[0] // modular: wraps correctly
	if span == 0 {
		return 0
	}
	return float64(len(m.ts)-1) * float64(m.clock) / float64(span)
}
