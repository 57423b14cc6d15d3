package viewerclient

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// state builds a netState: addrs as "ip@iface", the interfaces up, and the
// default route ("" none).
func state(routeIface, gw string, addrs []string, up ...string) netState {
	s := netState{addrs: map[string]string{}, up: map[string]bool{}, route: route{iface: routeIface, gw: gw}}
	for _, a := range addrs {
		ip, ifc, _ := strings.Cut(a, "@")
		s.addrs[ip] = ifc
	}
	for _, u := range up {
		s.up[u] = true
	}
	return s
}

var (
	both      = []string{"10.0.1.2@wifi", "10.0.2.2@lte"}
	onWifi    = state("wifi", "10.0.1.1", both, "wifi", "lte")
	wifiDown  = state("", "", both, "lte") // the kernel dropped wifi's routes
	onLTE     = state("lte", "10.0.2.1", both, "lte")
	onWifiNew = state("wifi", "10.0.1.1", []string{"10.0.1.9@wifi", "10.0.2.2@lte"}, "wifi", "lte")
	lteUp     = state("wifi", "10.0.1.1", append(both, "10.0.3.2@usb"), "wifi", "lte", "usb")
	noNetwork = state("", "", nil)
)

func TestNetWatcherStep(t *testing.T) {
	tests := []struct {
		name        string
		start       netState
		steps       []netState
		inUse       string
		wantChanged []bool
		wantReports []string // per step, "" for none
	}{
		{
			name: "wifi down, default route to lte", start: onWifi, steps: []netState{wifiDown, onLTE}, inUse: "10.0.1.2",
			wantChanged: []bool{true, true},
			wantReports: []string{"", "default route moved: wifi via 10.0.1.1 -> lte via 10.0.2.1"},
		},
		{
			name: "the route moves in one step", start: onWifi, steps: []netState{onLTE},
			wantChanged: []bool{true}, wantReports: []string{"default route moved: wifi via 10.0.1.1 -> lte via 10.0.2.1"},
		},
		{
			name: "a flap: wifi down and back", start: onWifi, steps: []netState{wifiDown, wifiDown, onWifi}, inUse: "10.0.1.2",
			wantChanged: []bool{true, false, true}, wantReports: []string{"", "", ""},
		},
		{
			name: "the address in use changes", start: onWifi, steps: []netState{onWifiNew}, inUse: "10.0.1.2",
			wantChanged: []bool{true}, wantReports: []string{"address 10.0.1.2 (in use) left wifi"},
		},
		{
			name: "another address changes", start: onWifi, steps: []netState{onWifiNew}, inUse: "10.0.2.2",
			wantChanged: []bool{true}, wantReports: []string{""},
		},
		{
			name: "a new interface, same route", start: onWifi, steps: []netState{lteUp},
			wantChanged: []bool{true}, wantReports: []string{""},
		},
		{
			name: "the first network appears", start: noNetwork, steps: []netState{onLTE},
			wantChanged: []bool{true}, wantReports: []string{"default route appeared: lte via 10.0.2.1"},
		},
		{
			name: "nothing changes", start: onWifi, steps: []netState{onWifi},
			wantChanged: []bool{false}, wantReports: []string{""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newNetWatcher(tt.start)
			for i, s := range tt.steps {
				changed, report := w.step(s, tt.inUse)
				if changed != tt.wantChanged[i] || report != tt.wantReports[i] {
					t.Errorf("step %d = %v, %q; want %v, %q", i, changed, report, tt.wantChanged[i], tt.wantReports[i])
				}
			}
		})
	}
}

// fakeNetwork is a netSource the test changes.
type fakeNetwork struct {
	mu    sync.Mutex
	s     netState
	err   error
	reads int
}

func (f *fakeNetwork) read() (netState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	return f.s, f.err
}

func (f *fakeNetwork) set(s netState, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s, f.err = s, err
}

// The poll loop reads every interval, refreshes on every difference and
// reports a move within one interval; it survives read errors.
func TestPollNetwork(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &fakeNetwork{err: errors.New("not yet")}
		var mu sync.Mutex
		var refreshes int
		var reports []string
		got := func() (int, []string) {
			mu.Lock()
			defer mu.Unlock()
			return refreshes, slices.Clone(reports)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			pollNetwork(ctx, src, 200*time.Millisecond, func() string { return "10.0.1.2" },
				func(netState) {
					mu.Lock()
					defer mu.Unlock()
					refreshes++
				},
				func(s string) {
					mu.Lock()
					defer mu.Unlock()
					reports = append(reports, s)
				})
		}()
		time.Sleep(500 * time.Millisecond) // fake time: two failed first reads
		src.set(onWifi, nil)
		time.Sleep(time.Second) // the baseline, then four unchanged reads
		synctest.Wait()
		if n, r := got(); n != 0 || len(r) != 0 {
			t.Fatalf("before any change: %d refreshes, reports %q; want none", n, r)
		}
		start := time.Now()
		src.set(onLTE, nil)
		for {
			time.Sleep(10 * time.Millisecond)
			synctest.Wait()
			if _, r := got(); len(r) > 0 {
				break
			}
		}
		if took := time.Since(start); took > 200*time.Millisecond {
			t.Errorf("the move was reported after %v, want within one interval (200ms)", took)
		}
		src.set(onWifi, errors.New("netlink hiccup")) // an error is skipped
		time.Sleep(time.Second)
		synctest.Wait()
		cancel()
		<-done
		if n, r := got(); n != 1 || !slices.Equal(r, []string{"default route moved: wifi via 10.0.1.1 -> lte via 10.0.2.1"}) {
			t.Errorf("%d refreshes, reports %q; want 1 and the move", n, r)
		}
	})
}

