//go:build realnet

package realnet

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// result is one measured recovery (or fade) of one run.
type result struct {
	mode     string // camera mode
	scenario string // e.g. "a sockets open"
	phase    string // "first", "learned", "fade"
	toVideo  time.Duration
	flowed   bool          // video flowed again (toVideo is meaningful)
	limit    time.Duration // what Acceptance 1 allows
	steps    []string      // RECOVERY_STARTED steps, in order
	step     string        // RECOVERED's step
	outage   time.Duration // RECOVERED's outage (the service's own count)
	falses   int           // RECOVERED without media within 1 s
	pass     bool
}

var (
	resultsMu sync.Mutex
	results   []result
)

func record(r result) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	results = append(results, r)
}

// printFigure prints figure (e): every result, then the p50s.
func printFigure(w io.Writer) {
	resultsMu.Lock()
	defer resultsMu.Unlock()
	if len(results) == 0 {
		return
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "\nfigure (e): link change -> video flowing again (viewer's own 100 ms media samples); load average %s\n",
		strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(w, "%-16s %-22s %-8s %9s %6s  %-52s %-20s %9s %6s  %s\n",
		"camera", "scenario", "phase", "to video", "limit", "ladder (RECOVERY_STARTED steps)", "RECOVERED step", "outage", "false", "verdict")
	var first, learned, all []time.Duration
	for _, r := range results {
		to := "never"
		if r.flowed {
			to = fmt.Sprintf("%.2fs", r.toVideo.Seconds())
			switch {
			case r.phase == "first" && !strings.Contains(r.scenario, "watch off"):
				first = append(first, r.toVideo)
				all = append(all, r.toVideo)
			case r.phase == "learned":
				learned = append(learned, r.toVideo)
				all = append(all, r.toVideo)
			}
		}
		steps := strings.Join(r.steps, ">")
		if steps == "" {
			steps = "-"
		}
		step, outage := r.step, "-"
		if step == "" {
			step = "-"
		}
		if r.outage > 0 {
			outage = fmt.Sprintf("%.2fs", r.outage.Seconds())
		}
		verdict := "ok"
		if !r.pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "%-16s %-22s %-8s %9s %5.0fs  %-52s %-20s %9s %6d  %s\n",
			r.mode, r.scenario, r.phase, to, r.limit.Seconds(), steps, step, outage, r.falses, verdict)
	}
	fmt.Fprintf(w, "p50 link change -> video: first recoveries %s (n=%d), learned %s (n=%d), all (a)+(b) with watching %s (n=%d)\n",
		p50(first), len(first), p50(learned), len(learned), p50(all), len(all))
}

func p50(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	var m time.Duration
	if n := len(s); n%2 == 1 {
		m = s[n/2]
	} else {
		m = (s[n/2-1] + s[n/2]) / 2
	}
	return fmt.Sprintf("%.2fs", m.Seconds())
}
