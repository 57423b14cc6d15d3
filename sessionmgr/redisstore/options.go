package redisstore

import "time"

// The defaults of the options.
const (
	DefaultTimeout           = time.Second
	DefaultRetention         = time.Hour
	DefaultIdempotencyWindow = 10 * time.Minute
	DefaultWaitSlice         = time.Second
	DefaultLiveGrace         = time.Minute
)

// Option configures a Store.
type Option func(*Store)

// WithTimeout bounds each Store call, and each wait slice of Events past
// the slice itself. Default DefaultTimeout.
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

// WithWaitSlice sets how long Events with wait blocks in one XREAD before
// it checks its ctx and the session again. Default DefaultWaitSlice.
func WithWaitSlice(d time.Duration) Option {
	return func(s *Store) { s.slice = d }
}

// WithLiveGrace sets how long past its Expires a live session keeps
// counting against its channel's limit; after that its owner is presumed
// gone. Default DefaultLiveGrace.
func WithLiveGrace(d time.Duration) Option {
	return func(s *Store) { s.grace = d }
}
