package main

import (
	"bytes"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

// TestGCPercent checks which garbage collector target the server runs
// with: its default of 100 (Go's), GOGC's when only the variable is set, and the
// flag's or VS_GC_PERCENT's over GOGC. Each case reads the runtime's
// setting back.
func TestGCPercent(t *testing.T) {
	start := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(start) })
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantLog string
	}{
		{"default", nil, nil, 100, "gc_percent=100"},
		// The runtime read GOGC at start; 77 stands for its value.
		{"GOGC alone", nil, map[string]string{"GOGC": "77"}, 77, "garbage collector target from GOGC"},
		{"flag over GOGC", []string{"-gc-percent", "75"}, map[string]string{"GOGC": "100"}, 75, "gc_percent=75"},
		{"variable over GOGC", nil, map[string]string{"GOGC": "100", "VS_GC_PERCENT": "200"}, 200, "gc_percent=200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(77)
			cfg, err := LoadConfig(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("LoadConfig: %v", err)
			}
			var out bytes.Buffer
			setGCPercent(slog.New(slog.NewTextHandler(&out, nil)), cfg, func(k string) string { return tt.env[k] })
			if got := debug.SetGCPercent(100); got != tt.want {
				t.Errorf("GC percent = %d, want %d", got, tt.want)
			}
			if !strings.Contains(out.String(), tt.wantLog) {
				t.Errorf("log = %q, want it to contain %q", out.String(), tt.wantLog)
			}
		})
	}
	for _, bad := range []string{"0", "5", "-1", "5000"} {
		_, err := LoadConfig([]string{"-gc-percent", bad}, func(string) string { return "" }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "-gc-percent "+bad+": must be 10..1000") {
			t.Errorf("-gc-percent %s: error %v, want must be 10..1000", bad, err)
		}
	}
}
