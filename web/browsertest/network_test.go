//go:build browser

package browsertest

import (
	"testing"
	"time"

	"github.com/acme/viewersession/internal/netns"
)

// The network-change topology, as the recovery issue's real-network suite
// has it: the phone (Chromium) has two links, wifi and lte, to the cloud,
// where the service, TURN and the camera sit on addresses of their own.
//
//	phone ns                           cloud ns
//	  wifi 10.213.1.2/24  <-- veth -->  wifi-c 10.213.1.1/24
//	  lte  10.213.2.2/24  <-- veth -->  lte-c  10.213.2.1/24
//	                                    svc0   10.213.100.1 (web port), 10.213.100.2 (TURN)
//	                                    cam0   10.213.200.1 (the camera)
//
// Wi-Fi carries the traffic at first (the only default route); the cloud
// filters by source (strict reverse-path filtering), so nothing on the LTE
// address works until the default route moves to lte.
const (
	wifiPhone = "10.213.1.2"
	wifiCloud = "10.213.1.1"
	ltePhone  = "10.213.2.2"
	lteCloud  = "10.213.2.1"
	svcIP     = "10.213.100.1"
	turnIP    = "10.213.100.2"
	cameraIP  = "10.213.200.1"
)

func newPhoneAndCloud(t *testing.T) (phone, cloud *netns.NS) {
	t.Helper()
	set := newSet(t)
	ctx := t.Context()
	var err error
	if cloud, err = set.New(ctx, "cloud"); err != nil {
		t.Fatal(err)
	}
	if phone, err = set.New(ctx, "phone"); err != nil {
		t.Fatal(err)
	}
	for _, l := range [][2]string{{"wifi", "wifi-c"}, {"lte", "lte-c"}} {
		if err := netns.Veth(ctx, phone, l[0], cloud, l[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range [][2]string{{"svc0", "svc1"}, {"cam0", "cam1"}} {
		if err := netns.Veth(ctx, cloud, l[0], cloud, l[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter"} {
		if err := cloud.Sysctl(ctx, k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := cloud.Batch(ctx,
		"addr add "+wifiCloud+"/24 dev wifi-c", "addr add "+lteCloud+"/24 dev lte-c",
		"addr add "+svcIP+"/32 dev svc0", "addr add "+turnIP+"/32 dev svc0", "addr add "+cameraIP+"/32 dev cam0",
		"link set wifi-c up", "link set lte-c up", "link set svc0 up", "link set svc1 up", "link set cam0 up", "link set cam1 up",
	); err != nil {
		t.Fatal(err)
	}
	if err := phone.Batch(ctx,
		"addr add "+wifiPhone+"/24 dev wifi", "addr add "+ltePhone+"/24 dev lte",
		"link set wifi up", "link set lte up",
		"route add default via "+wifiCloud+" dev wifi",
	); err != nil {
		t.Fatal(err)
	}
	return phone, cloud
}

// TestNetworkChange is (c): the phone loses Wi-Fi (the link goes down, its
// address goes, the default route moves to LTE) while Chromium plays; the
// library notices (the browser's network signals, its broken stream, ICE),
// tells the service, follows its recovery, and the video comes back; the
// library reports the outage.
func TestNetworkChange(t *testing.T) {
	needBrowser(t)
	phone, cloud := newPhoneAndCloud(t)
	web := "http://" + svcIP + ":8081"
	startDevServer(t, cloud, svcIP+":8081", cameraIP, turnIP)
	d := startDriver(t, phone)
	s := mintSession(t, cloud, web, "demo-camera", "phone")
	d.call("open", map[string]any{"page": "v", "url": viewerURL(pagesURL, web, "connect", s)})
	from := 0
	before := d.waitVideo("v", &from, 15)
	pcBefore := d.wait("v", new(int), time.Second, "a media report", func(e pageEvent) bool { return e.kind() == "media" }).num("peerConnectionId")

	lost := time.Now()
	if err := phone.Batch(t.Context(), "link set wifi down", "addr flush dev wifi", "route replace default via "+lteCloud+" dev lte"); err != nil {
		t.Fatal(err)
	}
	out := d.wait("v", &from, 15*time.Second, "the library's outage event", func(e pageEvent) bool { return e.kind() == "outage" })
	rec := d.wait("v", &from, 45*time.Second, "the library's recovered event", func(e pageEvent) bool { return e.kind() == "recovered" })
	after := d.wait("v", &from, 15*time.Second, "video growing again after the recovery", func(e pageEvent) bool {
		return e.kind() == "media" && e.num("framesDecoded") > 15
	})
	if rec.num("outageMs") <= 0 {
		t.Errorf("recovered with outage %v ms; want the black video the user saw, > 0", rec.num("outageMs"))
	}
	var acted []string
	for _, e := range d.all("v") {
		switch e.kind() {
		case "network":
			acted = append(acted, "network change: "+e.str("description"))
		case "redial":
			acted = append(acted, "re-dial: "+e.str("reason"))
		}
	}

	// The control stream survived the change too: an event the service
	// records now (fresh ICE servers, on KVS's RECONNECT_ICE_SERVER to
	// this viewer) reaches the page.
	cid := d.wait("v", new(int), time.Second, "an event with the clientId", func(e pageEvent) bool {
		return e.kind() == "timeline" && e.str("type") == "OFFER_SENT"
	}).str("clientId")
	fault(t, cloud, map[string]any{"channelArn": channelARN(t, cloud, "demo-camera"), "fault": "reconnect-ice-server", "clientId": cid})
	d.wait("v", &from, 15*time.Second, "ICE_SERVERS_REFRESHED after the change (the control stream is alive)", func(e pageEvent) bool {
		return e.kind() == "timeline" && e.str("type") == "ICE_SERVERS_REFRESHED"
	})
	t.Logf("network change: frames decoded %v before (first frame %.0f ms); wifi lost; library: outage %q, %v; recovered (step %q) after an outage of %.0f ms; frames decoded %v on peer connection %v (was %v); control stream alive %.1f s after the loss",
		before.frames, before.firstFrameMs, out.str("cause"), acted, rec.str("step"), rec.num("outageMs"),
		after.num("framesDecoded"), after.num("peerConnectionId"), pcBefore, time.Since(lost).Seconds())
}
