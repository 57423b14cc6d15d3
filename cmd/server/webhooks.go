package main

import (
	"github.com/acme/viewersession/webhook"
)

// webhookConfig is the webhook dispatcher's configuration from the flags,
// or nil without -webhook-url (no webhooks). internal/assemble starts the
// dispatcher (its queue in Redis with -redis-url, else in memory, its
// consumer the replica id) and closes it after the sessions stopped (their
// last events queued) and before Redis closes.
func webhookConfig(cfg Config) *webhook.Config {
	urls := splitList(cfg.WebhookURLs)
	if len(urls) == 0 {
		return nil
	}
	wcfg := webhook.DefaultConfig()
	wcfg.URLs = urls
	wcfg.Secret = []byte(cfg.WebhookSecret)
	wcfg.Backoff = cfg.WebhookBackoff
	wcfg.MaxAttempts = cfg.WebhookMaxAttempts
	wcfg.ClaimIdle = cfg.WebhookClaimIdle
	return &wcfg
}
