package service

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// Limits bound what one caller can make the service do. Each refusal is
// RESOURCE_EXHAUSTED with ErrorInfo, QuotaFailure and, where waiting helps,
// RetryInfo. Stream counts are per replica; the create rate is shared by
// every replica through the RateLimiter (Redis when configured).
type Limits struct {
	// StreamsPerSession bounds the Connect and WatchSession streams open
	// on one session (its app's and its backends' together; an app's token
	// opens one session only, so this is also the per-token limit).
	StreamsPerSession int
	// StreamsPerAPIKey bounds the backend WatchSession streams of one API
	// key.
	StreamsPerAPIKey int
	// CreatesPerSecond and CreateBurst are the token bucket of
	// CreateSession per API key.
	CreatesPerSecond float64
	CreateBurst      int
	// AppMessagesPerSecond and AppMessageBurst are the token bucket of app
	// messages (Connect and Signal) per session.
	AppMessagesPerSecond float64
	AppMessageBurst      int
	// ProbesPerSecond and ProbeBurst are the token bucket of ProbeChannel
	// per channel (each probe takes a place on the channel, a KVS connect
	// turn and a clientId that then cools down).
	ProbesPerSecond float64
	ProbeBurst      int
}

// DefaultLimits are the limits the server's flags default to.
func DefaultLimits() Limits {
	return Limits{
		StreamsPerSession:    8,
		StreamsPerAPIKey:     1000,
		CreatesPerSecond:     50,
		CreateBurst:          100,
		AppMessagesPerSecond: 20,
		AppMessageBurst:      200,
		ProbesPerSecond:      0.2,
		ProbeBurst:           3,
	}
}

// RateLimiter is a set of token buckets by key, shared by every replica
// (redisreplicas.Cluster implements it on Redis).
type RateLimiter interface {
	// Take takes one token from key's bucket, refilled at perSecond up to
	// burst: 0 when granted, else how long until a token is due.
	Take(ctx context.Context, key string, perSecond float64, burst int) (time.Duration, error)
}

// BatchRateLimiter is a RateLimiter that can take several tokens in one
// call (redisreplicas.Cluster). Server.take borrows from it in batches
// while a key is busy, so that a busy key costs the store one call per
// batch rather than one per request.
type BatchRateLimiter interface {
	RateLimiter
	// TakeUpTo takes between 1 and n tokens from key's bucket: how many it
	// took, or 0 and how long until a token is due.
	TakeUpTo(ctx context.Context, key string, n int, perSecond float64, burst int) (int, time.Duration, error)
}

// Option configures a Server.
type Option func(*Server)

// WithLimits sets the Server's limits (default DefaultLimits).
func WithLimits(l Limits) Option { return func(s *Server) { s.limits = l } }

// WithRateLimiter shares the create rate limit through rl (default: this
// process only). When rl fails the process's own buckets decide.
func WithRateLimiter(rl RateLimiter) Option { return func(s *Server) { s.shared = rl } }

// WithClock sets the wall clock the limits read (default time.Now): the
// create rate's refusals and borrowed tokens, and this process's buckets.
// Timers stay on the runtime's, which testing/synctest fakes.
func WithClock(now func() time.Time) Option {
	return func(s *Server) { s.now, s.local.now = now, now }
}

// LocalRateLimiter is a RateLimiter in memory: one process. Buckets idle
// long enough to be full again are dropped.
type LocalRateLimiter struct {
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
	takes   int
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewLocalRateLimiter returns an empty LocalRateLimiter.
func NewLocalRateLimiter() *LocalRateLimiter {
	return &LocalRateLimiter{now: time.Now, buckets: map[string]*bucket{}}
}

// Take implements RateLimiter.
func (l *LocalRateLimiter) Take(_ context.Context, key string, perSecond float64, burst int) (time.Duration, error) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.takes++
	if l.takes%1024 == 0 {
		l.sweepLocked(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(rate.Limit(perSecond), max(burst, 1))}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, nil
	}
	return 0, nil
}

// sweepLocked drops buckets untouched for a minute (full again at any
// sane rate, so forgetting them changes nothing).
func (l *LocalRateLimiter) sweepLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, k)
		}
	}
}

// streamCounts counts open streams by key (this replica).
type streamCounts struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire counts one stream on key unless it has limit already; release
// undoes it.
func (c *streamCounts) acquire(key string, limit int) (release func(), ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	if limit > 0 && c.n[key] >= limit {
		return nil, false
	}
	c.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.n[key]--; c.n[key] <= 0 {
				delete(c.n, key)
			}
		})
	}, true
}

