package sessionmgr

import (
	"slices"
	"testing"
	"time"
	"unsafe"
)

// TestActorSize pins the actor within the runtime's 1,408-byte size
// class: every live session holds one, and the class above is 1,536 (at
// 1,568 bytes, with its deadlines as time.Time, it took 1,792).
func TestActorSize(t *testing.T) {
	if got := unsafe.Sizeof(actor{}); got > 1408 {
		t.Errorf("actor is %d bytes, want at most 1408", got)
	}
}

func TestTimer(t *testing.T) {
	var tm timer
	if tm.running() {
		t.Fatal("a zero timer runs")
	}
	tm.start(time.Hour)
	if !tm.running() || tm.due <= monoNow() {
		t.Fatalf("started for an hour: running %v, due %d, now %d", tm.running(), tm.due, monoNow())
	}
	tm.stop()
	if tm.running() {
		t.Fatal("a stopped timer runs")
	}
	if got := runningDue(0); got == 0 {
		t.Error("runningDue(0) = 0, a stopped timer's due")
	}
	if got := runningDue(-5); got != -5 {
		t.Errorf("runningDue(-5) = %d, want -5 (a synctest bubble's clock is negative)", got)
	}
}

func TestStreamSet(t *testing.T) {
	var s streamSet
	if !s.add("a", "") || !s.add("b", "r1") || !s.add("c", "r1") || !s.add("d", "r2") {
		t.Fatal("add refused a new stream")
	}
	if !s.add("a", "r3") || s.len() != 4 {
		t.Fatalf("a second add of a: len %d, want 4 (its replica replaced)", s.len())
	}
	if got := s.replicas(); !slices.Equal(got, []string{"r3", "r1", "r2"}) {
		t.Errorf("replicas = %q, want [r3 r1 r2]", got)
	}
	if n := s.dropReplica("r1"); n != 2 || s.len() != 2 {
		t.Errorf("dropReplica(r1) = %d, len %d; want 2, 2", n, s.len())
	}
	if !s.remove("a") || s.remove("a") {
		t.Error("remove(a): want true, then false (not attached)")
	}
	if s.add("a", "") {
		t.Error("add after its detach (overtaken) was taken")
	}
	if s.len() != 1 {
		t.Errorf("len = %d, want 1 (d)", s.len())
	}
}
