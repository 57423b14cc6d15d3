// Package switchnet simulates a phone's network change on loopback, for
// tests and for viewerctl's -network-change-after: a SwitchNet is a pion
// transport.Net with one 127.x address at a time, and switching it makes
// the old address go silent. Give it to viewerclient.Config.Net.
package switchnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

var (
	// ErrNotLoopback: a SwitchNet takes IPv4 loopback addresses only.
	ErrNotLoopback = errors.New("switchnet: not an IPv4 loopback address")
	// ErrNoLoopback: the machine has no loopback interface that is up.
	ErrNoLoopback = errors.New("switchnet: no loopback interface")
	// ErrNetwork: a SwitchNet supports UDP and TCP only.
	ErrNetwork = errors.New("switchnet: unsupported network")
)

// SwitchNet is a client's network: one loopback IPv4 address at a time,
// standing for the address a phone has on its current Wi-Fi or cellular
// network. It implements pion's transport.Net (give it to
// webrtc.SettingEngine.SetNet) over the standard library's network (stdnet):
//
//   - Interfaces reports a single loopback interface carrying only the
//     current address, so ICE gathers host (and relay) candidates there.
//   - Sockets opened without a local address (or on 0.0.0.0) are bound to
//     the current address, so every socket has a concrete address.
//   - Switch makes another address current. The sockets bound to a retired
//     address stay open but drop everything: writes report success and send
//     nothing, reads discard what arrives. Like a phone that left a Wi-Fi
//     network, the old ICE pair goes silent and ICE eventually reports it
//     disconnected and then failed; an ICE restart or a new peer connection
//     gathers on the new address.
//
// Linux routes all of 127.0.0.0/8 over lo, so any 127.x.y.z works without
// setup. Switching back to an address revives its sockets. All methods are
// safe for concurrent use.
type SwitchNet struct {
	std *stdnet.Net

	// mu guards cur.
	mu  sync.Mutex
	cur net.IP // 4-byte form
}

var _ transport.Net = (*SwitchNet)(nil)

// New returns a SwitchNet whose current address is ip, an IPv4 loopback
// address such as "127.0.0.2".
func New(ip string) (*SwitchNet, error) {
	cur, err := parseLoopback(ip)
	if err != nil {
		return nil, err
	}
	std, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("switchnet: %w", err)
	}
	if _, err := loopbackInterface(std); err != nil {
		return nil, err
	}
	return &SwitchNet{std: std, cur: cur}, nil
}

// Switch makes ip (an IPv4 loopback address) the current address: sockets
// bound to any other address drop their traffic from now on, and gathering
// sees only ip. Switching to the current address changes nothing.
func (n *SwitchNet) Switch(ip string) error {
	next, err := parseLoopback(ip)
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cur = next
	return nil
}

// Current returns the current address, e.g. "127.0.0.2".
func (n *SwitchNet) Current() string { return n.current().String() }

func (n *SwitchNet) current() net.IP {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur
}

// live reports whether a socket bound to ip may pass traffic.
func (n *SwitchNet) live(ip net.IP) bool { return n.current().Equal(ip) }

func parseLoopback(s string) (net.IP, error) {
	ip := net.ParseIP(s).To4()
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", ErrNotLoopback, s)
	}
	return ip, nil
}

// loopbackInterface returns the system's loopback interface as std sees it.
func loopbackInterface(std *stdnet.Net) (*transport.Interface, error) {
	ifs, err := std.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("switchnet: interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			return ifc, nil
		}
	}
	return nil, ErrNoLoopback
}

// Interfaces implements transport.Net: the loopback interface with the
// current address only.
func (n *SwitchNet) Interfaces() ([]*transport.Interface, error) {
	lo, err := loopbackInterface(n.std)
	if err != nil {
		return nil, err
	}
	ifc := transport.NewInterface(lo.Interface)
	ifc.AddAddress(&net.IPNet{IP: n.current(), Mask: net.CIDRMask(8, 32)})
	return []*transport.Interface{ifc}, nil
}

// InterfaceByIndex implements transport.Net.
func (n *SwitchNet) InterfaceByIndex(index int) (*transport.Interface, error) {
	ifs, err := n.Interfaces()
	if err != nil {
		return nil, err
	}
	if ifs[0].Index != index {
		return nil, fmt.Errorf("%w: index=%d", transport.ErrInterfaceNotFound, index)
	}
	return ifs[0], nil
}

// InterfaceByName implements transport.Net.
func (n *SwitchNet) InterfaceByName(name string) (*transport.Interface, error) {
	ifs, err := n.Interfaces()
	if err != nil {
		return nil, err
	}
	if ifs[0].Name != name {
		return nil, fmt.Errorf("%w: %s", transport.ErrInterfaceNotFound, name)
	}
	return ifs[0], nil
}

