package kvs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Client. The zero value of every field means its
// documented default; DefaultConfig returns the defaults spelled out.
type Config struct {
	// Region is used for channels given by name without a region.
	// Default "us-west-2".
	Region string
	// Endpoint overrides the control-plane base endpoint (for example the
	// emulator's https URL). Default "": the AWS endpoint of the region.
	Endpoint string
	// CAPool, when set, is the set of roots trusted for the control plane, the
	// HTTPS endpoint and the signaling WebSocket (the emulator's CA). It
	// replaces the system roots; add those to it if both are needed.
	// Default nil: the system roots.
	CAPool *x509.CertPool
	// ICERefreshBefore is how long before the smallest TURN Ttl runs out the
	// cached ICE servers count as stale and are fetched again. Default 30s.
	ICERefreshBefore time.Duration
	// PresignExpiry is the X-Amz-Expires of the signaling URL. Default 299s,
	// as the JS SDK; KVS accepts 1s..7d.
	PresignExpiry time.Duration
	// Backoff paces retries of throttled calls and signaling reconnects.
	// Default {Base: 100ms, Max: 10s, Attempts: 5}.
	Backoff Backoff
	// PingInterval is the period of WebSocket keepalive pings; a ping that
	// gets no pong within the interval drops the socket (and reconnects it).
	// Default 30s.
	PingInterval time.Duration
	// DialTimeout bounds one WebSocket handshake. Default 5s.
	DialTimeout time.Duration
	// Logger receives the client's logs. Default: a logger that discards.
	Logger *slog.Logger
	// Observe, if set, is called after every KVS call attempt with the
	// operation (DescribeSignalingChannel, GetSignalingChannelEndpoint,
	// GetIceServerConfig, ConnectAsViewer) and its result (ok, throttled,
	// not_found, access_denied, invalid_argument, unavailable, canceled).
	// It must not block. Default nil.
	Observe func(op, result string)
}

// Backoff is a capped exponential backoff with full jitter: before retry n
// (n = 1, 2, ...) the caller sleeps a uniformly random duration in
// [0, min(Max, Base * 2^(n-1))]. Attempts bounds the total number of tries,
// the first one included.
type Backoff struct {
	// Base is the first retry's upper bound. Default 100ms.
	Base time.Duration
	// Max caps every delay. Default 10s.
	Max time.Duration
	// Attempts is the total number of tries, at least 1. Default 5.
	Attempts int
}

// DefaultConfig returns the defaults of every Config field.
func DefaultConfig() Config {
	return Config{
		Region:           "us-west-2",
		ICERefreshBefore: 30 * time.Second,
		PresignExpiry:    299 * time.Second,
		Backoff:          Backoff{Base: 100 * time.Millisecond, Max: 10 * time.Second, Attempts: 5},
		PingInterval:     30 * time.Second,
		DialTimeout:      5 * time.Second,
	}
}

// withDefaults fills the zero fields of cfg with their defaults.
func (cfg Config) withDefaults() Config {
	d := DefaultConfig()
	if cfg.Region == "" {
		cfg.Region = d.Region
	}
	if cfg.ICERefreshBefore == 0 {
		cfg.ICERefreshBefore = d.ICERefreshBefore
	}
	if cfg.PresignExpiry == 0 {
		cfg.PresignExpiry = d.PresignExpiry
	}
	if cfg.Backoff.Base == 0 {
		cfg.Backoff.Base = d.Backoff.Base
	}
	if cfg.Backoff.Max == 0 {
		cfg.Backoff.Max = d.Backoff.Max
	}
	if cfg.Backoff.Attempts == 0 {
		cfg.Backoff.Attempts = d.Backoff.Attempts
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = d.PingInterval
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = d.DialTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// validate reports every problem of a defaulted config at once.
func (cfg Config) validate() error {
	var errs []error
	if cfg.ICERefreshBefore < 0 {
		errs = append(errs, fmt.Errorf("ICERefreshBefore %v is negative", cfg.ICERefreshBefore))
	}
	if cfg.PresignExpiry < time.Second || cfg.PresignExpiry > 7*24*time.Hour {
		errs = append(errs, fmt.Errorf("PresignExpiry %v is outside 1s..168h", cfg.PresignExpiry))
	}
	if cfg.Backoff.Base < 0 || cfg.Backoff.Max < cfg.Backoff.Base {
		errs = append(errs, fmt.Errorf("Backoff needs 0 <= Base <= Max, got Base %v Max %v", cfg.Backoff.Base, cfg.Backoff.Max))
	}
	if cfg.Backoff.Attempts < 1 {
		errs = append(errs, fmt.Errorf("Backoff.Attempts %d is below 1", cfg.Backoff.Attempts))
	}
	if cfg.PingInterval < 0 {
		errs = append(errs, fmt.Errorf("PingInterval %v is negative", cfg.PingInterval))
	}
	if cfg.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is negative", cfg.DialTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kvs config: %w: %w", ErrInvalidArgument, err)
	}
	return nil
}
