package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Dist is a sorted sample of durations.
type Dist []time.Duration

// NewDist sorts a copy of d.
func NewDist(d []time.Duration) Dist {
	out := slices.Clone(d)
	slices.Sort(out)
	return out
}

// Q returns the q-quantile (0 <= q <= 1) by the nearest-rank method, or 0
// for an empty sample.
func (d Dist) Q(q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(d)))) - 1
	return d[min(max(i, 0), len(d)-1)]
}

// P50, P99 and Max are the usual quantiles.
func (d Dist) P50() time.Duration { return d.Q(0.50) }

// P99 is the 0.99 quantile.
func (d Dist) P99() time.Duration { return d.Q(0.99) }

// Max is the largest value.
func (d Dist) Max() time.Duration { return d.Q(1) }

// String is "p50 X, p99 Y, max Z (n=N)".
func (d Dist) String() string {
	return fmt.Sprintf("p50 %s, p99 %s, max %s (n=%d)", ms(d.P50()), ms(d.P99()), ms(d.Max()), len(d))
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
