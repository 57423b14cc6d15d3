package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/logging"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/clientid"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	"github.com/acme/viewersession/metrics"
	channelprobe "github.com/acme/viewersession/probe"
	"github.com/acme/viewersession/service"
	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/bind"
	"github.com/acme/viewersession/sessionmgr/memstore"
	"github.com/acme/viewersession/sessionmgr/rediscluster"
	"github.com/acme/viewersession/sessionmgr/redisstore"
)

// DemoChannel is the channel -dev creates, with a simulated camera.
const DemoChannel = "demo-camera"

// deps are the dependencies run wires together, closed in reverse order.
type deps struct {
	manager  *sessionmgr.Manager
	apiKeys  []string
	devKey   string // -dev's generated API key, printed once
	emulator *kvsemu.Emulator
	closers  []func(context.Context) error
	// checks are the dependencies readiness depends on.
	checks []readinessCheck
	// rates shares the create rate limit between replicas (Redis); nil
	// means this process only.
	rates service.RateLimiter
	// prober runs ProbeChannel on the manager's channel slots.
	prober *channelprobe.Prober
}

// serviceOptions are the service's limits and, with Redis, the shared
// rate limiter.
func (d *deps) serviceOptions(cfg Config) []service.Option {
	opts := []service.Option{service.WithLimits(cfg.Limits), service.WithProber(d.prober)}
	if d.rates != nil {
		opts = append(opts, service.WithRateLimiter(d.rates))
	}
	return opts
}

func (d *deps) close(ctx context.Context, log *slog.Logger) {
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](ctx); err != nil {
			log.Warn("close dependency", "error", err)
		}
	}
}

// build wires the store, the clientId allocator, the KVS client (or the
// embedded emulator with -dev) and the session manager.
func build(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer, mx *metrics.Metrics, obs sessionmgr.Observer) (_ *deps, err error) {
	d := &deps{}
	defer func() {
		if err != nil {
			d.close(context.WithoutCancel(ctx), log)
		}
	}()

	keys, err := loadAPIKeys(cfg)
	if err != nil {
		return nil, err
	}
	d.apiKeys = keys
	if cfg.Dev && len(keys) == 0 {
		d.devKey = "dev-" + randomString(18)
		d.apiKeys = []string{d.devKey}
	}

	// Shared state: Redis when configured (sessions, timelines and clientIds
	// shared by every replica), else memory (one replica).
	idCfg := clientid.DefaultConfig()
	idCfg.DefaultCooldown = cfg.Session.ClientIDCooldown
	var (
		alloc   bind.Allocator
		store   sessionmgr.Store
		cluster sessionmgr.Cluster
		shared  redis.UniversalClient // nil without Redis
	)
	if cfg.RedisURL != "" {
		rdb, err := newRedis(cfg)
		if err != nil {
			return nil, err
		}
		rdb.AddHook(mx.RedisHook())
		d.checks = append(d.checks, readinessCheck{
			name:  "redis",
			what:  "sessions cannot be created, joined or listed",
			check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		})
		d.closers = append(d.closers, func(context.Context) error { return rdb.Close() })
		alloc = clientid.NewRedis(rdb, idCfg)
		store = redisstore.New(rdb, redisstore.WithWriteVersion(cfg.RedisWriteVersion))
		rc := rediscluster.New(rdb, rediscluster.WithWriteVersion(cfg.RedisWriteVersion))
		cluster, d.rates = rc, rc
		shared = rdb
	} else {
		alloc = clientid.NewMemory(idCfg)
		store = memstore.New()
	}

	// KVS: the embedded emulator with -dev, else AWS (or -kvs-endpoint).
	var awsCfg aws.Config
	kcfg := kvs.DefaultConfig()
	kcfg.Region = cfg.AWSRegion
	kcfg.Logger = log.With("component", "kvs")
	kcfg.Observe = mx.KVSCall
	if cfg.Dev && cfg.KVSEndpoint == "" {
		ecfg := kvsemu.DefaultConfig()
		ecfg.Addr = cfg.DevKVSAddr
		ecfg.CameraIP = netip.MustParseAddr(cfg.DevCameraIP) // validated
		ecfg.TURNAddr = cfg.DevTURNAddr
		ecfg.Region = cfg.AWSRegion
		ecfg.Logger = log.With("component", "kvsemu")
		emu, err := kvsemu.Start(ctx, ecfg)
		if err != nil {
			return nil, fmt.Errorf("start kvs emulator: %w", err)
		}
		d.emulator = emu
		d.closers = append(d.closers, func(context.Context) error { return emu.Close() })
		arn, err := emu.CreateChannel(DemoChannel, 60*time.Second)
		if err != nil {
			return nil, fmt.Errorf("create demo channel: %w", err)
		}
		if err := emu.StartCamera(arn, camera.Mode(cfg.DevCameraMode)); err != nil {
			return nil, fmt.Errorf("start demo camera: %w", err)
		}
		creds := emu.Credentials()
		awsCfg = aws.Config{
			Region:      cfg.AWSRegion,
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		}
		kcfg.Endpoint = emu.Endpoint()
		kcfg.CAPool = emu.CertPool()
	} else {
		sdkLog, logCtx := log.With("component", "aws-sdk"), context.WithoutCancel(ctx)
		awsCfg, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.AWSRegion),
			awsconfig.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
				// The SDK's own lines go through slog, never as plain text
				// into the JSON log.
				level := slog.LevelWarn
				if c == logging.Debug {
					level = slog.LevelDebug
				}
				sdkLog.Log(logCtx, level, fmt.Sprintf(format, v...))
			})))
		if err != nil {
			return nil, fmt.Errorf("load AWS config: %w", err)
		}
		creds := awsCfg.Credentials
		d.checks = append(d.checks, readinessCheck{
			name: "aws credentials",
			what: "KVS cannot be called: CreateSession fails",
			check: func(ctx context.Context) error {
				if creds == nil {
					return errors.New("no credential provider in the default chain")
				}
				_, err := creds.Retrieve(ctx)
				return err
			},
		})
		kcfg.Endpoint = cfg.KVSEndpoint
		if cfg.KVSCAFile != "" {
			pem, err := os.ReadFile(cfg.KVSCAFile)
			if err != nil {
				return nil, fmt.Errorf("-kvs-ca-file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-kvs-ca-file %s: no PEM certificates", cfg.KVSCAFile)
			}
			kcfg.CAPool = pool
		}
	}
	kc, err := kvs.New(awsCfg, kcfg)
	if err != nil {
		return nil, fmt.Errorf("kvs client: %w", err)
	}

	mcfg := sessionmgr.DefaultConfig()
	mcfg.MaxPerChannel = cfg.Session.MaxPerChannel
	mcfg.Defaults = sessionmgr.Options{
		AnswerTimeout:            cfg.Session.AnswerTimeout,
		RetryDelay:               cfg.Session.RetryDelay,
		MaxAttempts:              cfg.Session.MaxAttempts,
		Recovery:                 sessionmgr.RecoveryAuto,
		ResumeGrace:              cfg.Session.ResumeGrace,
		ICERestartTimeout:        cfg.Session.ICERestartTimeout,
		DisconnectedGrace:        cfg.Session.DisconnectedGrace,
		NewPeerConnectionTimeout: cfg.Session.NewPeerConnectionTimeout,
		MediaStallTimeout:        cfg.Session.MediaStallTimeout,
		MaxLifetime:              cfg.Session.MaxLifetime,
	}
	mcfg.MinTimer = min(mcfg.MinTimer, cfg.Session.AnswerTimeout, cfg.Session.ResumeGrace,
		cfg.Session.ICERestartTimeout, cfg.Session.DisconnectedGrace)
	mcfg.RecoveryHintTTL = cfg.Session.RecoveryHintTTL
	mcfg.ReplicaID = cfg.ReplicaID
	if mcfg.ReplicaID == "" {
		host, _ := os.Hostname()
		mcfg.ReplicaID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if cfg.TokenSecretFile != "" {
		secret, err := os.ReadFile(cfg.TokenSecretFile)
		if err != nil {
			return nil, fmt.Errorf("-token-secret-file: %w", err)
		}
		if len(strings.TrimSpace(string(secret))) < 16 {
			return nil, errors.New("-token-secret-file: the secret must be at least 16 bytes")
		}
		mcfg.TokenSecret = []byte(strings.TrimSpace(string(secret)))
	}
	obs = d.webhooks(cfg, shared, mcfg.ReplicaID, log, reg, obs)
	opts := []sessionmgr.Option{sessionmgr.WithLogger(log.With("component", "sessionmgr", "replica", mcfg.ReplicaID)), sessionmgr.WithObserver(obs)}
	if cluster != nil {
		opts = append(opts, sessionmgr.WithCluster(cluster))
	}
	d.manager = sessionmgr.New(mcfg, store, bind.NewSignaler(kc), bind.NewClientIDs(alloc), opts...)
	d.closers = append(d.closers, d.manager.Close)
	// -dev's camera is on this host (127.0.0.1 by default): its probes
	// gather loopback candidates too.
	d.prober, err = channelprobe.New(d.manager, channelprobe.Config{Loopback: d.emulator != nil, Observe: mx.Probe},
		channelprobe.WithLogger(log.With("component", "probe")))
	if err != nil {
		return nil, err
	}
	return d, nil
}

