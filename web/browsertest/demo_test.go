//go:build browser

package browsertest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// demoRuns is how many times TestDemoPage loads the page to time it.
const demoRuns = 10

// TestDemoPage loads the demo page of `server -dev` from its web port
// demoRuns times and times each load to the first decoded frame (from the
// page's navigation start: the figure of docs/BENCHMARKS.md), then takes a
// screenshot of it playing: to $BROWSERTEST_SCREENSHOT when set (the one
// committed as docs/screenshot-demo.png), else into the test's temp dir.
func TestDemoPage(t *testing.T) {
	needBrowser(t)
	box := newBox(t)
	startDevServer(t, box, boxIP+":8081", boxIP, boxIP)
	d := startDriver(t, box)
	var times, joined, connected []float64
	for i := range demoRuns {
		page := fmt.Sprintf("demo%d", i)
		d.call("open", map[string]any{"page": page, "url": webURL + "/"})
		// Each wait scans the page's events from the start: the first frame
		// may be reported before the service's CONNECTED arrives.
		first := d.wait(page, new(int), 20*time.Second, "the session's first state", func(e pageEvent) bool { return e.kind() == "state" })
		conn := d.wait(page, new(int), 20*time.Second, "CONNECTED", func(e pageEvent) bool { return e.kind() == "state" && e.str("state") == "CONNECTED" })
		ff := d.wait(page, new(int), 20*time.Second, "the demo's first decoded frame", func(e pageEvent) bool { return e.kind() == "firstframe" })
		times = append(times, ff.num("sincePageLoadMs"))
		joined = append(joined, first.num("t"))
		connected = append(connected, conn.num("t"))
		if i < demoRuns-1 {
			d.call("close", map[string]any{"page": page}) // pagehide: the library leaves
		}
	}
	last := fmt.Sprintf("demo%d", demoRuns-1)
	from := 0
	d.wait(last, &from, 20*time.Second, "four seconds of video on the last load", func(e pageEvent) bool {
		return e.kind() == "media" && e.num("framesDecoded") >= 60
	})
	shot := os.Getenv("BROWSERTEST_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "demo.png")
	} else if !filepath.IsAbs(shot) {
		shot = filepath.Join(webDir, "..", shot)
	}
	d.call("screenshot", map[string]any{"page": last, "path": shot})
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot %s: %v (want a PNG of the page)", shot, err)
	}
	sorted := slices.Clone(times)
	slices.Sort(sorted)
	p50 := median(times)
	runs := make([]string, len(times))
	for i, v := range times {
		runs[i] = fmt.Sprintf("%.0f/%.0f", connected[i], v)
	}
	t.Logf("demo page load -> first decoded frame: p50 %.0f ms, min %.0f ms, max %.0f ms over %d loads (ms, CONNECTED/first frame: %s); p50 of the steps from page load: session minted and watched %.0f ms, CONNECTED %.0f ms; screenshot %s",
		p50, sorted[0], sorted[len(sorted)-1], demoRuns, strings.Join(runs, " "), median(joined), median(connected), shot)
	if p50 > 3000 {
		t.Errorf("p50 %.0f ms from page load to the first decoded frame; want well under 3 s on loopback", p50)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
