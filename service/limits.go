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

// Option configures a Server.
type Option func(*Server)

// WithLimits sets the Server's limits (default DefaultLimits).
func WithLimits(l Limits) Option { return func(s *Server) { s.limits = l } }

// WithRateLimiter shares the create rate limit through rl (default: this
// process only). When rl fails the process's own buckets decide.
func WithRateLimiter(rl RateLimiter) Option { return func(s *Server) { s.shared = rl } }

// LocalRateLimiter is a RateLimiter in memory: one process. Buckets idle
// long enough to be full again are dropped.
type LocalRateLimiter struct {
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
	return &LocalRateLimiter{buckets: map[string]*bucket{}}
}

// Take implements RateLimiter.
func (l *LocalRateLimiter) Take(_ context.Context, key string, perSecond float64, burst int) (time.Duration, error) {
	now := time.Now()
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
// read).
func (s *Server) take(ctx context.Context, key string, perSecond float64, burst int) time.Duration {
	if perSecond <= 0 {
		return 0
	}
	now := time.Now()
	wait, probe := s.claim(key, now, perSecond)
	if wait > 0 {
		return wait
	}
	var d time.Duration
	err := errNoSharedLimiter
	if s.shared != nil {
		d, err = s.shared.Take(ctx, key, perSecond, burst)
		if err != nil && s.warnShared.Allow() {
			s.log.WarnContext(ctx, "shared rate limit unavailable; limiting in this process", "error", err)
		}
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
	if d := s.blockedFor("create:"+p.caller, time.Now(), s.limits.CreatesPerSecond); d > 0 {
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
