//go:build linux

package main

import (
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRaiseFileLimit lowers the soft RLIMIT_NOFILE (Go's runtime raised it
// at start), then checks that raiseFileLimit raises it back to the hard
// limit and logs the old and new values.
func TestRaiseFileLimit(t *testing.T) {
	var start syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &start); err != nil {
		t.Fatal(err)
	}
	if start.Max < 512 {
		t.Skipf("hard RLIMIT_NOFILE %d leaves no room to lower the soft one", start.Max)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &start); err != nil {
			t.Errorf("restore RLIMIT_NOFILE: %v", err)
		}
	})
	low := syscall.Rlimit{Cur: 256, Max: start.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	raiseFileLimit(slog.New(slog.NewTextHandler(&out, nil)))

	var got syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &got); err != nil {
		t.Fatal(err)
	}
	if got.Cur != start.Max || got.Max != start.Max {
		t.Errorf("RLIMIT_NOFILE after raiseFileLimit = soft %d hard %d, want soft = hard = %d", got.Cur, got.Max, start.Max)
	}
	for _, want := range []string{"level=INFO", "old_soft=256", "new_soft=" + strconv.FormatUint(start.Max, 10), "hard=" + strconv.FormatUint(start.Max, 10)} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("log = %q, want it to contain %q", out.String(), want)
		}
	}
	if n := strings.Count(out.String(), "\n"); n != 1 {
		t.Errorf("log has %d lines, want 1", n)
	}
}
