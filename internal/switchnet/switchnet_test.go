package switchnet

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		give    string
		wantErr error
	}{
		{give: "127.0.0.2"},
		{give: "127.1.2.3"},
		{give: "10.0.0.1", wantErr: ErrNotLoopback},
		{give: "::1", wantErr: ErrNotLoopback},
		{give: "localhost", wantErr: ErrNotLoopback},
		{give: "", wantErr: ErrNotLoopback},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			n, err := New(tt.give)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New(%q) error = %v, want %v", tt.give, err, tt.wantErr)
			}
			if err == nil && n.Current() != tt.give {
				t.Errorf("New(%q).Current() = %q, want %q", tt.give, n.Current(), tt.give)
			}
		})
	}
}

func TestSwitchNetSwitchRefusesNonLoopback(t *testing.T) {
	n := newSwitchNet(t, "127.0.0.2")
	if err := n.Switch("192.168.1.1"); !errors.Is(err, ErrNotLoopback) {
		t.Fatalf("Switch(192.168.1.1) = %v, want ErrNotLoopback", err)
	}
	if got := n.Current(); got != "127.0.0.2" {
		t.Errorf("Current() after a refused Switch = %q, want 127.0.0.2", got)
	}
}

func TestSwitchNetInterfacesShowOnlyTheCurrentAddress(t *testing.T) {
	n := newSwitchNet(t, "127.0.0.2")
	for _, want := range []string{"127.0.0.2", "127.0.0.3"} {
		if err := n.Switch(want); err != nil {
			t.Fatal(err)
		}
		ifs, err := n.Interfaces()
		if err != nil {
			t.Fatalf("Interfaces() error = %v", err)
		}
		if len(ifs) != 1 || ifs[0].Flags&net.FlagLoopback == 0 {
			t.Fatalf("Interfaces() = %d interfaces (%v), want the loopback one", len(ifs), ifs)
		}
		addrs, err := ifs[0].Addrs()
		if err != nil {
			t.Fatalf("Addrs() error = %v", err)
		}
		if len(addrs) != 1 || addrs[0].(*net.IPNet).IP.String() != want {
			t.Errorf("Addrs() = %v, want only %s", addrs, want)
		}
		byName, err := n.InterfaceByName(ifs[0].Name)
		if err != nil {
			t.Fatalf("InterfaceByName(%q) error = %v", ifs[0].Name, err)
		}
		if a, _ := byName.Addrs(); len(a) != 1 || a[0].(*net.IPNet).IP.String() != want {
			t.Errorf("InterfaceByName(%q).Addrs() = %v, want only %s", ifs[0].Name, a, want)
		}
	}
}

