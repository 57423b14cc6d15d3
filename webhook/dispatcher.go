package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// Config is a Dispatcher's configuration. Zero fields take DefaultConfig's
// values, but URLs and Secret, which are required.
type Config struct {
	// URLs receive every event (each its own delivery). Required.
	URLs []string
	// Secret signs every request (SignatureHeader). Required.
	Secret []byte
	// Consumer names this replica in the Redis queue's consumer group
	// (the replica id). Default "webhook".
	Consumer string
	// Buffer is the in-memory buffer in front of the queue, in events:
	// when it is full, events are dropped and counted, never waited for.
	// Default 4096.
	Buffer int
	// MaxQueue bounds the queue, in deliveries: the Redis stream is
	// trimmed to about that many (the oldest go), the memory queue refuses
	// more. Default 100000.
	MaxQueue int
	// Workers bounds the deliveries this replica makes at once (each
	// retries with backoff in its slot). Default 16.
	Workers int
	// Backoff is the wait after a first failed attempt; it doubles after
	// each failure, up to MaxBackoff, and each wait is drawn between half
	// of it and all of it (jitter). Default 1s.
	Backoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 5m.
	MaxBackoff time.Duration
	// MaxAttempts is how many attempts a replica makes before it gives a
	// delivery up. A delivery claimed from a dead replica starts a new
	// count. Default 10 (about 17 minutes with the default backoff).
	MaxAttempts int
	// Timeout bounds one attempt (connect, send, response). Default 10s.
	Timeout time.Duration
	// ClaimIdle is how long a delivery taken by a replica may go without
	// a sign of that replica before another claims it (Redis only).
	// Default 30s.
	ClaimIdle time.Duration
	// OnceTTL is how long the queue remembers that a session's first video
	// was sent. Default 24h (longer than a session lives).
	OnceTTL time.Duration
}

