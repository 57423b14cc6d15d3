package main

import (
	"log/slog"
	"runtime/debug"
)

// setGCPercent sets the garbage collector's target to cfg.GCPercent and
// logs it, unless the GOGC variable is set and -gc-percent was not given:
// then the runtime keeps GOGC's. The target decides most of a replica's
// memory beyond what its sessions hold live: after a collection the
// runtime keeps what the heap may grow back to (docs/BENCHMARKS.md (c)).
func setGCPercent(log *slog.Logger, cfg Config, getenv func(string) string) {
	if env := getenv("GOGC"); env != "" && !cfg.gcPercentSet {
		log.Info("garbage collector target from GOGC", "gogc", env)
		return
	}
	old := debug.SetGCPercent(cfg.GCPercent)
	log.Info("garbage collector target", "gc_percent", cfg.GCPercent, "was", old)
}
