package kvsemu

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/acme/viewersession/kvsemu/camera"
)

// Config configures an Emulator. Zero fields take the documented defaults
// (DefaultConfig spells them out).
type Config struct {
	// Addr is the TLS listener's address. Default "127.0.0.1:4567"; tests use
	// "127.0.0.1:0".
	Addr string
	// Region is the only region accepted in SigV4 scopes and used in ARNs.
	// Default "us-west-2".
	Region string
	// AccountID is the account in channel ARNs. Default "111122223333".
	AccountID string
	// AccessKeyID and SecretAccessKey are the only credentials accepted.
	// Defaults "AKIDEMULATOR" and "emulator-secret".
	AccessKeyID     string
	SecretAccessKey string
	// Limits are the KVS limits enforced; see Limits.
	Limits Limits
	// TURNTTL is the lifetime of the TURN credentials GetIceServerConfig
	// returns (its Ttl field). Default 5m.
	TURNTTL time.Duration
	// CameraMode is the mode of cameras started without an explicit mode
	// (admin API, cmd/kvs-emulator -demo). Default camera.CSample.
	CameraMode camera.Mode
	// CameraIP is the address every simulated camera gathers its ICE host
	// candidates on (camera.Config.HostIP): give the cameras a host of their
	// own on a test network. It must be an address of one of this host's
	// interfaces. Default 127.0.0.1.
	CameraIP netip.Addr
	// TURNAddr is where the TURN server listens, UDP and TCP, and the address
	// its relays use and GetIceServerConfig advertises: "ip:port", with a
	// specific IPv4 address (TURN relays IPv4). Port 0 picks a free port for
	// each of UDP and TCP; another port is used by both. Default
	// "127.0.0.1:0".
	TURNAddr string
	// Logger receives the emulator's logs. Default: discard.
	Logger *slog.Logger
	// Now is the emulator's clock for SigV4 verification, rate limits, TURN
	// credential expiry and message TTLs. Default time.Now. Connection
	// timers (idle timeout, maximum duration) always use real time.
	Now func() time.Time
}

// Limits are the KVS signaling limits of KVS-PROTOCOL.md section 3. A zero
// field takes the KVS value (shown); a negative field disables that limit.
type Limits struct {
	// MaxViewers is the number of concurrent viewer connections per channel
	// (10). The next viewer is refused with ClientLimitExceededException.
	MaxViewers int
	// ViewerConnectsPerSecond is the ConnectAsViewer rate per channel (3).
	ViewerConnectsPerSecond float64
	// MasterConnectsPerSecond is the ConnectAsMaster rate per channel (3).
	MasterConnectsPerSecond float64
	// SDPPerSecond is the SDP_OFFER + SDP_ANSWER rate per connection (5).
	SDPPerSecond float64
	// ICEPerSecond is the ICE_CANDIDATE rate per connection (20).
	ICEPerSecond float64
	// MaxPayload is the longest messagePayload, in bytes of base64 (10000).
	MaxPayload int
	// IdleTimeout closes a connection that sent no signaling message for
	// this long (10m). WebSocket pings do not count as activity.
	IdleTimeout time.Duration
	// MaxConnection is the longest a connection lives (1h).
	MaxConnection time.Duration
	// GoAwayBefore is how long before MaxConnection a GO_AWAY is sent, and
	// how long after an injected GO_AWAY the connection is closed (1m).
	GoAwayBefore time.Duration
	// DescribePerSecond is the DescribeSignalingChannel rate per channel (5).
	DescribePerSecond float64
	// IceConfigPerSecond is the GetIceServerConfig rate per channel (5).
	IceConfigPerSecond float64
}

// KVS defaults (KVS-PROTOCOL.md section 3).
const (
	defaultAddr            = "127.0.0.1:4567"
	defaultTURNAddr        = "127.0.0.1:0"
	defaultRegion          = "us-west-2"
	defaultAccountID       = "111122223333"
	defaultAccessKeyID     = "AKIDEMULATOR"
	defaultSecretAccessKey = "emulator-secret"
	defaultTURNTTL         = 5 * time.Minute
	defaultMessageTTL      = 60 * time.Second
)

