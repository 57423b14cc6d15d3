//go:build realnet

package realnet

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/netns"
)

// nsPrefix starts the name of every namespace this suite creates; the
// stale-namespace sweep removes only names with it whose run is gone.
const nsPrefix = "vsrn"

// The addresses, all inside the run's own namespaces (an unusual private
// range, so that nothing else on a machine is ever a target). The viewer's
// LTE side is behind a carrier NAT, as a phone's is: its address is a
// private one (the shared address space of RFC 6598) that the carrier
// masquerades as its own 10.213.2.2 on the way to the cloud.
//
//	viewer ns                         carrier ns                        cloud ns
//	  wifi 10.213.1.2/24  <----------------- veth ----------------->  wifi-c 10.213.1.1/24
//	  lte  100.64.0.2/24  <-- veth -->  lte-p 100.64.0.1/24
//	                                    lte-o 10.213.2.2/24 <-- veth -->  lte-c  10.213.2.1/24
//	                                    (masquerade out of lte-o)        svc0   10.213.100.1 (gRPC), 10.213.100.2 (TURN, STUN)
//	                                                                     cam0   10.213.200.1 (the camera's host)
//
// The cloud has no route it does not need: it answers the viewer's Wi-Fi
// address and the carrier's on the links they sit on (connected routes),
// and knows no route to the carrier's private side, so only what the
// carrier masquerades comes back.
const (
	wifiViewer = "10.213.1.2"
	wifiCloud  = "10.213.1.1"
	lteViewer  = "100.64.0.2" // private, behind the carrier's NAT
	lteCarrier = "100.64.0.1" // the viewer's LTE gateway
	carrierOut = "10.213.2.2" // what the cloud sees of the viewer on LTE
	lteCloud   = "10.213.2.1"
	grpcIP     = "10.213.100.1"
	turnIP     = "10.213.100.2"
	cameraIP   = "10.213.200.1"
	grpcAddr   = grpcIP + ":50051"
	turnAddr   = turnIP + ":443" // TURN, and STUN for the KVS STUN URL
	stunHost   = "stun.kinesisvideo.us-west-2.amazonaws.com"
)

// carrierNAT is the carrier's nftables table: every connection that leaves
// towards the cloud is masqueraded (a conntrack mapping per connection, so
// only the destination it was made for may answer on it), and the rule's
// counter tells how many connections took that path.
const carrierNAT = "table ip carrier {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"lte-o\" counter masquerade\n }\n}\n"

// topology is one run's three namespaces and their links.
type topology struct {
	set     *netns.Set
	cloud   *netns.NS
	viewer  *netns.NS
	carrier *netns.NS
}

