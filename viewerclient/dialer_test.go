package viewerclient

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// pathFault is what a broken network path does to a connection's bytes.
type pathFault int32

const (
	pathOK pathFault = iota
	// pathDead: what the client writes vanishes and nothing arrives, with
	// the socket still open (a phone whose Wi-Fi went away under it).
	pathDead
	// pathDeaf: what the client writes arrives, the replies never do (the
	// service took the message; its ack is lost).
	pathDeaf
)

// testDialer is a Config.Dial for tests: a real gRPC connection over TCP
// whose sockets the test can break like a network would.
type testDialer struct {
	t    *testing.T
	addr string

	// mu guards the fields below.
	mu    sync.Mutex
	conns []*faultConn
	dials int
}

func newTestDialer(t *testing.T, addr string) *testDialer { return &testDialer{t: t, addr: addr} }

// dial implements Config.Dial.
func (d *testDialer) dial(context.Context) (*grpc.ClientConn, error) {
	d.mu.Lock()
	d.dials++
	d.mu.Unlock()
	return grpc.NewClient("passthrough:///"+d.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var nd net.Dialer
			c, err := nd.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			fc := &faultConn{Conn: c}
			d.mu.Lock()
			d.conns = append(d.conns, fc)
			d.mu.Unlock()
			return fc, nil
		}))
}

// breakAll applies f to every socket dialed so far (new ones are fine).
func (d *testDialer) breakAll(f pathFault) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.fault.Store(int32(f))
	}
}

// killAll closes every socket dialed so far, as `ss -K` does.
func (d *testDialer) killAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Conn.Close()
	}
}

func (d *testDialer) count() (dials, sockets, closed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		if c.closed.Load() {
			closed++
		}
	}
	return d.dials, len(d.conns), closed
}

// faultConn is a TCP socket with a fault switch.
type faultConn struct {
	net.Conn
	fault  atomic.Int32 // a pathFault
	closed atomic.Bool  // the client closed it
}

func (c *faultConn) Read(b []byte) (int, error) {
	for {
		n, err := c.Conn.Read(b)
		if err != nil || pathFault(c.fault.Load()) == pathOK {
			return n, err
		}
		// Dead or deaf: what arrives is lost.
	}
}

func (c *faultConn) Write(b []byte) (int, error) {
	if pathFault(c.fault.Load()) == pathDead {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *faultConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

// Dialer refuses to dial without transport credentials (there is no
// silent plaintext default), and otherwise returns a connection to its
// target.
func TestDialer(t *testing.T) {
	if _, err := Dialer("127.0.0.1:1", nil)(t.Context()); !errors.Is(err, ErrConfig) {
		t.Errorf("Dialer(nil creds) = %v, want ErrConfig", err)
	}
	cc, err := Dialer("127.0.0.1:1", insecure.NewCredentials())(t.Context())
	if err != nil {
		t.Fatalf("Dialer(insecure) = %v", err)
	}
	defer cc.Close()
	if got := cc.Target(); got != "127.0.0.1:1" {
		t.Errorf("Target() = %q, want 127.0.0.1:1", got)
	}
}
