package redistest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A redis-server whose port another took exits: launch says so (Start then
// picks a new port), and the one that holds the port is not taken for it.
func TestLaunchOnATakenPort(t *testing.T) {
	a := Start(t)
	b := &Server{tb: t, bin: Binary(t), dir: t.TempDir(), port: a.Port()}
	t.Cleanup(b.Stop)
	err := b.launch()
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("launch on %s's port = %v, want errPortTaken", a.Addr(), err)
	}
	a.mu.Lock()
	pid := a.cmd.Process.Pid
	a.mu.Unlock()
	if got, err := processID(a.Addr()); err != nil || got != pid {
		t.Fatalf("processID(%s) = %d, %v; want %d", a.Addr(), got, err, pid)
	}
	err = waitReady(a.Addr(), pid+1, 100*time.Millisecond, make(chan struct{}))
	if err == nil || !strings.Contains(err.Error(), "another redis-server") {
		t.Fatalf("waitReady for another pid = %v, want it refused: another redis-server answers", err)
	}
}

// Restart keeps the port; Stop is safe twice.
func TestRestart(t *testing.T) {
	s := Start(t)
	port := s.Port()
	s.Restart()
	if s.Port() != port {
		t.Fatalf("port after Restart = %d, want %d", s.Port(), port)
	}
	if _, err := processID(s.Addr()); err != nil {
		t.Fatalf("after Restart: %v", err)
	}
	s.Stop()
	s.Stop()
}
