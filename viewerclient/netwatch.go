package viewerclient

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// netChange is a network change for Run to act on: detected by the
// watcher, or reported by the app (NetworkChanged, which waits on done).
type netChange struct {
	description string
	done        chan error // nil for a detected change
}

// netState is one reading of the machine's network: what the watcher
// compares from one poll to the next.
type netState struct {
	// addrs maps each IPv4 address of a non-loopback interface (link-local
	// excluded) to its interface, whether the interface is up or not: an
	// interface that goes down keeps its addresses, and may come back.
	addrs map[string]string
	// up holds the names of the non-loopback interfaces that are up.
	up map[string]bool
	// route is the default IPv4 route the kernel uses (lowest metric);
	// zero when there is none.
	route route
}

// route is a default route: its interface and gateway.
type route struct {
	iface string
	gw    string
}

func (r route) String() string {
	if r.gw == "" {
		return r.iface
	}
	return r.iface + " via " + r.gw
}

func (s netState) equal(o netState) bool {
	return maps.Equal(s.addrs, o.addrs) && maps.Equal(s.up, o.up) && s.route == o.route
}

// netSource reads the machine's network.
type netSource interface {
	read() (netState, error)
}

// netWatcher turns readings of the network into the changes the service
// must hear about. Not every difference is one:
//
//   - The default route moving to another interface or gateway (or
//     appearing where there was none) is reported at once: the paths the
//     session used are gone, and a new one exists. This is the Wi-Fi to LTE
//     move.
//   - The address the current ICE pair uses leaving the machine is
//     reported at once: that pair is dead.
//   - A route or an interface that merely disappears is not reported: it
//     may come back as it was (a flap, which heals by itself, and where a
//     recovery would only cost time), and without a path there is nothing
//     to recover over yet. If a different route appears, that is a move;
//     if the same one comes back, nothing is reported.
//
// Every difference, reported or not, refreshes the interface list pion
// gathers on.
type netWatcher struct {
	last  netState // the previous reading
	route route    // the last default route seen; kept while there is none
}

func newNetWatcher(first netState) *netWatcher {
	return &netWatcher{last: first, route: first.route}
}

// step takes the next reading s; inUse is the current ICE pair's local IP
// ("" when none). It reports whether anything changed, and the change to
// report ("" when none).
func (w *netWatcher) step(s netState, inUse string) (changed bool, report string) {
	changed = !s.equal(w.last)
	var why []string
	switch {
	case s.route == (route{}):
	case w.route == (route{}):
		why = append(why, "default route appeared: "+s.route.String())
	case s.route != w.route:
		why = append(why, fmt.Sprintf("default route moved: %s -> %s", w.route, s.route))
	}
	if ifc, ok := w.last.addrs[inUse]; ok && inUse != "" {
		if _, still := s.addrs[inUse]; !still {
			why = append(why, fmt.Sprintf("address %s (in use) left %s", inUse, ifc))
		}
	}
	if s.route != (route{}) {
		w.route = s.route
	}
	w.last = s
	return changed, strings.Join(why, "; ")
}

// pollNetwork reads src every interval until ctx ends: on every
// difference it calls refresh with the new reading, and on a change to
// report, report.
func pollNetwork(ctx context.Context, src netSource, interval time.Duration, inUse func() string, refresh func(netState), report func(string)) {
	first, err := src.read()
	for err != nil {
		// Keep trying: a machine without readable interfaces now may
		// have them later.
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		first, err = src.read()
	}
	w := newNetWatcher(first)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s, err := src.read()
		if err != nil {
			continue
		}
		changed, why := w.step(s, inUse())
		if changed {
			refresh(s)
		}
		if why != "" {
			report(why)
		}
	}
}

// osNetwork reads the operating system's network: the interfaces and
// their addresses from the standard library, the default route from
// /proc/net/route (Linux; elsewhere there is no route to watch, only
// addresses).
type osNetwork struct{}

func (osNetwork) read() (netState, error) {
	s := netState{addrs: map[string]string{}, up: map[string]bool{}}
	ifs, err := net.Interfaces()
	if err != nil {
		return s, fmt.Errorf("viewerclient: interfaces: %w", err)
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagRunning != 0 {
			s.up[ifc.Name] = true
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue // the interface went away meanwhile
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip := ipn.IP.To4(); ip != nil && !ip.IsLinkLocalUnicast() {
				s.addrs[ip.String()] = ifc.Name
			}
		}
	}
	f, err := os.Open("/proc/net/route")
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("viewerclient: routes: %w", err)
	}
	defer f.Close()
	s.route, err = defaultRoute(f)
	return s, err
}

// defaultRoute reads Linux's /proc/net/route and returns the default IPv4
// route with the lowest metric (the one the kernel uses).
func defaultRoute(r io.Reader) (route, error) {
	const rtfUp = 0x1
	var best route
	bestMetric := -1
	sc := bufio.NewScanner(r)
	for first := true; sc.Scan(); first = false {
		f := strings.Fields(sc.Text())
		if first || len(f) < 8 {
			continue // the header, or a short line
		}
		iface, dst, gw, mask := f[0], f[1], f[2], f[7]
		flags, err1 := strconv.ParseUint(f[3], 16, 32)
		metric, err2 := strconv.Atoi(f[6])
		if err1 != nil || err2 != nil || dst != "00000000" || mask != "00000000" || flags&rtfUp == 0 {
			continue
		}
		if bestMetric >= 0 && metric >= bestMetric {
			continue
		}
		best, bestMetric = route{iface: iface, gw: procIP(gw)}, metric
	}
	if err := sc.Err(); err != nil {
		return route{}, fmt.Errorf("viewerclient: routes: %w", err)
	}
	return best, nil
}

// procIP decodes an address of /proc/net/route: the kernel prints the
// network-order address as a native-endian u32 in hex ("010011AC" is
// 172.17.0.1 on a little-endian machine). "" for 0.0.0.0 (no gateway).
func procIP(h string) string {
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || v == 0 {
		return ""
	}
	var ip [4]byte
	binary.NativeEndian.PutUint32(ip[:], uint32(v))
	return net.IP(ip[:]).String()
}

// describe lists a state for logs: "wifi 10.0.1.2, lte 10.0.2.2; default via ...".
func (s netState) describe() string {
	var parts []string
	for _, ip := range slices.Sorted(maps.Keys(s.addrs)) {
		parts = append(parts, s.addrs[ip]+" "+ip)
	}
	r := "no default route"
	if s.route != (route{}) {
		r = "default " + s.route.String()
	}
	return strings.Join(parts, ", ") + "; " + r
}
