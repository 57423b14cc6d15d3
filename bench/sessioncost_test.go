package bench

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/acme/viewersession/internal/redistest"
)

// TestSessionCost runs figure (i) end to end at tiny sizes (40 creates a
// run, 10 full sessions) on the real server binary, in memory and on a
// private Redis: both modes must yield a create rate, latencies, CPU per
// full session and, on Redis, commands per create and per session; no
// Redis call may fail. VS_SERVER_BIN runs it against another build of the
// server.
func TestSessionCost(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	bin := serverBin(ctx, t)
	url := redistest.Start(t).URL() // private: its only client is the server
	res, err := SessionCost(ctx, SessionCostConfig{
		ServerBin: bin, RedisURL: url, Creates: 40, Sessions: 10, Runs: 2,
		Idle: 500 * time.Millisecond, Log: testWriter{t},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []SessionCostMode{res.Memory, res.Redis} {
		if m.CreatePerSecond <= 0 || len(m.Create) != 2*40 || m.Create.Q(0) <= 0 {
			t.Errorf("%s: %.1f creates/s over %d timed creates (smallest %v); want a rate over 80, all positive", m.Mode, m.CreatePerSecond, len(m.Create), m.Create.Q(0))
		}
		if m.Sessions != 10 || len(m.Session) != 10 || m.Session.Q(0) <= 0 {
			t.Errorf("%s: %d full sessions, %d timed (smallest %v); want 10, all positive", m.Mode, m.Sessions, len(m.Session), m.Session.Q(0))
		}
		if m.CPUPerSession() <= 0 {
			t.Errorf("%s: server CPU per full session %v over %v; want it read (the process was up)", m.Mode, m.CPUPerSession(), m.SessionWall)
		}
		if m.StoreErrors > 0 {
			t.Errorf("%s: the server counted %v failed Redis commands or pool timeouts", m.Mode, m.StoreErrors)
		}
	}
	if r := res.Redis; r.CreateCommands <= 0 || r.CreateProcessed <= 0 || r.SessionCommands <= 0 || r.SessionProcessed <= 0 || len(r.ByCommand) == 0 {
		t.Errorf("Redis commands: %d / %d over the creates, %d / %d over the full sessions, by name %v; want all counted",
			r.CreateCommands, r.CreateProcessed, r.SessionCommands, r.SessionProcessed, r.ByCommand)
	}
	if m := res.Memory; m.CreateCommands != 0 || m.SessionCommands != 0 {
		t.Errorf("memory mode counted Redis commands (%d, %d): want none (it has no Redis)", m.CreateCommands, m.SessionCommands)
	}
	if res.LoadStart == "" || res.LoadEnd == "" {
		t.Errorf("load average at start %q, end %q: want both", res.LoadStart, res.LoadEnd)
	}
}

// TestCreateFloorPatchApplies keeps the instrument of figure (i)'s floor
// usable: scripts/floor-server.sh applies testdata/create-floor.patch to
// HEAD, so the patch must apply to this tree's redisstore.
func TestCreateFloorPatchApplies(t *testing.T) {
	if err := exec.Command("git", "-C", "..", "rev-parse", "--git-dir").Run(); err != nil {
		t.Skipf("not a git checkout (%v): scripts/floor-server.sh needs one", err)
	}
	out, err := exec.Command("git", "-C", "..", "apply", "--check", "bench/testdata/create-floor.patch").CombinedOutput()
	if err != nil {
		t.Fatalf("git apply --check bench/testdata/create-floor.patch: %v\n%s", err, out)
	}
}
