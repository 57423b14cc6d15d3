//go:build realnet

package realnet

import (
	"fmt"
	"os"
	"time"
)

// debugSamples prints viewerctl's raw lines from 0.5 s before to 3 s after
// a change when REALNET_DEBUG is set: what the measurement read.
func debugSamples(lines []line, t0 time.Time) {
	if os.Getenv("REALNET_DEBUG") == "" {
		return
	}
	for _, l := range lines {
		if l.at.After(t0.Add(-500*time.Millisecond)) && l.at.Before(t0.Add(3*time.Second)) {
			fmt.Printf("REALNET_DEBUG %+.3fs %s\n", l.at.Sub(t0).Seconds(), l.raw)
		}
	}
}
