//go:build realnet

package realnet

import (
	"fmt"
	"os"
	"time"
)

func debugSamples(lines []line, t0 time.Time) {
	if os.Getenv("REALNET_DEBUG") == "" {
		return
	}
	for _, l := range lines {
		if l.at.After(t0.Add(-500*time.Millisecond)) && l.at.Before(t0.Add(3*time.Second)) {
			fmt.Printf("DEBUG %+.3f %s\n", l.at.Sub(t0).Seconds(), l.raw)
		}
	}
}
