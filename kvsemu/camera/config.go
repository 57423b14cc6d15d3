package camera

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
)

// Mode selects how the camera treats a new SDP offer from a client id that
// still has a live session. See the package documentation.
type Mode string

const (
	// CSample mimics the KVS C SDK sample master: a new offer from a client id
	// with a live session is ignored, ICE restarts included, until the
	// cleanup pass has removed the dead session; the next offer is answered
	// from a new peer connection.
	CSample Mode = "c-sample"
	// JSSample mimics the KVS JS SDK sample master: any offer from a client id
	// with a session, ICE restarts included, closes that peer connection and
	// is answered from a new one (new ICE credentials, new DTLS certificate).
	JSSample Mode = "js-sample"
	// RestartCapable is a custom-firmware master: an ICE-restart offer from a
	// client id with a session is applied to the same peer connection (same
	// DTLS certificate, new ICE credentials); any other offer from it
	// replaces the connection as in JSSample.
	RestartCapable Mode = "restart-capable"
)

// Modes lists every Mode, in documentation order.
func Modes() []Mode { return []Mode{CSample, JSSample, RestartCapable} }

// ParseMode parses "c-sample", "js-sample" or "restart-capable". Any other
// string yields an error wrapping ErrInvalidMode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case CSample, JSSample, RestartCapable:
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
	// CleanupPeriod is the longest wait between two cleanup passes, which
	// remove dead sessions (the C sample's SAMPLE_SESSION_CLEANUP_WAIT_PERIOD);
	// a pass also runs right after any peer connection changes state, as
	// the C sample's state callback wakes its cleanup loop. Default 5s.
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
	// HostIP is the only address the camera gathers ICE host candidates on
	// (over UDP, mDNS off): an IP of one of this host's interfaces, such as
	// the camera's own address on a test network. It may not be unspecified,
	// nor ::1 or an IPv6 link-local address, which ICE does not use.
	// Default 127.0.0.1.
	HostIP netip.Addr
	// SettingEngine, if set, may adjust the pion settings after the camera's
	// own (host candidates on HostIP only, mDNS off); tests use it to shorten
	// ICE timeouts. Default nil (pion's ICE timeouts: 5s disconnected, 25s
	// failed).
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
	if !cfg.HostIP.IsValid() {
		cfg.HostIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	cfg.HostIP = cfg.HostIP.Unmap()
	if err := CheckHostIP(cfg.HostIP); err != nil {
		errs = append(errs, err)
	}
	if cfg.CleanupPeriod < 0 || cfg.MaxSessions < 0 || cfg.PendingCandidateTTL < 0 ||
		cfg.ReconnectDelay < 0 || cfg.MaxReconnectDelay < 0 {
		errs = append(errs, fmt.Errorf("%w: negative duration or count", ErrInvalidConfig))
	}
	return cfg, errors.Join(errs...)
}

// CheckHostIP reports an error wrapping ErrInvalidConfig unless ip can be a
// Config.HostIP: a specific address of one of this host's interfaces that
// ICE uses (pion would otherwise gather no host candidate, and the camera
// would answer with none).
func CheckHostIP(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case ip.IsUnspecified():
		return fmt.Errorf("%w: HostIP %s is unspecified; give one address", ErrInvalidConfig, ip)
	case ip.Is6() && (ip.IsLoopback() || ip.IsLinkLocalUnicast()):
		// RFC 8445 5.1.1.1 (::1 is IPv4-compatible) and pion's gatherer
		// (link-local only with mDNS) leave these without a candidate.
		return fmt.Errorf("%w: HostIP %s cannot carry ICE host candidates", ErrInvalidConfig, ip)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return fmt.Errorf("%w: list interface addresses: %w", ErrInvalidConfig, err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == ip {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: HostIP %s is not an address of any interface", ErrInvalidConfig, ip)
}