// bindIP is the address a socket asking for ip binds to: the current
// address when ip is unset or unspecified.
func (n *SwitchNet) bindIP(ip net.IP) net.IP {
	if ip == nil || ip.IsUnspecified() {
		return n.current()
	}
	return ip
}

// ListenPacket implements transport.Net for UDP networks.
func (n *SwitchNet) ListenPacket(network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("%w: %s", ErrNetwork, network)
	}
	addr, err := n.std.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, err
	}
	return n.ListenUDP(network, addr)
}

// ListenUDP implements transport.Net.
func (n *SwitchNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	bind := &net.UDPAddr{}
	if laddr != nil {
		*bind = *laddr
	}
	bind.IP = n.bindIP(bind.IP)
	c, err := n.std.ListenUDP(network, bind)
	if err != nil {
		return nil, err
	}
	return &udpConn{UDPConn: c, n: n, ip: bind.IP}, nil
}

// DialUDP implements transport.Net.
func (n *SwitchNet) DialUDP(network string, laddr, raddr *net.UDPAddr) (transport.UDPConn, error) {
	bind := &net.UDPAddr{}
	if laddr != nil {
		*bind = *laddr
	}
	bind.IP = n.bindIP(bind.IP)
	c, err := n.std.DialUDP(network, bind, raddr)
	if err != nil {
		return nil, err
	}
	return &udpConn{UDPConn: c, n: n, ip: bind.IP}, nil
}

// DialTCP implements transport.Net.
func (n *SwitchNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (transport.TCPConn, error) {
	bind := &net.TCPAddr{}
	if laddr != nil {
		*bind = *laddr
	}
	bind.IP = n.bindIP(bind.IP)
	c, err := n.std.DialTCP(network, bind, raddr)
	if err != nil {
		return nil, err
	}
	return &tcpConn{TCPConn: c, n: n, ip: bind.IP}, nil
}

// ListenTCP implements transport.Net.
func (n *SwitchNet) ListenTCP(network string, laddr *net.TCPAddr) (transport.TCPListener, error) {
	bind := &net.TCPAddr{}
	if laddr != nil {
		*bind = *laddr
	}
	bind.IP = n.bindIP(bind.IP)
	l, err := n.std.ListenTCP(network, bind)
	if err != nil {
		return nil, err
	}
	return &tcpListener{TCPListener: l, n: n, ip: bind.IP}, nil
}

// Dial implements transport.Net for TCP and UDP networks.
func (n *SwitchNet) Dial(network, address string) (net.Conn, error) {
	return n.CreateDialer(&net.Dialer{}).Dial(network, address)
}

// ResolveIPAddr implements transport.Net.
func (n *SwitchNet) ResolveIPAddr(network, address string) (*net.IPAddr, error) {
	return n.std.ResolveIPAddr(network, address)
}

// ResolveUDPAddr implements transport.Net.
func (n *SwitchNet) ResolveUDPAddr(network, address string) (*net.UDPAddr, error) {
	return n.std.ResolveUDPAddr(network, address)
}

// ResolveTCPAddr implements transport.Net.
func (n *SwitchNet) ResolveTCPAddr(network, address string) (*net.TCPAddr, error) {
	return n.std.ResolveTCPAddr(network, address)
}

// CreateDialer implements transport.Net: d's connections bind to the
// current address unless d.LocalAddr says otherwise.
func (n *SwitchNet) CreateDialer(d *net.Dialer) transport.Dialer {
	return dialer{n: n, d: d}
}

// CreateListenConfig implements transport.Net: unspecified listen addresses
// become the current address.
func (n *SwitchNet) CreateListenConfig(lc *net.ListenConfig) transport.ListenConfig {
	return listenConfig{n: n, lc: lc}
}

type dialer struct {
	n *SwitchNet
	d *net.Dialer
}

func (d dialer) Dial(network, address string) (net.Conn, error) {
	nd := *d.d
	var ip net.IP
	switch network {
	case "tcp", "tcp4", "tcp6":
		var la net.TCPAddr
		if a, ok := nd.LocalAddr.(*net.TCPAddr); ok && a != nil {
			la = *a
		}
		la.IP = d.n.bindIP(la.IP)
		nd.LocalAddr, ip = &la, la.IP
	case "udp", "udp4", "udp6":
		var la net.UDPAddr
		if a, ok := nd.LocalAddr.(*net.UDPAddr); ok && a != nil {
			la = *a
		}
		la.IP = d.n.bindIP(la.IP)
		nd.LocalAddr, ip = &la, la.IP
	default:
		return nil, fmt.Errorf("%w: %s", ErrNetwork, network)
	}
	c, err := nd.Dial(network, address) //nolint:noctx // transport.Dialer has no context
	if err != nil {
		return nil, err
	}
	return &streamConn{Conn: c, n: d.n, ip: ip}, nil
}

type listenConfig struct {
	n  *SwitchNet
	lc *net.ListenConfig
}

func (l listenConfig) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	addr, err := l.n.std.ResolveTCPAddr(network, address)
	if err != nil {
		return nil, err
	}
	addr.IP = l.n.bindIP(addr.IP)
	ln, err := l.lc.Listen(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	return &listener{Listener: ln, n: l.n, ip: addr.IP}, nil
}

func (l listenConfig) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	addr, err := l.n.std.ResolveUDPAddr(network, address)
	if err != nil {
		return nil, err
	}
	addr.IP = l.n.bindIP(addr.IP)
	pc, err := l.lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	return &packetConn{PacketConn: pc, n: l.n, ip: addr.IP}, nil
}

