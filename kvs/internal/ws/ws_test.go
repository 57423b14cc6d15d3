package ws

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// coderServer is a TLS server whose handler accepts with coder/websocket,
// an independent implementation of the protocol, and runs serve.
func coderServer(t *testing.T, serve func(ctx context.Context, c *websocket.Conn)) (*httptest.Server, string) {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		defer c.CloseNow()
		serve(r.Context(), c)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, "wss://" + strings.TrimPrefix(srv.URL, "https://") + "/ws"
}

// client returns the HTTP/1.1 client of srv.
func client(srv *httptest.Server) *http.Client {
	hc := srv.Client()
	tr := hc.Transport.(*http.Transport).Clone()
	tr.ForceAttemptHTTP2 = false
	var p http.Protocols
	p.SetHTTP1(true)
	tr.Protocols = &p
	hc.Transport = tr
	return hc
}

func dial(t *testing.T, srv *httptest.Server, u string, limit int) *Conn {
	t.Helper()
	c, resp, err := Dial(t.Context(), client(srv), u, limit)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d", resp.StatusCode)
	}
	t.Cleanup(func() { _ = c.CloseNow() })
	return c
}

func TestEchoWithCoder(t *testing.T) {
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	})
	c := dial(t, srv, u, 64<<10)
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		msg := bytes.Repeat([]byte{'x'}, n)
		if err := c.Write(t.Context(), MessageText, msg); err != nil {
			t.Fatalf("Write %d: %v", n, err)
		}
		typ, b, err := c.Read()
		if err != nil || typ != MessageText || !bytes.Equal(b, msg) || b == nil {
			t.Fatalf("echo of %d bytes: %v %d bytes (nil %v) err %v", n, typ, len(b), b == nil, err)
		}
	}
	// Over the limit: read and dropped, the connection stays.
	if err := c.Write(t.Context(), MessageBinary, make([]byte, 64<<10+1)); err != nil {
		t.Fatal(err)
	}
	if typ, b, err := c.Read(); err != nil || typ != MessageBinary || b != nil {
		t.Fatalf("oversized: %v %d bytes (nil %v) err %v, want binary, nil, no error", typ, len(b), b == nil, err)
	}
	if err := c.Write(t.Context(), MessageText, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(); err != nil || string(b) != "after" {
		t.Fatalf("after oversized: %q %v", b, err)
	}
}

func TestPingAndCloseWithCoder(t *testing.T) {
	closed := make(chan error, 1)
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		_, _, err := c.Read(ctx) // answers pings; ends with our close
		closed <- err
	})
	c := dial(t, srv, u, 1024)
	// Nobody reads on our side: Ping needs a reader for its pong.
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Read()
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	}
	if err := c.Close(StatusNormalClosure, "bye"); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := websocket.CloseStatus(<-closed); got != websocket.StatusNormalClosure {
		t.Errorf("server saw close status %v, want normal closure", got)
	}
	if err := <-done; CloseStatus(err) != StatusNormalClosure {
		t.Errorf("reader ended with %v, want the echoed close 1000", err)
	}
	if err := c.Write(t.Context(), MessageText, []byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(StatusNormalClosure, ""); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestSendPingPonged: SendPing does not wait; Ponged is false until the
// reader has taken the pong in, and true once it has, for the last ping
// only. The server answers each ping before it reads our next message and
// echoes that message after, so the echo arrives after the pong.
func TestSendPingPonged(t *testing.T) {
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		for {
			typ, b, err := c.Read(ctx) // answers pings on the way
			if err != nil {
				return
			}
			if err := c.Write(ctx, typ, b); err != nil {
				return
			}
		}
	})
	c := dial(t, srv, u, 1024)
	if !c.Ponged() {
		t.Fatal("Ponged before any ping = false, want true (nothing outstanding)")
	}
	for i := range 3 {
		if err := c.SendPing(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatalf("SendPing %d: %v", i, err)
		}
		if c.Ponged() {
			t.Fatalf("ping %d: Ponged before anyone read = true, want false", i)
		}
		if err := c.Write(t.Context(), MessageText, []byte("after the ping")); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(); err != nil || string(b) != "after the ping" {
			t.Fatalf("Read = %q, %v; want the echo", b, err)
		}
		if !c.Ponged() {
			t.Fatalf("ping %d: Ponged after a message the server sent after its pong = false, want true", i)
		}
	}
	if err := c.Close(StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := c.SendPing(time.Now().Add(time.Second)); !errors.Is(err, ErrClosed) {
		t.Errorf("SendPing after Close = %v, want ErrClosed", err)
	}
}

func TestCloseWithoutReader(t *testing.T) {
	closed := make(chan error, 1)
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		_ = c.Write(ctx, websocket.MessageText, []byte("unread"))
		_, _, err := c.Read(ctx)
		closed <- err
	})
	c := dial(t, srv, u, 1024)
	start := time.Now()
	if err := c.Close(StatusGoingAway, ""); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v: it must read the peer's close itself, not wait out its timeout", d)
	}
	if got := websocket.CloseStatus(<-closed); got != websocket.StatusGoingAway {
		t.Errorf("server saw %v, want going away", got)
	}
}

