package sessionmgr

import "time"

// WithWatchCheck sets how long Watch waits for events before it checks the
// session again (default watchCheck).
func WithWatchCheck(d time.Duration) Option { return func(m *Manager) { m.watchCheck = d } }

// LapseHeartbeat records a lapse of the replica's heartbeat, as the
// heartbeat loop does after a gap of half the TTL.
func LapseHeartbeat(m *Manager) { m.lapses.Add(1) }