// DefaultConfig returns the documented defaults (without URLs or Secret).
func DefaultConfig() Config {
	return Config{
		Consumer:    "webhook",
		Buffer:      4096,
		MaxQueue:    100000,
		Workers:     16,
		Backoff:     time.Second,
		MaxBackoff:  5 * time.Minute,
		MaxAttempts: 10,
		Timeout:     10 * time.Second,
		ClaimIdle:   30 * time.Second,
		OnceTTL:     24 * time.Hour,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Consumer == "" {
		c.Consumer = d.Consumer
	}
	if c.Buffer <= 0 {
		c.Buffer = d.Buffer
	}
	if c.MaxQueue <= 0 {
		c.MaxQueue = d.MaxQueue
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.Backoff <= 0 {
		c.Backoff = d.Backoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = d.MaxBackoff
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.ClaimIdle <= 0 {
		c.ClaimIdle = d.ClaimIdle
	}
	if c.OnceTTL <= 0 {
		c.OnceTTL = d.OnceTTL
	}
	return c
}

// Option sets an optional seam of a Dispatcher.
type Option func(*Dispatcher)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(d *Dispatcher) { d.log = l } }

// WithRegisterer registers the dispatcher's metrics on reg (default: not
// registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(d *Dispatcher) { d.reg = reg } }

// WithHTTPClient sets the client requests are sent with (default: a
// client of its own, without redirects).
func WithHTTPClient(c *http.Client) Option { return func(d *Dispatcher) { d.http = c } }

// WithClock sets the wall clock of the signatures' timestamps (default
// time.Now); events carry their timeline's own times. Intervals (retry
// backoff, log pacing, once marks in memory) stay on the runtime's clock,
// which testing/synctest fakes.
func WithClock(now func() time.Time) Option { return func(d *Dispatcher) { d.now = now } }

// Dispatcher turns session timeline events into signed webhook requests,
// delivered at least once: Observe puts an event in a bounded buffer (never
// blocking the session), a producer moves it into the queue, and workers
// deliver it to every URL, retrying with exponential backoff. With Redis
// the queue is a stream every replica consumes, and a replica that dies
// leaves its deliveries to the others. Safe for concurrent use; Close
// stops it.
type Dispatcher struct {
	cfg  Config
	q    queue
	log  *slog.Logger
	reg  prometheus.Registerer
	http *http.Client
	mx   *metrics
	now  func() time.Time // signatures' timestamps

	in          chan pending
	lastDropLog atomic.Int64  // when Observe last logged a drop, Unix ns
	sem         chan struct{} // a slot per delivery in progress
	cancelRun   context.CancelFunc
	runCtx      context.Context // the consumers' life; ends with Close
	prodCtx     context.Context // the producer's and attempts' life; ends when Close's ctx does
	cancelPro   context.CancelFunc
	closing     chan struct{}
	closeOnce   sync.Once
	wg          sync.WaitGroup // the loops
	work        sync.WaitGroup // the deliveries

	// mu guards inflight: the Redis queue's ids of the deliveries in
	// progress here, touched so that nobody claims them.
	mu       sync.Mutex
	inflight map[string]struct{}
}

// pending is an observed event on its way to the queue.
type pending struct {
	ev Event
}

// NewMemory starts a Dispatcher whose queue is in this process (one
// replica, no Redis): deliveries in progress or queued are lost when it
// stops.
func NewMemory(cfg Config, opts ...Option) *Dispatcher {
	cfg = cfg.withDefaults()
	return start(cfg, newMemQueue(cfg.MaxQueue), opts)
}

// NewRedis starts a Dispatcher whose queue is a Redis stream shared by
// every replica (see the package doc for its keys).
func NewRedis(cfg Config, rdb redis.UniversalClient, opts ...Option) *Dispatcher {
	cfg = cfg.withDefaults()
	return start(cfg, newRedisQueue(rdb, cfg.Consumer, int64(cfg.MaxQueue), cfg.ClaimIdle), opts)
}

func start(cfg Config, q queue, opts []Option) *Dispatcher {
	d := &Dispatcher{
		cfg:      cfg,
		q:        q,
		log:      slog.New(slog.DiscardHandler),
		now:      time.Now,
		in:       make(chan pending, cfg.Buffer),
		sem:      make(chan struct{}, cfg.Workers),
		closing:  make(chan struct{}),
		inflight: make(map[string]struct{}),
	}
	for _, o := range opts {
		o(d)
	}
	if d.http == nil {
		d.http = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	d.mx = newMetrics(d.reg)
	d.runCtx, d.cancelRun = context.WithCancel(context.Background())
	d.prodCtx, d.cancelPro = context.WithCancel(context.Background())
	d.wg.Go(d.produce)
	d.wg.Go(d.consume)
	if rq, ok := q.(*redisQueue); ok {
		d.wg.Go(func() { d.reclaim(rq) })
	}
	return d
}

var _ sessionmgr.SessionObserver = Observer{}

// Observer is a sessionmgr.SessionObserver that sends the webhook events
// to a Dispatcher and forwards everything else to the Observer it wraps
// (metrics, tracing).
type Observer struct {
	sessionmgr.Observer
	Dispatcher *Dispatcher
}

// SessionEventOf implements sessionmgr.SessionObserver.
func (o Observer) SessionEventOf(s sessionmgr.SessionRef, e sessionmgr.Event) {
	o.Dispatcher.Observe(s, e)
}

// SessionEvent forwards to the wrapped Observer when it is an
// EventObserver (tracing).
func (o Observer) SessionEvent(id sessionmgr.SessionID, channelARN string, e sessionmgr.Event) {
	if eo, ok := o.Observer.(sessionmgr.EventObserver); ok {
		eo.SessionEvent(id, channelARN, e)
	}
}

// Observe queues the webhook event of a timeline event, if it has one. It
// never blocks: with the buffer full, the event is dropped and counted.
func (d *Dispatcher) Observe(s sessionmgr.SessionRef, e sessionmgr.Event) {
	ev, ok := FromTimeline(s, e)
	if !ok {
		return
	}
	select {
	case d.in <- pending{ev: ev}:
	default:
		d.mx.dropped.WithLabelValues(dropBufferFull).Inc()
		// At most one line every 10 s: the actor must not wait on a
		// flood of log writes.
		now := time.Now().UnixNano()
		if last := d.lastDropLog.Load(); now-last >= int64(10*time.Second) && d.lastDropLog.CompareAndSwap(last, now) {
			d.log.Warn("webhook buffer full; events dropped (vss_webhook_dropped_total counts them)",
				"type", string(ev.Type), "session", ev.Session, "sequence", ev.Sequence)
		}
	}
}

// Close stops taking deliveries, lets the attempts under way finish and
// moves what the buffer still holds into the queue while ctx lasts, and
// waits for its goroutines, at most until ctx ends. Deliveries waiting
// for a retry stay in the Redis queue for another replica to finish. Call
// it after the sessions stopped (so their last events are queued).
// Idempotent.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		stop := context.AfterFunc(ctx, d.cancelPro)
		defer stop()
		d.cancelRun()
		close(d.closing)
		done := make(chan struct{})
		go func() {
			d.wg.Wait()
			d.work.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			d.cancelPro()
			<-done
		}
		d.cancelPro()
	})
	return nil
}