func TestPeerClose(t *testing.T) {
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		_ = c.Close(websocket.StatusGoingAway, "maintenance")
	})
	c := dial(t, srv, u, 1024)
	_, _, err := c.Read()
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != StatusGoingAway || ce.Reason != "maintenance" {
		t.Fatalf("Read = %v, want CloseError 1001 maintenance", err)
	}
	if _, _, err := c.Read(); !errors.Is(err, ErrClosed) {
		t.Errorf("Read after close = %v, want ErrClosed", err)
	}
}

func TestPingUnansweredEndsOnClose(t *testing.T) {
	stop := make(chan struct{})
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) { <-stop }) // reads nothing, so pongs never come
	t.Cleanup(func() { close(stop) })
	c := dial(t, srv, u, 1024)
	done := make(chan error, 1)
	go func() { done <- c.Ping(context.Background()) }()
	time.AfterFunc(50*time.Millisecond, func() { _ = c.CloseNow() })
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Ping = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Ping did not end with the connection")
	}
}

// rawServer is a TLS server that completes the handshake by hand and then
// writes script's bytes; what the client sends comes back on got.
func rawServer(t *testing.T, script []byte) (*httptest.Server, string, <-chan []byte) {
	t.Helper()
	got := make(chan []byte, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + acceptGUID))
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
			base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n")
		_, _ = brw.Write(script)
		_ = brw.Flush()
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(brw)
		got <- b
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, "wss://" + strings.TrimPrefix(srv.URL, "https://"), got
}

// frame is an unmasked server frame.
func frame(fin bool, op byte, p []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case len(p) < 126:
		b = append(b, byte(len(p)))
	case len(p) <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(p)))
	}
	return append(b, p...)
}

// unmask decodes the client's masked frames.
func unmask(t *testing.T, b []byte) (ops []byte, payloads [][]byte) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 6 || b[1]&0x80 == 0 {
			t.Fatalf("client frame not masked or short: % x", b)
		}
		n, h := int(b[1]&0x7f), 2
		switch n {
		case 126:
			n, h = int(binary.BigEndian.Uint16(b[2:])), 4
		case 127:
			n, h = int(binary.BigEndian.Uint64(b[2:])), 10
		}
		key := b[h : h+4]
		p := append([]byte(nil), b[h+4:h+4+n]...)
		for i := range p {
			p[i] ^= key[i&3]
		}
		ops, payloads = append(ops, b[0]&0x0f), append(payloads, p)
		b = b[h+4+n:]
	}
	return ops, payloads
}

func TestFragmentsAndControlFrames(t *testing.T) {
	var script []byte
	script = append(script, frame(false, opText, []byte("hel"))...)
	script = append(script, frame(true, opPing, []byte("p1"))...) // between fragments
	script = append(script, frame(false, opContinuation, nil)...)
	script = append(script, frame(true, opContinuation, []byte("lo"))...)
	script = append(script, frame(true, opPong, []byte("unsolicited"))...)
	script = append(script, frame(true, opText, nil)...)
	script = append(script, frame(true, opClose, binary.BigEndian.AppendUint16(nil, 4000))...)
	srv, u, got := rawServer(t, script)
	c := dial(t, srv, u, 1024)
	if typ, b, err := c.Read(); err != nil || typ != MessageText || string(b) != "hello" {
		t.Fatalf("Read = %v %q %v, want text hello", typ, b, err)
	}
	if _, b, err := c.Read(); err != nil || b == nil || len(b) != 0 {
		t.Fatalf("Read = %q (nil %v) %v, want an empty message", b, b == nil, err)
	}
	if _, _, err := c.Read(); CloseStatus(err) != 4000 {
		t.Fatalf("Read = %v, want close 4000", err)
	}
	ops, payloads := unmask(t, <-got)
	if len(ops) != 2 || ops[0] != opPong || string(payloads[0]) != "p1" || ops[1] != opClose || binary.BigEndian.Uint16(payloads[1]) != 4000 {
		t.Errorf("client sent ops %v payloads %q, want the pong p1 and the close 4000 echoed", ops, payloads)
	}
}

func TestFragmentedOverLimit(t *testing.T) {
	var script []byte
	script = append(script, frame(false, opBinary, bytes.Repeat([]byte{1}, 600))...)
	script = append(script, frame(true, opContinuation, bytes.Repeat([]byte{1}, 600))...)
	script = append(script, frame(true, opText, []byte("ok"))...)
	srv, u, _ := rawServer(t, script)
	c := dial(t, srv, u, 1000)
	if typ, b, err := c.Read(); err != nil || typ != MessageBinary || b != nil {
		t.Fatalf("Read = %v %d (nil %v) %v, want binary dropped", typ, len(b), b == nil, err)
	}
	if _, b, err := c.Read(); err != nil || string(b) != "ok" {
		t.Fatalf("Read = %q %v, want ok", b, err)
	}
}

