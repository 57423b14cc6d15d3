// Package ws is the small RFC 6455 WebSocket client of the KVS signaling
// socket. It does what that socket needs and no more: the opening handshake
// over net/http (HTTP/1.1, proxies and TLS as the caller's http.Client has
// them), masked client frames, text and binary messages reassembled from
// fragments up to a size limit, ping and pong, and the closing handshake. No
// extensions and no subprotocols are negotiated.
//
// It exists for what a connection holds while it is idle, which is most of
// its life: no read or write buffer (frames are read from the TLS
// connection, which already buffers a record, into an allocation the size
// of each message, and each frame is written with one Write of its own),
// and, on Unix, its reader parks in a shallow call chain (see Conn.Read), so
// the runtime can shrink that goroutine's stack to its minimum.
package ws

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"time"
)

// MessageType is the type of a data message.
type MessageType int

// Data message types (their opcodes).
const (
	MessageText   MessageType = 1
	MessageBinary MessageType = 2
)

// Status codes of a close frame (RFC 6455 section 7.4.1).
const (
	StatusNormalClosure   = 1000
	StatusGoingAway       = 1001
	StatusProtocolError   = 1002
	StatusNoStatusRcvd    = 1005 // never sent: a close frame without a code
	StatusMessageTooBig   = 1009
	StatusInternalError   = 1011
	closeHandshakeTimeout = 5 * time.Second // how long Close waits for the peer's close frame
	controlWriteTimeout   = 5 * time.Second // bounds a pong or close frame written by the reader
	maxErrorBody          = 64 << 10        // a refused handshake's body kept for the caller
)

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// ErrClosed is returned by writes and pings on a closed connection.
var ErrClosed = errors.New("websocket: connection closed")

// errProtocol marks a frame that breaks RFC 6455; the connection is failed
// with StatusProtocolError.
var errProtocol = errors.New("websocket: protocol error")

// CloseError is the peer's close frame, returned by Read after it.
type CloseError struct {
	Code   int // StatusNoStatusRcvd when the frame carried none
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("websocket: closed by peer: status %d %q", e.Code, e.Reason)
}

// CloseStatus returns the code of the peer's close frame in err's chain, or
// -1 when there is none.
func CloseStatus(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// HandshakeError is a handshake the server refused or answered wrongly. Resp
// is its response when there was one; its Body holds the first 64 KiB of
// the server's body and needs no Close.
type HandshakeError struct {
	Resp *http.Response
	Err  error
}

func (e *HandshakeError) Error() string { return "websocket handshake: " + e.Err.Error() }
func (e *HandshakeError) Unwrap() error { return e.Err }

// Conn is one client WebSocket connection. Read is for one goroutine at a
// time; Write, Ping, SendPing, Close and CloseNow are safe to call concurrently with
// it and with each other.
type Conn struct {
	r          io.Reader // the upgraded response body: bytes the handshake read ahead, then nc
	nc         net.Conn  // writes, deadlines and close
	wait       *waiter   // parks the reader until nc is readable; nil: Read blocks in nc
	maxMessage int

	rtok chan struct{} // the read token: held by the goroutine reading frames
	hdr  [14]byte      // the reader's scratch for a frame header
	have int           // bytes of the next header already in hdr

	wmu       sync.Mutex // serialises frame writes
	closeSent bool       // under wmu

	mu      sync.Mutex
	pong    chan struct{} // under mu: closed when the pong of the ping in flight arrives
	pingSeq uint64        // under mu: the last ping's
	pongSeq uint64        // under mu: the last ping answered

	done      chan struct{} // closed by closeConn
	closeOnce sync.Once
}

// Dial performs the opening handshake for a ws:// or wss:// URL with hc,
// which must speak HTTP/1.1 to the endpoint, and returns the connection and
// the server's 101 response. maxMessage bounds a data message: a larger one
// is read and dropped (see Read). A refused handshake is a *HandshakeError
// with the response, when there was one.
func Dial(ctx context.Context, hc *http.Client, rawURL string, maxMessage int) (*Conn, *http.Response, error) {
	var httpURL string
	switch {
	case strings.HasPrefix(rawURL, "wss://"):
		httpURL = "https://" + rawURL[len("wss://"):]
	case strings.HasPrefix(rawURL, "ws://"):
		httpURL = "http://" + rawURL[len("ws://"):]
	default:
		return nil, nil, &HandshakeError{Err: errors.New("URL scheme is not ws or wss")}
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	key := base64.StdEncoding.EncodeToString(nonce[:])

	// The connection the response arrives on: the upgraded body wraps it
	// but exposes no deadlines.
	var nc net.Conn
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { nc = info.Conn }})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpURL, nil)
	if err != nil {
		return nil, nil, &HandshakeError{Err: err}
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", key)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, &HandshakeError{Err: err}
	}
	if err := checkUpgrade(resp, key); err != nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return nil, resp, &HandshakeError{Resp: resp, Err: err}
	}
	rwc, ok := resp.Body.(io.ReadWriteCloser)
	if !ok || nc == nil {
		resp.Body.Close()
		return nil, resp, &HandshakeError{Resp: resp, Err: errors.New("the HTTP client gave no writable connection for the upgrade")}
	}
	return newConn(rwc, nc, maxMessage), resp, nil
}

