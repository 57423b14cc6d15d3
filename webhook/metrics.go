package webhook

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dispatcher's collectors (see docs/OPERATIONS.md).
type metrics struct {
	delivered prometheus.Counter
	retries   prometheus.Counter
	failed    prometheus.Counter
	dropped   *prometheus.CounterVec
	depth     prometheus.Gauge
}

// Why an event was dropped before it reached the queue.
const (
	dropBufferFull = "buffer_full" // the in-memory buffer in front of the queue was full
	dropQueueFull  = "queue_full"  // the memory queue held its maximum
	dropNotQueued  = "not_queued"  // the queue could not be reached before shutdown
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_webhook_delivered_total",
			Help: "Webhook deliveries a receiver accepted (2xx), one per event and URL.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_webhook_retries_total",
			Help: "Webhook attempts that failed (an error or a non-2xx status) and will be retried after a backoff.",
		}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_webhook_failed_total",
			Help: "Webhook deliveries given up after the last attempt.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_webhook_dropped_total",
			Help: "Webhook events dropped before they were queued, by reason (buffer_full, queue_full, not_queued).",
		}, []string{"reason"}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vss_webhook_queue_depth",
			Help: "Webhook deliveries queued, in progress included (the Redis stream's length, shared by every replica).",
		}),
	}
	for _, r := range []string{dropBufferFull, dropQueueFull, dropNotQueued} {
		m.dropped.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.delivered, m.retries, m.failed, m.dropped, m.depth)
	}
	return m
}