func TestProtocolErrors(t *testing.T) {
	for name, script := range map[string][]byte{
		"masked":             {0x81, 0x81, 1, 2, 3, 4, 'x'},
		"rsv bit":            {0xc1, 0x00},
		"bad opcode":         {0x83, 0x00},
		"fragmented control": frame(false, opPing, nil),
		"long control":       frame(true, opPing, make([]byte, 126)),
		"stray continuation": frame(true, opContinuation, []byte("x")),
		"nested message":     append(frame(false, opText, []byte("a")), frame(true, opText, []byte("b"))...),
		"close of 1 byte":    frame(true, opClose, []byte{3}),
		"huge length":        {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			srv, u, got := rawServer(t, script)
			c := dial(t, srv, u, 1024)
			_, _, err := c.Read()
			if err == nil || CloseStatus(err) != -1 {
				t.Fatalf("Read = %v, want a protocol error", err)
			}
			ops, payloads := unmask(t, <-got)
			if len(ops) != 1 || ops[0] != opClose || binary.BigEndian.Uint16(payloads[0]) != StatusProtocolError {
				t.Errorf("client sent %v %q, want one close 1002", ops, payloads)
			}
		})
	}
}

func TestHandshakeRefused(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amzn-ErrorType", "ClientLimitExceededException")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"message":"too many"}`)
	}))
	defer srv.Close()
	_, resp, err := Dial(t.Context(), client(srv), "wss://"+strings.TrimPrefix(srv.URL, "https://"), 1024)
	var he *HandshakeError
	if !errors.As(err, &he) || resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("Dial = %v, resp %v; want a HandshakeError with the 400", err, resp)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != `{"message":"too many"}` {
		t.Errorf("body %q", b)
	}
}

func TestHandshakeBadAccept(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n")
		_ = brw.Flush()
	}))
	defer srv.Close()
	_, _, err := Dial(t.Context(), client(srv), "wss://"+strings.TrimPrefix(srv.URL, "https://"), 1024)
	if err == nil || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
		t.Fatalf("Dial = %v, want the accept key refused", err)
	}
	if _, _, err := Dial(t.Context(), client(srv), "https://example.com", 1024); err == nil {
		t.Error("Dial of an https URL succeeded")
	}
}

// TestIdleReaderParksShallow checks where an idle connection's reader
// waits: in the poller under Read (the waiter), not inside a TLS read, so
// that its stack stays small.
func TestIdleReaderParksShallow(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("the shallow wait is Unix only")
	}
	srv, u := coderServer(t, func(ctx context.Context, c *websocket.Conn) {
		_ = c.Write(ctx, websocket.MessageText, []byte("one"))
		_, _, _ = c.Read(ctx)
	})
	c := dial(t, srv, u, 1024)
	if _, b, err := c.Read(); err != nil || string(b) != "one" {
		t.Fatalf("Read = %q %v", b, err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Read()
		done <- err
	}()
	var stack string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		all := string(buf[:runtime.Stack(buf, true)])
		for g := range strings.SplitSeq(all, "\n\n") {
			if strings.Contains(g, "internal/ws.(*Conn).Read(") && !strings.Contains(g, "coder/websocket") && strings.Contains(g, "[IO wait]") {
				stack = g
			}
		}
		if stack != "" {
			break
		}
	}
	if !strings.Contains(stack, "(*waiter).wait") || strings.Contains(stack, "crypto/tls") {
		t.Errorf("idle reader parked as:\n%s\nwant it in (*waiter).wait, outside crypto/tls", stack)
	}
	_ = c.Close(StatusNormalClosure, "")
	<-done
}

// pipeConn is a net.Conn over fixed input, for the fuzzer: writes are
// dropped, deadlines ignored.
type pipeConn struct {
	r io.Reader
}

func (p *pipeConn) Read(b []byte) (int, error)       { return p.r.Read(b) }
func (p *pipeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (p *pipeConn) Close() error                     { return nil }
func (p *pipeConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (p *pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (p *pipeConn) SetDeadline(time.Time) error      { return nil }
func (p *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (p *pipeConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzRead feeds arbitrary server bytes to Read: it must never panic, never
// return more than the limit, and end with an error once the input does.
func FuzzRead(f *testing.F) {
	f.Add(frame(true, opText, []byte(`{"messageType":"SDP_ANSWER"}`)))
	f.Add(append(frame(false, opText, []byte("a")), append(frame(true, opPing, []byte("p")), frame(true, opContinuation, []byte("b"))...)...))
	f.Add(frame(true, opBinary, make([]byte, 300)))
	f.Add(frame(true, opClose, []byte{0x03, 0xe8, 'o', 'k'}))
	f.Add([]byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0x10, 0})
	f.Add([]byte{0x81, 126, 0, 5, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 256
		pc := &pipeConn{r: bufio.NewReader(bytes.NewReader(in))}
		c := newConn(pc, pc, limit)
		for range len(in) + 1 {
			_, b, err := c.Read()
			if err != nil {
				return
			}
			if len(b) > limit {
				t.Fatalf("message of %d bytes over the limit %d", len(b), limit)
			}
		}
		t.Fatal("Read did not end with the input")
	})
}