func TestSwitchNetBindsUnspecifiedToCurrent(t *testing.T) {
	n := newSwitchNet(t, "127.0.0.2")
	pc, err := n.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if got := pc.LocalAddr().(*net.UDPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("ListenPacket(udp4, 0.0.0.0:0) bound to %s, want 127.0.0.2", got)
	}
	peer := listenUDP(t, "127.0.0.1")
	dc, err := n.DialUDP("udp4", nil, peer.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	if got := dc.LocalAddr().(*net.UDPAddr).IP.String(); got != "127.0.0.2" {
		t.Errorf("DialUDP(nil laddr) bound to %s, want 127.0.0.2", got)
	}
}

// A UDP socket on the old address passes traffic both ways until Switch,
// then drops what it sends and what it receives, while a socket on the new
// address works.
func TestSwitchNetUDPStopsAfterSwitch(t *testing.T) {
	n := newSwitchNet(t, "127.0.0.2")
	cam := listenUDP(t, "127.0.0.1") // the camera, outside the SwitchNet
	old, err := n.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	camAddr := cam.LocalAddr().(*net.UDPAddr)

	// Before the switch: both ways.
	if _, err := old.WriteTo([]byte("hello"), camAddr); err != nil {
		t.Fatal(err)
	}
	if got, from := readUDP(t, cam); got != "hello" || from.String() != old.LocalAddr().String() {
		t.Fatalf("camera read %q from %v, want hello from %v", got, from, old.LocalAddr())
	}
	if _, err := cam.WriteTo([]byte("reply"), old.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if got, _ := readUDP(t, old); got != "reply" {
		t.Fatalf("client read %q, want reply", got)
	}

	if err := n.Switch("127.0.0.3"); err != nil {
		t.Fatal(err)
	}

	// Sending from the old address: reported sent, never arrives. A packet
	// sent after it from the new address is the first the camera reads
	// (loopback delivers synchronously, so the dropped one would be ahead).
	if k, err := old.WriteTo([]byte("lost"), camAddr); err != nil || k != 4 {
		t.Fatalf("WriteTo on a retired address = %d, %v; want 4, nil", k, err)
	}
	fresh, err := n.ListenUDP("udp4", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if got := fresh.LocalAddr().(*net.UDPAddr).IP.String(); got != "127.0.0.3" {
		t.Fatalf("new socket bound to %s, want 127.0.0.3", got)
	}
	if _, err := fresh.WriteTo([]byte("from-new"), camAddr); err != nil {
		t.Fatal(err)
	}
	if got, from := readUDP(t, cam); got != "from-new" {
		t.Fatalf("camera read %q from %v, want from-new (the retired socket's packet must be dropped)", got, from)
	}

	// Receiving on the old address: the datagram is in the socket's buffer
	// before the read starts, and the read must still see nothing.
	if _, err := cam.WriteTo([]byte("dropped"), old.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if err := old.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if k, _, err := old.ReadFrom(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom on a retired address = %q, %v; want a deadline error", buf[:k], err)
	}

	// Switching back revives the old socket.
	if err := n.Switch("127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.WriteTo([]byte("back"), camAddr); err != nil {
		t.Fatal(err)
	}
	if got, _ := readUDP(t, cam); got != "back" {
		t.Fatalf("camera read %q after switching back, want back", got)
	}
}

// A TCP connection (TURN over TCP) from the old address goes silent too.
func TestSwitchNetTCPStopsAfterSwitch(t *testing.T) {
	n := newSwitchNet(t, "127.0.0.2")
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cli, err := n.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	defer srv.Close()
	if got := cli.LocalAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.2" {
		t.Fatalf("DialTCP(nil laddr) bound to %s, want 127.0.0.2", got)
	}
	if _, err := cli.Write([]byte("before|")); err != nil {
		t.Fatal(err)
	}
	if err := n.Switch("127.0.0.3"); err != nil {
		t.Fatal(err)
	}
	if k, err := cli.Write([]byte("after")); err != nil || k != 5 {
		t.Fatalf("Write on a retired address = %d, %v; want 5, nil", k, err)
	}
	// What the server sends is discarded on arrival.
	if _, err := srv.Write([]byte("to-client")); err != nil {
		t.Fatal(err)
	}
	if err := cli.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if k, err := cli.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read on a retired address = %q, %v; want a deadline error", buf[:k], err)
	}
	// Closing the client ends the server's stream after what was sent
	// before the switch, and nothing else.
	if err := cli.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(srv)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "before|" {
		t.Errorf("server received %q, want %q", got, "before|")
	}
}

func newSwitchNet(t *testing.T, ip string) *SwitchNet {
	t.Helper()
	n, err := New(ip)
	if err != nil {
		t.Fatalf("New(%q): %v", ip, err)
	}
	return n
}

func listenUDP(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readUDP reads one datagram; the deadline only bounds a broken test.
func readUDP(t *testing.T, c interface {
	ReadFrom([]byte) (int, net.Addr, error)
	SetReadDeadline(time.Time) error
}) (string, net.Addr) {
	t.Helper()
	if err := c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	k, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("ReadFrom: %v", err)
	}
	return string(buf[:k]), from
}
