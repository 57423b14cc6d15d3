package leaselog_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acme/viewersession/clientid/internal/leaselog"
)

var t0 = time.Unix(1_700_000_000, 0)

// at is t0 plus n milliseconds.
func at(n float64) time.Time { return t0.Add(time.Duration(n * float64(time.Millisecond))) }

const (
	ttl = 300 * time.Millisecond
	cd  = 500 * time.Millisecond
)

// lease is a lease of id "x" on channel "c": acquire called at valid,
// returned at start, released at end (-1: never).
func lease(name string, valid, start, end float64) leaselog.Lease {
	l := leaselog.Lease{Name: name, Channel: "c", ID: "x", Start: at(start), Valid: at(valid), TTL: ttl, Cooldown: cd}
	if end >= 0 {
		l.End = at(end)
	}
	return l
}

func TestCheck(t *testing.T) {
	renewed := lease("a", 0, 1, -1)
	renewed.Valid = at(200)
	otherChannel := lease("b", 10, 11, 20)
	otherChannel.Channel = "d"
	otherID := lease("b", 10, 11, 20)
	otherID.ID = "y"
	longCooldown := lease("a", 0, 1, -1)
	longCooldown.Cooldown = 2 * time.Second // free at 2300
	tests := []struct {
		name                    string
		give                    []leaselog.Lease
		wantOverlaps, wantEarly int
		wantReuses, wantCrash   int
	}{
		{name: "reuse exactly at cooldown end", give: []leaselog.Lease{lease("a", 0, 1, 100), lease("b", 599, 600, 700)}, wantReuses: 1},
		{name: "reuse 1ms early", give: []leaselog.Lease{lease("a", 0, 1, 100), lease("b", 598, 599, 700)}, wantEarly: 1, wantReuses: 1},
		{name: "overlap", give: []leaselog.Lease{lease("a", 0, 1, 100), lease("b", 49, 50, 150)}, wantOverlaps: 1, wantEarly: 1, wantReuses: 1},
		{name: "overlap at the release instant", give: []leaselog.Lease{lease("a", 0, 1, 100), lease("b", 99, 100, 150)}, wantOverlaps: 1, wantEarly: 1, wantReuses: 1},
		{name: "crash then reuse after ttl and cooldown", give: []leaselog.Lease{lease("a", 0, 1, -1), lease("b", 799, 800, 900)}, wantReuses: 1, wantCrash: 1},
		{name: "crash then early reuse", give: []leaselog.Lease{lease("a", 0, 1, -1), lease("b", 798, 799, 900)}, wantEarly: 1, wantReuses: 1, wantCrash: 1},
		{name: "renew moves the crash bound", give: []leaselog.Lease{renewed, lease("b", 899, 900, 950)}, wantEarly: 1, wantReuses: 1, wantCrash: 1},
		{name: "release after expiry counts from expiry", give: []leaselog.Lease{lease("a", 0, 1, 1000), lease("b", 799, 800, 900)}, wantReuses: 1},
		{name: "other channel is independent", give: []leaselog.Lease{lease("a", 0, 1, 100), otherChannel}},
		{name: "other id is independent", give: []leaselog.Lease{lease("a", 0, 1, 100), otherID}},
		{
			// c is fine after b but not after a: the checker must remember a.
			name:         "bound from an earlier lease than the last",
			give:         []leaselog.Lease{longCooldown, lease("b", 699, 700, 710), lease("c", 1299, 1300, 1400)},
			wantOverlaps: 0, wantEarly: 2, wantReuses: 2, wantCrash: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := leaselog.Check(tt.give)
			if len(r.Overlaps) != tt.wantOverlaps || len(r.EarlyReuses) != tt.wantEarly || r.Reuses != tt.wantReuses || r.CrashReuses != tt.wantCrash {
				t.Errorf("Check = %v; want %d overlaps, %d early reuses, %d reuses (%d after a crash)",
					r, tt.wantOverlaps, tt.wantEarly, tt.wantReuses, tt.wantCrash)
			}
			if err := r.Err(); (err != nil) != (tt.wantOverlaps+tt.wantEarly > 0) || (err != nil && !errors.Is(err, leaselog.ErrViolations)) {
				t.Errorf("Check(...).Err() = %v; want an ErrViolations exactly when there are violations", err)
			}
		})
	}
}

func TestWriterRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w1.log")
	w, err := leaselog.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	steps := []error{
		w.Acquired(1, "c", "x", at(0), at(2), ttl, cd),
		w.Acquired(2, "c", "y", at(1), at(3), ttl, cd),
		w.Renewed(1, at(100)),
		w.Renewed(1, at(200)),
		w.Releasing(1, at(250)),
		w.Renewed(2, at(50)),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("write step %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// A write cut short by SIGKILL leaves a last line without a newline.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"k":"release","l":2,"t":`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	got, err := leaselog.Read(path)
	if err != nil {
		t.Fatalf("Read = %v", err)
	}
	want := []leaselog.Lease{
		{Name: "w1.log#1", Channel: "c", ID: "x", Start: at(2), Valid: at(200), End: at(250), TTL: ttl, Cooldown: cd},
		{Name: "w1.log#2", Channel: "c", ID: "y", Start: at(3), Valid: at(50), TTL: ttl, Cooldown: cd},
	}
	if len(got) != len(want) {
		t.Fatalf("Read = %d leases %+v; want %d", len(got), got, len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Channel != w.Channel || g.ID != w.ID || !g.Start.Equal(w.Start) || !g.Valid.Equal(w.Valid) ||
			!g.End.Equal(w.End) || g.TTL != w.TTL || g.Cooldown != w.Cooldown {
			t.Errorf("Read lease %d = %+v; want %+v", i, g, w)
		}
	}
}

func TestReadRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.log")
	if err := os.WriteFile(path, []byte("not json\n{\"k\":\"acquire\",\"l\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := leaselog.Read(path); err == nil {
		t.Errorf("Read(a log with a bad middle line) = nil error; want an error")
	}
}
