package sessionmgr

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Config configures a Manager.
type Config struct {
	// Defaults fill the zero fields of each session's Options.
	// Default: DefaultOptions().
	Defaults Options
	// MaxPerChannel is the live-session limit per channel. Default 10.
	MaxPerChannel int
	// MinTimer is the smallest duration a session option may take (answer
	// timeout, resume grace, ...). Default 1s; tests lower it.
	MinTimer time.Duration
	// ReplicaID names this replica as a session owner. Default "local".
	ReplicaID string
	// LeaseRenew is how often a session's clientId lease is renewed: by
	// the Manager, every session's together, when its ClientIDs is a
	// LeaseRenewer, else by each session. Default 10s (the allocator's
	// lease lives 30s).
	LeaseRenew time.Duration
	// ICERefreshBefore: ICE servers this close to expiry are refetched
	// before they are handed to the app. Default 30s.
	ICERefreshBefore time.Duration
	// DialsPerSecond paces KVS signaling connects per channel (KVS allows 3
	// per second per channel). Default 2.5.
	DialsPerSecond float64
	// MaxCandidates bounds the app's buffered candidates per offer.
	// Default 64.
	MaxCandidates int
	// StoreTimeout bounds each store call of a session actor. Default 2s.
	StoreTimeout time.Duration
	// OwnerCheck is how often a replica reads the sessions other replicas
	// took from it, to fence their actors (cluster mode; one store call,
	// not one per session), and twice how often it heartbeats. Default 2s.
	OwnerCheck time.Duration
	// ReplicaTTL is how long a replica counts as alive after its last
	// heartbeat; a session of a replica silent for longer is taken over by
	// the replica its app comes back on. Default 6s.
	ReplicaTTL time.Duration
	// SweepEvery is how often a replica looks for live sessions of dead
	// replicas to adopt, in their owner indexes (cluster mode). Default 5s.
	SweepEvery time.Duration
	// ForwardTimeout bounds the wait for a forwarded request's reply.
	// Default 5s.
	ForwardTimeout time.Duration
	// TokenHash gives the hash a new session's record keeps for its id
	// (Session.TokenHash): the hash of the token the service hands out for
	// it (service.Tokens.Hash). Create calls it once per session, before the
	// record's one write; the Manager never sees a token or a secret and
	// compares nothing with the hash. Default: a random hash per session,
	// which no token opens.
	TokenHash func(SessionID) []byte
	// KVSTimeout bounds each KVS call of a session actor (resolve, ICE
	// servers, send). Default 15s.
	KVSTimeout time.Duration
	// RecoveryHintTTL is how long the recovery step that worked for a
	// channel's master is remembered (each recovery that works renews it).
	// Default 24h.
	RecoveryHintTTL time.Duration
	// HintTimeout bounds the read of a channel's remembered step when a
	// recovery starts; past it the ladder starts at the ICE restart.
	// Default 250ms.
	HintTimeout time.Duration
}

// DefaultOptions are the documented per-session defaults.
func DefaultOptions() Options {
	return Options{
		AnswerTimeout:     30 * time.Second,
		RetryDelay:        6 * time.Second,
		MaxAttempts:       2,
		Recovery:          RecoveryAuto,
		ResumeGrace:       30 * time.Second,
		ICERestartTimeout: 1500 * time.Millisecond,
		DisconnectedGrace: 5 * time.Second,
		MaxLifetime:       12 * time.Hour,

		NewPeerConnectionTimeout: 2 * time.Second,
		MediaStallTimeout:        4 * time.Second,
	}
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Defaults:         DefaultOptions(),
		MaxPerChannel:    10,
		MinTimer:         time.Second,
		ReplicaID:        "local",
		LeaseRenew:       10 * time.Second,
		ICERefreshBefore: 30 * time.Second,
		DialsPerSecond:   2.5,
		MaxCandidates:    64,
		StoreTimeout:     2 * time.Second,
		KVSTimeout:       15 * time.Second,
		OwnerCheck:       2 * time.Second,
		ReplicaTTL:       6 * time.Second,
		ForwardTimeout:   5 * time.Second,
		SweepEvery:       5 * time.Second,
		RecoveryHintTTL:  24 * time.Hour,
		HintTimeout:      250 * time.Millisecond,
	}
}

