package viewerclient

import (
	"fmt"
	"sync"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

// hostNet is the machine's real network as pion sees it (transport.Net):
// the standard library's sockets, and an interface list that refresh
// re-reads. pion's stdnet.Net reads the interfaces once, when it is made,
// and its UpdateInterfaces rewrites the list while a gatherer may be
// reading it, so refresh makes a new stdnet.Net and swaps it in under a
// lock instead. Every peer connection of the client shares one hostNet,
// so the next gathering (an ICE restart's, or a new peer connection's)
// sees the interfaces as they are after the change. Safe for concurrent
// use.
type hostNet struct {
	*stdnet.Net // sockets and resolution: stateless

	// mu guards ifs.
	mu  sync.Mutex
	ifs *stdnet.Net // the latest interface list
}

var _ transport.Net = (*hostNet)(nil)

func newHostNet() (*hostNet, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("viewerclient: interfaces: %w", err)
	}
	return &hostNet{Net: n, ifs: n}, nil
}

// refresh re-reads the machine's interfaces and addresses.
func (n *hostNet) refresh() error {
	ifs, err := stdnet.NewNet()
	if err != nil {
		return fmt.Errorf("viewerclient: interfaces: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.ifs = ifs
	return nil
}

func (n *hostNet) current() *stdnet.Net {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ifs
}

// Interfaces implements transport.Net: the list as of the last refresh.
func (n *hostNet) Interfaces() ([]*transport.Interface, error) { return n.current().Interfaces() }

// InterfaceByIndex implements transport.Net.
func (n *hostNet) InterfaceByIndex(index int) (*transport.Interface, error) {
	return n.current().InterfaceByIndex(index)
}

// InterfaceByName implements transport.Net.
func (n *hostNet) InterfaceByName(name string) (*transport.Interface, error) {
	return n.current().InterfaceByName(name)
}
