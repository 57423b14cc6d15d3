//go:build linux

package main

import (
	"fmt"
	"log/slog"
	"syscall"
)

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and logs
// both. Every joined session holds a file descriptor for its KVS WebSocket
// (and its app's share of a connection), so the soft limit, not memory,
// would cap the sessions of a replica. Go's runtime already raises the soft
// limit at start (to hard - 1, go.dev/issue/46279); doing it here makes the
// limit explicit in the log. A failure is logged and the server runs on.
func raiseFileLimit(log *slog.Logger) {
	old, cur, hard, err := setFileLimitToHard()
	if err != nil {
		log.Warn("could not raise the open files limit (RLIMIT_NOFILE)", "soft", old, "hard", hard, "error", err)
		return
	}
	log.Info("open files limit (RLIMIT_NOFILE)", "old_soft", old, "new_soft", cur, "hard", hard)
}

// setFileLimitToHard sets the soft RLIMIT_NOFILE to the hard one, and
// returns the soft limit before and after, and the hard limit.
func setFileLimitToHard() (old, cur, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	old, hard = lim.Cur, lim.Max
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return old, old, hard, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return old, lim.Cur, hard, nil
}
