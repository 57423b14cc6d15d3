package kvsemu

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MessageRecord is one signaling message the emulator saw on a channel.
type MessageRecord struct {
	// Time is when the emulator received (or, for "service", sent) it.
	Time time.Time `json:"time"`
	// From is "viewer", "master" or "service"; To is "master" or "viewer".
	From string `json:"from"`
	To   string `json:"to"`
	// ClientID is the viewer's client id: the sender of a viewer message,
	// the recipient of a master message, "" for a service message to the
	// master.
	ClientID string `json:"clientId,omitempty"`
	// Type is the action or message type, e.g. "SDP_OFFER".
	Type string `json:"type"`
	// Delivered reports that the message was handed to the recipient's
	// connection.
	Delivered bool `json:"delivered"`
	// Dropped says why an undelivered message will never be delivered:
	// "throttled", "oversize", "invalid", "expired", "overwritten",
	// "slow-consumer"; "" while it is delivered or still queued.
	Dropped string `json:"dropped,omitempty"`
}

// pending is a message queued for an absent recipient.
type pending struct {
	rec   *MessageRecord
	frame []byte
}

// channel is one signaling channel and its live connections.
type channel struct {
	name    string
	arn     string
	created time.Time
	ttl     time.Duration // MessageTtlSeconds, possibly sub-second when set from Go
	version string

	describeLimit *rate.Limiter // nil = unlimited
	iceLimit      *rate.Limiter
	viewerLimit   *rate.Limiter
	masterLimit   *rate.Limiter

	// mu guards everything below.
	mu       sync.Mutex
	deleted  bool
	master   *conn
	viewers  map[string]*conn
	toMaster []pending            // queued while no master is connected
	toViewer map[string][]pending // queued while that viewer is not connected
	log      []*MessageRecord
}

// newLimiter returns a token bucket of perSecond with a burst of at least 1,
// or nil when the limit is disabled (perSecond < 0).
func newLimiter(perSecond float64) *rate.Limiter {
	if perSecond < 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(1, int(math.Ceil(perSecond))))
}

// allow takes a token from l at now; a nil l always allows.
func allow(l *rate.Limiter, now time.Time) bool {
	return l == nil || l.AllowN(now, 1)
}

// validChannelName reports whether s matches [a-zA-Z0-9_.-]{1,256}.
func validChannelName(s string) bool { return validID(s) }

// ttlSeconds is MessageTtlSeconds as reported by the API.
func (ch *channel) ttlSeconds() int64 {
	return int64(math.Ceil(ch.ttl.Seconds()))
}

// CreateChannel creates a SINGLE_MASTER signaling channel and returns its
// ARN. messageTTL is the channel's MessageTtlSeconds; 0 means 60 s. Go
// callers may pass any positive duration (tests use short ones); the API
// accepts 5..120 s. It returns an error wrapping ErrExists,
// ErrInvalidArgument or ErrClosed.
func (e *Emulator) CreateChannel(name string, messageTTL time.Duration) (string, error) {
	if !validChannelName(name) {
		return "", fmt.Errorf("%w: channel name %q", ErrInvalidArgument, name)
	}
	if messageTTL < 0 {
		return "", fmt.Errorf("%w: message TTL %v", ErrInvalidArgument, messageTTL)
	}
	if messageTTL == 0 {
		messageTTL = defaultMessageTTL
	}
	now := e.cfg.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return "", ErrClosed
	}
	if _, ok := e.byName[name]; ok {
		return "", fmt.Errorf("%w: %s", ErrExists, name)
	}
	e.seq++
	l := e.cfg.Limits
	ch := &channel{
		name:    name,
		arn:     fmt.Sprintf("arn:aws:kinesisvideo:%s:%s:channel/%s/%d", e.cfg.Region, e.cfg.AccountID, name, now.UnixMilli()+e.seq),
		created: now,
		ttl:     messageTTL,
		version: strconv.FormatInt(now.UnixNano()+e.seq, 36),

		describeLimit: newLimiter(l.DescribePerSecond),
		iceLimit:      newLimiter(l.IceConfigPerSecond),
		viewerLimit:   newLimiter(l.ViewerConnectsPerSecond),
		masterLimit:   newLimiter(l.MasterConnectsPerSecond),
		viewers:       make(map[string]*conn),
		toViewer:      make(map[string][]pending),
	}
	e.channels[ch.arn] = ch
	e.byName[name] = ch
	e.log.Info("kvsemu: channel created", "channel", name, "arn", ch.arn)
	return ch.arn, nil
}

// DeleteChannel deletes a channel: its camera stops and every connection
// closes. It returns an error wrapping ErrNotFound.
func (e *Emulator) DeleteChannel(channelARN string) error {
	e.mu.Lock()
	ch, ok := e.channels[channelARN]
	if ok {
		delete(e.channels, channelARN)
		delete(e.byName, ch.name)
		delete(e.faults, channelARN)
	}
	e.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, channelARN)
	}
	_ = e.StopCamera(channelARN)
	ch.mu.Lock()
	ch.deleted = true
	conns := ch.connsLocked()
	ch.mu.Unlock()
	for _, c := range conns {
		c.stop(stopDeleted)
	}
	e.log.Info("kvsemu: channel deleted", "channel", ch.name)
	return nil
}

// channel returns the channel with this ARN.
func (e *Emulator) channel(arn string) (*channel, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.channels[arn]
	return ch, ok
}

func (e *Emulator) channelByName(name string) (*channel, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ch, ok := e.byName[name]
	return ch, ok
}

func (e *Emulator) allChannels() []*channel {
	e.mu.Lock()
	defer e.mu.Unlock()
	chs := make([]*channel, 0, len(e.channels))
	for _, ch := range e.channels {
		chs = append(chs, ch)
	}
	slices.SortFunc(chs, func(a, b *channel) int { return a.created.Compare(b.created) })
	return chs
}

// Messages returns the log of signaling messages on a channel, oldest first
// (at most the last 10,000). It returns nil for an unknown channel.
func (e *Emulator) Messages(channelARN string) []MessageRecord {
	ch, ok := e.channel(channelARN)
	if !ok {
		return nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	e.pruneAllLocked(ch, e.cfg.Now())
	out := make([]MessageRecord, len(ch.log))
	for i, r := range ch.log {
		out[i] = *r
	}
	return out
}

// connsLocked lists the live connections.
func (ch *channel) connsLocked() []*conn {
	var cs []*conn
	if ch.master != nil {
		cs = append(cs, ch.master)
	}
	for _, c := range ch.viewers {
		cs = append(cs, c)
	}
	return cs
}

// recordLocked appends a record to the bounded log.
func (ch *channel) recordLocked(r *MessageRecord) {
	ch.log = append(ch.log, r)
	if len(ch.log) > messageLogLimitPerChan {
		n := len(ch.log) - messageLogLimitPerChan
		ch.log = slices.Delete(ch.log, 0, n)
	}
}
