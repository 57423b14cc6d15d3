package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/acme/viewersession/kvsemu"
)

// TestLogDurationsAsText is a papercut of the operators issue: durations
// were logged as raw nanoseconds ("drain_timeout":20000000000).
func TestLogDurationsAsText(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var out strings.Builder
		cfg := DefaultConfig()
		cfg.LogFormat = format
		newLogger(cfg, &out).Info("shutting down", "drain_timeout", 20*time.Second)
		if !strings.Contains(out.String(), "20s") || strings.Contains(out.String(), "20000000000") {
			t.Errorf("%s log = %q, want drain_timeout as 20s", format, out.String())
		}
	}
}

// TestRedisLogsThroughSlog: go-redis's own lines (pool errors during an
// outage) come out as JSON log records, not plain text.
func TestRedisLogsThroughSlog(t *testing.T) {
	var out strings.Builder
	l := redisLogger{log: newLogger(DefaultConfig(), &out).With("component", "go-redis")}
	l.Printf(context.Background(), "redis: %s:%d: connection pool: failed to dial after %d attempts\n", "127.0.0.1", 6379, 5)
	var rec map[string]any
	if err := json.Unmarshal([]byte(out.String()), &rec); err != nil {
		t.Fatalf("go-redis line is not one JSON record: %q (%v)", out.String(), err)
	}
	if rec["component"] != "go-redis" || !strings.Contains(rec["msg"].(string), "failed to dial") || rec["level"] != "WARN" {
		t.Errorf("record = %v, want a WARN from component go-redis with the message", rec)
	}
}

// TestDevBannerFaultCommandNamesHTTPPort is a papercut of the operators
// issue: with non-default ports the banner's -fault command omitted
// -dev-http, so pasting it sent the fault to another server.
func TestDevBannerFaultCommandNamesHTTPPort(t *testing.T) {
	emu, err := kvsemu.Start(t.Context(), kvsemu.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	var out strings.Builder
	printDevBanner(&out, &deps{emulator: emu, devKey: "dev-k"}, "127.0.0.1:6001", "127.0.0.1:6002", "127.0.0.1:6003")
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.Contains(line, "-fault") && !strings.Contains(line, "-dev-http http://127.0.0.1:6002") {
			t.Errorf("banner fault command %q lacks -dev-http http://127.0.0.1:6002", line)
		}
	}
	if !strings.Contains(out.String(), "-fault") {
		t.Errorf("banner has no -fault command:\n%s", out.String())
	}
}