func TestDefaultRoute(t *testing.T) {
	const table = `Iface	Destination	Gateway 	Flags	RefCnt	Use	Metric	Mask		MTU	Window	IRTT
wifi	00000000	0101000A	0003	0	0	600	00000000	0	0	0
lte	00000000	0102000A	0003	0	0	100	00000000	0	0	0
lte	0002000A	00000000	0001	0	0	100	00FFFFFF	0	0	0
down	00000000	0103000A	0002	0	0	1	00000000	0	0	0
`
	got, err := defaultRoute(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	// Little-endian machines print 10.0.2.1 as 0102000A; big-endian ones
	// print it the other way round.
	want := route{iface: "lte", gw: procIP("0102000A")}
	if got != want {
		t.Errorf("defaultRoute = %+v, want %+v (lowest metric, up)", got, want)
	}
	if got, _ := defaultRoute(strings.NewReader("Iface\tDestination\n")); got != (route{}) {
		t.Errorf("defaultRoute(no routes) = %+v, want none", got)
	}
	if procIP("0101000A") != "10.0.1.1" && procIP("0A000101") != "10.0.1.1" {
		t.Errorf("procIP decodes neither byte order")
	}
	if procIP("00000000") != "" {
		t.Errorf("procIP(0) = %q, want empty", procIP("00000000"))
	}
}

// The real reader works on this machine: loopback is left out, and every
// address belongs to an interface.
func TestOSNetworkReads(t *testing.T) {
	s, err := osNetwork{}.read()
	if err != nil {
		t.Fatal(err)
	}
	for ip, ifc := range s.addrs {
		if p := net.ParseIP(ip); p == nil || p.IsLoopback() || ifc == "" {
			t.Errorf("address %q on %q: want a non-loopback IPv4 address of a named interface", ip, ifc)
		}
	}
	t.Logf("this machine: %s", s.describe())
}

func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 && ifc.Flags&net.FlagUp != 0 {
			return ifc.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}

// Without a Config.Net the client gathers on the machine's interfaces (here only loopback, by
// filter) and watches them: a default route that moves makes the client
// re-dial at once and report network_changed on the new connection; the
// service's ICE restart reconnects and media flows again.
func TestHostNetworkChangeRedials(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			f, _ := startFake(t, 0)
			lo := loopbackName(t)
			src := &fakeNetwork{s: onWifi}
			c, _, d, rec := startDialed(t, f.addr, mode, func(c *Config) {
				c.Net, c.InterfaceFilter, c.netSource, c.pollEvery = nil, func(n string) bool { return n == lo }, src, 20*time.Millisecond
				c.AckTimeout = DefaultAckTimeout
			})
			waitRTP(ctx, t, c, 5)
			if host, _, _ := net.SplitHostPort(c.Stats().LocalAddress); host != "127.0.0.1" {
				t.Errorf("local address %q, want 127.0.0.1 (host candidate on %s)", c.Stats().LocalAddress, lo)
			}
			src.set(onLTE, nil)
			waitFor(ctx, t, c, "RECOVERED", ofType(vspb.EventType_EVENT_TYPE_RECOVERED))
			waitRTP(ctx, t, c, c.Stats().PacketsReceived+5)

			redials, networks := rec.snapshot()
			if !slices.Equal(redials, []RedialReason{RedialNetworkChange}) ||
				!slices.Equal(networks, []string{"default route moved: wifi via 10.0.1.1 -> lte via 10.0.2.1"}) {
				t.Errorf("re-dials %q, network changes %q; want one network change (the route move)", redials, networks)
			}
			if dials, _, closed := d.count(); dials != 2 || closed != 1 {
				t.Errorf("%d dials, %d closed; want the first connection abandoned for a second", dials, closed)
			}
			n := 0
			for _, k := range f.received() {
				if k == "network_changed" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("the service applied %d network_changed, want 1", n)
			}
			if st := c.Stats(); st.ICERestarts != 1 || st.NetworkChanges != 1 {
				t.Errorf("ICE restarts %d, network changes %d; want 1, 1", st.ICERestarts, st.NetworkChanges)
			}
		})
	}
}

// With NoNetworkWatch the client does not watch: no re-dial, nothing
// reported, however the network changes.
func TestHostNetworkWatchOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	f, _ := startFake(t, 0)
	lo := loopbackName(t)
	src := &fakeNetwork{s: onWifi}
	c, _, _, rec := startDialed(t, f.addr, ModeConnect, func(c *Config) {
		c.Net, c.InterfaceFilter, c.netSource, c.NoNetworkWatch = nil, func(n string) bool { return n == lo }, src, true
	})
	waitRTP(ctx, t, c, 5)
	src.mu.Lock()
	reads := src.reads
	src.mu.Unlock()
	if redials, networks := rec.snapshot(); reads != 0 || len(redials) != 0 || len(networks) != 0 {
		t.Errorf("%d reads of the network, re-dials %q, changes %q; want none", reads, redials, networks)
	}
}
