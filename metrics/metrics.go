// Package metrics is the service's Prometheus instrumentation: a
// sessionmgr.Observer, the KVS call observer, and a go-redis hook counting
// Redis errors. docs/OPERATIONS.md lists every metric and what to alert on.
package metrics

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// Metrics holds the collectors. Create it with New; it is safe for
// concurrent use.
type Metrics struct {
	sessions       *prometheus.GaugeVec
	ended          *prometheus.CounterVec
	attempts       prometheus.Counter
	answerLatency  prometheus.Histogram
	answerTimeouts *prometheus.CounterVec
	retries        prometheus.Counter
	recoverySteps  *prometheus.CounterVec
	outage         *prometheus.HistogramVec
	mediaStalls    prometheus.Counter
	firstVideo     prometheus.Histogram
	idAcquire      prometheus.Histogram
	idCollisions   prometheus.Counter
	idErrors       prometheus.Counter
	failures       *prometheus.CounterVec
	kvsCalls       *prometheus.CounterVec
	redisErrors    *prometheus.CounterVec
	redisTrips     *prometheus.CounterVec
	poolTimeouts   prometheus.Counter
	probes         *prometheus.CounterVec
}

var _ sessionmgr.Observer = (*Metrics)(nil)

// New registers the collectors on reg.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vss_sessions",
			Help: "Live sessions on this replica, by state.",
		}, []string{"state"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_sessions_ended_total",
			Help: "Sessions that ended, by terminal state (FAILED, CLOSED).",
		}, []string{"state"}),
		attempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_signaling_attempts_total",
			Help: "Signaling attempts started (each with its own clientId).",
		}),
		answerLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vss_answer_latency_seconds",
			Help:    "Time from the offer leaving the service to the camera's answer arriving.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		answerTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_answer_timeouts_total",
			Help: "Attempts that got no answer in time; final=true when no retry followed.",
		}, []string{"final"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_retries_total",
			Help: "Answer-timeout retries scheduled (a fresh clientId after retry_delay).",
		}),
		recoverySteps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_recovery_steps_total",
			Help: "Recovery ladder steps that ended, by step (ice_restart, new_peer_connection, new_client_id) and outcome (recovered, fingerprint_changed, timeout, no_answer, failed).",
		}, []string{"step", "outcome"}),
		outage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vss_outage_seconds",
			Help:    "Video outages that recovered: from the first sign (last video progress, a disconnected or failed report, a network change) to video flowing again, by the step that brought it back.",
			Buckets: []float64{.25, .5, 1, 1.5, 2, 3, 5, 8, 13, 21, 30, 60},
		}, []string{"step"}),
		mediaStalls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_media_stalls_total",
			Help: "Times video stood still on a connected peer connection for media_stall_timeout (each starts a recovery).",
		}),
		firstVideo: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vss_first_video_seconds",
			Help:    "Time from the app's join to the session's first video flowing (MEDIA_FLOWING).",
			Buckets: []float64{.25, .5, .75, 1, 1.5, 2, 3, 5, 10, 30, 60},
		}),
		idAcquire: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vss_client_id_acquire_seconds",
			Help:    "Latency of clientId lease acquisition.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
		}),
		idCollisions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_client_id_collisions_total",
			Help: "Acquisitions whose preferred clientId was live or cooling down.",
		}),
		idErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_client_id_acquire_errors_total",
			Help: "Failed clientId acquisitions (store unreachable, exhausted).",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_session_failures_total",
			Help: "Sessions that FAILED, by reason.",
		}, []string{"reason"}),
		kvsCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_kvs_calls_total",
			Help: "KVS call attempts, by operation and result.",
		}, []string{"op", "result"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_redis_errors_total",
			Help: "Redis commands that failed (not counting a missing key), by command.",
		}, []string{"command"}),
		redisTrips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_redis_round_trips_total",
			Help: "Redis round trips, by command (a pipeline counts once, as \"pipeline\"; the subscription connection's are not counted).",
		}, []string{"command"}),
		poolTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vss_redis_pool_timeouts_total",
			Help: "Redis calls that failed because no pooled connection came free within the pool timeout (the pool is exhausted).",
		}),
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vss_probes_total",
			Help: "ProbeChannel probes, by outcome (ok, no_answer, no_media, channel_full, rejected, canceled, error).",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.sessions, m.ended, m.attempts, m.answerLatency, m.answerTimeouts, m.retries,
		m.recoverySteps, m.outage, m.mediaStalls, m.firstVideo, m.idAcquire, m.idCollisions, m.idErrors, m.failures, m.kvsCalls, m.redisErrors, m.redisTrips, m.poolTimeouts)
	reg.MustRegister(m.probes)
	return m
}