// options fills o's zero fields from the defaults and checks every bound;
// the error is a FieldError naming the first bad field.
func (c Config) options(o Options) (Options, error) {
	o = fillOptions(o, c.Defaults)
	// The ladder's steps are short: they may go below MinTimer, to 500ms.
	minStep := minDur(500*time.Millisecond, c.MinTimer)
	bounds := []struct {
		field    string
		v        time.Duration
		min, max time.Duration
	}{
		{"options.answer_timeout", o.AnswerTimeout, c.MinTimer, 300 * time.Second},
		{"options.retry_delay", o.RetryDelay, 0, 300 * time.Second},
		{"options.resume_grace", o.ResumeGrace, c.MinTimer, 600 * time.Second},
		{"options.ice_restart_timeout", o.ICERestartTimeout, minStep, 60 * time.Second},
		{"options.new_peer_connection_timeout", o.NewPeerConnectionTimeout, minStep, 60 * time.Second},
		{"options.media_stall_timeout", o.MediaStallTimeout, c.MinTimer, 60 * time.Second},
		{"options.disconnected_grace", o.DisconnectedGrace, c.MinTimer, 60 * time.Second},
		{"options.max_lifetime", o.MaxLifetime, minDur(time.Minute, c.MinTimer*60), 24 * time.Hour},
	}
	for _, b := range bounds {
		if b.v < b.min || b.v > b.max {
			return o, invalid(b.field, "%v is outside %v..%v", b.v, b.min, b.max)
		}
	}
	if o.MaxAttempts < 1 || o.MaxAttempts > 5 {
		return o, invalid("options.max_attempts", "%d is outside 1..5", o.MaxAttempts)
	}
	if o.Recovery < RecoveryAuto || o.Recovery > RecoveryFullReconnect {
		return o, invalid("options.recovery_policy", "unknown policy %d", o.Recovery)
	}
	return o, nil
}

