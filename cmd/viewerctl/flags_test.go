package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/acme/viewersession/viewerclient"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func defaultWatch() watchConfig {
	return watchConfig{
		commonConfig: commonConfig{Addr: "localhost:50051", APIKey: "k", Channel: "demo-camera"},
		ViewerID:     "viewerctl-alice",
		Duration:     10 * time.Second,
		Mode:         viewerclient.ModeConnect,
		DevHTTP:      "http://localhost:8080",
		WatchNetwork: true,
	}
}

func TestParseWatch(t *testing.T) {
	tests := []struct {
		name string
		give []string
		env  func(string) string
		want func(*watchConfig)
	}{
		{
			name: "defaults",
			give: []string{"-api-key", "k", "-channel", "demo-camera"},
			want: func(*watchConfig) {},
		},
		{
			name: "environment",
			give: []string{"-channel", "demo-camera"},
			env:  env("USER", "alice", envAPIKey, "k", envAddr, "10.0.0.1:9000", envDevHTTP, "http://10.0.0.1:8000"),
			want: func(c *watchConfig) { c.Addr, c.DevHTTP = "10.0.0.1:9000", "http://10.0.0.1:8000" },
		},
		{
			name: "flags win over the environment",
			give: []string{"-addr", "127.0.0.1:1", "-api-key", "flag-key", "-channel", "demo-camera"},
			env:  env("USER", "alice", envAPIKey, "env-key", envAddr, "10.0.0.1:9000"),
			want: func(c *watchConfig) { c.Addr, c.APIKey = "127.0.0.1:1", "flag-key" },
		},
		{
			name: "everything",
			give: []string{"-api-key", "k", "-channel", "arn:aws:kinesisvideo:us-west-2:1:channel/c/1", "-viewer-id", "bob",
				"-duration", "0", "-mode", "signal", "-fault", "late-answer", "-fault-delay", "7s", "-dev-http", "http://127.0.0.1:9",
				"-answer-timeout", "5s", "-retry-delay", "2s", "-max-attempts", "3", "-ice-restart-timeout", "1s",
				"-network-change-after", "4s", "-watch-network=false", "-json", "-v"},
			want: func(c *watchConfig) {
				c.Channel, c.ViewerID, c.Duration, c.Mode = "arn:aws:kinesisvideo:us-west-2:1:channel/c/1", "bob", 0, viewerclient.ModeSignal
				c.Fault, c.FaultDelay, c.DevHTTP = "late-answer", 7*time.Second, "http://127.0.0.1:9"
				c.AnswerTimeout, c.RetryDelay, c.MaxAttempts, c.ICERestartTimeout = 5*time.Second, 2*time.Second, 3, time.Second
				c.NetworkChangeAfter, c.WatchNetwork, c.JSON, c.Verbose = 4*time.Second, false, true, true
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env("USER", "alice")
			}
			got, err := parseWatch(tt.give, getenv, io.Discard)
			if err != nil {
				t.Fatalf("parseWatch(%q) error: %v", tt.give, err)
			}
			want := defaultWatch()
			tt.want(&want)
			if got != want {
				t.Errorf("parseWatch(%q) =\n%+v; want\n%+v", tt.give, got, want)
			}
		})
	}
}

func TestParseWatchErrors(t *testing.T) {
	base := []string{"-api-key", "k", "-channel", "demo-camera"}
	tests := []struct {
		give []string
		env  func(string) string
		want string // in the error
	}{
		{[]string{"-channel", "demo-camera"}, nil, "-api-key (or VIEWERCTL_API_KEY) is required"},
		{[]string{"-api-key", "k"}, nil, "-channel is required"},
		{[]string{}, nil, `prints one as "dev API key"; -channel is required`},
		{append(base, "-mode", "bidi"), nil, `-mode "bidi": want connect or signal`},
		{append(base, "-fault", "meteor"), nil, `-fault "meteor": want one of no-answer, late-answer`},
		{append(base, "-fault", "no-answer", "-dev-http", "localhost:8080"), nil, `-dev-http "localhost:8080": want a URL`},
		{append(base, "-fault-delay", "1s"), nil, "-fault-delay goes with -fault late-answer"},
		{append(base, "-duration", "-1s"), nil, "-duration -1s is negative"},
		{append(base, "-max-attempts", "6"), nil, "-max-attempts 6: want 1..5"},
		{append(base, "-viewer-id", ""), nil, "-viewer-id is empty"},
		{[]string{"-api-key", "k", "-channel", "arn:aws:x", "-region", "eu-west-1"}, nil, "-region goes with a channel name"},
		{append(base, "extra"), nil, `unexpected argument "extra"`},
		{append(base, "-nope"), nil, "flag provided but not defined: -nope"},
		{append(base, "-duration", "ten"), nil, `-duration "ten": want a duration such as 10s`},
		{append(base, "-max-attempts", "x"), nil, `invalid value "x" for flag -max-attempts`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			getenv := tt.env
			if getenv == nil {
				getenv = env()
			}
			var stderr bytes.Buffer
			_, err := parseWatch(tt.give, getenv, &stderr)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseWatch(%q) error = %v; want a usage error containing %q", tt.give, err, tt.want)
			}
			if stderr.Len() != 0 {
				t.Errorf("parseWatch(%q) wrote %q to stderr; want nothing (main prints the error)", tt.give, stderr.String())
			}
		})
	}
}

func TestParseWatchHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseWatch([]string{"-h"}, env(), &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("parseWatch(-h) error = %v; want flag.ErrHelp", err)
	}
	for _, want := range append([]string{"-network-change-after", "-answer-timeout", "-watch-network", "-json", "Faults",
		`{"kind":"media","pc":N,"packets":N,"bytes":N,"frames":N}`, `"kind":"event"`, `"step":"NEW_CLIENT_ID","outage_ms":N,"learned":false`,
		`{"kind":"network","description":"..."}`, `{"kind":"redial","reason":"ack timeout|network change|stream error"}`,
		`"first_video_ms":N,"outages":[{"step":"...","outage_ms":N}]`, `"black_ms":N,"false_recoveries":N`}, faultNames()...) {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("watch -h output lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestParseSessions(t *testing.T) {
	tests := []struct {
		give    []string
		env     func(string) string
		want    sessionsConfig
		wantErr string
	}{
		{
			give: []string{"-channel", "demo-camera", "-all"},
			env:  env(envAPIKey, "k"),
			want: sessionsConfig{commonConfig: commonConfig{Addr: "localhost:50051", APIKey: "k", Channel: "demo-camera"}, All: true},
		},
		{
			give: []string{"-channel", "demo-camera", "-region", "eu-west-1", "-addr", "h:1"},
			env:  env(envAPIKey, "k", envAddr, "ignored:2"),
			want: sessionsConfig{commonConfig: commonConfig{Addr: "h:1", APIKey: "k", Channel: "demo-camera", Region: "eu-west-1"}},
		},
		{give: []string{"-channel", "demo-camera"}, env: env(), wantErr: "-api-key (or VIEWERCTL_API_KEY) is required"},
		{give: []string{"-api-key", "k"}, env: env(), wantErr: "-channel is required"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			got, err := parseSessions(tt.give, tt.env, io.Discard)
			if tt.wantErr != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("parseSessions(%q) error = %v; want a usage error containing %q", tt.give, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseSessions(%q) = %+v, %v; want %+v, nil", tt.give, got, err, tt.want)
			}
		})
	}
}

