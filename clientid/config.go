package clientid

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/acme/viewersession/internal/rplumb"
)

// Config tunes an allocator. A zero or negative field takes its default, so
// Config{} behaves as DefaultConfig(); Validate reports such values for
// configuration that comes from users.
type Config struct {
	// LeaseTTL is how long a lease lives without Renew. The holder must stop
	// using the id once LeaseTTL has passed since the start of its last
	// successful Acquire or Renew. Default 30s.
	LeaseTTL time.Duration
	// DefaultCooldown is the shortest time an id rests between two leases;
	// a channel's MessageTTL lengthens it. Default 60s.
	DefaultCooldown time.Duration
	// MaxSuffix bounds the numbered candidates: base, base-2 .. base-MaxSuffix,
	// then base-<random>. Default 20; 1 means base, then base-<random>.
	MaxSuffix int
	// KeyPrefix starts every Redis key (Redis only). Default "vs:v1".
	KeyPrefix string
	// Timeout bounds each Redis round trip within the caller's context
	// (Redis only); a round trip that exceeds it fails with ErrUnavailable.
	// go-redis honours it only with ContextTimeoutEnabled (see NewRedis).
	// Default 1s.
	Timeout time.Duration
}

// maxMaxSuffix bounds MaxSuffix: every candidate is a key of one Lua call.
const maxMaxSuffix = 1000

// DefaultConfig returns the defaults: LeaseTTL 30s, DefaultCooldown 60s,
// MaxSuffix 20, KeyPrefix "vs:v1", Timeout 1s.
func DefaultConfig() Config {
	return Config{
		LeaseTTL:        30 * time.Second,
		DefaultCooldown: 60 * time.Second,
		MaxSuffix:       20,
		KeyPrefix:       strings.TrimSuffix(rplumb.Prefix, ":"),
		Timeout:         time.Second,
	}
}

// Validate reports every problem with c at once. Zero values are valid
// (they take defaults); negative ones and unusable prefixes are not.
func (c Config) Validate() error {
	var errs []error
	if c.LeaseTTL < 0 {
		errs = append(errs, fmt.Errorf("negative LeaseTTL %v", c.LeaseTTL))
	}
	if c.DefaultCooldown < 0 {
		errs = append(errs, fmt.Errorf("negative DefaultCooldown %v", c.DefaultCooldown))
	}
	if c.MaxSuffix < 0 || c.MaxSuffix > maxMaxSuffix {
		errs = append(errs, fmt.Errorf("out-of-range MaxSuffix %d (want 0..%d)", c.MaxSuffix, maxMaxSuffix))
	}
	if strings.ContainsAny(c.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("brace in KeyPrefix %q (it would break the channel's hash tag)", c.KeyPrefix))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("negative Timeout %v", c.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clientid config: %w", err)
	}
	return nil
}

// withDefaults fills every zero or unusable field from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = d.LeaseTTL
	}
	if c.DefaultCooldown <= 0 {
		c.DefaultCooldown = d.DefaultCooldown
	}
	if c.MaxSuffix <= 0 || c.MaxSuffix > maxMaxSuffix {
		c.MaxSuffix = d.MaxSuffix
	}
	if c.KeyPrefix == "" || strings.ContainsAny(c.KeyPrefix, "{}") {
		c.KeyPrefix = d.KeyPrefix
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	return c
}

// cooldown is the rest an id gets after a lease with this MessageTTL.
func (c Config) cooldown(messageTTL time.Duration) time.Duration {
	return max(c.DefaultCooldown, messageTTL)
}

// Request asks for a lease on a clientId.
type Request struct {
	// Channel is the channel ARN: the scope in which ids are unique.
	Channel string
	// Base is the preferred id, raw or sanitized (it is sanitized again);
	// "" asks for a random id.
	Base string
	// MessageTTL is the channel's MessageTtlSeconds; the lease's cooldown is
	// max(Config.DefaultCooldown, MessageTTL).
	MessageTTL time.Duration
	// FirstTaken: the caller has just found the first candidate live or
	// cooling down (a store's write refused the Prepared lease). The Redis
	// allocator then skips its try of that candidate alone and goes
	// straight to the script over every candidate, which tries it again
	// first (it may have been freed since): one round trip, not two.
	// Memory has no round trips and ignores it.
	FirstTaken bool
}

// validate checks what both allocators need of a request.
func (r Request) validate() error {
	switch {
	case r.Channel == "":
		return fmt.Errorf("%w request: empty channel", ErrInvalid)
	case strings.ContainsAny(r.Channel, "{}"):
		// A brace would move the Redis hash tag; no channel ARN has one.
		return fmt.Errorf("%w request: channel %q contains a brace", ErrInvalid, r.Channel)
	}
	return nil
}

// Lease is one holder's claim on a clientId in a channel. Keep it to Renew
// and Release; a copy is as good as the original.
type Lease struct {
	// Channel is the channel of the request.
	Channel string
	// ID is the clientId to connect with.
	ID ID
	// Token is the owner's fencing token: random and unguessable. Never log it.
	Token string
	// Cooldown is the rest the id gets after Release or expiry.
	Cooldown time.Duration
}

// Option is an optional seam of NewMemory and NewRedis.
type Option func(*options)

type options struct {
	now  func() time.Time
	rand io.Reader
}

func newOptions(opts []Option) options {
	o := options{now: time.Now, rand: rand.Reader}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithClock makes Memory read time from now instead of time.Now (Redis uses
// the server's clock and ignores it). testing/synctest usually makes it
// unnecessary.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithRandom makes the random part of ids (base-<random>, and ids with no
// base) come from r instead of crypto/rand; r must be safe for concurrent
// use. It exists for tests that need collisions. Owner tokens always come
// from crypto/rand.
func WithRandom(r io.Reader) Option {
	return func(o *options) {
		if r != nil {
			o.rand = r
		}
	}
}
