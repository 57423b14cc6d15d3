package kvsemu

import (
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs adapts slog to pion's LoggerFactory. Pion's info level is chatty
// and goes to Debug; trace is dropped.
type pionLogs struct{ log *slog.Logger }

var _ logging.LoggerFactory = pionLogs{}

func (f pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) emit(level slog.Level, msg string) {
	switch level {
	case slog.LevelError:
		l.log.Error(msg)
	case slog.LevelWarn:
		l.log.Warn(msg)
	default:
		l.log.Debug(msg)
	}
}

func (pionLogger) Trace(string)                {}
func (pionLogger) Tracef(string, ...any)       {}
func (l pionLogger) Debug(m string)            { l.emit(slog.LevelDebug, m) }
func (l pionLogger) Debugf(f string, a ...any) { l.emit(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l pionLogger) Info(m string)             { l.emit(slog.LevelDebug, m) }
func (l pionLogger) Infof(f string, a ...any)  { l.emit(slog.LevelDebug, fmt.Sprintf(f, a...)) }
func (l pionLogger) Warn(m string)             { l.emit(slog.LevelWarn, m) }
func (l pionLogger) Warnf(f string, a ...any)  { l.emit(slog.LevelWarn, fmt.Sprintf(f, a...)) }
func (l pionLogger) Error(m string)            { l.emit(slog.LevelError, m) }
func (l pionLogger) Errorf(f string, a ...any) { l.emit(slog.LevelError, fmt.Sprintf(f, a...)) }