// produce moves observed events into the queue, until Close; then it
// moves what the buffer still holds.
func (d *Dispatcher) produce() {
	for {
		select {
		case p := <-d.in:
			d.enqueue(p)
		case <-d.closing:
			for {
				select {
				case p := <-d.in:
					d.enqueue(p)
				default:
					return
				}
			}
		}
	}
}

// enqueue adds an event's deliveries to the queue, retrying while the
// queue is unreachable (the buffer fills meanwhile, and drops) until the
// producer's life ends.
func (d *Dispatcher) enqueue(p pending) {
	p.ev.ID = newID()
	body, err := json.Marshal(p.ev)
	if err != nil {
		d.log.Error("encode webhook event", "error", err)
		return
	}
	items := make([]item, 0, len(d.cfg.URLs))
	for _, u := range d.cfg.URLs {
		items = append(items, item{url: u, body: body})
	}
	once := ""
	if p.ev.Type == MediaFlowing {
		once = "media:" + p.ev.Session
	}
	wait := 50 * time.Millisecond
	for {
		_, err := d.q.add(d.prodCtx, once, d.cfg.OnceTTL, items)
		switch {
		case err == nil:
			return
		case errors.Is(err, errQueueFull):
			d.mx.dropped.WithLabelValues(dropQueueFull).Inc()
			d.log.Warn("webhook queue full; event dropped", "type", string(p.ev.Type), "session", p.ev.Session, "id", p.ev.ID)
			return
		}
		if d.prodCtx.Err() != nil {
			d.mx.dropped.WithLabelValues(dropNotQueued).Inc()
			d.log.Warn("webhook event not queued before shutdown", "type", string(p.ev.Type), "session", p.ev.Session, "id", p.ev.ID, "error", err)
			return
		}
		d.log.Warn("queue webhook event; retrying", "error", err, "retry_in", wait)
		if !sleep(d.prodCtx, wait) {
			continue // the next add fails at once and drops
		}
		wait = min(2*wait, time.Second)
	}
}

// consume takes new deliveries from the queue while a slot is free.
func (d *Dispatcher) consume() {
	ctx := d.runCtx
	lastDepth := time.Time{}
	for {
		if !d.acquire(ctx) {
			return
		}
		es, err := d.q.next(ctx, 1+d.free())
		if len(es) == 0 {
			d.release()
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("read webhook queue", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		d.run(ctx, es)
		if time.Since(lastDepth) >= time.Second {
			lastDepth = time.Now()
			if n, err := d.q.depth(ctx); err == nil {
				d.mx.depth.Set(float64(n))
			}
		}
	}
}

// reclaim keeps this replica's deliveries in progress its own (touching
// them every ClaimIdle/3) and claims those of replicas that stopped
// touching theirs (every ClaimIdle/2).
func (d *Dispatcher) reclaim(q *redisQueue) {
	ctx := d.runCtx
	touch := time.NewTicker(d.cfg.ClaimIdle / 3)
	defer touch.Stop()
	claim := time.NewTicker(d.cfg.ClaimIdle / 2)
	defer claim.Stop()
	claims := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-touch.C:
			if err := q.touch(ctx, d.inflightIDs()); err != nil && ctx.Err() == nil {
				d.log.Warn("touch webhook deliveries", "error", err)
			}
		case <-claim.C:
			for {
				es, err := q.claim(ctx, max(1, d.free()))
				if err != nil {
					if ctx.Err() == nil {
						d.log.Warn("claim webhook deliveries", "error", err)
					}
					break
				}
				for _, e := range es {
					d.log.Info("webhook delivery claimed from a stopped replica", "entry", e.id)
				}
				if len(es) > 0 {
					if !d.acquire(ctx) {
						return
					}
					d.run(ctx, es)
				}
				if q.cursorAtStart() || ctx.Err() != nil {
					break
				}
			}
			if claims++; claims%100 == 0 {
				if err := q.forgetConsumers(ctx, time.Hour); err != nil && ctx.Err() == nil {
					d.log.Warn("forget webhook consumers", "error", err)
				}
			}
		}
	}
}