// newTopology builds the namespaces and links above; t.Cleanup deletes
// them (and kills what still runs inside), whether the test passed or not.
//
// Wi-Fi is deterministically the path in use at first, while LTE is up
// with its address from the start (as on a phone that keeps mobile data up):
// the viewer's only default route is via wifi, and the cloud filters by
// source on ingress (strict reverse-path filtering, i.e. BCP 38 as an
// operator does it), so a packet from the LTE address that leaves through
// the Wi-Fi link is dropped. Every ICE pair and TURN allocation on the LTE
// address fails until the default route moves to lte. Once it has, what
// the viewer learned on Wi-Fi does not carry over: the cloud sees the
// carrier's address and a mapping it has never seen. The carrier filters
// by source too (as an operator's gateway accepts only its subscriber's
// address), so a packet from the Wi-Fi address sent over lte dies there.
func newTopology(t *testing.T) *topology {
	t.Helper()
	set, err := netns.NewSet(nsPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := set.Close(); err != nil {
			t.Errorf("delete namespaces: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tp := &topology{set: set}
	if tp.cloud, err = set.New(ctx, "cloud"); err != nil {
		t.Fatal(err)
	}
	if tp.viewer, err = set.New(ctx, "viewer"); err != nil {
		t.Fatal(err)
	}
	if tp.carrier, err = set.New(ctx, "carrier"); err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		a, b         *netns.NS
		aName, bName string
	}{
		{tp.viewer, tp.cloud, "wifi", "wifi-c"},
		{tp.viewer, tp.carrier, "lte", "lte-p"},
		{tp.carrier, tp.cloud, "lte-o", "lte-c"},
	} {
		if err := netns.Veth(ctx, l.a, l.aName, l.b, l.bName); err != nil {
			t.Fatal(err)
		}
	}
	// The service's and the camera's addresses sit on interfaces of their
	// own (this kernel has no dummy interfaces: a veth pair inside the
	// cloud namespace stands in), never on loopback.
	for _, l := range [][2]string{{"svc0", "svc1"}, {"cam0", "cam1"}} {
		if err := netns.Veth(ctx, tp.cloud, l[0], tp.cloud, l[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []*netns.NS{tp.cloud, tp.carrier} {
		for _, key := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"} {
			if err := ns.Sysctl(ctx, key, "1"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tp.carrier.Sysctl(ctx, "net.ipv4.ip_forward", "1"); err != nil {
		t.Fatal(err)
	}
	err = tp.carrier.Batch(ctx,
		"addr add "+lteCarrier+"/24 dev lte-p",
		"addr add "+carrierOut+"/24 dev lte-o",
		"link set lte-p up", "link set lte-o up",
		"route add default via "+lteCloud+" dev lte-o",
	)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := tp.carrier.ExecInput(ctx, carrierNAT, "nft", "-f", "-"); err != nil {
		t.Fatalf("the carrier's NAT: %v: %s", err, out)
	}
	err = tp.cloud.Batch(ctx,
		"addr add "+wifiCloud+"/24 dev wifi-c",
		"addr add "+lteCloud+"/24 dev lte-c",
		"addr add "+grpcIP+"/32 dev svc0",
		"addr add "+turnIP+"/32 dev svc0",
		"addr add "+cameraIP+"/32 dev cam0",
		"link set wifi-c up", "link set lte-c up",
		"link set svc0 up", "link set svc1 up", "link set cam0 up", "link set cam1 up",
	)
	if err != nil {
		t.Fatal(err)
	}
	// The service hands the app the region's KVS STUN URL, a host name.
	// Inside the viewer namespace it resolves (through the namespace's own
	// /etc/hosts) to the emulator's TURN server, which answers STUN on 443
	// as KVS does. Without it the lookup would wait on a resolver the
	// namespace cannot reach, which no phone has.
	if err := tp.viewer.WriteEtc("hosts", "127.0.0.1 localhost\n"+turnIP+" "+stunHost+"\n"); err != nil {
		t.Fatal(err)
	}
	err = tp.viewer.Batch(ctx,
		"addr add "+wifiViewer+"/24 dev wifi",
		"addr add "+lteViewer+"/24 dev lte",
		"link set wifi up", "link set lte up",
		"route add default via "+wifiCloud+" dev wifi",
	)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// link names one of the viewer's links.
type link struct {
	name, addr, gw string
}

var (
	wifi = link{"wifi", wifiViewer, wifiCloud}
	lte  = link{"lte", lteViewer, lteCarrier}
)

// lose takes the link `from` away and moves the default route to `to`, in
// one `ip -batch` (a few milliseconds): the link goes down, its address
// goes (as when a phone loses its Wi-Fi association or its LTE bearer), and
// the default route moves to the other link. The app's sockets are left
// as they are: they sit on an address that no longer exists.
func (tp *topology) lose(ctx context.Context, from, to link) error {
	return tp.viewer.Batch(ctx,
		"link set "+from.name+" down",
		"addr flush dev "+from.name,
		"route replace default via "+to.gw+" dev "+to.name,
	)
}

// killSockets destroys the viewer's TCP sockets on the lost address, as
// Android does when a network disconnects (SOCK_DESTROY, here `ss -K`): the
// app's gRPC connection fails at once instead of hanging. UDP sockets (the
// peer connection's) are left, as Android leaves them.
func (tp *topology) killSockets(ctx context.Context, from link) (string, error) {
	out, err := tp.viewer.Exec(ctx, "ss", "-K", "-t", "-n", "src", from.addr)
	return string(out), err
}

// restore brings a lost link back (up, with its address) without moving
// the default route to it: Wi-Fi associating again while LTE still carries
// the traffic.
func (tp *topology) restore(ctx context.Context, l link) error {
	return tp.viewer.Batch(ctx,
		"link set "+l.name+" up",
		"addr add "+l.addr+"/24 dev "+l.name,
	)
}

// natConnections is how many connections the carrier has masqueraded so
// far (its rule's counter: a nat chain sees only a connection's first
// packet).
func (tp *topology) natConnections(ctx context.Context) (int, error) {
	out, err := tp.carrier.Exec(ctx, "nft", "list", "chain", "ip", "carrier", "post")
	if err != nil {
		return 0, fmt.Errorf("read the carrier's NAT counter: %w: %s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no counter in the carrier's NAT chain: %s", out)
	}
	return strconv.Atoi(string(m[1]))
}

// fadeTable is the nftables table of a Wi-Fi fade.
const fadeTable = "vsrnfade"

// fade starts or ends a Wi-Fi fade: every packet on the wifi link is lost
// in both directions while the link stays up, with its address and its
// routes (the station stays associated while the signal is gone). The
// packets are dropped on ingress at both ends of the link (netdev ingress
// hooks on the viewer's wifi and the cloud's wifi-c), so no sender sees an
// error, no interface or route changes, and the OS tells the app nothing:
// as in the air.
func (tp *topology) fade(ctx context.Context, on bool) error {
	for _, end := range []struct {
		ns  *netns.NS
		dev string
	}{{tp.viewer, "wifi"}, {tp.cloud, "wifi-c"}} {
		var err error
		if on {
			rules := fmt.Sprintf("table netdev %s {\n chain in {\n  type filter hook ingress device %q priority 0; policy drop;\n }\n}\n", fadeTable, end.dev)
			_, err = end.ns.ExecInput(ctx, rules, "nft", "-f", "-")
		} else {
			_, err = end.ns.Exec(ctx, "nft", "delete", "table", "netdev", fadeTable)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
