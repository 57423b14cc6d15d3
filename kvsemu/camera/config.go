package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// Mode selects how the camera treats a new SDP offer from a client id that
// still has a live session. See the package documentation.
type Mode string

const (
	// CSample mimics the KVS C SDK sample master: a new offer from a client id
	// with a live session is ignored until the dead session is cleaned up.
	CSample Mode = "c-sample"
	// JSSample mimics the KVS JS SDK sample master: a new offer replaces the
	// live session, except an ICE restart of the same viewer peer, which is
	// applied to the existing peer connection.
	JSSample Mode = "js-sample"
)

// ParseMode parses "c-sample" or "js-sample". Any other string yields an
// error wrapping ErrInvalidMode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case CSample, JSSample:
		return m, nil
	default:
		return "", fmt.Errorf("%w: %q", ErrInvalidMode, s)
	}
}

// Config configures a Camera. Zero fields take the documented defaults; only
// Dial is required.
type Config struct {
	// Mode is the re-offer behaviour. Default CSample.
	Mode Mode
	// Dial returns a fresh MASTER signaling connection (a newly presigned
	// WSS). It is called once per (re)connect; the camera closes the
	// connection it returns. Required.
	Dial func(ctx context.Context) (*websocket.Conn, error)
	// Logger receives the camera's logs. Default: discard.
	Logger *slog.Logger
	// CleanupPeriod is how often the c-sample mode removes sessions whose
	// peer connection failed, closed or disconnected (the C sample's
	// SAMPLE_SESSION_CLEANUP_WAIT_PERIOD). Default 5s.
	CleanupPeriod time.Duration
	// MaxSessions caps concurrent viewer sessions; offers beyond it are
	// ignored (the C sample's DEFAULT_MAX_CONCURRENT_STREAMING_SESSION).
	// Default 10.
	MaxSessions int
	// PendingCandidateTTL is how long ICE candidates that arrive before their
	// viewer's offer are kept (the C sample's
	// SAMPLE_PENDING_MESSAGE_CLEANUP_DURATION). Default 20s.
	PendingCandidateTTL time.Duration
	// ReconnectDelay is the first pause after a failed Dial; it doubles on
	// each further failure up to MaxReconnectDelay. A reconnect after a
	// working connection ends starts without a pause. Default 100ms.
	ReconnectDelay time.Duration
	// MaxReconnectDelay caps the pause between failed Dials. Default 2s.
	MaxReconnectDelay time.Duration
	// SettingEngine, if set, may adjust the pion settings after the camera's
	// own (loopback 127.0.0.1 host candidates over UDP4, mDNS off); tests use
	// it to shorten ICE timeouts. Default nil (pion's ICE timeouts: 5s
	// disconnected, 25s failed).
	SettingEngine func(se *webrtc.SettingEngine)
}

// Defaults used for zero Config fields.
const (
	defaultMode                = CSample
	defaultCleanupPeriod       = 5 * time.Second
	defaultMaxSessions         = 10
	defaultPendingCandidateTTL = 20 * time.Second
	defaultReconnectDelay      = 100 * time.Millisecond
	defaultMaxReconnectDelay   = 2 * time.Second
)

// withDefaults returns cfg with zero fields filled and validates it.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Mode == "" {
		cfg.Mode = defaultMode
	}
	if _, err := ParseMode(string(cfg.Mode)); err != nil {
		errs = append(errs, err)
	}
	if cfg.Dial == nil {
		errs = append(errs, fmt.Errorf("%w: Dial is nil", ErrInvalidConfig))
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CleanupPeriod == 0 {
		cfg.CleanupPeriod = defaultCleanupPeriod
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = defaultMaxSessions
	}
	if cfg.PendingCandidateTTL == 0 {
		cfg.PendingCandidateTTL = defaultPendingCandidateTTL
	}
	if cfg.ReconnectDelay == 0 {
		cfg.ReconnectDelay = defaultReconnectDelay
	}
	if cfg.MaxReconnectDelay == 0 {
		cfg.MaxReconnectDelay = defaultMaxReconnectDelay
	}
	if cfg.CleanupPeriod < 0 || cfg.MaxSessions < 0 || cfg.PendingCandidateTTL < 0 ||
		cfg.ReconnectDelay < 0 || cfg.MaxReconnectDelay < 0 {
		errs = append(errs, fmt.Errorf("%w: negative duration or count", ErrInvalidConfig))
	}
	return cfg, errors.Join(errs...)
}
