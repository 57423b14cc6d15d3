package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/webhook"
)

// webhooks starts the webhook dispatcher when -webhook-url is set (its
// queue in Redis when rdb is not nil, else in memory) and returns the
// observer the sessions report to: obs, plus the webhooks. The
// dispatcher's Close is added to d.closers, so it runs after the sessions
// stopped (their last events queued) and before Redis closes.
func (d *deps) webhooks(cfg Config, rdb redis.UniversalClient, replica string, log *slog.Logger, reg prometheus.Registerer, obs sessionmgr.Observer) sessionmgr.Observer {
	urls := splitList(cfg.WebhookURLs)
	if len(urls) == 0 {
		return obs
	}
	wcfg := webhook.DefaultConfig()
	wcfg.URLs = urls
	wcfg.Secret = []byte(cfg.WebhookSecret)
	wcfg.Consumer = replica
	wcfg.Backoff = cfg.WebhookBackoff
	wcfg.MaxAttempts = cfg.WebhookMaxAttempts
	wcfg.ClaimIdle = cfg.WebhookClaimIdle
	opts := []webhook.Option{webhook.WithLogger(log.With("component", "webhook", "replica", replica)), webhook.WithRegisterer(reg)}
	var disp *webhook.Dispatcher
	if rdb != nil {
		disp = webhook.NewRedis(wcfg, rdb, opts...)
	} else {
		disp = webhook.NewMemory(wcfg, opts...)
	}
	d.closers = append(d.closers, disp.Close)
	return webhook.Observer{Observer: obs, Dispatcher: disp}
}