// acceptGUID is RFC 6455's key suffix for Sec-WebSocket-Accept.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// checkUpgrade checks a handshake response (RFC 6455 section 4.1, the
// client's checks of the server's response).
func checkUpgrade(resp *http.Response, key string) error {
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("status %s, want 101", resp.Status)
	}
	if !strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") {
		return fmt.Errorf("header Upgrade %q, want websocket", resp.Header.Get("Upgrade"))
	}
	if !headerHasToken(resp.Header, "Connection", "upgrade") {
		return fmt.Errorf("header Connection %q, want Upgrade", resp.Header.Get("Connection"))
	}
	sum := sha1.Sum([]byte(key + acceptGUID))
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != base64.StdEncoding.EncodeToString(sum[:]) {
		return fmt.Errorf("Sec-WebSocket-Accept %q does not match the key", got)
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		return fmt.Errorf("extensions %q were not asked for", ext)
	}
	if p := resp.Header.Get("Sec-WebSocket-Protocol"); p != "" {
		return fmt.Errorf("subprotocol %q was not asked for", p)
	}
	return nil
}

// headerHasToken reports whether a comma-separated header holds token
// (case-insensitively).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// newConn wraps an upgraded connection: frames are read from r and written
// to nc.
func newConn(r io.Reader, nc net.Conn, maxMessage int) *Conn {
	return &Conn{
		r:          r,
		nc:         nc,
		wait:       newWaiter(nc),
		maxMessage: maxMessage,
		rtok:       make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
}

// Write sends one data message as a single frame. ctx bounds the write (its
// deadline and its cancellation); a write that fails or is cut short fails
// the connection, as its frame may be half sent.
func (c *Conn) Write(ctx context.Context, typ MessageType, p []byte) error {
	if typ != MessageText && typ != MessageBinary {
		return fmt.Errorf("websocket: write: message type %d", typ)
	}
	return c.writeFrame(ctx, byte(typ), p)
}

// writeFrame writes one frame, FIN set and masked, with one Write on nc.
func (c *Conn) writeFrame(ctx context.Context, op byte, p []byte) error {
	dl, _ := ctx.Deadline()
	return c.writeFrameBy(ctx, dl, op, p)
}

// writeFrameBy is writeFrame with the write's deadline dl (zero: none)
// and ctx's cancellation, if it has one (context.Background: none, and
// nothing allocated for it).
func (c *Conn) writeFrameBy(ctx context.Context, dl time.Time, op byte, p []byte) error {
	f := appendFrame(make([]byte, 0, 14+len(p)), op, p, newMask())
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return ErrClosed
	}
	if op == opClose {
		c.closeSent = true
	}
	if err := c.nc.SetWriteDeadline(dl); err != nil {
		return c.failWrite(err)
	}
	stop := func() bool { return false }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = c.nc.SetWriteDeadline(time.Unix(1, 0)) })
	}
	_, err := c.nc.Write(f)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return c.failWrite(err)
	}
	return nil
}