// udpConn is a UDP socket bound to ip: while ip is retired it drops every
// datagram it is asked to send and every datagram it receives.
type udpConn struct {
	transport.UDPConn
	n  *SwitchNet
	ip net.IP
}

func (c *udpConn) Read(b []byte) (int, error) {
	for {
		n, err := c.UDPConn.Read(b)
		if err != nil || c.n.live(c.ip) {
			return n, err
		}
	}
}

func (c *udpConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFrom(b)
		if err != nil || c.n.live(c.ip) {
			return n, addr, err
		}
	}
}

func (c *udpConn) ReadFromUDP(b []byte) (int, *net.UDPAddr, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDP(b)
		if err != nil || c.n.live(c.ip) {
			return n, addr, err
		}
	}
}

func (c *udpConn) ReadMsgUDP(b, oob []byte) (int, int, int, *net.UDPAddr, error) {
	for {
		n, oobn, flags, addr, err := c.UDPConn.ReadMsgUDP(b, oob)
		if err != nil || c.n.live(c.ip) {
			return n, oobn, flags, addr, err
		}
	}
}

func (c *udpConn) Write(b []byte) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.UDPConn.Write(b)
}

func (c *udpConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.UDPConn.WriteTo(b, addr)
}

func (c *udpConn) WriteToUDP(b []byte, addr *net.UDPAddr) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.UDPConn.WriteToUDP(b, addr)
}

func (c *udpConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (int, int, error) {
	if !c.n.live(c.ip) {
		return len(b), len(oob), nil
	}
	return c.UDPConn.WriteMsgUDP(b, oob, addr)
}

// packetConn is udpConn for a plain net.PacketConn.
type packetConn struct {
	net.PacketConn
	n  *SwitchNet
	ip net.IP
}

func (c *packetConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(b)
		if err != nil || c.n.live(c.ip) {
			return n, addr, err
		}
	}
}

func (c *packetConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// streamConn is a connection (TCP, or connected UDP from Dial) bound to ip:
// while ip is retired its writes vanish and what arrives is discarded.
type streamConn struct {
	net.Conn
	n  *SwitchNet
	ip net.IP
}

func (c *streamConn) Read(b []byte) (int, error) { return retiredRead(c.n, c.ip, c.Conn, b) }

func (c *streamConn) Write(b []byte) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// tcpConn is streamConn for transport.TCPConn.
type tcpConn struct {
	transport.TCPConn
	n  *SwitchNet
	ip net.IP
}

func (c *tcpConn) Read(b []byte) (int, error) { return retiredRead(c.n, c.ip, c.TCPConn, b) }

func (c *tcpConn) Write(b []byte) (int, error) {
	if !c.n.live(c.ip) {
		return len(b), nil
	}
	return c.TCPConn.Write(b)
}

// ReadFrom copies r to the connection (io.ReaderFrom), dropping the bytes
// while the address is retired.
func (c *tcpConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

// retiredRead reads from r, discarding what arrives while ip is retired.
func retiredRead(n *SwitchNet, ip net.IP, r io.Reader, b []byte) (int, error) {
	for {
		k, err := r.Read(b)
		if err != nil || n.live(ip) {
			return k, err
		}
	}
}

type tcpListener struct {
	transport.TCPListener
	n  *SwitchNet
	ip net.IP
}

func (l *tcpListener) Accept() (net.Conn, error) { return l.AcceptTCP() }

func (l *tcpListener) AcceptTCP() (transport.TCPConn, error) {
	c, err := l.TCPListener.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return &tcpConn{TCPConn: c, n: l.n, ip: l.ip}, nil
}

type listener struct {
	net.Listener
	n  *SwitchNet
	ip net.IP
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &streamConn{Conn: c, n: l.n, ip: l.ip}, nil
}