func TestDefaultViewerID(t *testing.T) {
	tests := []struct {
		give string
		want string
	}{
		{"alice", "viewerctl-alice"},
		{"Jane Doe@corp", "viewerctl-Jane-Doe-corp"},
		{"d.o_e-1", "viewerctl-d.o_e-1"},
		{"@@@", "viewerctl"},
	}
	for _, tt := range tests {
		if got := defaultViewerID(env("USER", tt.give)); got != tt.want {
			t.Errorf("defaultViewerID(USER=%q) = %q; want %q", tt.give, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		give       error
		want       int
		wantStderr string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{errors.Join(errUsage, errors.New("-channel is required")), 2, "viewerctl: usage\n-channel is required\nrun `viewerctl help`"},
		{errors.New("session FAILED: ANSWER_TIMEOUT"), 1, "viewerctl: session FAILED: ANSWER_TIMEOUT\n"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		if got := exitCode(tt.give, &stderr); got != tt.want {
			t.Errorf("exitCode(%v) = %d; want %d", tt.give, got, tt.want)
		}
		if !strings.HasPrefix(stderr.String(), tt.wantStderr) || (tt.wantStderr == "") != (stderr.Len() == 0) {
			t.Errorf("exitCode(%v) printed %q; want it to start with %q", tt.give, stderr.String(), tt.wantStderr)
		}
	}
}

func TestRunCommands(t *testing.T) {
	tests := []struct {
		give       []string
		wantErr    error
		wantStdout string
	}{
		{nil, errUsage, ""},
		{[]string{"frobnicate"}, errUsage, ""},
		{[]string{"help"}, nil, "viewerctl watch"},
		{[]string{"watch"}, errUsage, ""},
		{[]string{"sessions", "-h"}, flag.ErrHelp, ""},
		{[]string{"help"}, nil, "viewerctl timeline -api-key KEY [-follow] SESSION"},
		{[]string{"get", "-h"}, flag.ErrHelp, ""},
		{[]string{"close"}, errUsage, ""},
		{[]string{"timeline", "-h"}, flag.ErrHelp, ""},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tt.give, &stdout, &stderr)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
			t.Errorf("run(%q) error = %v; want %v", tt.give, err, tt.wantErr)
		}
		if !strings.Contains(stdout.String(), tt.wantStdout) {
			t.Errorf("run(%q) stdout = %q; want it to contain %q", tt.give, stdout.String(), tt.wantStdout)
		}
	}
}

// Issue 16, papercut 7: -duration 10 (no unit) said only "parse error".
func TestDurationWithoutUnitSaysWhatADurationIs(t *testing.T) {
	for _, tt := range []struct{ give, want string }{
		{"10", `-duration "10": want a duration such as 10s (a number and a unit: ms, s, m, h)`},
		{"1.5", `-duration "1.5": want a duration such as 1.5s`},
		{"soon", `-duration "soon": want a duration such as 10s`},
	} {
		_, err := parseWatch([]string{"-api-key", "k", "-channel", "c", "-duration", tt.give}, env(), io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "parse error") {
			t.Errorf("-duration %s: error = %v; want a usage error with %q and no bare \"parse error\"", tt.give, err, tt.want)
		}
	}
	// The other commands' duration flags get the same words.
	_, err := parseWatch([]string{"-api-key", "k", "-channel", "c", "-answer-timeout", "5"}, env(), io.Discard)
	if err == nil || !strings.Contains(err.Error(), `-answer-timeout "5": want a duration such as 5s`) {
		t.Errorf("-answer-timeout 5: error = %v", err)
	}
}

// Issue 16, papercut 8: -duration's help says what it counts from.
func TestDurationHelpSaysItCountsFromTheJoin(t *testing.T) {
	var b bytes.Buffer
	if _, err := parseWatch([]string{"-h"}, env(), &b); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if !strings.Contains(b.String(), "counted from when the app has joined the session") {
		t.Errorf("watch -h does not say what -duration counts from:\n%s", b.String())
	}
}

func TestParseSession(t *testing.T) {
	for _, tt := range []struct {
		cmd     string
		give    []string
		want    sessionConfig
		wantErr string
	}{
		{"get", []string{"-api-key", "k", "sessions/abc"}, sessionConfig{commonConfig: commonConfig{Addr: "localhost:50051", APIKey: "k"}, Name: "sessions/abc"}, ""},
		{"close", []string{"abc", "-api-key", "k", "-addr", "h:1"}, sessionConfig{commonConfig: commonConfig{Addr: "h:1", APIKey: "k"}, Name: "sessions/abc"}, ""},
		{"timeline", []string{"-follow", "-api-key", "k", "sessions/abc", "-v"}, sessionConfig{commonConfig: commonConfig{Addr: "localhost:50051", APIKey: "k"}, Name: "sessions/abc", Follow: true, Verbose: true}, ""},
		{"get", []string{"-api-key", "k"}, sessionConfig{}, "the session's name is required"},
		{"get", []string{"sessions/abc"}, sessionConfig{}, "-api-key (or VIEWERCTL_API_KEY) is required"},
		{"get", []string{"-api-key", "k", "a", "b"}, sessionConfig{}, `unexpected argument "b"`},
		{"get", []string{"-api-key", "k", "-follow", "a"}, sessionConfig{}, "flag provided but not defined: -follow"},
	} {
		got, err := parseSession(tt.cmd, tt.give, env(), io.Discard)
		if tt.wantErr != "" {
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s %q: error = %v; want a usage error with %q", tt.cmd, tt.give, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %q = %+v, %v; want %+v", tt.cmd, tt.give, got, err, tt.want)
		}
	}
}
