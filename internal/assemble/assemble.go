// Package assemble builds the service's stack in one place: the kvs client
// and its signaler, the clientId allocator, the session store and the
// replica cluster (on Redis, or in memory for one replica), the webhook
// dispatcher, the session manager with its observer, the channel prober
// and the service.Server. cmd/server, bench and internal/stacktest all
// call Build, so the same defaults apply everywhere: a test or a benchmark
// changes only the Config fields it must, where a reader sees it.
//
// What stays with the callers: flag parsing, the AWS configuration and the
// KVS endpoint (or an emulator), the Redis client's construction (NewRedis
// gives the server's), the listeners and the gRPC and HTTP servers.
package assemble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/metrics"
	"github.com/acme/viewersession/probe"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/redisreplicas"
	"github.com/acme/viewersession/sessionmgr/redisstore"
	"github.com/acme/viewersession/webhook"
)

// Config describes what differs between the server, the benchmarks and the
// tests. Zero fields take the defaults stated.
type Config struct {
	// Logger receives every part's logs, each tagged with its component.
	// Default: discarded.
	Logger *slog.Logger
	// Registerer holds the webhook dispatcher's metrics, and Metrics' when
	// Metrics is nil. Default: a new registry of its own.
	Registerer prometheus.Registerer
	// Metrics counts KVS calls, probes, Redis errors and the sessions'
	// work. Default: metrics.New(Registerer).
	Metrics *metrics.Metrics
	// Observer is told what the sessions do. Default: Metrics. With
	// Webhooks, the webhook observer wraps it.
	Observer sessionmgr.Observer
	// Now is the one wall clock of every part that reads one: the
	// sessions' record and event times, the memory store's retention and
	// idempotency window, the memory clientId allocator's leases and
	// cooldowns, the kvs client's ICE server cache, the service's rate
	// limits and the webhooks' signature times. Timers (and the intervals
	// measured on the monotonic clock) stay on the runtime's, which
	// testing/synctest fakes; on Redis, expiry runs on the server's clock.
	// Default nil: time.Now.
	Now func() time.Time

	// AWS signs the kvs client's calls (region and credentials).
	AWS aws.Config
	// KVS is the kvs client's configuration (endpoint, region, CA pool).
	// A nil Logger becomes Logger tagged component=kvs, a nil Observe
	// Metrics.KVSCall.
	KVS kvs.Config

	// Redis, when not nil, holds the sessions, their timelines, the
	// clientIds, the replica heartbeats and forwarding, the shared create
	// rate limit and the webhook queue, shared by every replica. Parts owns
	// it: Close closes it last. Nil keeps all of it in this process's
	// memory (one replica).
	Redis redis.UniversalClient
	// RedisWriteVersion is the record format the Redis store and cluster
	// write (1 for the first step of a rolling update from replicas before
	// wire v2). Default 0: the current one.
	RedisWriteVersion int
	// EndedLimits, when not nil, bounds the ended sessions the store keeps
	// for their retention. Default nil: the stores' defaults (100,000 in
	// all, 1,000 per channel).
	EndedLimits *EndedLimits
	// LocalRates keeps the create rate limit per process even on Redis
	// (tests that share one Redis server under one API key). Default
	// false: on Redis the limit is shared by the replicas.
	LocalRates bool
	// Store and Allocator, when not nil, replace the session store and the
	// clientId allocator Build would make (a benchmark's own Redis store).
	// Parts does not close them, and without Redis no cluster is made.
	Store     sessionmgr.Store
	Allocator bind.Allocator

	// Manager is the session manager's configuration (ReplicaID, timers,
	// the session option defaults). Start from sessionmgr.DefaultConfig().
	// Its TokenHash is set to the service's tokens' (TokenSecret).
	Manager sessionmgr.Config
	// IDs is the clientId allocator's configuration. Start from
	// clientid.DefaultConfig().
	IDs clientid.Config
	// Webhooks, when not nil, starts the webhook dispatcher (its queue on
	// Redis when Redis is set, else in memory); its Consumer becomes
	// Manager.ReplicaID. Default nil: no webhooks.
	Webhooks *webhook.Config
	// Probe is the channel prober's configuration; a nil Observe becomes
	// Metrics.Probe.
	Probe probe.Config

	// APIKeys are the backend API keys the service accepts.
	APIKeys []string
	// TokenSecret is the key the service derives session tokens with
	// (service.NewTokens). Replicas must share it for an idempotent
	// CreateSession repeat on another replica to return the token.
	// Default empty: 32 random bytes per Build.
	TokenSecret []byte
	// Limits are the service's per-caller limits. Default
	// service.DefaultLimits().
	Limits *service.Limits
}

// EndedLimits bounds the ended sessions a store keeps, in all and per
// channel: past a bound the oldest ended goes first; 0 leaves a bound off.
type EndedLimits struct{ Total, PerChannel int }

