package sessionmgr

import "time"

// WithWatchCheck sets how long Watch waits for events before it checks the
// session again (default watchCheck).
func WithWatchCheck(d time.Duration) Option { return func(m *Manager) { m.watchCheck = d } }
