package kvsemu

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/acme/viewersession/kvsemu/sigv4"
)

// Roles, as used in records and counter keys.
const (
	roleMaster = "master"
	roleViewer = "viewer"
	roleSvc    = "service"
)

// Query parameters of the signaling URL.
const (
	paramChannelARN = "X-Amz-ChannelARN"
	paramClientID   = "X-Amz-ClientId"
)

// cameraHeader marks the upgrade requests of our simulated cameras (it is
// not signed and changes nothing but StopCamera's bookkeeping).
const cameraHeader = "X-Kvsemu-Camera"

// writeTimeout bounds one WebSocket write.
const writeTimeout = 5 * time.Second

// stopReason says why the emulator ends a connection.
type stopReason int

const (
	stopNone     stopReason = iota
	stopReplaced            // a newer connection with the same role and id
	stopDropped             // fault: close abruptly, no close frame
	stopDeleted             // the channel was deleted
	stopSlow                // the outbound queue overflowed
)

// conn is one accepted signaling WebSocket.
type conn struct {
	ch       *channel
	role     string // roleMaster or roleViewer
	clientID string // "" for the master
	camera   bool   // dialled by one of our simulated cameras
	ws       *websocket.Conn
	sdp      *rate.Limiter // SDP_OFFER + SDP_ANSWER; nil = unlimited
	ice      *rate.Limiter

	out      chan []byte   // frames to write, drained by the connection loop
	activity chan struct{} // a signaling message arrived (resets the idle timer)
	goAway   chan struct{} // an injected GO_AWAY: close after GoAwayBefore
	done     chan struct{} // closed by stop
	exited   chan struct{} // closed when runConn has unregistered c and returned
	once     sync.Once
	reason   stopReason // set once, before done closes
}

func (c *conn) stop(r stopReason) {
	c.once.Do(func() {
		c.reason = r
		close(c.done)
	})
}

// enqueueResult is what happened to a frame handed to a connection.
type enqueueResult int

const (
	enqueued enqueueResult = iota
	connGone               // the connection is ending
	connFull               // the queue overflowed; the connection is stopped
)

// enqueue hands a frame to the connection without blocking.
func (c *conn) enqueue(frame []byte) enqueueResult {
	select {
	case <-c.done:
		return connGone
	default:
	}
	select {
	case c.out <- frame:
		return enqueued
	default:
		c.stop(stopSlow)
		return connFull
	}
}

// peer is the role on the other end of a message from c.
func (c *conn) peer() string {
	if c.role == roleMaster {
		return roleViewer
	}
	return roleMaster
}

// serveSignaling accepts a signaling WebSocket: ConnectAsMaster without
// X-Amz-ClientId, ConnectAsViewer with it.
func (e *Emulator) serveSignaling(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	arn := q.Get(paramChannelARN)
	clientID := q.Get(paramClientID)
	role, op := roleMaster, "ConnectAsMaster"
	if q.Has(paramClientID) {
		role, op = roleViewer, "ConnectAsViewer"
	}
	refuse := func(status int, code, msg string) {
		e.counters.connect(connectKey(role) + "_REFUSED")
		e.log.Debug("kvsemu: connect refused", "role", role, "client_id", clientID, "code", code, "msg", msg)
		writeError(w, status, code, msg)
	}
	if err := e.verifier.VerifyPresigned(r); err != nil {
		refuse(http.StatusForbidden, codeAccessDenied, authMessage(err))
		return
	}
	if arn == "" {
		refuse(http.StatusBadRequest, codeInvalidArgument, "X-Amz-ChannelARN is required")
		return
	}
	ch, ok := e.channel(arn)
	if !ok {
		refuse(http.StatusNotFound, codeNotFound, "The requested channel is not found or not active.")
		return
	}
	if role == roleViewer && !validClientID(clientID) {
		refuse(http.StatusBadRequest, codeInvalidArgument, "X-Amz-ClientId must match [a-zA-Z0-9_.-]{1,256} and not start with AWS_")
		return
	}
	if e.takeThrottle(op) {
		refuse(http.StatusBadRequest, codeClientLimit, "Injected throttle: "+op)
		return
	}
	limiter := ch.masterLimit
	if role == roleViewer {
		limiter = ch.viewerLimit
	}
	if !allow(limiter, e.cfg.Now()) {
		refuse(http.StatusBadRequest, codeClientLimit, op+" rate exceeded for this channel")
		return
	}
	if role == roleViewer && !ch.viewerSlotFree(clientID, e.cfg.Limits.MaxViewers) {
		refuse(http.StatusBadRequest, codeClientLimit, "Too many viewers on this channel")
		return
	}

	if !isUpgrade(r) {
		refuse(http.StatusBadRequest, codeInvalidArgument, "a WebSocket upgrade is required")
		return
	}

	// Register before accepting, so that the connection is routable (and
	// faults can reach it) as soon as the client sees 101.
	c := &conn{
		ch:       ch,
		role:     role,
		clientID: clientID,
		camera:   r.Header.Get(cameraHeader) != "",
		sdp:      newLimiter(e.cfg.Limits.SDPPerSecond),
		ice:      newLimiter(e.cfg.Limits.ICEPerSecond),
		out:      make(chan []byte, outboundQueueFrames),
		activity: make(chan struct{}, 1),
		goAway:   make(chan struct{}, 1),
		done:     make(chan struct{}),
		exited:   make(chan struct{}),
	}
	if err := e.register(c); err != nil {
		if errors.Is(err, ErrNotFound) {
			refuse(http.StatusNotFound, codeNotFound, "The requested channel is not found or not active.")
		} else {
			refuse(http.StatusBadRequest, codeClientLimit, "Too many viewers on this channel")
		}
		return
	}
	// Counted before the 101 goes out: a client that sees its connection
	// accepted must find it in the counters.
	e.counters.connect(connectKey(role))
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		e.log.Debug("kvsemu: websocket accept", "err", err)
		e.counters.add(func(s *Counters) { s.Connects[connectKey(role)]-- })
		e.unregister(c)
		close(c.exited)
		return
	}
	ws.SetReadLimit(maxInboundFrameBytes)
	c.ws = ws
	e.log.Debug("kvsemu: connected", "channel", ch.name, "role", role, "client_id", clientID)
	e.runConn(r.Context(), c)
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

