//go:build realnet

package realnet

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/netns"
)

// nsPrefix starts the name of every namespace this suite creates; the
// stale-namespace sweep removes only names with it whose run is gone.
const nsPrefix = "vsrn"

// The addresses, all inside the run's own namespaces (an unusual private
// range, so that nothing else on a machine is ever a target).
//
//	viewer ns                          cloud ns
//	  wifi 10.213.1.2/24  <-- veth -->  wifi-c 10.213.1.1/24
//	  lte  10.213.2.2/24  <-- veth -->  lte-c  10.213.2.1/24
//	                                    svc0   10.213.100.1 (gRPC), 10.213.100.2 (TURN, STUN)
//	                                    cam0   10.213.200.1 (the camera's host)
//
// The cloud has no route it does not need: it answers the viewer on the
// link each viewer address belongs to (connected routes).
const (
	wifiViewer = "10.213.1.2"
	wifiCloud  = "10.213.1.1"
	lteViewer  = "10.213.2.2"
	lteCloud   = "10.213.2.1"
	grpcIP     = "10.213.100.1"
	turnIP     = "10.213.100.2"
	cameraIP   = "10.213.200.1"
	grpcAddr   = grpcIP + ":50051"
	turnAddr   = turnIP + ":443" // TURN, and STUN for the KVS STUN URL
	stunHost   = "stun.kinesisvideo.us-west-2.amazonaws.com"
)

// topology is one run's two namespaces and links.
type topology struct {
	set    *netns.Set
	cloud  *netns.NS
	viewer *netns.NS
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
// address fails until the default route moves to lte.
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
	for _, l := range [][2]string{{"wifi", "wifi-c"}, {"lte", "lte-c"}} {
		if err := netns.Veth(ctx, tp.viewer, l[0], tp.cloud, l[1]); err != nil {
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
	if err := tp.cloud.Sysctl(ctx, "net.ipv4.conf.all.rp_filter", "1"); err != nil {
		t.Fatal(err)
	}
	if err := tp.cloud.Sysctl(ctx, "net.ipv4.conf.default.rp_filter", "1"); err != nil {
		t.Fatal(err)
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
	lte  = link{"lte", lteViewer, lteCloud}
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
