package sessionmgr

import (
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
	if got := monoAfter(time.Duration(-monoNow())); got == 0 {
		t.Error("monoAfter gave 0, a stopped timer's due")
	}
}