// quotaExceeded is the refusal of a limit: RESOURCE_EXHAUSTED with the
// reason, the quota that was hit and, when retry > 0, RetryInfo.
func quotaExceeded(reason, subject, desc string, retry time.Duration) error {
	msg := "limit reached: " + desc
	if retry > 0 {
		msg += fmt.Sprintf("; retry in %v", retry.Round(time.Millisecond))
	}
	details := []protoadapt.MessageV1{
		&errdetails.ErrorInfo{Domain: Domain, Reason: reason},
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: subject, Description: desc}}},
	}
	if retry > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	return withDetails(codes.ResourceExhausted, msg, details...)
}

// take asks the shared limiter, falling back to this process's buckets
// when it fails (an outage must neither open the gates nor close them).
// A key that was refused is refused here until its next token is due,
// without asking again; when it is due, one call asks (the probe) while
// the others are refused here until its answer: a flood costs the store
// one call per refill at most (and Tap refuses it before the request is
// read). A BatchRateLimiter lends a busy key's tokens in batches (see
// credit): most of a busy key's calls then never reach the store.
func (s *Server) take(ctx context.Context, key string, perSecond float64, burst int) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	now := s.now()
	wait, probe := s.claim(key, now, perSecond)
	if wait > 0 {
		return wait
	}
	if !probe && s.spend(key, now) {
		return 0
	}
	var d time.Duration
	err := errNoSharedLimiter
	switch rl := s.shared.(type) {
	case nil:
	case BatchRateLimiter:
		n := 1 // a probe asks for one
		if !probe {
			n = s.batch(key, now, perSecond, burst)
		}
		var got int
		if got, d, err = rl.TakeUpTo(ctx, key, n, perSecond, burst); err == nil && got > 1 {
			s.keep(key, now, got-1)
		}
	default:
		d, err = rl.Take(ctx, key, perSecond, burst)
	}
	if err != nil && s.shared != nil && s.warnShared.Allow() {
		s.log.WarnContext(ctx, "shared rate limit unavailable; limiting in this process", "error", err)
	}
	if err != nil {
		d, _ = s.local.Take(ctx, key, perSecond, burst)
	}
	if d > 0 || probe {
		s.settle(key, now, d, probe)
	}
	return d
}

var errNoSharedLimiter = errors.New("no shared rate limiter")

// blockState is what this replica knows of a refused key: refused until
// until; probing while one call asks the limiter whether it may go again.
type blockState struct {
	until   time.Time
	probing bool
}

// blockedFor is how long key stays refused (0: ask the limiter). While a
// probe is out, the others wait one refill interval.
func (s *Server) blockedFor(key string, now time.Time, perSecond float64) time.Duration {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	return s.blockedForLocked(key, now, perSecond)
}

func (s *Server) blockedForLocked(key string, now time.Time, perSecond float64) time.Duration {
	st, ok := s.blocked[key]
	switch {
	case !ok:
		return 0
	case now.Before(st.until):
		return st.until.Sub(now)
	case st.probing:
		return refill(perSecond)
	}
	return 0
}

// claim is blockedFor for a call that will ask the limiter when it may:
// probe reports that it is the one call asking for a refused key.
func (s *Server) claim(key string, now time.Time, perSecond float64) (wait time.Duration, probe bool) {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	if wait = s.blockedForLocked(key, now, perSecond); wait > 0 {
		return wait, false
	}
	if st, ok := s.blocked[key]; ok {
		st.probing = true
		return 0, true
	}
	return 0, false
}

// settle records the limiter's answer d for key (asked at now): refused
// until the next token, or, for a granted probe, no longer refused.
func (s *Server) settle(key string, now time.Time, d time.Duration, probe bool) {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	switch {
	case d > 0:
		if s.blocked == nil || len(s.blocked) >= 1<<16 {
			s.blocked = map[string]*blockState{}
		}
		s.blocked[key] = &blockState{until: now.Add(d)}
	case probe:
		delete(s.blocked, key)
	}
}

// Borrowed tokens. While a key is busy (its last batch was spent within
// creditTTL), each call to the shared limiter takes twice as many tokens
// as the one before, up to maxBatch; the tokens left over are spent by
// this replica's next calls on the key without asking. Tokens unspent
// after creditTTL are dropped (never given back): a replica whose callers
// stop wastes at most one batch, which the bucket refills. A quiet key
// borrows one at a time, as without batches.
const creditTTL = 250 * time.Millisecond

// credit is what this replica borrowed for a key.
type credit struct {
	left    int       // tokens not spent yet
	expires time.Time // when the unspent ones are dropped
	last    time.Time // the last borrow
	next    int       // the size of the next batch
}

// maxBatch is the most tokens borrowed at once: a fifth of a second's
// refill and a fifth of the burst, at least 1 (10 with the default 50/s,
// burst 100).
func maxBatch(perSecond float64, burst int) int {
	return max(1, min(int(perSecond/5), burst/5))
}