// SessionState implements sessionmgr.Observer.
func (m *Metrics) SessionState(from, to sessionmgr.State) {
	if from.Live() {
		m.sessions.WithLabelValues(from.String()).Dec()
	}
	if to.Live() {
		m.sessions.WithLabelValues(to.String()).Inc()
	} else if to.Terminal() {
		m.ended.WithLabelValues(to.String()).Inc()
	}
}

// Attempt implements sessionmgr.Observer.
func (m *Metrics) Attempt() { m.attempts.Inc() }

// Answer implements sessionmgr.Observer.
func (m *Metrics) Answer(d time.Duration) { m.answerLatency.Observe(d.Seconds()) }

// AnswerTimeout implements sessionmgr.Observer.
func (m *Metrics) AnswerTimeout(retry bool) {
	m.answerTimeouts.WithLabelValues(strconv.FormatBool(!retry)).Inc()
	if retry {
		m.retries.Inc()
	}
}

// RecoveryStep implements sessionmgr.Observer.
func (m *Metrics) RecoveryStep(step sessionmgr.RecoveryStep, outcome sessionmgr.StepOutcome) {
	m.recoverySteps.WithLabelValues(stepLabel(step), outcome.String()).Inc()
}

// Outage implements sessionmgr.Observer.
func (m *Metrics) Outage(step sessionmgr.RecoveryStep, d time.Duration) {
	m.outage.WithLabelValues(stepLabel(step)).Observe(d.Seconds())
}

// MediaStall implements sessionmgr.Observer.
func (m *Metrics) MediaStall() { m.mediaStalls.Inc() }

// FirstVideo implements sessionmgr.Observer.
func (m *Metrics) FirstVideo(d time.Duration) { m.firstVideo.Observe(d.Seconds()) }

// stepLabel is a step's label value: ice_restart, new_peer_connection,
// new_client_id.
func stepLabel(s sessionmgr.RecoveryStep) string { return strings.ToLower(s.String()) }

// ClientID implements sessionmgr.Observer.
func (m *Metrics) ClientID(d time.Duration, collided bool, err error) {
	m.idAcquire.Observe(d.Seconds())
	if err != nil {
		m.idErrors.Inc()
		return
	}
	if collided {
		m.idCollisions.Inc()
	}
}

// Failure implements sessionmgr.Observer.
func (m *Metrics) Failure(reason sessionmgr.FailureReason) {
	m.failures.WithLabelValues(reason.String()).Inc()
}

// KVSCall counts one KVS call attempt (kvs.Config.Observe).
func (m *Metrics) KVSCall(op, result string) { m.kvsCalls.WithLabelValues(op, result).Inc() }

// Probe counts one ProbeChannel probe by outcome (probe.Config.Observe).
func (m *Metrics) Probe(outcome string) { m.probes.WithLabelValues(outcome).Inc() }

// RedisHook returns a go-redis hook that counts failed commands, and the
// calls (a command, or a pipeline) that found the pool exhausted.
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			h.m.redisErrors.WithLabelValues("dial").Inc()
		}
		return c, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !errors.Is(err, redis.ErrPoolTimeout) { // it never left
			h.m.redisTrips.WithLabelValues(strings.ToLower(cmd.Name())).Inc()
		}
		h.count(cmd.Name(), err)
		h.pool(err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if !errors.Is(err, redis.ErrPoolTimeout) {
			h.m.redisTrips.WithLabelValues("pipeline").Inc()
		}
		for _, c := range cmds {
			h.count(c.Name(), c.Err())
		}
		h.pool(err)
		return err
	}
}

func (h redisHook) count(name string, err error) {
	if err == nil || errors.Is(err, redis.Nil) || benign(name, err) {
		return
	}
	h.m.redisErrors.WithLabelValues(strings.ToLower(name)).Inc()
}

func (h redisHook) pool(err error) {
	if errors.Is(err, redis.ErrPoolTimeout) {
		h.m.poolTimeouts.Inc()
	}
}

// benign reports a failed command that go-redis handles itself, which no
// caller sees: EVALSHA of a script the server has not cached yet (NOSCRIPT:
// go-redis sends EVAL next), and the optional CLIENT subcommands of its
// connection handshake that an older server does not know (CLIENT SETINFO
// before Redis 7.2).
func benign(name string, err error) bool {
	switch strings.ToLower(name) {
	case "evalsha", "evalsha_ro":
		return redis.HasErrorPrefix(err, "NOSCRIPT")
	case "client":
		return strings.Contains(strings.ToLower(err.Error()), "unknown subcommand")
	}
	return false
}
