package viewerclient

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
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
// keepalive every 2 s). Shorter ones notice a dead path sooner, at the
// cost of a false alarm on a lossy one.
type ICETimeouts struct {
	// Disconnected: without traffic this long, ICE is disconnected.
	Disconnected time.Duration
	// Failed: disconnected this much longer, ICE has failed.
	Failed time.Duration
	// Keepalive: how often ICE sends traffic on a pair that is otherwise
	// quiet.
	Keepalive time.Duration
}

// Defaults of Config's durations.
const (
	// DefaultAckTimeout is Config.AckTimeout's default.
	DefaultAckTimeout = 2500 * time.Millisecond
	// DefaultMediaInterval is Config.MediaInterval's default.
	DefaultMediaInterval = time.Second
	// defaultPoll is how often the network watcher reads the interfaces
	// and the default route.
	defaultPoll = 200 * time.Millisecond
)

// RedialReason is why the client abandoned its connection to the service
// and dialed a fresh one, as Config.OnRedial gets it.
type RedialReason string

// Re-dial reasons.
const (
	// RedialAckTimeout: the service did not acknowledge a message (or
	// answer a join) within Config.AckTimeout.
	RedialAckTimeout RedialReason = "ack timeout"
	// RedialNetworkChange: the network changed (detected by the client,
	// or reported by the app with NetworkChanged).
	RedialNetworkChange RedialReason = "network change"
	// RedialStreamError: the stream or a Signal call failed the way a
	// broken connection does.
	RedialStreamError RedialReason = "stream error"
)

// Config configures a Client. Session, Token, and Conn or Dial are
// required; the zero value of every other field is its default. Fields may
// be added in later versions: build a Config with field names.
type Config struct {
	// Dial opens a fresh connection to the service. The client dials at
	// the start of Run and again whenever it re-dials (an ack timeout, a
	// network change, a stream that broke), and closes every connection
	// it dialed: after a network change the old connection's TCP socket
	// may sit on a dead path, so it is abandoned, never reused. gRPC
	// connects lazily; the client bounds each attempt (a join unanswered
	// within AckTimeout is a failed attempt) and retries with a short
	// backoff. Set Dial or Conn, not both. Dialer makes one for an
	// address and transport credentials.
	Dial func(ctx context.Context) (*grpc.ClientConn, error)
	// Conn is a connection the caller owns. The client cannot replace it:
	// its re-dials open a new stream on the same connection, which helps
	// only where gRPC notices a dead socket itself. Prefer Dial.
	Conn *grpc.ClientConn
	// Session is the session's name, "sessions/{id}".
	Session string
	// Token is the session token from CreateSession. Secret: sent as
	// `authorization: Bearer <token>` and never logged.
	Token string
	// Mode selects Connect or Signal + WatchSession. Default ModeConnect.
	Mode Mode

	// Net, if set, replaces the machine's network as the one the peer
	// connection gathers candidates on and opens its sockets with (pion's
	// transport.Net, as webrtc.SettingEngine.SetNet takes it): a
	// simulated network, in tests. The client does not watch it; the app
	// reports its changes with NetworkChanged.
	//
	// Default: the machine's network. The client gathers host candidates
	// on its interfaces (IPv4 UDP; loopback included, so that a camera on
	// the same machine works) and, unless NoNetworkWatch, watches the
	// interfaces, their addresses and the default route: on a change that
	// breaks the current path, it re-reads the interfaces, re-dials its
	// control stream at once and reports network_changed (see the package
	// doc).
	Net transport.Net
	// InterfaceFilter keeps only the interfaces for which it returns true
	// (by name, e.g. "lo" to stay on loopback). Default: every interface.
	InterfaceFilter func(name string) bool
	// NoNetworkWatch turns the watching of the machine's network off:
	// recovery then relies on what the service sees (the ICE states the
	// client reports, and media that stalls).
	NoNetworkWatch bool

	// AckTimeout is how long a sequenced message (or a join) may wait for
	// the service's acknowledgement before the client treats the stream
	// and its connection as dead and re-dials. Default 2.5 s.
	AckTimeout time.Duration
	// MediaInterval is how often the client reports its media counters
	// (a MediaReport, also its heartbeat) while the control stream is
	// open; it also reports at once when video starts on a peer
	// connection or resumes after a gap (VideoGap). Default 1 s.
	MediaInterval time.Duration

	// Logger receives the client's logs. Default: discard.
	Logger *slog.Logger
	// OnEvent, if set, is called with every new timeline event, in sequence
	// order, on Run's goroutine (so it must not block, nor wait on this
	// client: NetworkChanged and Leave from inside it would deadlock). The
	// event is the caller's to keep.
	OnEvent func(*vspb.SessionEvent)
	// OnNetworkChange, if set, is called on Run's goroutine with the
	// description of each network change the client acts on (detected by
	// its watcher, or reported with NetworkChanged), before it re-dials.
	// The same rules as OnEvent apply.
	OnNetworkChange func(description string)
	// OnRedial, if set, is called on Run's goroutine each time the client
	// abandons its stream (and the connection it dialed) to dial again,
	// with the reason: RedialAckTimeout, RedialNetworkChange or
	// RedialStreamError. The same rules as OnEvent apply.
	OnRedial func(reason RedialReason)

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

	// netSource replaces the operating system as the watcher's view of
	// the network (tests); pollEvery replaces defaultPoll.
	netSource netSource
	pollEvery time.Duration
}

