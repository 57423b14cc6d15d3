// Package testclock is the wall clock tests inject (internal/assemble's
// Config.Now and the parts' WithClock options): it stands still until the
// test moves it. Timers are not its business: tests run them on
// testing/synctest's fake time.
package testclock

import (
	"sync/atomic"
	"time"
)

// Clock is a wall clock that moves only when told; safe for concurrent
// use.
type Clock struct{ ns atomic.Int64 }

// New returns a clock that reads start.
func New(start time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(start.UnixNano())
	return c
}

// Now is the clock's time, in UTC (no monotonic reading: it is a wall
// clock).
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
