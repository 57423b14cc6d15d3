package memstore

// The defaults of WithEndedLimits.
const (
	DefaultMaxEnded           = 100_000
	DefaultMaxEndedPerChannel = 1_000
)

// WithEndedLimits bounds the ended sessions kept (for their retention) in
// all and per channel: past a bound, the oldest ended session (by when it
// ended) goes first. 0 leaves that bound off. Defaults DefaultMaxEnded and
// DefaultMaxEndedPerChannel.
func WithEndedLimits(total, perChannel int) Option {
	return func(s *Store) { s.maxEnded, s.maxEndedPerChannel = total, perChannel }
}

// endedLocked notes that e has just ended, and removes the oldest ended
// sessions past the bounds.
func (s *Store) endedLocked(e *entry) {
	it := ended{e.s.ID, e.ended}
	s.ending = append(s.ending, it)
	arn := e.s.Channel.ARN
	s.endingByChannel[arn] = append(s.endingByChannel[arn], it)
	s.endedCount++
	s.endedPerChannel[arn]++
	for s.maxEnded > 0 && s.endedCount > s.maxEnded {
		s.ending = s.evictOldestLocked(s.ending)
	}
	for s.maxEndedPerChannel > 0 && s.endedPerChannel[arn] > s.maxEndedPerChannel {
		s.endingByChannel[arn] = s.evictOldestLocked(s.endingByChannel[arn])
	}
}

// evictOldestLocked removes the oldest ended session of q that still
// exists and returns what is left of q.
func (s *Store) evictOldestLocked(q []ended) []ended {
	for len(q) > 0 {
		it := q[0]
		q[0] = ended{}
		q = q[1:]
		if e, ok := s.sessions[it.id]; ok && e.ended.Equal(it.at) {
			s.removeLocked(e)
			return q
		}
	}
	return q
}

// unendLocked forgets that e ended (it is being removed).
func (s *Store) unendLocked(e *entry) {
	if e.ended.IsZero() {
		return
	}
	arn := e.s.Channel.ARN
	s.endedCount--
	if s.endedPerChannel[arn]--; s.endedPerChannel[arn] <= 0 {
		delete(s.endedPerChannel, arn)
		delete(s.endingByChannel, arn)
		return
	}
	// Sessions end and go in the same order in all and per channel, so e
	// is usually at the head of its channel's queue: drop it, and any
	// stale items after it, so that the queue holds what is kept.
	q := s.endingByChannel[arn]
	for len(q) > 0 {
		it := q[0]
		if old, ok := s.sessions[it.id]; ok && old.ended.Equal(it.at) && old != e {
			break
		}
		q[0] = ended{}
		q = q[1:]
	}
	s.endingByChannel[arn] = q
}
