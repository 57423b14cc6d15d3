package kvs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/viewersession/kvs/internal/ws"
)

// EventType says what an Event reports.
type EventType int

// Event types. The zero value is not a valid event type.
const (
	// EventAnswer carries the master's SDP answer in SDP.
	EventAnswer EventType = iota + 1
	// EventCandidate carries one of the master's ICE candidates in Candidate.
	EventCandidate
	// EventStatus carries a STATUS_RESPONSE (KVS refused a message this
	// connection sent) in Status.
	EventStatus
	// EventReconnected says the signaling socket was reopened with the same
	// clientId, after GO_AWAY or a dropped socket; Err says why it was left.
	EventReconnected
	// EventIceServersRefreshed follows RECONNECT_ICE_SERVER: IceServers holds
	// the fresh set, or Err why it could not be fetched.
	EventIceServersRefreshed
	// EventClosed is the last event: the connection ended for good, and Err
	// says why (wrapping ErrClosed after Close or ctx, ErrUnavailable when
	// reconnecting failed).
	EventClosed
)

// String returns the event type's name.
func (t EventType) String() string {
	switch t {
	case EventAnswer:
		return "Answer"
	case EventCandidate:
		return "Candidate"
	case EventStatus:
		return "Status"
	case EventReconnected:
		return "Reconnected"
	case EventIceServersRefreshed:
		return "IceServersRefreshed"
	case EventClosed:
		return "Closed"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is something that happened on a signaling connection; Type says which
// fields are set.
type Event struct {
	Type       EventType
	SDP        string
	Candidate  Candidate
	Status     *Status
	IceServers *IceServers
	Err        error
}

// Candidate is an ICE candidate as RTCIceCandidateInit carries it.
type Candidate struct {
	// Candidate is the candidate line ("candidate:..."); empty marks the end
	// of candidates.
	Candidate string
	// SDPMid is the media stream identification tag, "" when absent.
	SDPMid string
	// SDPMLineIndex is the m-line index, nil when absent.
	SDPMLineIndex *uint16
	// UsernameFragment is the ICE ufrag the candidate belongs to, if given.
	UsernameFragment string
}

// Status is a STATUS_RESPONSE: KVS's report that a message sent with a
// correlationId failed.
type Status struct {
	CorrelationID, ErrorType, StatusCode, Description string
	// Action is the action of the message it answers (SDP_OFFER or
	// ICE_CANDIDATE), found by its correlationId; "" when unknown.
	Action string
}

// Internal limits of a connection.
const (
	// eventBuffer is small: a connection's events come a few at a time
	// (an answer, its candidates) to a consumer that keeps reading, and a
	// buffer is allocated whole per connection (an Event is 112 bytes).
	eventBuffer    = 4
	maxPending     = 128             // correlationIds remembered for STATUS_RESPONSE
	sendTimeout    = 5 * time.Second // bounds one frame write (the C SDK's send timeout)
	reconnectGrace = 15 * time.Second
)

var clientIDRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,256}$`)

// validateClientID applies KVS's clientId rules.
func validateClientID(id string) error {
	if !clientIDRE.MatchString(id) {
		return fmt.Errorf("kvs: %w: clientId %q is not 1..256 of [a-zA-Z0-9_.-]", ErrInvalidArgument, clip(id, 64))
	}
	if strings.HasPrefix(strings.ToUpper(id), "AWS_") {
		return fmt.Errorf("kvs: %w: clientId %q starts with AWS_", ErrInvalidArgument, id)
	}
	return nil
}

// Conn is one viewer signaling connection to a channel, with a fixed
// clientId. It reopens its socket after GO_AWAY or a drop (same clientId),
// refetches ICE servers on RECONNECT_ICE_SERVER, and pings to keep the socket
// alive. It is safe for concurrent use. Its owner must drain Events and call
// Close (or cancel the Dial context) to stop its goroutines.
//
// An open connection holds one goroutine, its socket's reader, which also
// delivers the events (see DialAs). Keepalive pings run on a timer and the
// close on ctx is a context.AfterFunc: each takes a goroutine only while it
// runs. A RECONNECT_ICE_SERVER refresh takes one for its HTTP call. The
// socket is internal/ws's: it keeps no read or write buffer between frames,
// and its idle reader parks shallow, so the runtime shrinks its stack to
// 4 KiB.
type Conn struct {
	client     *Client
	clientID   string
	tlsResumed bool       // the first socket resumed a TLS session (tests)
	arn        string     // the channel's ARN, for the logs
	events     chan Event // Events; nil after DialAs
	out        sink       // where the reader delivers the events
	cancel     context.CancelFunc
	done       chan struct{} // closed when the connection has ended for good
	prefix     string        // correlationId prefix, random per Conn
	seq        atomic.Uint64
	icing      atomic.Bool // a RECONNECT_ICE_SERVER refresh is running
	userStop   atomic.Bool // Close was called

	// mu guards the fields below.
	mu       sync.Mutex
	ch       Channel
	sock     *ws.Conn      // the current socket; nil between sockets
	ready    chan struct{} // closed while sock is set; a fresh one while not
	ended    bool          // the connection ended for good
	pending  map[string]string
	pendingQ []string
}

// Dial opens a signaling connection to ch as a viewer with clientID: a
// SigV4-presigned WSS URL (X-Amz-ChannelARN, X-Amz-ClientId), one handshake
// bounded by Config.DialTimeout, retried with Backoff while KVS throttles
// (ClientLimitExceededException at the upgrade). The connection lives until
// Close or until ctx is done. When the endpoint fails (not found, unreachable)
// the channel's cached endpoints are invalidated.
func (c *Client) Dial(ctx context.Context, ch Channel, clientID string) (*Conn, error) {
	events := make(chan Event, eventBuffer)
	return c.dial(ctx, ch, clientID, events, &chanSink[Event]{ch: events, conv: asIs})
}

// DialAs is Dial for a consumer that wants the events in a type of its own:
// conv translates each event on the connection's reader goroutine (false
// drops it), and the returned channel delivers the results in order, with
// the contract of Events (closed after the last one, EventClosed's; the
// consumer must keep reading it). The Conn's own Events is then nil. It
// spares the consumer a goroutine and a second buffer to translate them.
func DialAs[T any](ctx context.Context, c *Client, ch Channel, clientID string, conv func(Event) (T, bool)) (*Conn, <-chan T, error) {
	events := make(chan T, eventBuffer)
	cn, err := c.dial(ctx, ch, clientID, nil, &chanSink[T]{ch: events, conv: conv})
	if err != nil {
		return nil, nil, err
	}
	return cn, events, nil
}

// dial opens the connection; out delivers its events (events is the
// channel Events returns, nil when out delivers elsewhere).
func (c *Client) dial(ctx context.Context, ch Channel, clientID string, events chan Event, out sink) (*Conn, error) {
	if err := validateClientID(clientID); err != nil {
		return nil, err
	}
	if ch.ARN == "" || ch.WSSEndpoint == "" {
		return nil, fmt.Errorf("kvs: %w: channel has no ARN or WSS endpoint (resolve it first)", ErrInvalidArgument)
	}
	var resumed bool
	sock, err := retry(ctx, c.cfg.Backoff, isThrottled, func() (*ws.Conn, error) {
		sock, r, err := c.connect(ctx, ch, clientID)
		c.observe("ConnectAsViewer", err)
		resumed = r
		return sock, err
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
			c.Invalidate(ch.ARN)
		}
		return nil, err
	}
	var p [4]byte
	_, _ = rand.Read(p[:])
	ready := make(chan struct{})
	close(ready)
	runCtx, cancel := context.WithCancel(ctx)
	cn := &Conn{
		client:     c,
		clientID:   clientID,
		tlsResumed: resumed,
		arn:        ch.ARN,
		events:     events,
		out:        out,
		cancel:     cancel,
		done:       make(chan struct{}),
		prefix:     hex.EncodeToString(p[:]),
		ch:         ch,
		sock:       sock,
		ready:      ready,
	}
	go cn.run(runCtx, sock)
	cn.logAt(ctx, slog.LevelDebug, "kvs signaling connected", "tls_resumed", resumed)
	return cn, nil
}

// connect presigns the URL and performs one WebSocket handshake. It reports
// whether the TLS session was resumed (the Client's session cache).
func (c *Client) connect(ctx context.Context, ch Channel, clientID string) (*ws.Conn, bool, error) {
	const op = "ConnectAsViewer"
	creds, err := c.credentials(ctx)
	if err != nil {
		return nil, false, err
	}
	u, err := presignURL(ctx, c.signer, creds, ch.WSSEndpoint, ch.Region,
		url.Values{"X-Amz-ChannelARN": {ch.ARN}, "X-Amz-ClientId": {clientID}}, c.cfg.PresignExpiry, time.Now())
	if err != nil {
		return nil, false, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	sock, resp, err := ws.Dial(dctx, c.http, u, maxFrame)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, false, ctxErr
		}
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			// ws.Dial kept the body of a refusal (up to 64 KiB).
			raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxICEBody))
			return nil, false, errorFromResponse(op, resp, raw)
		}
		return nil, false, unavailable(op, redact(err))
	}
	return sock, resp.TLS != nil && resp.TLS.DidResume, nil
}

// redact drops the request URL (which carries the session token and
// signature) from a handshake error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("websocket handshake: %s: %w", ue.Op, ue.Err)
	}
	if s := err.Error(); strings.Contains(s, "X-Amz-") {
		return errors.New("websocket handshake failed")
	}
	return err
}

// Events returns the connection's events. It is closed after the connection
// ends for good (Close, the Dial context, or reconnect failure), right after
// EventClosed. The consumer must keep reading it: a full buffer stalls the
// socket reader. It is nil for a connection opened by DialAs.
func (cn *Conn) Events() <-chan Event { return cn.events }

// sink delivers a connection's events, in order, from its reader goroutine.
type sink interface {
	// emit delivers ev unless ctx ends first.
	emit(ctx context.Context, ev Event)
	// end delivers the last event (EventClosed), even after ctx ended when
	// the buffer has room, and closes the channel.
	end(ctx context.Context, ev Event)
}

// chanSink delivers events on a channel, translated by conv.
type chanSink[T any] struct {
	ch   chan T
	conv func(Event) (T, bool)
}

func asIs(ev Event) (Event, bool) { return ev, true }

func (s *chanSink[T]) emit(ctx context.Context, ev Event) {
	v, ok := s.conv(ev)
	if !ok {
		return
	}
	select {
	case s.ch <- v:
	case <-ctx.Done():
	}
}

func (s *chanSink[T]) end(ctx context.Context, ev Event) {
	defer close(s.ch)
	v, ok := s.conv(ev)
	if !ok {
		return
	}
	select {
	case s.ch <- v:
	case <-ctx.Done():
		select {
		case s.ch <- v:
		default:
			// A full buffer after Close: the close of the channel is the
			// signal.
		}
	}
}

// Close ends the connection with a normal WebSocket closure and waits for its
// goroutines. It is idempotent and returns nil.
func (cn *Conn) Close() error {
	cn.userStop.Store(true)
	cn.cancel()
	<-cn.done
	return nil
}

// SendOffer sends an SDP offer to the master and returns its correlationId
// (a STATUS_RESPONSE for it arrives as EventStatus with Action SDP_OFFER).
// While the socket is being reopened it waits for it (bounded by ctx).
func (cn *Conn) SendOffer(ctx context.Context, sdp string) (correlationID string, err error) {
	if sdp == "" {
		return "", fmt.Errorf("kvs: %w: empty SDP offer", ErrInvalidArgument)
	}
	payload, err := offerPayload(sdp)
	if err != nil {
		return "", fmt.Errorf("kvs: %w: %w", ErrInvalidArgument, err)
	}
	return cn.send(ctx, actionSDPOffer, payload)
}

// SendCandidate sends one ICE candidate to the master and returns its
// correlationId. The candidate is sent as given; ValidateCandidate checks it.
func (cn *Conn) SendCandidate(ctx context.Context, cand Candidate) (correlationID string, err error) {
	if len(cand.Candidate) > maxCandidate {
		return "", fmt.Errorf("kvs: %w: candidate of %d bytes, over %d", ErrInvalidArgument, len(cand.Candidate), maxCandidate)
	}
	payload, err := candidatePayload(cand)
	if err != nil {
		return "", fmt.Errorf("kvs: %w: %w", ErrInvalidArgument, err)
	}
	return cn.send(ctx, actionICECandidate, payload)
}

// send writes one frame on the current socket.
func (cn *Conn) send(ctx context.Context, action, payload string) (string, error) {
	id := cn.prefix + "." + fmt.Sprint(cn.seq.Add(1))
	b, err := encodeFrame(action, payload, id)
	if err != nil {
		return "", err
	}
	sock, err := cn.socket(ctx)
	if err != nil {
		return "", err
	}
	cn.remember(id, action)
	// The write gets its own deadline: a cancelled write would kill the socket.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), sendTimeout)
	defer cancel()
	if err := sock.Write(wctx, ws.MessageText, b); err != nil {
		if cn.isEnded() {
			return "", ErrClosed
		}
		return "", unavailable("send "+action, err)
	}
	cn.logAt(ctx, slog.LevelDebug, "kvs signaling sent", "action", action, "correlation_id", id, "payload_bytes", len(payload))
	return id, nil
}

// socket returns the current socket, waiting while it is being reopened.
func (cn *Conn) socket(ctx context.Context) (*ws.Conn, error) {
	for {
		cn.mu.Lock()
		sock, ready, ended := cn.sock, cn.ready, cn.ended
		cn.mu.Unlock()
		switch {
		case ended:
			return nil, ErrClosed
		case sock != nil:
			return sock, nil
		}
		select {
		case <-ready:
		case <-cn.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (cn *Conn) isEnded() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.ended
}

// logAt logs with the connection's channel and clientId. They are added
// per record, not kept preformatted (slog's With) in every connection.
func (cn *Conn) logAt(ctx context.Context, level slog.Level, msg string, args ...any) {
	l := cn.client.log
	if !l.Enabled(ctx, level) {
		return
	}
	l.Log(ctx, level, msg, append([]any{"channel_arn", cn.arn, "client_id", cn.clientID}, args...)...)
}

// remember records which action a correlationId belongs to, forgetting the
// oldest beyond maxPending.
func (cn *Conn) remember(id, action string) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.pending == nil {
		cn.pending = make(map[string]string)
	}
	cn.pending[id] = action
	cn.pendingQ = append(cn.pendingQ, id)
	if len(cn.pendingQ) > maxPending {
		delete(cn.pending, cn.pendingQ[0])
		cn.pendingQ = cn.pendingQ[1:]
	}
}

func (cn *Conn) actionOf(id string) string {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.pending[id]
}

// setSocket installs sock as the current socket (nil: between sockets).
func (cn *Conn) setSocket(sock *ws.Conn) {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	switch {
	case sock != nil && cn.sock == nil:
		close(cn.ready)
	case sock == nil && cn.sock != nil:
		cn.ready = make(chan struct{})
	}
	cn.sock = sock
}

// emit delivers ev unless ctx ends first.
func (cn *Conn) emit(ctx context.Context, ev Event) { cn.out.emit(ctx, ev) }

// run owns the connection: it serves each socket, reopens it after GO_AWAY
// or a drop, and ends the connection for good. Its goroutine spends its
// life parked under serve, so run and serve keep small frames (the work of
// each step is in functions that return before the next wait): the runtime
// shrinks an idle goroutine's stack only while it parks shallow.
func (cn *Conn) run(ctx context.Context, sock *ws.Conn) {
	helpers := new(sync.WaitGroup)
	var why error
	for sock != nil {
		left := cn.serve(ctx, sock, helpers)
		sock, why = cn.next(ctx, sock, left)
	}
	cn.end(ctx, helpers, why)
}

// next closes a socket that left, then reopens it: it returns the new
// socket, or nil and why the connection ends.
func (cn *Conn) next(ctx context.Context, sock *ws.Conn, left error) (*ws.Conn, error) {
	cn.setSocket(nil)
	if ctx.Err() != nil {
		_ = sock.Close(ws.StatusNormalClosure, "")
		return nil, cn.closedWhy(ctx)
	}
	if errors.Is(left, errGoAway) {
		_ = sock.Close(ws.StatusNormalClosure, "")
	} else {
		_ = sock.CloseNow()
	}
	cn.logAt(ctx, slog.LevelInfo, "kvs signaling socket left, reconnecting", "reason", left)
	next, err := cn.reconnect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, cn.closedWhy(ctx)
		}
		return nil, err
	}
	cn.setSocket(next)
	cn.logAt(ctx, slog.LevelInfo, "kvs signaling reconnected", "reason", left)
	cn.emit(ctx, Event{Type: EventReconnected, Err: left})
	return next, nil
}

// closedWhy is why a connection whose ctx is done ended: ErrClosed, with
// ctx's cause unless Close ended it.
func (cn *Conn) closedWhy(ctx context.Context) error {
	if cn.userStop.Load() {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, context.Cause(ctx))
}

// end ends the connection for good, once its helpers are done.
func (cn *Conn) end(ctx context.Context, helpers *sync.WaitGroup, why error) {
	helpers.Wait()
	cn.mu.Lock()
	cn.ended = true
	cn.mu.Unlock()
	if !errors.Is(why, ErrClosed) {
		cn.logAt(ctx, slog.LevelWarn, "kvs signaling connection ended", "err", why)
	}
	cn.out.end(ctx, Event{Type: EventClosed, Err: why})
	cn.cancel()
	close(cn.done)
}

// errGoAway is why a socket left after GO_AWAY.
var errGoAway = errors.New("kvs: GO_AWAY from KVS")

// serve reads frames from sock until the socket ends, GO_AWAY arrives or ctx
// is done, keeping it alive with pings meanwhile. It returns why it left.
// It starts no goroutine that outlives a step: the close on ctx and the
// pings run on callbacks, and serve waits for them before it returns.
// Reads do not see ctx (a cancelled read would kill the socket uncleanly):
// ctx's end closes the socket cleanly, which ends the read.
func (cn *Conn) serve(ctx context.Context, sock *ws.Conn, helpers *sync.WaitGroup) error {
	defer cn.watch(ctx, sock)()
	for {
		typ, b, err := sock.Read()
		if err != nil {
			return socketError(err)
		}
		if err := cn.handle(ctx, typ, b, helpers); err != nil {
			return err
		}
	}
}

func socketError(err error) error { return fmt.Errorf("kvs: signaling socket: %w", err) }

// watch arms what runs beside serve's reads: the clean close when ctx ends,
// and the keepalive pings. The returned func disarms both and waits for
// them.
func (cn *Conn) watch(ctx context.Context, sock *ws.Conn) (stop func()) {
	closed := make(chan struct{})
	stopClose := context.AfterFunc(ctx, func() {
		defer close(closed)
		// A clean closure; it also ends the pending read.
		_ = sock.Close(ws.StatusNormalClosure, "")
	})
	var k *keepalive
	if iv := cn.client.cfg.PingInterval; iv > 0 {
		k = startKeepalive(sock, iv)
	}
	return func() {
		if k != nil {
			k.stop()
		}
		if !stopClose() {
			<-closed
		}
	}
}

// handle acts on one message; an error ends the socket (GO_AWAY).
func (cn *Conn) handle(ctx context.Context, typ ws.MessageType, b []byte, helpers *sync.WaitGroup) error {
	if typ != ws.MessageText {
		cn.logAt(ctx, slog.LevelDebug, "kvs signaling frame ignored", "why", "binary frame")
		return nil
	}
	if b == nil {
		cn.logAt(ctx, slog.LevelWarn, "kvs signaling frame ignored", "why", "oversized frame")
		return nil
	}
	f := decodeFrame(b)
	switch f.kind {
	case frameIgnored:
		cn.logAt(ctx, slog.LevelDebug, "kvs signaling frame ignored", "why", f.why, "bytes", len(b))
	case frameGoAway:
		return errGoAway
	case frameReconnectICE:
		cn.refreshIce(ctx, helpers)
	case frameAnswer:
		cn.emit(ctx, Event{Type: EventAnswer, SDP: f.sdp})
	case frameCandidate:
		cn.emit(ctx, Event{Type: EventCandidate, Candidate: f.candidate})
	case frameStatus:
		st := f.status
		st.Action = cn.actionOf(st.CorrelationID)
		cn.logAt(ctx, slog.LevelInfo, "kvs status response", "correlation_id", st.CorrelationID, "action", st.Action, "error_type", st.ErrorType, "status_code", st.StatusCode)
		cn.emit(ctx, Event{Type: EventStatus, Status: &st})
	}
	return nil
}

// keepalive pings a socket every interval, from a timer, without waiting
// for the pong (the socket's reader takes it in): each tick first checks
// that the previous ping was answered, so a ping without a pong within the
// interval drops the socket, which makes run reconnect. A tick holds no
// goroutine, timer or context beyond its own callback: an idle session's
// socket costs next to nothing between pings. Pings do not see ctx's
// cancellation (a cancelled ping kills the socket uncleanly); serve closes
// the socket cleanly instead.
type keepalive struct {
	sock     *ws.Conn
	interval time.Duration
	sent     bool // a ping was sent; only the timer's callback touches it

	// mu guards the fields below.
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	pinging sync.WaitGroup // a tick in flight; Add only while !stopped
}

// startKeepalive arms the first ping of sock.
func startKeepalive(sock *ws.Conn, interval time.Duration) *keepalive {
	k := &keepalive{sock: sock, interval: interval}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t = time.AfterFunc(interval, k.ping)
	return k
}

// ping is the timer's callback: the last ping's pong checked, one ping
// sent, then the next tick is armed.
func (k *keepalive) ping() {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.pinging.Add(1)
	k.mu.Unlock()
	defer k.pinging.Done()

	if k.sent && !k.sock.Ponged() {
		_ = k.sock.CloseNow()
		return
	}
	if err := k.sock.SendPing(time.Now().Add(k.interval)); err != nil {
		_ = k.sock.CloseNow()
		return
	}
	k.sent = true
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.stopped {
		k.t.Reset(k.interval)
	}
}

// stop disarms the pings and waits for a tick in flight (its write ends
// by its deadline, or with the socket's close).
func (k *keepalive) stop() {
	k.mu.Lock()
	k.stopped = true
	k.t.Stop()
	k.mu.Unlock()
	k.pinging.Wait()
}

// refreshIce refetches the channel's ICE servers in the background after
// RECONNECT_ICE_SERVER and reports them; a refresh already running absorbs
// the request.
func (cn *Conn) refreshIce(ctx context.Context, helpers *sync.WaitGroup) {
	if !cn.icing.CompareAndSwap(false, true) {
		return
	}
	cn.mu.Lock()
	ch := cn.ch
	cn.mu.Unlock()
	helpers.Go(func() {
		defer cn.icing.Store(false)
		s, err := cn.client.RefreshIceServers(ctx, ch, cn.clientID)
		if ctx.Err() != nil {
			return
		}
		ev := Event{Type: EventIceServersRefreshed, Err: err}
		if err == nil {
			ev.IceServers = &s
			cn.logAt(ctx, slog.LevelInfo, "kvs ice servers refreshed on request", "servers", len(s.Servers), "expires", s.Expires)
		} else {
			cn.logAt(ctx, slog.LevelWarn, "kvs ice servers refresh failed", "err", err)
		}
		cn.emit(ctx, ev)
	})
}

// reconnect reopens the socket with the same clientId, up to
// Backoff.Attempts tries spaced by the backoff. When the endpoint fails, the
// channel is resolved again before the next try.
func (cn *Conn) reconnect(ctx context.Context) (*ws.Conn, error) {
	b := cn.client.cfg.Backoff
	cn.mu.Lock()
	ch := cn.ch
	cn.mu.Unlock()
	var last error
	for n := 1; n <= b.Attempts; n++ {
		if n > 1 {
			if err := sleep(ctx, b.delay(n-1)); err != nil {
				return nil, err
			}
		}
		actx, cancel := context.WithTimeout(ctx, reconnectGrace)
		sock, _, err := cn.client.connect(actx, ch, cn.clientID)
		cancel()
		cn.client.observe("ConnectAsViewer", err)
		if err == nil {
			return sock, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		last = err
		cn.logAt(ctx, slog.LevelInfo, "kvs signaling reconnect attempt failed", "attempt", n, "err", err)
		switch {
		case errors.Is(err, ErrInvalidArgument):
			n = b.Attempts // permanent
		case errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrThrottled):
			cn.client.Invalidate(ch.ARN)
			fresh, rerr := cn.client.ResolveChannel(ctx, ChannelRef{ARN: ch.ARN})
			if rerr != nil {
				if errors.Is(rerr, ErrNotFound) {
					last = rerr
					n = b.Attempts
				}
				continue
			}
			ch = fresh
			cn.mu.Lock()
			cn.ch = fresh
			cn.mu.Unlock()
		}
	}
	return nil, fmt.Errorf("kvs: reconnect signaling: %w: %w", ErrUnavailable, last)
}
