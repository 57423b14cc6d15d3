package sessionmgr

import (
	"fmt"
	"slices"
	"testing"
)

// TestAppSeq drives the at-most-once record with arrivals in order, out of
// order, repeated and too far ahead.
func TestAppSeq(t *testing.T) {
	tests := []struct {
		name      string
		give      []uint64
		want      []appSeqVerdict // one per arrival
		wantAcked uint64
		wantAbove []uint64
	}{
		{"in order", []uint64{1, 2, 3}, []appSeqVerdict{appSeqNew, appSeqNew, appSeqNew}, 3, nil},
		{"repeat", []uint64{1, 2, 2, 1}, []appSeqVerdict{appSeqNew, appSeqNew, appSeqRepeat, appSeqRepeat}, 2, nil},
		{"out of order", []uint64{2, 4, 1}, []appSeqVerdict{appSeqNew, appSeqNew, appSeqNew}, 2, []uint64{4}},
		{"gap filled", []uint64{3, 2, 1}, []appSeqVerdict{appSeqNew, appSeqNew, appSeqNew}, 3, nil},
		{"repeat above", []uint64{5, 5, 3}, []appSeqVerdict{appSeqNew, appSeqRepeat, appSeqNew}, 0, []uint64{3, 5}},
		{"window edge", []uint64{maxAppSeqAhead, maxAppSeqAhead + 1}, []appSeqVerdict{appSeqNew, appSeqTooFar}, 0, []uint64{maxAppSeqAhead}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Session
			for i, n := range tt.give {
				got := checkAppSeq(&s, n)
				if got != tt.want[i] {
					t.Errorf("arrival %d: checkAppSeq(%d) = %v, want %v", i, n, got, tt.want[i])
				}
				if got == appSeqNew {
					markAppSeq(&s, n)
				}
			}
			if s.AckedAppSeq != tt.wantAcked || !slices.Equal(s.AppSeqsAbove, tt.wantAbove) {
				t.Errorf("after %v: acked %d above %v, want %d %v", tt.give, s.AckedAppSeq, s.AppSeqsAbove, tt.wantAcked, tt.wantAbove)
			}
		})
	}
}

// TestNormalizeAppSeqs: a takeover read a higher acknowledgement from the
// timeline than the record had.
func TestNormalizeAppSeqs(t *testing.T) {
	s := Session{AckedAppSeq: 6, AppSeqsAbove: []uint64{4, 5, 7, 9}}
	normalizeAppSeqs(&s)
	if s.AckedAppSeq != 7 || fmt.Sprint(s.AppSeqsAbove) != "[9]" {
		t.Errorf("normalizeAppSeqs = acked %d above %v, want 7 [9]", s.AckedAppSeq, s.AppSeqsAbove)
	}
}
