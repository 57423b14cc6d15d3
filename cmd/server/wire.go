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
	"github.com/acme/viewersession/internal/assemble"
	"github.com/acme/viewersession/kvs"
	"github.com/acme/viewersession/kvsemu"
	"github.com/acme/viewersession/kvsemu/camera"
	"github.com/acme/viewersession/metrics"
	"github.com/acme/viewersession/sessionmgr"
)

// DemoChannel is the channel -dev creates, with a simulated camera.
const DemoChannel = "demo-camera"

// deps are the dependencies run wires together, closed in reverse order.
type deps struct {
	// parts is the assembled stack (internal/assemble), as bench and the
	// tests assemble it.
	parts    *assemble.Parts
	manager  *sessionmgr.Manager
	apiKeys  []string
	devKey   string // -dev's generated API key, printed once
	emulator *kvsemu.Emulator
	closers  []func(context.Context) error
	// checks are the dependencies readiness depends on.
	checks []readinessCheck
}

func (d *deps) close(ctx context.Context, log *slog.Logger) {
	for i := len(d.closers) - 1; i >= 0; i-- {
		if err := d.closers[i](ctx); err != nil {
			log.Warn("close dependency", "error", err)
		}
	}
}

// build turns the flags into an assemble.Config (the Redis client, the KVS
// client's endpoint and credentials, or the embedded emulator with -dev;
// the session manager's settings, webhooks, limits) and assembles the
// stack with it.
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

	ac := assemble.Config{
		Logger:            log,
		Registerer:        reg,
		Metrics:           mx,
		Observer:          obs,
		RedisWriteVersion: cfg.RedisWriteVersion,
		EndedLimits:       &assemble.EndedLimits{Total: cfg.MaxEnded, PerChannel: cfg.MaxEndedPerChannel},
		IDs:               clientid.DefaultConfig(),
		Webhooks:          webhookConfig(cfg),
		APIKeys:           d.apiKeys,
		Limits:            &cfg.Limits,
	}
	ac.IDs.DefaultCooldown = cfg.Session.ClientIDCooldown
	built := false // assemble.Build was called: it owns ac.Redis

	// Shared state: Redis when configured (sessions, timelines and clientIds
	// shared by every replica), else memory (one replica).
	if cfg.RedisURL != "" {
		rdb, err := newRedis(cfg)
		if err != nil {
			return nil, err
		}
		d.checks = append(d.checks, readinessCheck{
			name:  "redis",
			what:  "sessions cannot be created, joined or listed",
			check: func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		})
		// Build owns the client (it closes it, on error too); until then,
		// it is closed here.
		ac.Redis = rdb
		d.closers = append(d.closers, func(context.Context) error {
			if built {
				return nil
			}
			return rdb.Close()
		})
	}

	// KVS: the embedded emulator with -dev, else AWS (or -kvs-endpoint).
	kcfg := kvs.DefaultConfig()
	kcfg.Region = cfg.AWSRegion
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
		ac.AWS = aws.Config{
			Region:      cfg.AWSRegion,
			Credentials: credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, ""),
		}
		kcfg.Endpoint = emu.Endpoint()
		kcfg.CAPool = emu.CertPool()
		// -dev's camera is on this host (127.0.0.1 by default): its probes
		// gather loopback candidates too.
		ac.Probe.Loopback = true
	} else {
		sdkLog, logCtx := log.With("component", "aws-sdk"), context.WithoutCancel(ctx)
		ac.AWS, err = awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.AWSRegion),
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
		creds := ac.AWS.Credentials
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
	ac.KVS = kcfg

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
		ac.TokenSecret = []byte(strings.TrimSpace(string(secret)))
	}
	ac.Manager = mcfg

	// The parts close (manager, webhooks, store, Redis) before the
	// emulator.
	built = true
	parts, err := assemble.Build(ctx, ac)
	if err != nil {
		return nil, err
	}
	d.parts, d.manager = parts, parts.Manager
	d.closers = append(d.closers, parts.Close)
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

// newRedis builds the Redis client -redis-mode asks for (assemble.NewRedis:
// short timeouts, a pool timeout shorter than a call's).
func newRedis(cfg Config) (redis.UniversalClient, error) {
	rdb, err := assemble.NewRedis(cfg.RedisMode, cfg.RedisURL)
	switch {
	case err == nil:
		return rdb, nil
	case cfg.RedisMode == "sentinel" || cfg.RedisMode == "cluster":
		return nil, fmt.Errorf("-redis-url (%s): %w", cfg.RedisMode, err)
	}
	return nil, fmt.Errorf("-redis-url: %w", err)
}