// connectKey is the Counters.Connects key of a role: "MASTER" or "VIEWER".
func connectKey(role string) string {
	if role == roleMaster {
		return "MASTER"
	}
	return "VIEWER"
}

// viewerSlotFree reports whether a viewer with clientID may connect: it
// replaces its own older connection, or there are fewer than max viewers.
func (ch *channel) viewerSlotFree(clientID string, limit int) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	_, replacing := ch.viewers[clientID]
	return replacing || limit < 0 || len(ch.viewers) < limit
}

// register makes c the channel's master or its viewer for c.clientID, stops
// the connection it replaces and delivers the messages queued for it. It
// returns ErrNotFound for a deleted channel and errChannelFull.
func (e *Emulator) register(c *conn) error {
	ch := c.ch
	now := e.cfg.Now()
	ch.mu.Lock()
	if ch.deleted {
		ch.mu.Unlock()
		return ErrNotFound
	}
	var old *conn
	var queued []pending
	if c.role == roleMaster {
		old, ch.master = ch.master, c
		queued, ch.toMaster = ch.toMaster, nil
	} else {
		old = ch.viewers[c.clientID]
		if limit := e.cfg.Limits.MaxViewers; old == nil && limit >= 0 && len(ch.viewers) >= limit {
			ch.mu.Unlock()
			return errChannelFull
		}
		ch.viewers[c.clientID] = c
		queued = ch.toViewer[c.clientID]
		delete(ch.toViewer, c.clientID)
	}
	for _, p := range e.pruneLocked(ch, queued, now) {
		if c.enqueue(p.frame) == enqueued {
			p.rec.Delivered = true
		}
	}
	ch.mu.Unlock()
	if old != nil {
		e.counters.connect(connectKey(c.role) + "_REPLACED")
		old.stop(stopReplaced)
	}
	return nil
}

// unregister removes c from its channel if it is still the current
// connection for its role and id.
func (e *Emulator) unregister(c *conn) {
	ch := c.ch
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if c.role == roleMaster && ch.master == c {
		ch.master = nil
	}
	if c.role == roleViewer && ch.viewers[c.clientID] == c {
		delete(ch.viewers, c.clientID)
	}
}