// loadAPIKeys reads backend API keys from -api-keys-file (one per line, #
// comments) and VS_API_KEYS / -api-keys (comma-separated).
func loadAPIKeys(cfg Config) ([]string, error) {
	var keys []string
	add := func(k string) {
		if k = strings.TrimSpace(k); k != "" && !strings.HasPrefix(k, "#") {
			keys = append(keys, k)
		}
	}
	for _, k := range strings.Split(cfg.APIKeys, ",") {
		add(k)
	}
	if cfg.APIKeysFile != "" {
		b, err := os.ReadFile(cfg.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("-api-keys-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			add(line)
		}
		if len(keys) == 0 {
			return nil, errors.New("-api-keys-file: no keys in the file")
		}
	}
	return keys, nil
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newRedis builds the Redis client -redis-mode asks for, with short
// timeouts (an outage must fail calls fast, never hang them).
func newRedis(cfg Config) (redis.UniversalClient, error) {
	// poolTimeout is shorter than the store's per-call timeout (1 s), so
	// that a call that finds every pooled connection busy fails with the
	// pool timeout: UNAVAILABLE naming the exhausted pool, counted in
	// vss_redis_pool_timeouts_total (go-redis's default is ReadTimeout +
	// 1 s, and the call's deadline would end the wait first, unnamed).
	const timeout, poolTimeout = time.Second, 500 * time.Millisecond
	switch cfg.RedisMode {
	case "sentinel":
		o, err := redis.ParseFailoverURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url (sentinel): %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
		o.PoolTimeout = poolTimeout
		return redis.NewFailoverClient(o), nil
	case "cluster":
		o, err := redis.ParseClusterURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("-redis-url (cluster): %w", err)
		}
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
		o.PoolTimeout = poolTimeout
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.ContextTimeoutEnabled = timeout, timeout, timeout, true
	o.PoolTimeout = poolTimeout
	return redis.NewClient(o), nil
}
