package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// readinessCheck is one dependency /readyz depends on: the server cannot do
// its job while check fails (Redis unreachable, no AWS credentials).
type readinessCheck struct {
	name string
	// what says, for the log and /readyz, what fails while the check does.
	what  string
	check func(context.Context) error
}

// readinessTimeout bounds one /readyz probe of every dependency; a frozen
// Redis answers nothing, so the probe must not wait for it.
const readinessTimeout = 800 * time.Millisecond

// probe runs every check concurrently, bounded by timeout, and returns one
// line per failing check (empty when all pass).
func probe(ctx context.Context, checks []readinessCheck, timeout time.Duration) []string {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fails := make([]string, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			if err := c.check(ctx); err != nil {
				fails[i] = fmt.Sprintf("%s: %v (%s)", c.name, err, c.what)
			}
		})
	}
	wg.Wait()
	var out []string
	for _, f := range fails {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// startupChecks logs one line per dependency: what works, or what will fail
// and why. The server starts either way (Redis may come up later); /readyz
// keeps it out of rotation meanwhile.
func startupChecks(ctx context.Context, checks []readinessCheck, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for _, c := range checks {
		if err := c.check(ctx); err != nil {
			log.Error("startup check failed: "+c.name, "check", c.name, "error", err.Error(), "impact", c.what)
			continue
		}
		log.Info("startup check ok: "+c.name, "check", c.name)
	}
}

// readyHandler answers /readyz: 503 with the reasons while shutting down or
// while a dependency fails, else 200 "ready".
func readyHandler(ready *atomic.Bool, checks []readinessCheck) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		if fails := probe(r.Context(), checks, readinessTimeout); len(fails) > 0 {
			http.Error(w, "not ready:\n"+strings.Join(fails, "\n"), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	}
}
