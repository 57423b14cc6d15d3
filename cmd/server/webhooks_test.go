package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/viewersession/sessionmgr"
)

// TestLoadConfigWebhooks: -webhook-url repeats and adds to VS_WEBHOOK_URL;
// URLs need a secret of 16 bytes or more; a bad value is named, and the
// secret never appears in an error.
func TestLoadConfigWebhooks(t *testing.T) {
	const secret = "a-webhook-secret-of-32-bytes...."
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // WebhookURLs
		wantErr []string
	}{
		{"off", nil, nil, "", nil},
		{"repeated flag", []string{"-webhook-url", "https://a.example/h", "-webhook-url", "https://b.example/h", "-webhook-secret", secret}, nil,
			"https://a.example/h,https://b.example/h", nil},
		{"env list and a flag", []string{"-webhook-url", "https://c.example/h"},
			map[string]string{"VS_WEBHOOK_URL": "https://a.example/h, https://b.example/h", "VS_WEBHOOK_SECRET": secret},
			"https://a.example/h,https://b.example/h,https://c.example/h", nil},
		{"no secret", []string{"-webhook-url", "https://a.example/h"}, nil, "", []string{"-webhook-url needs -webhook-secret"}},
		{"short secret", []string{"-webhook-url", "https://a.example/h", "-webhook-secret", "short"}, nil, "", []string{"at least 16 bytes"}},
		{"bad url", []string{"-webhook-url", "ftp://a.example/h", "-webhook-secret", secret}, nil, "", []string{`-webhook-url "ftp://a.example/h"`}},
		{"bad timings", []string{"-webhook-backoff", "0s", "-webhook-claim-idle", "-1s", "-webhook-max-attempts", "0"}, nil, "",
			[]string{"-webhook-backoff 0s", "-webhook-claim-idle -1s", "-webhook-max-attempts 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(tt.args, env(tt.env), io.Discard)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("LoadConfig(%q) = %v", tt.args, err)
				}
				if cfg.WebhookURLs != tt.want {
					t.Errorf("WebhookURLs = %q, want %q", cfg.WebhookURLs, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadConfig(%q) = nil, want errors %q", tt.args, tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("LoadConfig(%q) = %v, want it to name %q", tt.args, err, w)
				}
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

// countingObserver counts the timeline events it is given.
type countingObserver struct {
	sessionmgr.Observer
	events *int
}

func (o countingObserver) SessionEvent(sessionmgr.SessionID, string, sessionmgr.Event) { *o.events++ }

// TestWebhooksObserver: with -webhook-url, the sessions report to an
// observer that sends webhooks and still feeds the one it wraps (tracing
// keeps its events); the dispatcher is closed with the dependencies.
func TestWebhooksObserver(t *testing.T) {
	cfg := DefaultConfig()
	d := &deps{}
	var base sessionmgr.Observer = countingObserver{events: new(int)}
	if got := d.webhooks(cfg, nil, "r1", slog.New(slog.DiscardHandler), prometheus.NewRegistry(), base); got != base {
		t.Errorf("webhooks without -webhook-url = %T, want the observer unchanged", got)
	}
	cfg.WebhookURLs, cfg.WebhookSecret = "http://127.0.0.1:1/hook", "a-webhook-secret-of-32-bytes...."
	n := new(int)
	obs := d.webhooks(cfg, nil, "r1", slog.New(slog.DiscardHandler), prometheus.NewRegistry(), countingObserver{events: n})
	so, ok := obs.(sessionmgr.SessionObserver)
	if !ok {
		t.Fatalf("webhooks = %T, want a sessionmgr.SessionObserver", obs)
	}
	eo, ok := obs.(sessionmgr.EventObserver)
	if !ok {
		t.Fatalf("webhooks = %T, want a sessionmgr.EventObserver too (tracing)", obs)
	}
	eo.SessionEvent("s", "arn", sessionmgr.Event{Type: sessionmgr.EventOfferSent})
	so.SessionEventOf(sessionmgr.SessionRef{ID: "s"}, sessionmgr.Event{Type: sessionmgr.EventOfferSent})
	if *n != 1 {
		t.Errorf("the wrapped observer got %d events, want 1", *n)
	}
	if len(d.closers) != 1 {
		t.Fatalf("closers = %d, want the dispatcher's", len(d.closers))
	}
	if err := d.closers[0](t.Context()); err != nil {
		t.Errorf("close the dispatcher: %v", err)
	}
}