// failWrite closes the connection after a failed write (its frame may be
// half written; TLS refuses writes after a timeout).
func (c *Conn) failWrite(err error) error {
	c.closeConn()
	if errors.Is(err, net.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("websocket: write: %w", err)
}

// newMask returns a fresh masking key. RFC 6455 wants it unpredictable.
func newMask() [4]byte {
	var k [4]byte
	_, _ = rand.Read(k[:])
	return k
}

// appendFrame appends one final, masked frame with opcode op and payload p.
func appendFrame(b []byte, op byte, p []byte, mask [4]byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(p); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, p...)
	for i := range p {
		b[start+i] ^= mask[i&3]
	}
	return b
}

// Ping sends a ping and waits for its pong, which the connection's reader
// (a goroutine in Read) takes in. It returns ctx's error when ctx ends
// first, and ErrClosed when the connection closes.
func (c *Conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	c.pingSeq++
	seq := c.pingSeq
	pong := make(chan struct{})
	c.pong = pong
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pong == pong {
			c.pong = nil
		}
		c.mu.Unlock()
	}()
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], seq)
	if err := c.writeFrame(ctx, opPing, p[:]); err != nil {
		return err
	}
	select {
	case <-pong:
		return nil
	case <-c.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendPing sends a ping without waiting for its pong; the write must end
// by dl. Ponged tells later whether the pong came (the connection's reader,
// a goroutine in Read, takes it in). Nothing is allocated for the wait: a
// keepalive that checks Ponged before its next ping holds neither a
// goroutine nor a timer nor a context per ping.
func (c *Conn) SendPing(dl time.Time) error {
	c.mu.Lock()
	c.pingSeq++
	seq := c.pingSeq
	c.mu.Unlock()
	var p [8]byte
	binary.BigEndian.PutUint64(p[:], seq)
	return c.writeFrameBy(context.Background(), dl, opPing, p[:])
}

// Ponged reports whether the last ping sent (by Ping or SendPing) has been
// answered.
func (c *Conn) Ponged() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pongSeq == c.pingSeq
}

// gotPong records the pong of the last ping, and ends that ping's wait
// (Ping) when p is its payload.
func (c *Conn) gotPong(p []byte) {
	if len(p) != 8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if binary.BigEndian.Uint64(p) != c.pingSeq {
		return
	}
	c.pongSeq = c.pingSeq
	if c.pong != nil {
		close(c.pong)
		c.pong = nil
	}
}

// Close performs the closing handshake: it sends a close frame with code and
// reason, waits (up to 5 s) for the peer's close frame, reading it itself
// when no goroutine is in Read, and closes the connection. It is idempotent.
func (c *Conn) Close(code int, reason string) error {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	p = append(p, reason...)
	ctx, cancel := context.WithTimeout(context.Background(), controlWriteTimeout)
	err := c.writeFrame(ctx, opClose, p)
	cancel()
	if err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	t := time.NewTimer(closeHandshakeTimeout)
	defer t.Stop()
	select {
	case <-c.done:
		// The reader took the peer's close frame (which closes the
		// connection), or the connection had ended.
	case <-t.C:
	case c.rtok <- struct{}{}:
		// No reader: read, and drop, up to the peer's close.
		_ = c.nc.SetReadDeadline(time.Now().Add(closeHandshakeTimeout))
		for {
			if _, _, err := c.readMessage(); err != nil {
				break
			}
		}
		<-c.rtok
	}
	c.closeConn()
	return nil
}

