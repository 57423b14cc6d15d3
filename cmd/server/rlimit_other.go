//go:build !linux

package main

import "log/slog"

// raiseFileLimit does nothing outside Linux (see rlimit.go); Go's runtime
// raises the soft limit on other Unix systems at start.
func raiseFileLimit(*slog.Logger) {}
