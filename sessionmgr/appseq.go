package sessionmgr

import (
	"slices"
)

// maxAppSeqAhead bounds how far above the acknowledged sequence an app
// message may be numbered: the handled numbers above it are kept one by
// one (Signal calls may arrive out of order), and no more than this many.
const maxAppSeqAhead = 256

// appSeqVerdict is what the at-most-once check says about an app message.
type appSeqVerdict int

const (
	appSeqNew    appSeqVerdict = iota // not handled yet: handle it
	appSeqRepeat                      // handled before: acknowledge again, do not apply
	appSeqTooFar                      // beyond the window: refuse
)

// checkAppSeq classifies app sequence n against the session's record of
// the app's handled messages. n must not be 0 (unsequenced).
func checkAppSeq(s *Session, n uint64) appSeqVerdict {
	switch {
	case n <= s.AckedAppSeq:
		return appSeqRepeat
	case n-s.AckedAppSeq > maxAppSeqAhead:
		return appSeqTooFar
	}
	if _, found := slices.BinarySearch(s.AppSeqsAbove, n); found {
		return appSeqRepeat
	}
	return appSeqNew
}

// markAppSeq records app sequence n as handled (checkAppSeq said new):
// the acknowledged sequence advances over every contiguous handled number,
// and the rest stay in AppSeqsAbove, sorted.
func markAppSeq(s *Session, n uint64) {
	if n == s.AckedAppSeq+1 {
		s.AckedAppSeq = n
	} else {
		i, _ := slices.BinarySearch(s.AppSeqsAbove, n)
		s.AppSeqsAbove = slices.Insert(s.AppSeqsAbove, i, n)
	}
	i := 0
	for i < len(s.AppSeqsAbove) && s.AppSeqsAbove[i] == s.AckedAppSeq+1 {
		s.AckedAppSeq++
		i++
	}
	if i > 0 {
		s.AppSeqsAbove = slices.Delete(s.AppSeqsAbove, 0, i)
	}
	if len(s.AppSeqsAbove) == 0 {
		s.AppSeqsAbove = nil
	}
}

// normalizeAppSeqs drops the handled numbers at or below the acknowledged
// one and advances it over any that became contiguous (after a takeover
// read a higher acknowledgement from the timeline than the record held).
func normalizeAppSeqs(s *Session) {
	above := s.AppSeqsAbove[:0:0]
	for _, n := range s.AppSeqsAbove {
		if n > s.AckedAppSeq {
			above = append(above, n)
		}
	}
	s.AppSeqsAbove = nil
	for _, n := range above {
		markAppSeq(s, n)
	}
}
