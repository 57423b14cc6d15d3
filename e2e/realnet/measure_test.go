//go:build realnet

package realnet

import (
	"testing"
	"time"
)

// The measurement itself, on made-up media samples (no namespaces needed):
// a suite that misreads its samples would pass or fail for nothing.

// mkSamples makes 100 ms samples from t0 on: counts[i] is the cumulative
// packet count of sample i on peer connection pcs[i] (pc 1 when pcs is nil).
func mkSamples(t0 time.Time, counts []uint64, pcs []uint32) []line {
	var lines []line
	for i, c := range counts {
		pc := uint32(1)
		if pcs != nil {
			pc = pcs[i]
		}
		lines = append(lines, line{Kind: "media", at: t0.Add(time.Duration(i) * 100 * time.Millisecond), PC: pc, Packets: c})
	}
	return lines
}

// flowing appends n samples that grow by 2 packets each.
func flowing(counts []uint64, n int) []uint64 {
	c := uint64(0)
	if len(counts) > 0 {
		c = counts[len(counts)-1]
	}
	for range n {
		c += 2
		counts = append(counts, c)
	}
	return counts
}

// stalled appends n samples without growth.
func stalled(counts []uint64, n int) []uint64 {
	for range n {
		counts = append(counts, counts[len(counts)-1])
	}
	return counts
}

func TestBackAfter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	change := t0.Add(2 * time.Second) // sample 20
	const rate = 20.0

	tests := []struct {
		name        string
		counts      []uint64
		pcs         []uint32
		wantBack    time.Duration // from the change; -1: not known
		wantStalled bool
	}{{
		name:        "stall then flow",
		counts:      flowing(stalled(flowing(nil, 21), 15), 15),
		wantBack:    1600 * time.Millisecond, // sample 36
		wantStalled: true,
	}, {
		name: "a blip of packets inside the stall does not count",
		// 21 flowing, 10 stalled, 1 growing, 10 stalled, then flowing.
		counts:      flowing(stalled(flowing(stalled(flowing(nil, 21), 10), 1), 10), 15),
		wantBack:    2200 * time.Millisecond, // sample 42
		wantStalled: true,
	}, {
		name:        "flow not yet long enough to be sustained",
		counts:      flowing(stalled(flowing(nil, 21), 15), 5),
		wantBack:    -1,
		wantStalled: true,
	}, {
		name:        "never stopped: the first sample wholly after the change",
		counts:      flowing(nil, 40),
		wantBack:    100 * time.Millisecond,
		wantStalled: false,
	}, {
		name:        "a short outage of two samples",
		counts:      flowing(stalled(flowing(nil, 21), 2), 15),
		wantBack:    300 * time.Millisecond,
		wantStalled: true,
	}, {
		name:        "new peer connection restarts its counters",
		counts:      append(flowing(nil, 21), append(stalled([]uint64{0}, 9), flowing([]uint64{0}, 14)[1:]...)...),
		pcs:         append(repeatPC(1, 21), repeatPC(2, 24)...),
		wantBack:    1100 * time.Millisecond, // sample 31, the new pc's first packets
		wantStalled: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ss := samples(mkSamples(t0, tt.counts, tt.pcs))
			back, stalled, known := backAfter(ss, change, rate)
			if tt.wantBack < 0 {
				if known {
					t.Fatalf("backAfter = %v (known), want not known yet", back.Sub(change))
				}
				return
			}
			if !known {
				t.Fatalf("backAfter: not known, want %v", tt.wantBack)
			}
			if got := back.Sub(change); got != tt.wantBack || stalled != tt.wantStalled {
				t.Errorf("backAfter = %v stalled %v, want %v stalled %v", got, stalled, tt.wantBack, tt.wantStalled)
			}
		})
	}
}

func repeatPC(pc uint32, n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = pc
	}
	return out
}

func TestFalseRecoveries(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	counts := flowing(stalled(flowing(nil, 10), 30), 20) // flowing again from sample 40
	lines := mkSamples(t0, counts, nil)
	ss := samples(lines)
	early := line{Kind: "event", Type: "RECOVERED", at: t0.Add(2 * time.Second)} // black for 2 s after it
	good := line{Kind: "event", Type: "RECOVERED", at: t0.Add(4100 * time.Millisecond)}
	bad, known := falseRecoveries(append(lines, early, good), ss, t0, 20)
	if !known {
		t.Fatal("falseRecoveries: not known, want judged")
	}
	if len(bad) != 1 || !bad[0].at.Equal(early.at) {
		t.Errorf("falseRecoveries = %v, want only the RECOVERED at +2s (over black video)", bad)
	}
	late := line{Kind: "event", Type: "RECOVERED", at: t0.Add(5500 * time.Millisecond)}
	if _, known := falseRecoveries(append(lines, late), ss, t0, 20); known {
		t.Error("a RECOVERED whose next second has no samples yet was judged")
	}
}
