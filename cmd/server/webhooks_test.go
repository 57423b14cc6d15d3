package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"
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

// TestWebhookConfig: without -webhook-url there are no webhooks; with it,
// the dispatcher gets the URLs, the secret and the retry flags.
func TestWebhookConfig(t *testing.T) {
	cfg := DefaultConfig()
	if got := webhookConfig(cfg); got != nil {
		t.Errorf("webhookConfig without -webhook-url = %+v, want nil", got)
	}
	cfg.WebhookURLs, cfg.WebhookSecret = "http://127.0.0.1:1/hook, http://127.0.0.1:2/hook", "a-webhook-secret-of-32-bytes...."
	cfg.WebhookBackoff, cfg.WebhookMaxAttempts, cfg.WebhookClaimIdle = 3*time.Second, 7, 11*time.Second
	got := webhookConfig(cfg)
	if got == nil {
		t.Fatal("webhookConfig with -webhook-url = nil")
	}
	if want := []string{"http://127.0.0.1:1/hook", "http://127.0.0.1:2/hook"}; !slices.Equal(got.URLs, want) {
		t.Errorf("URLs = %q, want %q", got.URLs, want)
	}
	if string(got.Secret) != cfg.WebhookSecret {
		t.Error("Secret is not -webhook-secret")
	}
	if got.Backoff != 3*time.Second || got.MaxAttempts != 7 || got.ClaimIdle != 11*time.Second {
		t.Errorf("Backoff, MaxAttempts, ClaimIdle = %v, %d, %v, want 3s, 7, 11s", got.Backoff, got.MaxAttempts, got.ClaimIdle)
	}
}