// Parts is the assembled stack. Close it once the gRPC servers serving
// Server have stopped.
type Parts struct {
	Manager *sessionmgr.Manager
	Server  *service.Server
	Auth    *service.Auth
	KVS     *kvs.Client
	Store   sessionmgr.Store
	IDs     bind.Allocator
	// Cluster is nil without Redis.
	Cluster sessionmgr.Cluster
	Prober  *probe.Prober
	Metrics *metrics.Metrics

	// closers run last first.
	closers   []func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// Build assembles the stack. On error, what it made is closed.
func Build(ctx context.Context, cfg Config) (_ *Parts, err error) {
	p := &Parts{}
	defer func() {
		if err != nil {
			_ = p.Close(context.WithoutCancel(ctx))
		}
	}()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p.Metrics = cfg.Metrics
	if p.Metrics == nil {
		p.Metrics = metrics.New(reg)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}

	// Shared state: Redis (every replica), else memory (one replica).
	var rates service.RateLimiter
	if rdb := cfg.Redis; rdb != nil {
		p.closers = append(p.closers, func(context.Context) error { return rdb.Close() })
		rdb.AddHook(p.Metrics.RedisHook())
		ropts := []redisstore.Option{redisstore.WithWriteVersion(cfg.RedisWriteVersion)}
		if l := cfg.EndedLimits; l != nil {
			ropts = append(ropts, redisstore.WithEndedLimits(l.Total, l.PerChannel))
		}
		rs := redisstore.New(rdb, ropts...)
		// After the manager's Close, before the client's.
		p.closers = append(p.closers, func(context.Context) error { rs.Close(); return nil })
		rc := redisreplicas.New(rdb, redisreplicas.WithWriteVersion(cfg.RedisWriteVersion))
		p.Store, p.IDs, p.Cluster = rs, clientid.NewRedis(rdb, cfg.IDs), rc
		if !cfg.LocalRates {
			rates = rc
		}
	} else {
		mopts := []memstore.Option{memstore.WithClock(now)}
		if l := cfg.EndedLimits; l != nil {
			mopts = append(mopts, memstore.WithEndedLimits(l.Total, l.PerChannel))
		}
		p.Store, p.IDs = memstore.New(mopts...), clientid.NewMemory(cfg.IDs, clientid.WithClock(now))
	}
	if cfg.Store != nil {
		p.Store = cfg.Store
	}
	if cfg.Allocator != nil {
		p.IDs = cfg.Allocator
	}

	kcfg := cfg.KVS
	if kcfg.Logger == nil {
		kcfg.Logger = log.With("component", "kvs")
	}
	if kcfg.Observe == nil {
		kcfg.Observe = p.Metrics.KVSCall
	}
	if p.KVS, err = kvs.New(cfg.AWS, kcfg, kvs.WithClock(now)); err != nil {
		return nil, fmt.Errorf("kvs client: %w", err)
	}

	replica := cfg.Manager.ReplicaID
	if replica == "" {
		replica = sessionmgr.DefaultConfig().ReplicaID
	}
	obs := cfg.Observer
	if obs == nil {
		obs = p.Metrics
	}
	obs = p.webhooks(cfg, log, reg, replica, obs, now)

	// The service mints and verifies session tokens; the manager keeps
	// the hash of a new session's token in its record.
	tokens := service.NewTokens(cfg.TokenSecret)
	mcfg := cfg.Manager
	mcfg.TokenHash = tokens.Hash
	mopts := []sessionmgr.Option{
		sessionmgr.WithLogger(log.With("component", "sessionmgr", "replica", replica)),
		sessionmgr.WithObserver(obs),
		sessionmgr.WithClock(now),
	}
	if p.Cluster != nil {
		mopts = append(mopts, sessionmgr.WithCluster(p.Cluster))
	}
	if _, one := cfg.Redis.(*redis.Client); one && cfg.Store == nil && cfg.Allocator == nil {
		// Standalone or Sentinel: the store and the allocator share one
		// server, so Create takes the lease in the record's script.
		mopts = append(mopts, sessionmgr.WithOneTripCreate())
	}
	p.Manager = sessionmgr.New(mcfg, p.Store, bind.NewSignaler(p.KVS), bind.NewClientIDs(p.IDs), mopts...)
	p.closers = append(p.closers, p.Manager.Close)

	pcfg := cfg.Probe
	if pcfg.Observe == nil {
		pcfg.Observe = p.Metrics.Probe
	}
	if p.Prober, err = probe.New(p.Manager, pcfg, probe.WithLogger(log.With("component", "probe"))); err != nil {
		return nil, err
	}

	limits := service.DefaultLimits()
	if cfg.Limits != nil {
		limits = *cfg.Limits
	}
	sopts := []service.Option{service.WithLimits(limits), service.WithProber(p.Prober), service.WithClock(now)}
	if rates != nil {
		sopts = append(sopts, service.WithRateLimiter(rates))
	}
	p.Auth = service.NewAuth(cfg.APIKeys, tokens)
	p.Server = service.New(p.Manager, p.Auth, log, sopts...)
	return p, nil
}

// Close closes what Build made, in order: the manager (its sessions end
// and release their clientIds), the webhook dispatcher, the Redis store's
// timeline reader, then the Redis client. It returns every error and is
// idempotent; ctx bounds the manager's and the dispatcher's drain.
func (p *Parts) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		var errs []error
		for i := len(p.closers) - 1; i >= 0; i-- {
			errs = append(errs, p.closers[i](ctx))
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// webhooks starts the webhook dispatcher when cfg.Webhooks is set and
// returns the observer the sessions report to: obs, plus the webhooks. The
// dispatcher's Close runs after the manager's (the sessions' last events
// queued) and before Redis closes.
func (p *Parts) webhooks(cfg Config, log *slog.Logger, reg prometheus.Registerer, replica string, obs sessionmgr.Observer, now func() time.Time) sessionmgr.Observer {
	if cfg.Webhooks == nil {
		return obs
	}
	wcfg := *cfg.Webhooks
	wcfg.Consumer = replica
	opts := []webhook.Option{webhook.WithLogger(log.With("component", "webhook", "replica", replica)), webhook.WithRegisterer(reg), webhook.WithClock(now)}
	var disp *webhook.Dispatcher
	if cfg.Redis != nil {
		disp = webhook.NewRedis(wcfg, cfg.Redis, opts...)
	} else {
		disp = webhook.NewMemory(wcfg, opts...)
	}
	p.closers = append(p.closers, disp.Close)
	return webhook.Observer{Observer: obs, Dispatcher: disp}
}
