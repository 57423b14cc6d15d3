package redisstore

import "time"

// The defaults of the options.
const (
	DefaultTimeout           = time.Second
	DefaultRetention         = time.Hour
	DefaultIdempotencyWindow = 10 * time.Minute
	// DefaultWaitSlice is longer than sessionmgr's check of a watched
	// session (every 5 minutes, which ends the wait and reads the record),
	// so that in the server that check notices an expired record and the
	// slice's read does not come on top: each is a read for every waiting
	// stream (at 1 minute, 10,000 idle streams read 167 times a second
	// more, and the replica's heap held their garbage).
	DefaultWaitSlice = 10 * time.Minute
	DefaultLiveGrace = time.Minute
	// DefaultMaxEnded and DefaultMaxEndedPerChannel bound the ended
	// sessions kept for their retention (WithEndedLimits).
	DefaultMaxEnded           = 100_000
	DefaultMaxEndedPerChannel = 1_000
)

// Option configures a Store.
type Option func(*Store)

// WithTimeout bounds each Store call. Default DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(s *Store) { s.timeout = d }
}

// WithRetention sets how long a terminal session stays readable after its
// first terminal Put. Default DefaultRetention.
func WithRetention(d time.Duration) Option {
	return func(s *Store) { s.retention = d }
}

// WithIdempotencyWindow sets how long after a create a repeat with the
// same (Caller, RequestID) returns the first session. Default
// DefaultIdempotencyWindow.
func WithIdempotencyWindow(d time.Duration) Option {
	return func(s *Store) { s.window = d }
}

// WithWaitSlice sets how long, give or take a fifth, a waiting Events call
// goes without a notification before it reads the stream again, to notice
// a session whose record expired (nothing is published then). Default
// DefaultWaitSlice.
func WithWaitSlice(d time.Duration) Option {
	return func(s *Store) { s.slice = max(d, time.Millisecond) }
}

// WithLinger sets how long the follower stays subscribed to a timeline
// after its last waiting Events call returned. Default DefaultLinger.
func WithLinger(d time.Duration) Option {
	return func(s *Store) { s.linger = max(d, time.Millisecond) }
}

// WithLiveGrace sets how long past its Expires a live session keeps
// counting against its channel's limit; after that its owner is presumed
// gone. Default DefaultLiveGrace.
func WithLiveGrace(d time.Duration) Option {
	return func(s *Store) { s.grace = d }
}

// WithEndedLimits bounds the ended sessions kept (for their retention) in
// all and per channel: past a bound, the oldest ended session (by when it
// ended) goes first. 0 leaves that bound off. Defaults DefaultMaxEnded and
// DefaultMaxEndedPerChannel.
func WithEndedLimits(total, perChannel int) Option {
	return func(s *Store) { s.maxEnded, s.maxEndedPerChannel = total, perChannel }
}