// spend uses a token borrowed for key, if one is left.
func (s *Server) spend(key string, now time.Time) bool {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	c, ok := s.credits[key]
	if !ok || c.left == 0 || !now.Before(c.expires) {
		return false
	}
	c.left--
	return true
}

// batch is how many tokens the next call for key borrows: doubling while
// the key's batches are spent within creditTTL, else 1.
func (s *Server) batch(key string, now time.Time, perSecond float64, burst int) int {
	limit := maxBatch(perSecond, burst)
	if limit == 1 {
		return 1
	}
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	c, ok := s.credits[key]
	if !ok {
		if s.credits == nil || len(s.credits) >= 1<<16 {
			s.credits = map[string]*credit{}
		}
		c = &credit{}
		s.credits[key] = c
	}
	if now.Sub(c.last) > creditTTL || c.next == 0 {
		c.next = 1 // quiet (or new): one at a time
	}
	n := c.next
	c.next, c.last = min(2*n, limit), now
	return n
}

// keep records n tokens borrowed for key beyond the one in use.
func (s *Server) keep(key string, now time.Time, n int) {
	s.blockedMu.Lock()
	defer s.blockedMu.Unlock()
	c, ok := s.credits[key]
	if !ok {
		return
	}
	if !now.Before(c.expires) {
		c.left = 0 // the old ones are dropped
	}
	c.left += n
	c.expires = now.Add(creditTTL)
}

// refill is the time one token takes at perSecond.
func refill(perSecond float64) time.Duration {
	return time.Duration(float64(time.Second) / perSecond)
}

// allowCreate applies the create rate of the caller's API key.
func (s *Server) allowCreate(ctx context.Context, caller string) error {
	l := s.limits
	if d := s.take(ctx, "create:"+caller, l.CreatesPerSecond, l.CreateBurst); d > 0 {
		return s.createRefusal(caller, d)
	}
	return nil
}

func (s *Server) createRefusal(caller string, d time.Duration) error {
	l := s.limits
	return quotaExceeded("RATE_LIMITED", "api_key:"+caller,
		fmt.Sprintf("at most %g CreateSession calls per second per API key (burst %d)", l.CreatesPerSecond, l.CreateBurst), max(d, 10*time.Millisecond))
}

// Tap refuses a CreateSession whose API key is known to be over its rate
// (an earlier call was refused and its next token is not due yet) before
// the request is read or a handler runs: a flood of creates costs next to
// nothing. Install it with grpc.InTapHandle through Interceptors.Tap,
// which counts and logs its refusals like the handlers'.
func (s *Server) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if info.FullMethodName != vspb.ViewerSessionService_CreateSession_FullMethodName {
		return ctx, nil
	}
	p, err := s.auth.identifyMD(info.Header)
	if err != nil || !p.backend {
		return ctx, nil // the handler answers for the credentials
	}
	if d := s.blockedFor("create:"+p.caller, s.now(), s.limits.CreatesPerSecond); d > 0 {
		return ctx, s.createRefusal(p.caller, d)
	}
	return ctx, nil
}

// allowAppMessage applies the app-message rate of a session (this replica).
func (s *Server) allowAppMessage(ctx context.Context, session string) error {
	l := s.limits
	if l.AppMessagesPerSecond <= 0 {
		return nil
	}
	if d, _ := s.local.Take(ctx, "app:"+session, l.AppMessagesPerSecond, l.AppMessageBurst); d > 0 {
		return quotaExceeded("RATE_LIMITED", "session:"+session,
			fmt.Sprintf("at most %g app messages per second per session (burst %d)", l.AppMessagesPerSecond, l.AppMessageBurst), max(d, 10*time.Millisecond))
	}
	return nil
}

// openStream counts a stream against its session's limit and, for a
// backend, its API key's. release must be called when the stream ends.
func (s *Server) openStream(session string, p principal) (release func(), err error) {
	l := s.limits
	relSession, ok := s.streams.acquire("session:"+session, l.StreamsPerSession)
	if !ok {
		return nil, quotaExceeded("STREAM_LIMIT", "session:"+session,
			fmt.Sprintf("at most %d Connect and WatchSession streams open on one session", l.StreamsPerSession), 0)
	}
	if !p.backend {
		return relSession, nil
	}
	relKey, ok := s.streams.acquire("key:"+p.caller, l.StreamsPerAPIKey)
	if !ok {
		relSession()
		return nil, quotaExceeded("STREAM_LIMIT", "api_key:"+p.caller,
			fmt.Sprintf("at most %d WatchSession streams open per API key", l.StreamsPerAPIKey), 0)
	}
	return func() { relKey(); relSession() }, nil
}