// DefaultLimits returns the KVS limits.
func DefaultLimits() Limits {
	return Limits{
		MaxViewers:              10,
		ViewerConnectsPerSecond: 3,
		MasterConnectsPerSecond: 3,
		SDPPerSecond:            5,
		ICEPerSecond:            20,
		MaxPayload:              10000,
		IdleTimeout:             10 * time.Minute,
		MaxConnection:           time.Hour,
		GoAwayBefore:            time.Minute,
		DescribePerSecond:       5,
		IceConfigPerSecond:      5,
	}
}

// DefaultConfig returns the defaults: 127.0.0.1:4567, us-west-2, account
// 111122223333, credentials AKIDEMULATOR / emulator-secret, KVS limits, 5m
// TURN credentials, TURN on 127.0.0.1, c-sample cameras on 127.0.0.1, no
// logging.
func DefaultConfig() Config {
	return Config{
		Addr:            defaultAddr,
		Region:          defaultRegion,
		AccountID:       defaultAccountID,
		AccessKeyID:     defaultAccessKeyID,
		SecretAccessKey: defaultSecretAccessKey,
		Limits:          DefaultLimits(),
		TURNTTL:         defaultTURNTTL,
		CameraMode:      camera.CSample,
		CameraIP:        netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		TURNAddr:        defaultTURNAddr,
	}
}

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Addr == "" {
		c.Addr = d.Addr
	}
	if c.Region == "" {
		c.Region = d.Region
	}
	if c.AccountID == "" {
		c.AccountID = d.AccountID
	}
	if c.AccessKeyID == "" {
		c.AccessKeyID = d.AccessKeyID
	}
	if c.SecretAccessKey == "" {
		c.SecretAccessKey = d.SecretAccessKey
	}
	if c.TURNTTL <= 0 {
		c.TURNTTL = d.TURNTTL
	}
	if c.CameraMode == "" {
		c.CameraMode = d.CameraMode
	}
	if !c.CameraIP.IsValid() {
		c.CameraIP = d.CameraIP
	}
	if c.TURNAddr == "" {
		c.TURNAddr = d.TURNAddr
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits = c.Limits.withDefaults()
	return c
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	fillInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fillRate := func(v *float64, def float64) {
		if *v == 0 {
			*v = def
		}
	}
	fillDur := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fillInt(&l.MaxViewers, d.MaxViewers)
	fillRate(&l.ViewerConnectsPerSecond, d.ViewerConnectsPerSecond)
	fillRate(&l.MasterConnectsPerSecond, d.MasterConnectsPerSecond)
	fillRate(&l.SDPPerSecond, d.SDPPerSecond)
	fillRate(&l.ICEPerSecond, d.ICEPerSecond)
	fillInt(&l.MaxPayload, d.MaxPayload)
	fillDur(&l.IdleTimeout, d.IdleTimeout)
	fillDur(&l.MaxConnection, d.MaxConnection)
	fillDur(&l.GoAwayBefore, d.GoAwayBefore)
	fillRate(&l.DescribePerSecond, d.DescribePerSecond)
	fillRate(&l.IceConfigPerSecond, d.IceConfigPerSecond)
	return l
}

// validate reports every problem of a Config with defaults filled, each
// wrapping ErrInvalidArgument.
func (c Config) validate() error {
	var errs []error
	if _, err := camera.ParseMode(string(c.CameraMode)); err != nil {
		errs = append(errs, fmt.Errorf("%w: CameraMode: %w", ErrInvalidArgument, err))
	}
	if err := camera.CheckHostIP(c.CameraIP); err != nil {
		errs = append(errs, fmt.Errorf("%w: CameraIP: %w", ErrInvalidArgument, err))
	}
	if _, err := parseTURNAddr(c.TURNAddr); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// parseTURNAddr parses Config.TURNAddr; errors wrap ErrInvalidArgument.
func parseTURNAddr(s string) (netip.AddrPort, error) {
	ap, err := netip.ParseAddrPort(s)
	switch {
	case err != nil:
		return netip.AddrPort{}, fmt.Errorf("%w: TURNAddr %q: want ip:port", ErrInvalidArgument, s)
	case !ap.Addr().Unmap().Is4() || ap.Addr().IsUnspecified():
		return netip.AddrPort{}, fmt.Errorf("%w: TURNAddr %q: want a specific IPv4 address", ErrInvalidArgument, s)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