// CloseNow closes the connection without a closing handshake.
func (c *Conn) CloseNow() error {
	c.closeConn()
	return nil
}

// closeConn closes nc once and wakes every waiter.
func (c *Conn) closeConn() {
	c.closeOnce.Do(func() {
		_ = c.nc.Close()
		close(c.done)
	})
}

// Read returns the next data message: its type and payload, reassembled
// from its fragments. A message over the size limit is read and dropped:
// Read returns its type and a nil payload (an empty message has a non-nil
// empty one), and the connection stays open. Pings are answered and pongs
// taken in on the way. After the peer's close frame Read answers it (unless
// Close sent one first), closes the connection and returns a *CloseError;
// any other error means the connection failed, and it is closed. Read is
// for one goroutine at a time.
//
// While no frame has begun to arrive, Read waits for the socket to become
// readable without a read in flight (on Unix), parked in a shallow call
// chain: an idle connection's reader keeps a minimal stack.
func (c *Conn) Read() (MessageType, []byte, error) {
	if !c.lockRead() {
		return 0, nil, ErrClosed
	}
	typ, p, err := c.read()
	<-c.rtok
	return typ, p, err
}

// lockRead takes the read token; false when the connection closed first.
func (c *Conn) lockRead() bool {
	select {
	case c.rtok <- struct{}{}:
		return true
	case <-c.done:
		return false
	}
}

// read is Read with the read token held. Every error closes the connection.
func (c *Conn) read() (MessageType, []byte, error) {
	if c.wait != nil {
		if err := c.awaitFrame(); err != nil {
			return 0, nil, c.fail(err)
		}
	}
	return c.readMessage()
}