// VideoGap is the shortest stretch without video packets that Stats.Gaps
// records: about 7 frames at 15 fps, which a viewer sees as a freeze.
const VideoGap = 500 * time.Millisecond

// Gap is a stretch without video packets: From is the last packet before
// it, To the first after it.
type Gap struct {
	From, To time.Time
}

// Stats is a snapshot of what a Client has done and received.
type Stats struct {
	// PacketsReceived and BytesReceived count video RTP packets (whole
	// packets, header included) over every peer connection of the run.
	PacketsReceived int64
	BytesReceived   int64
	// FramesReceived counts complete frames (see MediaCounters) over every
	// peer connection of the run.
	FramesReceived int64
	// Media are the current peer connection's counters, as reported to
	// the service.
	Media MediaCounters
	// FirstPacketAt and LastPacketAt are when the run's first and latest
	// video packets arrived (zero before the first).
	FirstPacketAt time.Time
	LastPacketAt  time.Time
	// Gaps are the stretches longer than VideoGap between two video
	// packets of the run, oldest first: black video the user saw. A gap
	// still open (nothing since LastPacketAt) is not in it.
	Gaps []Gap
	// FramesPerSecond estimates the video frame rate from the RTP
	// timestamps of the last frames (a frame ends with the marker bit); 0
	// when no frame arrived in the last second.
	FramesPerSecond float64
	// OffersSent counts offers handed to the service (first, ICE restart,
	// new peer connection).
	OffersSent int
	// ICERestarts counts ICE-restart offers made on the same peer
	// connection.
	ICERestarts int
	// NewPeerConnections counts peer connections built after the first.
	NewPeerConnections int
	// Resumes counts streams reopened after the first (going-away, a
	// dropped stream, a re-dial, or a catch-up on a session that ended
	// meanwhile).
	Resumes int
	// Redials counts re-dials (see Config.OnRedial).
	Redials int
	// NetworkChanges counts the network changes the client acted on.
	NetworkChanges int
	// AppSequence is the last app_sequence given to a message, and
	// AckedAppSequence the highest the service acknowledged.
	AppSequence      uint64
	AckedAppSequence uint64
	// Unacked counts the messages the service has not acknowledged yet
	// (sent or still queued).
	Unacked int
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

// Client is a viewer app's side of one session. Create it with New, call
// Run once; the other methods are safe for concurrent use, before, during
// and after Run.
type Client struct {
	cfg  Config
	net  transport.Net // Config.Net, or host
	host *hostNet      // the machine's network (no Config.Net), or nil
	log  *slog.Logger
	api  *webrtc.API
	out  *outbox // app -> service, numbered; outlives Run
	// resumed gets a token when video starts on a peer connection or
	// resumes after a gap: Run reports media at once.
	resumed chan struct{}
	runs    atomic.Bool
	reader  sync.WaitGroup // RTP readers, one per remote track

	// mu guards the fields below.
	mu      sync.Mutex
	wake    chan struct{} // closed and replaced whenever something below changes
	ended   bool          // Run has returned
	events  []*vspb.SessionEvent
	stats   Stats
	fps     fpsMeter
	pc      *webrtc.PeerConnection // current
	pcs     uint32                 // peer connections built so far (the last id)
	media   pcMedia                // the current peer connection's counters
	gaps    []Gap                  // Stats.Gaps
	noRead  bool                   // no new RTP readers (Run is ending)
	netQ    *queue[netChange]      // the running Run's network changes; nil when not running
	dropCur func()                 // drops the current stream (test hook)
}

// New returns a Client for cfg. It validates cfg and prepares the pion API
// but does not touch the network.
func New(cfg Config) (*Client, error) {
	switch {
	case cfg.Conn == nil && cfg.Dial == nil:
		return nil, fmt.Errorf("%w: Conn or Dial is required", ErrConfig)
	case cfg.Conn != nil && cfg.Dial != nil:
		return nil, fmt.Errorf("%w: Conn and Dial are exclusive", ErrConfig)
	case !strings.HasPrefix(cfg.Session, "sessions/") || len(cfg.Session) == len("sessions/"):
		return nil, fmt.Errorf("%w: Session must be sessions/{id}, got %q", ErrConfig, cfg.Session)
	case cfg.Token == "":
		return nil, fmt.Errorf("%w: Token is required", ErrConfig)
	case cfg.Mode != ModeConnect && cfg.Mode != ModeSignal:
		return nil, fmt.Errorf("%w: unknown mode %v", ErrConfig, cfg.Mode)
	case cfg.AckTimeout < 0 || cfg.MediaInterval < 0:
		return nil, fmt.Errorf("%w: negative AckTimeout or MediaInterval", ErrConfig)
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	if cfg.MediaInterval == 0 {
		cfg.MediaInterval = DefaultMediaInterval
	}
	if cfg.pollEvery == 0 {
		cfg.pollEvery = defaultPoll
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("session", cfg.Session, "mode", cfg.Mode.String())
	c := &Client{
		cfg:     cfg,
		log:     log,
		out:     newOutbox(),
		resumed: make(chan struct{}, 1),
		wake:    make(chan struct{}),
	}
	var err error
	c.net = cfg.Net
	if c.net == nil {
		if c.host, err = newHostNet(); err != nil {
			return nil, err
		}
		c.net = c.host
		if c.cfg.netSource == nil {
			c.cfg.netSource = osNetwork{}
		}
	}
	c.api, err = newAPI(apiOptions{net: c.net, filter: cfg.InterfaceFilter, log: log, ice: cfg.ICETimeouts, relayOnly: cfg.RelayOnly})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// apiOptions are what newAPI needs.
type apiOptions struct {
	net       transport.Net
	filter    func(string) bool // or nil
	log       *slog.Logger
	ice       ICETimeouts
	relayOnly bool
}

// newAPI builds the pion API of a client: UDP4 host (and relay)
// candidates, no mDNS, the default codecs; on the interfaces of o.net
// (loopback included).
func newAPI(o apiOptions) (*webrtc.API, error) {
	var se webrtc.SettingEngine
	se.LoggerFactory = pionLogs{log: o.log}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetNet(o.net)
	if o.filter != nil {
		se.SetInterfaceFilter(o.filter)
	}
	if o.relayOnly {
		// Nothing better than a relay will come, so nominate at once.
		// (pion ice v4.4.2 means to, but its options path computes the
		// relay-only default before the candidate types are set, and waits
		// 2 s.)
		se.SetRelayAcceptanceMinWait(0)
	}
	if t := o.ice; t != (ICETimeouts{}) {
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
		return nil, fmt.Errorf("viewerclient: codecs: %w", err)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&me)), nil
}

// address is where the client gathers, for logs: "host", or a Config.Net
// that describes itself (a fmt.Stringer), or "custom".
func (c *Client) address() string {
	if c.host != nil {
		return "host"
	}
	if s, ok := c.net.(fmt.Stringer); ok {
		return s.String()
	}
	return "custom"
}

// auth adds the session token to an outgoing call's metadata.
func (c *Client) auth(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.cfg.Token)
}

// Leave ends the session (CLOSED, CLIENT_LEFT). While Run is running the
// leave goes through its stream (Connect) or its Signal sender, and Run then
// returns nil once the CLOSED event arrives; otherwise it is one Signal call.
// It returns once the service has handled the leave (acknowledged it, or
// answered its Signal call) or the session has ended CLOSED.
func (c *Client) Leave(ctx context.Context) error {
	return c.deliver(ctx, &outMsg{kind: kindLeave})
}

// NetworkChanged tells the service that the app's network changed;
// description is free text for the timeline (at most 256 bytes). While Run
// is running this is what the client does when its watcher sees a change:
// it re-dials its control stream at once (the old connection may sit on a
// dead path) and sends network_changed on the new one. It returns once the
// service has handled the message; outside Run it is one Signal call.
func (c *Client) NetworkChanged(ctx context.Context, description string) error {
	c.mu.Lock()
	q := c.netQ
	c.mu.Unlock()
	ch := netChange{description: description, done: make(chan error, 1)}
	if q != nil && q.push(ch) {
		select {
		case err := <-ch.done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return c.signalOnce(ctx, &outMsg{kind: kindNetworkChanged, text: description})
}

// deliver sends m through the running Run, or as one Signal call.
func (c *Client) deliver(ctx context.Context, m *outMsg) error {
	done := make(chan error, 1)
	m.done = done
	if c.out.push(m) {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.done = nil
	return c.signalOnce(ctx, m)
}

// signalOnce sends m, numbered, as one Signal call outside Run, on Conn or
// on a connection dialed for it.
func (c *Client) signalOnce(ctx context.Context, m *outMsg) error {
	c.out.number(m)
	cc := c.cfg.Conn
	if cc == nil {
		var err error
		if cc, err = c.cfg.Dial(ctx); err != nil {
			return fmt.Errorf("viewerclient: dial: %w", err)
		}
		defer cc.Close()
	}
	resp, err := vspb.NewViewerSessionServiceClient(cc).Signal(c.auth(ctx), m.signalRequest(c.cfg.Session))
	if err == nil {
		c.out.ack(resp.GetAckedAppSequence())
	}
	return err
}

// DropStream abruptly ends the current Connect (or WatchSession) stream
// from the client side, as a lost network would; Run then resumes on the
// same connection after the last sequence it saw. It is a seam for tests
// of an app's resume path (the service's tests use it); without a stream
// it does nothing.
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
	last, acked, pending := c.out.sequences()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.FramesPerSecond = c.fps.rate(time.Now())
	s.Media = c.media.MediaCounters
	s.Gaps = slices.Clone(c.gaps)
	s.AppSequence, s.AckedAppSequence, s.Unacked = last, acked, pending
	return s
}

// mediaReport returns the current peer connection's counters as a report.
func (c *Client) mediaReport() *vspb.MediaReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media.report()
}

// inUse returns the local IP of the current ICE pair's own socket (the
// host candidate's address, or a relayed or reflexive candidate's related
// address), or "" when no pair is selected.
func (c *Client) inUse() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.stats.LocalAddress
	if c.stats.LocalRelatedAddress != "" {
		a = c.stats.LocalRelatedAddress
	}
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return ""
	}
	return host
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
// selected pair until pc reports one. A new peer connection gets the next
// id and media counters from zero; it returns the id.
func (c *Client) setPC(pc *webrtc.PeerConnection) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pc != c.pc {
		c.media = pcMedia{}
		if pc != nil {
			c.pcs++
			c.media.PeerConnectionID = c.pcs
		}
	}
	c.pc = pc
	c.stats.LocalAddress, c.stats.LocalCandidateType, c.stats.LocalRelatedAddress = "", "", ""
	return c.media.PeerConnectionID
}

// forgetPair forgets the selected pair until the current peer connection
// reports one (an ICE restart is under way).
func (c *Client) forgetPair() {
	c.mu.Lock()
	defer c.mu.Unlock()
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

// readTrack starts a reader for a remote track of the peer connection
// whose id is pcID; it ends when that peer connection closes.
func (c *Client) readTrack(tr *webrtc.TrackRemote, pcID uint32) {
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
			c.onRTP(pcID, buf[:n], h, clock, time.Now())
		}
	})
}

func (c *Client) onRTP(pcID uint32, pkt []byte, h rtp.Header, clock uint32, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	resumed := false
	if last := c.stats.LastPacketAt; last.IsZero() {
		c.stats.FirstPacketAt = now
	} else if now.Sub(last) > VideoGap {
		c.gaps = append(c.gaps, Gap{From: last, To: now})
		resumed = true
	}
	c.stats.LastPacketAt = now
	c.stats.PacketsReceived++
	c.stats.BytesReceived += int64(len(pkt))
	if h.Marker {
		c.fps.frame(h.SSRC, h.Timestamp, clock, now)
	}
	if pcID == c.media.PeerConnectionID && pcID != 0 {
		resumed = resumed || c.media.Packets == 0
		if c.media.add(len(pkt), h, pkt) {
			c.stats.FramesReceived++
		}
	}
	if resumed {
		select {
		case c.resumed <- struct{}{}:
		default:
		}
	}
	c.wakeLocked()
}