// acquire waits for a free slot; false when ctx ended first.
func (d *Dispatcher) acquire(ctx context.Context) bool {
	select {
	case d.sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// free is about how many slots are free now.
func (d *Dispatcher) free() int { return cap(d.sem) - len(d.sem) }

func (d *Dispatcher) release() { <-d.sem }

// run delivers es, each in a slot: the caller holds one for the first;
// the others wait for theirs (touched meanwhile, so they stay ours). When
// ctx ends first, the rest stay in the queue.
func (d *Dispatcher) run(ctx context.Context, es []entry) {
	d.mu.Lock()
	for _, e := range es {
		d.inflight[e.id] = struct{}{}
	}
	d.mu.Unlock()
	for i, e := range es {
		if i > 0 && !d.acquire(ctx) {
			d.mu.Lock()
			for _, e := range es[i:] {
				delete(d.inflight, e.id)
			}
			d.mu.Unlock()
			return
		}
		d.work.Go(func() {
			defer d.release()
			d.deliver(ctx, e)
			d.mu.Lock()
			delete(d.inflight, e.id)
			d.mu.Unlock()
		})
	}
}

func (d *Dispatcher) inflightIDs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.inflight))
	for id := range d.inflight {
		ids = append(ids, id)
	}
	return ids
}

// deliver sends e until a receiver accepts it, MaxAttempts failed, or ctx
// ends (shutdown: the entry stays queued for another replica). An attempt
// under way when ctx ends is let finish while Close's ctx lasts, so that
// a delivery the receiver accepts is not sent again.
func (d *Dispatcher) deliver(ctx context.Context, e entry) {
	log := d.log.With("entry", e.id, "url", redact(e.url))
	if e.url == "" {
		log.Warn("webhook queue entry without a URL; dropped")
		d.finish(ctx, e)
		return
	}
	for attempt := 1; ; attempt++ {
		status, err := d.post(d.prodCtx, e)
		if err == nil {
			d.mx.delivered.Inc()
			d.finish(ctx, e)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= d.cfg.MaxAttempts {
			d.mx.failed.Inc()
			log.Warn("webhook delivery given up", "attempts", attempt, "status", status, "error", err)
			d.finish(ctx, e)
			return
		}
		d.mx.retries.Inc()
		wait := backoff(d.cfg.Backoff, d.cfg.MaxBackoff, attempt)
		log.Warn("webhook delivery failed; will retry", "attempt", attempt, "status", status, "error", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// finish removes e from the queue, even during shutdown.
func (d *Dispatcher) finish(ctx context.Context, e entry) {
	if err := d.q.done(context.WithoutCancel(ctx), e.id); err != nil {
		d.log.Warn("finish webhook delivery (it may be sent again)", "entry", e.id, "error", err)
	}
}

// errStatus: the receiver answered with a status other than 2xx.
var errStatus = errors.New("receiver refused the event")

// post makes one attempt: the body, signed now.
func (d *Dispatcher) post(ctx context.Context, e entry) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(e.body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "viewersession-webhook/1")
	req.Header.Set(SignatureHeader, Sign(d.cfg.Secret, d.now(), e.body))
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, fmt.Errorf("%w: HTTP %d", errStatus, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// backoff is the wait after failed attempt n (1-based): base doubled n-1
// times, capped at max, then drawn from [half, all] of it.
func backoff(base, max time.Duration, n int) time.Duration {
	d := max
	if n-1 < 32 {
		if b := base << (n - 1); b > 0 && b < max {
			d = b
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// redact is u without user info, query and fragment (they may hold
// tokens), for logs.
func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<unparsable URL>"
	}
	return p.Scheme + "://" + p.Host + p.Path
}
