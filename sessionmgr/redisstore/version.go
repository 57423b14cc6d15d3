package redisstore

import "github.com/acme/viewersession/sessionmgr/internal/wire"

// WithWriteVersion sets the wire version of the records and timeline
// events the Store writes: 2 (the default, wire.Version) or 1, what
// replicas before version 2 write and read. A Store reads both either way.
// Write 1 while such replicas still share the Redis, then 2 (see the
// package doc's Records). Any other value is 2.
func WithWriteVersion(v int) Option {
	return func(s *Store) {
		s.version = wire.Version
		if v == 1 {
			s.version = 1
		}
	}
}
