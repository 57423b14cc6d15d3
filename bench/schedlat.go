package bench

import (
	"math"
	"runtime/metrics"
	"time"
)

// Runtime histograms that tell a slow service from a starved process:
// how long runnable goroutines waited for a CPU, and how long the world
// was stopped for the garbage collector.
const (
	metricSchedLatency = "/sched/latencies:seconds"
	metricGCPauses     = "/sched/pauses/total/gc:seconds"
)

// runtimeHists is a snapshot of the runtime's latency histograms.
type runtimeHists struct {
	sched, gc *metrics.Float64Histogram
}

func readRuntimeHists() runtimeHists {
	s := []metrics.Sample{{Name: metricSchedLatency}, {Name: metricGCPauses}}
	metrics.Read(s)
	h := func(v metrics.Value) *metrics.Float64Histogram {
		if v.Kind() != metrics.KindFloat64Histogram {
			return nil
		}
		return v.Float64Histogram()
	}
	return runtimeHists{sched: h(s[0].Value), gc: h(s[1].Value)}
}

// HistQuantiles are quantiles of a runtime histogram over a run (upper
// bucket bounds, so a little pessimistic).
type HistQuantiles struct {
	N             uint64
	P50, P99, Max time.Duration
}

// since returns the quantiles of what h recorded after old.
func since(h, old *metrics.Float64Histogram) HistQuantiles {
	if h == nil || old == nil || len(h.Counts) != len(old.Counts) {
		return HistQuantiles{}
	}
	counts := make([]uint64, len(h.Counts))
	var n uint64
	for i := range counts {
		counts[i] = h.Counts[i] - old.Counts[i]
		n += counts[i]
	}
	q := func(f float64) time.Duration {
		if n == 0 {
			return 0
		}
		rank := uint64(math.Ceil(f * float64(n)))
		var seen uint64
		for i, c := range counts {
			seen += c
			if seen >= max(rank, 1) {
				up := h.Buckets[i+1]
				if math.IsInf(up, 1) {
					up = h.Buckets[i]
				}
				return time.Duration(up * float64(time.Second))
			}
		}
		return 0
	}
	return HistQuantiles{N: n, P50: q(0.5), P99: q(0.99), Max: q(1)}
}
