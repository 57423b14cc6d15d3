package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func TestLoadConfigDefaults(t *testing.T) {
	got, err := LoadConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatalf("LoadConfig(nil) error: %v", err)
	}
	want := DefaultConfig()
	if got != want {
		t.Errorf("LoadConfig(nil) = %+v, want %+v", got, want)
	}
	if got.GRPCAddr != ":50051" || got.HTTPAddr != ":8080" || got.RedisURL != "" {
		t.Errorf("defaults: grpc %q http %q redis %q", got.GRPCAddr, got.HTTPAddr, got.RedisURL)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	env := map[string]string{
		"VS_GRPC_ADDR":      "127.0.0.1:6000",
		"VS_HTTP_ADDR":      "127.0.0.1:6001",
		"VS_ANSWER_TIMEOUT": "10s",
		"VS_DEV":            "true",
	}
	got, err := LoadConfig([]string{"-grpc-addr", "127.0.0.1:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatalf("LoadConfig error: %v", err)
	}
	if got.GRPCAddr != "127.0.0.1:7000" {
		t.Errorf("GRPCAddr = %q, want the flag's 127.0.0.1:7000", got.GRPCAddr)
	}
	if got.HTTPAddr != "127.0.0.1:6001" {
		t.Errorf("HTTPAddr = %q, want the env's 127.0.0.1:6001", got.HTTPAddr)
	}
	if got.Session.AnswerTimeout != 10*time.Second {
		t.Errorf("AnswerTimeout = %v, want 10s", got.Session.AnswerTimeout)
	}
	if !got.Dev {
		t.Errorf("Dev = false, want true from VS_DEV")
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	tests := []struct {
		name     string
		give     []string
		env      map[string]string
		wantAll  []string
		wantNone []string
	}{
		{
			name:    "address and negative duration",
			give:    []string{"-grpc-addr", "nonsense", "-drain-timeout", "-5s"},
			wantAll: []string{"-grpc-addr \"nonsense\"", "-drain-timeout -5s"},
		},
		{
			name: "unparsable values and bad ranges together",
			give: []string{"-answer-timeout", "soon", "-max-attempts", "9", "-log-level", "loud", "-http-addr", ":99999"},
			wantAll: []string{
				"-answer-timeout \"soon\"", "-max-attempts 9", "-log-level \"loud\"", "-http-addr \":99999\"",
			},
		},
		{
			name:    "environment errors are named by variable",
			env:     map[string]string{"VS_RETRY_DELAY": "-1s", "VS_MAX_LIFETIME": "forever"},
			wantAll: []string{"-retry-delay -1s", "VS_MAX_LIFETIME"},
		},
		{
			name:     "redis password is not printed",
			give:     []string{"-redis-url", "http://user:hunter2@host:6379"},
			wantAll:  []string{"-redis-url"},
			wantNone: []string{"hunter2"},
		},
		{
			name:    "negative ended-session bounds",
			give:    []string{"-max-ended-sessions", "-1"},
			env:     map[string]string{"VS_MAX_ENDED_PER_CHANNEL": "-5"},
			wantAll: []string{"-max-ended-sessions -1", "-max-ended-per-channel -5"},
		},
		{
			name:    "stray arguments",
			give:    []string{"extra"},
			wantAll: []string{"unexpected arguments"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(tt.give, func(k string) string { return tt.env[k] }, io.Discard)
			if err == nil {
				t.Fatalf("LoadConfig(%q) = nil error, want one naming %q", tt.give, tt.wantAll)
			}
			msg := err.Error()
			for _, w := range tt.wantAll {
				if !strings.Contains(msg, w) {
					t.Errorf("LoadConfig(%q) error = %q, want it to contain %q", tt.give, msg, w)
				}
			}
			for _, w := range tt.wantNone {
				if strings.Contains(msg, w) {
					t.Errorf("LoadConfig(%q) error = %q, must not contain %q", tt.give, msg, w)
				}
			}
		})
	}
}

// TestREADMEListsEveryFlag keeps the README's configuration table true: every
// flag appears with its environment variable and its default.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.flagSet(io.Discard).VisitAll(func(f *flag.Flag) {
		row := fmt.Sprintf("| `-%s` | `%s` | ", f.Name, envName(f.Name))
		i := strings.Index(string(readme), row)
		if i < 0 {
			t.Errorf("README.md has no row starting %q", row)
			return
		}
		line := string(readme[i:])
		line = line[:strings.IndexByte(line, '\n')]
		cells := strings.Split(line, " | ")
		if len(cells) < 4 {
			t.Errorf("README.md row for -%s = %q, want | flag | env | default | meaning |", f.Name, line)
			return
		}
		got := strings.Trim(cells[2], "`")
		if !sameDefault(got, f.DefValue) {
			t.Errorf("README.md default of -%s = %q, want %q", f.Name, got, f.DefValue)
		}
	})
}