// awaitFrame returns once the next frame's first byte is in c.hdr. What
// the TLS layer (or the handshake) already holds is taken with a read whose
// deadline has passed, which returns it, or a timeout, without touching the
// socket; when that is nothing, the reader waits for the socket in wait
// rather than in a read, and then reads. A read can still park deep inside
// TLS, but only for the rest of a record that has begun to arrive.
func (c *Conn) awaitFrame() error {
	if err := c.nc.SetReadDeadline(time.Unix(1, 0)); err != nil {
		return err
	}
	n, err := c.r.Read(c.hdr[:1])
	if rerr := c.nc.SetReadDeadline(time.Time{}); rerr != nil && err == nil {
		err = rerr
	}
	if c.have = n; n > 0 {
		return nil
	}
	if err != nil && !isTimeout(err) {
		return err
	}
	if err := c.wait.wait(); err != nil {
		return err
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readMessage reads frames up to the end of one data message (see Read).
func (c *Conn) readMessage() (MessageType, []byte, error) {
	var (
		typ     MessageType
		buf     []byte
		started bool
		over    bool
	)
	for {
		fin, op, n, err := c.readHeader()
		if err != nil {
			return 0, nil, c.fail(err)
		}
		if op >= opClose {
			if err := c.readControl(op, int(n)); err != nil {
				return 0, nil, err
			}
			continue
		}
		switch {
		case op == opContinuation && !started:
			return 0, nil, c.fail(fmt.Errorf("%w: continuation frame outside a message", errProtocol))
		case op != opContinuation && started:
			return 0, nil, c.fail(fmt.Errorf("%w: new message inside a fragmented one", errProtocol))
		case op != opContinuation:
			typ, started = MessageType(op), true
		}
		if over || n > uint64(c.maxMessage-len(buf)) {
			over, buf = true, nil
			if _, err := io.CopyN(io.Discard, c.r, int64(n)); err != nil {
				return 0, nil, c.fail(err)
			}
		} else if n > 0 {
			buf = append(buf, make([]byte, n)...)
			if _, err := io.ReadFull(c.r, buf[len(buf)-int(n):]); err != nil {
				return 0, nil, c.fail(err)
			}
		}
		if fin {
			if !over && buf == nil {
				buf = []byte{}
			}
			return typ, buf, nil
		}
	}
}

// readHeader reads one frame header and checks it: no RSV bits (nothing was
// negotiated), an unmasked frame (a server masks nothing), a known opcode,
// and control frames final and at most 125 bytes.
func (c *Conn) readHeader() (fin bool, op byte, n uint64, err error) {
	if _, err := io.ReadFull(c.r, c.hdr[c.have:2]); err != nil {
		return false, 0, 0, err
	}
	c.have = 0
	b0, b1 := c.hdr[0], c.hdr[1]
	fin, op, n = b0&0x80 != 0, b0&0x0f, uint64(b1&0x7f)
	switch {
	case b0&0x70 != 0:
		return false, 0, 0, fmt.Errorf("%w: reserved bits %#x set", errProtocol, b0&0x70)
	case b1&0x80 != 0:
		return false, 0, 0, fmt.Errorf("%w: masked frame from the server", errProtocol)
	case op > opBinary && op < opClose || op > opPong:
		return false, 0, 0, fmt.Errorf("%w: opcode %#x", errProtocol, op)
	}
	switch n {
	case 126:
		if _, err := io.ReadFull(c.r, c.hdr[2:4]); err != nil {
			return false, 0, 0, err
		}
		n = uint64(binary.BigEndian.Uint16(c.hdr[2:4]))
	case 127:
		if _, err := io.ReadFull(c.r, c.hdr[2:10]); err != nil {
			return false, 0, 0, err
		}
		n = binary.BigEndian.Uint64(c.hdr[2:10])
		if n>>63 != 0 {
			return false, 0, 0, fmt.Errorf("%w: 64-bit length with the top bit set", errProtocol)
		}
	}
	if op >= opClose && (!fin || n > 125) {
		return false, 0, 0, fmt.Errorf("%w: control frame %#x fragmented or over 125 bytes", errProtocol, op)
	}
	return fin, op, n, nil
}

// readControl reads a control frame's payload and acts on it: a ping is
// answered, a pong ends the ping in flight, a close is answered and ends the
// connection (a *CloseError).
func (c *Conn) readControl(op byte, n int) error {
	var buf [125]byte
	p := buf[:n]
	if _, err := io.ReadFull(c.r, p); err != nil {
		return c.fail(err)
	}
	switch op {
	case opPing:
		ctx, cancel := context.WithTimeout(context.Background(), controlWriteTimeout)
		defer cancel()
		if err := c.writeFrame(ctx, opPong, p); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	case opPong:
		c.gotPong(p)
	case opClose:
		ce := &CloseError{Code: StatusNoStatusRcvd}
		switch {
		case n == 1:
			return c.fail(fmt.Errorf("%w: close frame of 1 byte", errProtocol))
		case n >= 2:
			ce.Code, ce.Reason = int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
		// Answer it (a no-op when Close sent one first): echo the code.
		var reply []byte
		if n >= 2 {
			reply = p[:2]
		}
		ctx, cancel := context.WithTimeout(context.Background(), controlWriteTimeout)
		_ = c.writeFrame(ctx, opClose, reply)
		cancel()
		c.closeConn()
		return ce
	}
	return nil
}

// fail ends the connection after a read error: a protocol error is
// reported to the peer first (status 1002).
func (c *Conn) fail(err error) error {
	if errors.Is(err, errProtocol) {
		ctx, cancel := context.WithTimeout(context.Background(), controlWriteTimeout)
		var p [2]byte
		binary.BigEndian.PutUint16(p[:], StatusProtocolError)
		_ = c.writeFrame(ctx, opClose, p[:])
		cancel()
	}
	c.closeConn()
	if errors.Is(err, net.ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("websocket: read: %w", err)
}