// fillOptions fills o's zero fields from d.
func fillOptions(o, d Options) Options {
	if o.AnswerTimeout == 0 {
		o.AnswerTimeout = d.AnswerTimeout
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = d.RetryDelay
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = d.MaxAttempts
	}
	if o.Recovery == RecoveryDefault {
		o.Recovery = d.Recovery
	}
	if o.ResumeGrace == 0 {
		o.ResumeGrace = d.ResumeGrace
	}
	if o.ICERestartTimeout == 0 {
		o.ICERestartTimeout = d.ICERestartTimeout
	}
	if o.DisconnectedGrace == 0 {
		o.DisconnectedGrace = d.DisconnectedGrace
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = d.MaxLifetime
	}
	if o.NewPeerConnectionTimeout == 0 {
		o.NewPeerConnectionTimeout = d.NewPeerConnectionTimeout
	}
	if o.MediaStallTimeout == 0 {
		o.MediaStallTimeout = d.MediaStallTimeout
	}
	return o
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// validViewerID checks a viewer id: 1..256 bytes of valid UTF-8 without
// control characters.
func validViewerID(v string) error {
	switch {
	case v == "":
		return invalid("viewer_id", "required")
	case len(v) > 256:
		return invalid("viewer_id", "%d bytes, at most 256", len(v))
	case !utf8.ValidString(v):
		return invalid("viewer_id", "not valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return invalid("viewer_id", "contains control character %U", r)
		}
	}
	return nil
}

// validChannelRef checks that a channel is named by ARN or by name.
func validChannelRef(r ChannelRef) error {
	switch {
	case r.ARN == "" && r.Name == "":
		return invalid("channel", "set arn, or name (and region)")
	case r.ARN != "" && (r.Name != "" || r.Region != ""):
		return invalid("channel", "set arn or name+region, not both")
	case len(r.ARN) > 1024:
		return invalid("channel.arn", "%d characters, at most 1024", len(r.ARN))
	case r.ARN != "" && !validARN(r.ARN):
		return invalid("channel.arn", "%q is not a KVS channel ARN (arn:aws:kinesisvideo:<region>:<account>:channel/<name>/<id>)", r.ARN)
	case r.Name != "" && !validName(r.Name):
		return invalid("channel.name", "%q: want 1..256 characters of [a-zA-Z0-9_.-]", r.Name)
	case r.Region != "" && !ValidRegion(r.Region):
		return fmt.Errorf("%w: channel.region %s is not an AWS region name (such as us-west-2)", ErrInvalidRegion, quoteShort(r.Region))
	case r.ARN != "" && !ValidRegion(strings.Split(r.ARN, ":")[3]):
		return fmt.Errorf("%w: channel.arn's region %s is not an AWS region name (such as us-west-2)", ErrInvalidRegion, quoteShort(strings.Split(r.ARN, ":")[3]))
	}
	return nil
}

// ValidRegion reports whether s has the form of an AWS region name:
// lower-case words joined by '-' ending in a number (us-west-2,
// us-gov-east-1, cn-north-1), at most 32 bytes.
func ValidRegion(s string) bool {
	if len(s) < 4 || len(s) > 32 {
		return false
	}
	parts := strings.Split(s, "-")
	if len(parts) < 3 {
		return false
	}
	for i, p := range parts {
		if p == "" {
			return false
		}
		for j := 0; j < len(p); j++ {
			c := p[j]
			last := i == len(parts)-1
			if last && (c < '0' || c > '9') || !last && (c < 'a' || c > 'z') {
				return false
			}
		}
	}
	return true
}

// quoteShort quotes s for a message: Go syntax (control characters such
// as CR and LF escaped), cut at 64 bytes.
func quoteShort(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validARN checks arn:<partition>:kinesisvideo:<region>:<account>:channel/<name>/<digits>.
func validARN(s string) bool {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return false
	}
	partition, service, region, account, resource := parts[1], parts[2], parts[3], parts[4], parts[5]
	if partition == "" || service != "kinesisvideo" || region == "" || account == "" {
		return false
	}
	rp := strings.SplitN(resource, "/", 3)
	if len(rp) != 3 || rp[0] != "channel" || !validName(rp[1]) || rp[2] == "" {
		return false
	}
	for i := 0; i < len(rp[2]); i++ {
		if rp[2][i] < '0' || rp[2][i] > '9' {
			return false
		}
	}
	return true
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	// Each zero default takes the documented one (a caller that predates
	// an option leaves it zero).
	c.Defaults = fillOptions(c.Defaults, d.Defaults)
	if c.MaxPerChannel == 0 {
		c.MaxPerChannel = d.MaxPerChannel
	}
	if c.MinTimer == 0 {
		c.MinTimer = d.MinTimer
	}
	if c.ReplicaID == "" {
		c.ReplicaID = d.ReplicaID
	}
	if c.LeaseRenew == 0 {
		c.LeaseRenew = d.LeaseRenew
	}
	if c.ICERefreshBefore == 0 {
		c.ICERefreshBefore = d.ICERefreshBefore
	}
	if c.DialsPerSecond == 0 {
		c.DialsPerSecond = d.DialsPerSecond
	}
	if c.MaxCandidates == 0 {
		c.MaxCandidates = d.MaxCandidates
	}
	if c.StoreTimeout == 0 {
		c.StoreTimeout = d.StoreTimeout
	}
	if c.KVSTimeout == 0 {
		c.KVSTimeout = d.KVSTimeout
	}
	if c.OwnerCheck == 0 {
		c.OwnerCheck = d.OwnerCheck
	}
	if c.ReplicaTTL == 0 {
		c.ReplicaTTL = d.ReplicaTTL
	}
	if c.ForwardTimeout == 0 {
		c.ForwardTimeout = d.ForwardTimeout
	}
	if c.SweepEvery == 0 {
		c.SweepEvery = d.SweepEvery
	}
	if c.RecoveryHintTTL == 0 {
		c.RecoveryHintTTL = d.RecoveryHintTTL
	}
	if c.HintTimeout == 0 {
		c.HintTimeout = d.HintTimeout
	}
	if c.TokenHash == nil {
		c.TokenHash = noToken
	}
	return c
}