// sameDefault compares a README default with a flag default: "empty" is the
// empty string and durations compare by value (60s == 1m0s).
func sameDefault(readme, def string) bool {
	if readme == "empty" {
		return def == ""
	}
	if a, err := time.ParseDuration(readme); err == nil {
		b, err := time.ParseDuration(def)
		return err == nil && a == b
	}
	return readme == def
}

// TestHelpPrintsEveryFlag is defect 11 of the hardening issue: `server -h`
// printed "panic calling String method on zero main.recordingValue" for
// every flag. Each flag must show its type and default, and no panic.
func TestHelpPrintsEveryFlag(t *testing.T) {
	var out strings.Builder
	_, err := LoadConfig([]string{"-h"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("LoadConfig(-h) error = %v, want flag.ErrHelp", err)
	}
	help := out.String()
	if strings.Contains(help, "panic") {
		t.Fatalf("-h output contains a panic:\n%s", help)
	}
	for _, want := range []string{"-answer-timeout duration", "(default 30s)", "-max-attempts int", `-aws-region string`, "-version"} {
		if !strings.Contains(help, want) {
			t.Errorf("-h output lacks %q:\n%s", want, help)
		}
	}
	DefaultConfig().flagSetNames(t, func(name string) {
		if !strings.Contains(help, "  -"+name) {
			t.Errorf("-h output lacks -%s", name)
		}
	})
}

// TestVersionIgnoresEnvironment: -version is a command, VS_VERSION is not.
func TestVersionIgnoresEnvironment(t *testing.T) {
	cfg, err := LoadConfig(nil, func(k string) string {
		if k == "VS_VERSION" {
			return "true"
		}
		return ""
	}, io.Discard)
	if err != nil || cfg.PrintVersion {
		t.Errorf("LoadConfig with VS_VERSION=true: PrintVersion %v, error %v; want false, nil", cfg.PrintVersion, err)
	}
	cfg, err = LoadConfig([]string{"-version"}, func(string) string { return "" }, io.Discard)
	if err != nil || !cfg.PrintVersion {
		t.Errorf("LoadConfig(-version): PrintVersion %v, error %v; want true, nil", cfg.PrintVersion, err)
	}
}

// flagSetNames calls f with the name of every flag.
func (c Config) flagSetNames(t *testing.T, f func(string)) {
	t.Helper()
	c.flagSet(io.Discard).VisitAll(func(fl *flag.Flag) { f(fl.Name) })
}

func TestLoadConfigDevCamera(t *testing.T) {
	cfg, err := LoadConfig([]string{"-dev", "-dev-camera-mode", "js-sample", "-dev-camera-ip", "10.213.3.1", "-dev-turn-addr", "10.213.0.1:3478"}, func(string) string { return "" }, io.Discard)
	if err != nil || cfg.DevCameraMode != "js-sample" || cfg.DevCameraIP != "10.213.3.1" || cfg.DevTURNAddr != "10.213.0.1:3478" {
		t.Fatalf("LoadConfig(dev camera flags) = %+v, %v", cfg, err)
	}
	_, err = LoadConfig([]string{"-dev-camera-mode", "firmware", "-dev-camera-ip", "camera", "-dev-turn-addr", "[::1]:3478", "-dev-kvs-addr", "x"}, func(string) string { return "" }, io.Discard)
	for _, want := range []string{`-dev-camera-mode "firmware"`, `-dev-camera-ip "camera"`, `-dev-turn-addr "[::1]:3478"`, `-dev-kvs-addr "x"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig(bad dev flags) error = %v, want it to name %s", err, want)
		}
	}
}