// runConn serves an accepted connection until it ends: it writes queued
// frames and runs the idle, GO_AWAY and maximum-duration timers, while a
// reader goroutine routes incoming messages.
func (e *Emulator) runConn(ctx context.Context, c *conn) {
	readErr := make(chan error, 1)
	var readers sync.WaitGroup
	readers.Go(func() { readErr <- e.readLoop(ctx, c) })
	defer func() {
		e.unregister(c)
		c.stop(stopNone)
		c.ws.CloseNow()
		readers.Wait()
		close(c.exited)
		e.log.Debug("kvsemu: disconnected", "channel", c.ch.name, "role", c.role, "client_id", c.clientID)
	}()

	l := e.cfg.Limits
	start := time.Now()
	deadline := start.Add(l.MaxConnection)
	idle := newTimer(l.IdleTimeout)
	defer idle.Stop()
	goAwayAt := newTimer(l.MaxConnection - l.GoAwayBefore)
	defer goAwayAt.Stop()
	closeAt := newTimer(l.MaxConnection)
	defer closeAt.Stop()

	for {
		select {
		case <-ctx.Done():
			return // emulator shutting down: close abruptly
		case <-c.done:
			switch c.reason {
			case stopReplaced:
				c.ws.Close(websocket.StatusNormalClosure, "replaced by a newer connection")
			case stopDeleted:
				c.ws.Close(websocket.StatusGoingAway, "channel deleted")
			}
			return // stopDropped, stopSlow: abruptly
		case err := <-readErr:
			e.log.Debug("kvsemu: read ended", "client_id", c.clientID, "err", err)
			return
		case <-c.activity:
			resetTimer(idle, l.IdleTimeout)
		case <-timerC(idle):
			c.ws.Close(websocket.StatusGoingAway, "idle timeout")
			return
		case <-timerC(goAwayAt):
			e.sendService(c, typeGoAway)
		case <-c.goAway:
			if d := time.Now().Add(l.GoAwayBefore); l.GoAwayBefore >= 0 && (l.MaxConnection < 0 || d.Before(deadline)) {
				deadline = d
				resetTimer(closeAt, time.Until(deadline))
			}
		case <-timerC(closeAt):
			c.ws.Close(websocket.StatusGoingAway, "maximum connection duration")
			return
		case frame := <-c.out:
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.ws.Write(wctx, websocket.MessageText, frame)
			cancel()
			if err != nil {
				e.log.Debug("kvsemu: write", "client_id", c.clientID, "err", err)
				return
			}
		}
	}
}

// newTimer returns a running timer, or nil for a negative (disabled) d.
func newTimer(d time.Duration) *time.Timer {
	if d < 0 {
		return nil
	}
	return time.NewTimer(d)
}

func resetTimer(t *time.Timer, d time.Duration) {
	if t != nil {
		t.Reset(d)
	}
}

// timerC is t's channel, or nil (never ready) for a disabled timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

