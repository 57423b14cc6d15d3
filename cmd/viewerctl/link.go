package main

import (
	"context"
	"log/slog"
	"time"
)

// linkLogs turns the thin client's log records about its stream to the
// service into link items for the watcher: the stream broke or a dial
// failed (down, with the error), or a stream was joined again (up). The
// thin client says this only in its logs, so the record messages below are
// what viewerctl relies on; TestWatchServerGoesAway checks them.
type linkLogs struct {
	push func(item)
}

// The thin client's log messages that linkLogs reads.
const (
	logStreamEnded = "stream ended"
	logDialFailed  = "dial failed"
	logJoined      = "joined"
	logAttached    = "attached"
)

func (h linkLogs) Enabled(context.Context, slog.Level) bool { return true }

func (h linkLogs) Handle(_ context.Context, r slog.Record) error {
	switch r.Message {
	case logStreamEnded, logDialFailed:
		why := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "error" {
				why = a.Value.String()
				return false
			}
			return true
		})
		h.push(item{at: time.Now(), link: &linkChange{down: true, why: why}})
	case logJoined, logAttached:
		h.push(item{at: time.Now(), link: &linkChange{}})
	}
	return nil
}

func (h linkLogs) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h linkLogs) WithGroup(string) slog.Handler      { return h }

// linkChange is the stream to the service going down (why: the error) or
// coming back.
type linkChange struct {
	down bool
	why  string
}