// readLoop reads frames until the connection fails or closes.
func (e *Emulator) readLoop(ctx context.Context, c *conn) error {
	for {
		typ, data, err := c.ws.Read(ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText || len(data) == 0 {
			continue // only text frames carry messages; empty frames occur
		}
		e.handleFrame(c, data)
	}
}

// handleFrame validates, rate-limits and routes one client frame. Foreign
// frames are ignored; errors produce a STATUS_RESPONSE only when the frame
// had a correlationId.
func (e *Emulator) handleFrame(c *conn, data []byte) {
	in, ok := parseInbound(data)
	if !ok {
		e.log.Debug("kvsemu: ignored foreign frame", "client_id", c.clientID)
		return
	}
	select {
	case c.activity <- struct{}{}:
	default:
	}
	l := e.cfg.Limits
	switch {
	case in.action != typeOffer && in.action != typeAnswer && in.action != typeCandidate:
		e.reject(c, in, codeInvalidArgument, "invalid", "Unknown action "+in.action)
	case in.correlation != "" && !validID(in.correlation):
		e.reject(c, in, codeInvalidArgument, "invalid", "correlationId must match [a-zA-Z0-9_.-]{1,256}")
	case l.MaxPayload >= 0 && len(in.payload) > l.MaxPayload:
		e.reject(c, in, codeInvalidArgument, "oversize", "Message payload exceeds the maximum size")
	case !validPayload(in.payload):
		e.reject(c, in, codeInvalidArgument, "invalid", "messagePayload must be non-empty base64")
	case c.role == roleMaster && !validID(in.recipient):
		e.reject(c, in, codeInvalidArgument, "invalid", "recipientClientId is required from the master")
	case !allow(c.limiter(in.action), e.cfg.Now()):
		e.reject(c, in, codeClientLimit, "throttled", in.action+" rate exceeded for this connection")
	default:
		e.route(c, in)
	}
}

func (c *conn) limiter(action string) *rate.Limiter {
	if action == typeCandidate {
		return c.ice
	}
	return c.sdp
}

// reject records and counts a refused message and answers with a
// STATUS_RESPONSE if it carried a correlationId.
func (e *Emulator) reject(c *conn, in inbound, code, why, desc string) {
	key := c.role + "->" + c.peer() + ":" + in.action
	e.counters.dropped(key + ":" + why)
	ch := c.ch
	now := e.cfg.Now()
	ch.mu.Lock()
	ch.recordLocked(&MessageRecord{Time: now, From: c.role, To: c.peer(), ClientID: c.recordID(in), Type: in.action, Dropped: why})
	ch.mu.Unlock()
	if in.correlation == "" {
		return
	}
	e.deliverService(c, typeStatus, statusFrame(in.correlation, code, desc))
}

// recordID is the viewer id a message from c concerns.
func (c *conn) recordID(in inbound) string {
	if c.role == roleViewer {
		return c.clientID
	}
	return in.recipient
}

// sendService sends a payload-less service message (GO_AWAY,
// RECONNECT_ICE_SERVER) to c.
func (e *Emulator) sendService(c *conn, msgType string) {
	e.deliverService(c, msgType, encodeFrame(outbound{MessageType: msgType}))
}

func (e *Emulator) deliverService(c *conn, msgType string, frame []byte) {
	e.counters.message(roleSvc + "->" + c.role + ":" + msgType)
	rec := &MessageRecord{Time: e.cfg.Now(), From: roleSvc, To: c.role, ClientID: c.clientID, Type: msgType}
	res := c.enqueue(frame)
	rec.Delivered = res == enqueued
	if res == connFull {
		rec.Dropped = "slow-consumer"
	}
	c.ch.mu.Lock()
	c.ch.recordLocked(rec)
	c.ch.mu.Unlock()
}

// route delivers a valid message: viewer -> master (any recipient ignored)
// with senderClientId, master -> the viewer named by recipientClientId
// without one. A message for an absent recipient waits up to the channel's
// MessageTtlSeconds; a newer SDP message of the same type for the same
// viewer overwrites an undelivered one.
func (e *Emulator) route(c *conn, in inbound) {
	ch := c.ch
	now := e.cfg.Now()
	rec := &MessageRecord{Time: now, From: c.role, To: c.peer(), ClientID: c.recordID(in), Type: in.action}
	key := c.role + "->" + c.peer() + ":" + in.action
	var frame []byte
	if c.role == roleViewer {
		frame = encodeFrame(outbound{MessagePayload: in.payload, MessageType: in.action, SenderClientID: c.clientID})
	} else {
		frame = encodeFrame(outbound{MessagePayload: in.payload, MessageType: in.action})
	}
	e.counters.message(key)

	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.recordLocked(rec)
	var target *conn
	if c.role == roleViewer {
		target = ch.master
	} else {
		target = ch.viewers[in.recipient]
	}
	if target != nil {
		switch target.enqueue(frame) {
		case enqueued:
			rec.Delivered = true
			return
		case connFull:
			rec.Dropped = "slow-consumer"
			e.counters.dropped(key + ":slow-consumer")
			return
		case connGone: // queue it for the next connection
		}
	}
	var queue []pending
	if c.role == roleViewer {
		queue = ch.toMaster
	} else {
		queue = ch.toViewer[in.recipient]
	}
	queue = e.pruneLocked(ch, queue, now)
	if in.action == typeOffer || in.action == typeAnswer {
		queue = slices.DeleteFunc(queue, func(p pending) bool {
			if p.rec.Type == in.action && p.rec.ClientID == rec.ClientID {
				p.rec.Dropped = "overwritten"
				e.counters.dropped(key + ":overwritten")
				return true
			}
			return false
		})
	}
	queue = append(queue, pending{rec: rec, frame: frame})
	if c.role == roleViewer {
		ch.toMaster = queue
	} else {
		ch.toViewer[in.recipient] = queue
	}
}

// pruneLocked drops queued messages older than the channel's TTL and
// returns the rest.
func (e *Emulator) pruneLocked(ch *channel, queue []pending, now time.Time) []pending {
	return slices.DeleteFunc(queue, func(p pending) bool {
		if now.Sub(p.rec.Time) <= ch.ttl {
			return false
		}
		p.rec.Dropped = "expired"
		e.counters.dropped(p.rec.From + "->" + p.rec.To + ":" + p.rec.Type + ":expired")
		return true
	})
}

// pruneAllLocked expires every queue of the channel.
func (e *Emulator) pruneAllLocked(ch *channel, now time.Time) {
	ch.toMaster = e.pruneLocked(ch, ch.toMaster, now)
	for id, q := range ch.toViewer {
		if q = e.pruneLocked(ch, q, now); len(q) == 0 {
			delete(ch.toViewer, id)
		} else {
			ch.toViewer[id] = q
		}
	}
}

// authMessage is the AWS-style message for a SigV4 failure.
func authMessage(err error) string {
	switch {
	case errors.Is(err, sigv4.ErrExpired):
		return "Signature expired"
	case errors.Is(err, sigv4.ErrNotYetValid):
		return "Signature not yet current"
	case errors.Is(err, sigv4.ErrUnknownKey):
		return "The security token included in the request is invalid."
	case errors.Is(err, sigv4.ErrMismatch):
		return "The request signature we calculated does not match the signature you provided."
	case errors.Is(err, sigv4.ErrMissing):
		return "Missing Authentication Token"
	default:
		return err.Error()
	}
}
