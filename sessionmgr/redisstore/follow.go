package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/viewersession/sessionmgr"
)

// The follower's timing.
const (
	// DefaultLinger is how long the follower stays subscribed to a
	// timeline after its last waiting reader left (a watcher between two
	// reads, an app that re-watches).
	DefaultLinger = 5 * time.Second
	// followHealth is how long the subscription connection may stay
	// silent before the follower pings it; a ping unanswered for as long
	// again means the connection is dead (a half-open TCP connection
	// gives no error), and it is replaced.
	followHealth = 15 * time.Second
	// recentMax is how many of a timeline's newest notified events the
	// follower keeps for its readers.
	recentMax = 32
	// subscribeWait is how long a reader of a new follow waits for its
	// subscription's confirmation before it reads the stream anyway.
	subscribeWait = time.Second
)

// errStoreClosed ends the waiting Events calls of a closed Store.
var errStoreClosed = fmt.Errorf("timeline follower: the store is closed: %w", sessionmgr.ErrUnavailable)

// follower is a Store's one reader of the timelines its callers wait on.
// Every Append publishes its event on the timeline's notification channel
// in the same script that adds it to the stream, and Delete publishes an
// empty message. The follower holds one subscription connection of its
// own (never one of the pool) subscribed to the channels of the timelines
// somebody waits on, keeps each timeline's newest notified events, and
// wakes the waiting readers, which take their events from memory, or read
// the stream (a short XRANGE on a pooled connection) when memory cannot
// prove it has everything after their sequence. See Events for why no
// event is lost or repeated.
//
// It runs two goroutines (the receiver and the controller) only while
// some timeline is followed: it starts on the first wait and stops a
// linger after the last timeline was dropped, or at Close.
type follower struct {
	rdb    redis.UniversalClient
	linger time.Duration

	mu      sync.Mutex
	follows map[string]*follow // by notification channel
	// ps is the subscription while running, else nil; stop is closed to
	// stop the run's goroutines.
	ps   *redis.PubSub
	stop chan struct{}
	// subscribe and unsubscribe are what the controller sends next.
	subscribe, unsubscribe []string
	kick                   chan struct{} // wakes the controller; buffered
	closed                 bool
	// live: a subscription was confirmed on the current connection, so
	// the next is expected within a round trip (see waitEvents).
	live bool
	done chan struct{} // closed by Close
	wg   sync.WaitGroup
}

// follow is one followed timeline.
type follow struct {
	id      sessionmgr.SessionID
	channel string
	// waiters counts the Events calls waiting on it; idle is when it last
	// fell to zero.
	waiters int
	idle    time.Time
	// active: the channel's subscription is confirmed on the current
	// connection, so every Append from now on is notified.
	active bool
	// recent holds the newest notified events (their seq and JSON),
	// oldest first and contiguous.
	recent []notified
	// recentAt is resync when recent's last event was notified in
	// sequence: while resync has not moved since and the subscription is
	// active, nothing after that event went unnotified (caughtUp).
	recentAt uint64
	// resync counts the times readers must read the stream again: the
	// subscription was confirmed (events appended before it were not
	// notified), the session was deleted, or a notification did not follow
	// on from recent.
	resync uint64
	// wake is closed and replaced whenever any of the above changes.
	wake chan struct{}
}

type notified struct {
	seq  uint64
	data string
}

func newFollower(rdb redis.UniversalClient, linger time.Duration) *follower {
	return &follower{
		rdb:     rdb,
		linger:  linger,
		follows: make(map[string]*follow),
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
}

// timelineChannel is the session's notification channel; a Pub/Sub
// channel, not a key (Redis Cluster broadcasts classic PUBLISH to every
// node, so the follower may subscribe on any).
func timelineChannel(id sessionmgr.SessionID) string { return prefix + "{" + string(id) + "}:tl" }

// join registers a waiting reader of id's timeline, subscribing to it
// (and starting the follower) when nobody followed it.
func (fl *follower) join(id sessionmgr.SessionID) (*follow, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return nil, errStoreClosed
	}
	if fl.stop == nil {
		fl.start()
	}
	ch := timelineChannel(id)
	f := fl.follows[ch]
	if f == nil {
		f = &follow{id: id, channel: ch, wake: make(chan struct{})}
		fl.follows[ch] = f
		fl.subscribe = append(fl.subscribe, ch)
		fl.poke()
	}
	f.waiters++
	return f, nil
}

// leave unregisters a reader that join registered.
func (fl *follower) leave(f *follow) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if f.waiters--; f.waiters == 0 {
		f.idle = time.Now()
	}
}

// look returns, under the follower's lock, f's buffered events after
// `after` (at most limit), whether the reader must read the stream (its
// last read is older than the last resync, or it is behind what memory
// holds), the resync count and the channel that wakes it.
func (fl *follower) look(f *follow, after uint64, limit int, readAt uint64) (evs []notified, read bool, resync uint64, wake <-chan struct{}) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	resync, wake = f.resync, f.wake
	if n := len(f.recent); n > 0 && f.recent[n-1].seq > after {
		first := f.recent[0].seq
		if first > after+1 {
			return nil, true, resync, wake // memory starts past the reader
		}
		evs = f.recent[after+1-first:]
		if limit > 0 && len(evs) > limit {
			evs = evs[:limit]
		}
		return append([]notified(nil), evs...), false, resync, wake
	}
	return nil, readAt != resync, resync, wake
}

// caughtUp reports whether a reader that has every event through after
// needs no read of the stream to start waiting: the subscription is
// active, the newest notified event is after's, and nothing has called for
// a read since it was notified (no confirmation, gap or delete).
// It also reports whether the reader should wait for the subscription's
// confirmation before it reads (not active yet, on a connection that
// confirms subscriptions), and returns resync, for the reader's later
// looks.
func (fl *follower) caughtUp(f *follow, after uint64) (ok, confirming bool, resync uint64) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	n := len(f.recent)
	return f.active && n > 0 && f.recent[n-1].seq == after && f.recentAt == f.resync, !f.active && fl.live, f.resync
}

// poke wakes the controller.
func (fl *follower) poke() {
	select {
	case fl.kick <- struct{}{}:
	default:
	}
}

// start starts a run: a subscription and its two goroutines. Called with
// mu held.
func (fl *follower) start() {
	fl.ps = fl.rdb.Subscribe(context.Background())
	fl.stop = make(chan struct{})
	stop := fl.stop
	fl.wg.Add(2)
	go func() {
		defer fl.wg.Done()
		fl.receive(stop)
	}()
	go func() {
		defer fl.wg.Done()
		fl.control(stop)
	}()
}

// halt ends the current run. Called with mu held.
func (fl *follower) halt() {
	if fl.stop == nil {
		return
	}
	close(fl.stop)
	_ = fl.ps.Close()
	fl.ps, fl.stop, fl.live = nil, nil, false
	fl.subscribe, fl.unsubscribe = nil, nil
}

// close stops the follower for good and wakes its readers, which fail
// with errStoreClosed.
func (fl *follower) close() {
	fl.mu.Lock()
	if !fl.closed {
		fl.closed = true
		close(fl.done)
		fl.halt()
	}
	fl.mu.Unlock()
	fl.wg.Wait()
}

// current returns the run's subscription, nil once stop is closed.
func (fl *follower) current(stop chan struct{}) *redis.PubSub {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stop != stop {
		return nil
	}
	return fl.ps
}

// receive reads the subscription until stop is closed. go-redis
// reconnects a broken subscription and subscribes its channels again; the
// follower marks every timeline inactive on an error and active again when
// its channel's subscription is confirmed.
func (fl *follower) receive(stop chan struct{}) {
	pinged := false
	backoff := 50 * time.Millisecond
	for {
		ps := fl.current(stop)
		if ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(context.Background(), followHealth)
		select {
		case <-stop:
			return
		default:
		}
		if err != nil {
			if isTimeout(err) && !pinged {
				pinged = true
				_ = ps.Ping(context.Background())
				continue
			}
			fl.lost(stop, ps, isTimeout(err))
			pinged = false
			select {
			case <-stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		pinged, backoff = false, 50*time.Millisecond
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				fl.confirm(m.Channel)
			}
		case *redis.Message:
			fl.notify(m.Channel, m.Payload)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// lost marks every timeline inactive after the subscription failed. A
// connection that stopped answering pings is replaced by a new
// subscription to every followed channel.
func (fl *follower) lost(stop chan struct{}, ps *redis.PubSub, silent bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stop != stop {
		return
	}
	fl.live = false
	for _, f := range fl.follows {
		f.active = false
	}
	if !silent {
		return
	}
	channels := make([]string, 0, len(fl.follows))
	for ch := range fl.follows {
		channels = append(channels, ch)
	}
	fl.ps = fl.rdb.Subscribe(context.Background())
	fl.subscribe = channels // the controller subscribes them
	fl.poke()
	go func() { _ = ps.Close() }()
}

// confirm marks a timeline's subscription active, and has its readers
// read the stream once more (what was appended before the subscription
// was not notified). Every confirmation counts, even of an active one: a
// timeline dropped and followed again may see the confirmation of an
// earlier SUBSCRIBE before its own, and the read after its own is the one
// that matters.
func (fl *follower) confirm(ch string) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.live = true
	if f := fl.follows[ch]; f != nil {
		f.active = true
		f.resync++
		f.wakeLocked()
	}
}

// notify takes one notification: an appended event (its JSON), or an
// empty message for a deleted session.
func (fl *follower) notify(ch, payload string) {
	var seq uint64
	if payload != "" {
		var ok bool
		if seq, ok = notifiedSeq(payload); !ok {
			payload = "" // unreadable: have the readers read the stream
		}
	}
	fl.mu.Lock()
	defer fl.mu.Unlock()
	f := fl.follows[ch]
	if f == nil {
		return
	}
	switch n := len(f.recent); {
	case payload == "":
		f.recent = nil
		f.resync++
	case n == 0 || seq == f.recent[n-1].seq+1:
		if n == recentMax {
			copy(f.recent, f.recent[1:])
			f.recent = f.recent[:n-1]
		}
		f.recent = append(f.recent, notified{seq: seq, data: payload})
		f.recentAt = f.resync
	case seq <= f.recent[n-1].seq:
		return // already known
	default: // a gap: something was not notified
		f.recent = append(f.recent[:0], notified{seq: seq, data: payload})
		f.resync++
	}
	f.wakeLocked()
}

// notifiedSeq is a notified event's seq. Version 2 writes it second,
// after the version ({"v":2,"seq":N,...): read there without parsing the
// rest (the readers decode the event; this runs for every event of every
// followed timeline). Anything else, version 1's "Seq" included (JSON keys
// match either case), is parsed.
func notifiedSeq(payload string) (uint64, bool) {
	const head = `{"v":2,"seq":`
	if rest, ok := strings.CutPrefix(payload, head); ok {
		if i := strings.IndexAny(rest, ",}"); i > 0 {
			if seq, err := strconv.ParseUint(rest[:i], 10, 64); err == nil {
				return seq, true
			}
		}
	}
	var h struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(payload), &h); err != nil {
		return 0, false
	}
	return h.Seq, true
}

func (f *follow) wakeLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// control sends the subscribe and unsubscribe commands, in batches, and
// drops the timelines nobody waited on for a linger; with none left it
// ends the run.
func (fl *follower) control(stop chan struct{}) {
	t := time.NewTicker(max(fl.linger/2, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-fl.kick:
		case <-t.C:
			if fl.sweep(stop) {
				return
			}
		}
		fl.mu.Lock()
		if fl.stop != stop {
			fl.mu.Unlock()
			return
		}
		ps, sub, unsub := fl.ps, fl.subscribe, fl.unsubscribe
		fl.subscribe, fl.unsubscribe = nil, nil
		fl.mu.Unlock()
		// Errors are left to the receiver: go-redis keeps the channels
		// and subscribes them when it reconnects.
		ctx, cancel := context.WithTimeout(context.Background(), DefaultTimeout)
		if len(unsub) > 0 {
			_ = ps.Unsubscribe(ctx, unsub...)
		}
		if len(sub) > 0 {
			_ = ps.Subscribe(ctx, sub...)
		}
		cancel()
	}
}

// sweep drops the timelines nobody waited on for a linger. With nothing
// left to follow it ends the run and reports so.
func (fl *follower) sweep(stop chan struct{}) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.stop != stop {
		return true
	}
	now := time.Now()
	for ch, f := range fl.follows {
		if f.waiters == 0 && now.Sub(f.idle) >= fl.linger {
			delete(fl.follows, ch)
			fl.unsubscribe = append(fl.unsubscribe, ch)
		}
	}
	if len(fl.follows) == 0 {
		fl.halt()
		return true
	}
	if len(fl.unsubscribe) > 0 {
		fl.poke()
	}
	return false
}

// following returns how many timelines are followed and how many of
// those are confirmed (for tests).
func (fl *follower) following() (n, active int) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for _, f := range fl.follows {
		n++
		if f.active {
			active++
		}
	}
	return n, active
}

// waitEvents is Events with wait: it returns the events after `after`
// (at most limit) as soon as there are some.
//
// Why nothing is lost: a reader reads the stream when it starts, and again
// whenever the timeline's resync count moved since its last read. The
// count moves on every confirmation of the channel's subscription, so the
// last read of a reader that waits is after the confirmation of a
// SUBSCRIBE no UNSUBSCRIBE followed, and every Append committed
// after that read is notified, in order (the notification is published by
// the script that appends). Notified events are kept only while they
// follow on from each other; a gap moves the count. So when memory holds
// nothing after `after` and the count has not moved, nothing was appended
// after `after`. Why nothing is repeated: every event returned has
// Seq > after and they are contiguous, from memory or from the stream.
func (s *Store) waitEvents(ctx context.Context, id sessionmgr.SessionID, after uint64, limit int) ([]sessionmgr.Event, error) {
	f, err := s.tl.join(id)
	if err != nil {
		return nil, err
	}
	defer s.tl.leave(f)
	// Read the stream again now and then even without a reason: a
	// session whose record expired publishes nothing.
	recheck := time.NewTimer(jitter(s.slice))
	defer recheck.Stop()
	// A reader that follows on from the last notified event (a watcher
	// back for more) waits without reading. On a timeline whose
	// subscription is not confirmed yet (a new follow) over a connection
	// that confirms others, a read now would have to be repeated once it
	// is (the confirmation moves resync): the reader waits for that, for
	// at most subscribeWait. Any other reads first (so a reader in an
	// outage fails at once).
	readAt, read := uint64(0), true
	var unconfirmed <-chan time.Time
	switch ok, confirming, resync := s.tl.caughtUp(f, after); {
	case ok:
		readAt, read = resync, false
	case confirming:
		readAt, read = resync, false
		t := time.NewTimer(subscribeWait)
		defer t.Stop()
		unconfirmed = t.C
	}
	for {
		buffered, mustRead, resync, wake := s.tl.look(f, after, limit, readAt)
		if len(buffered) > 0 {
			return decodeNotified(id, after, buffered)
		}
		if read || mustRead {
			readAt = resync
			evs, err := s.events(ctx, id, after, limit)
			if err != nil || len(evs) > 0 {
				return evs, err
			}
			read = false
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.tl.done:
			return nil, errStoreClosed
		case <-wake:
		case <-unconfirmed:
			read, unconfirmed = true, nil // still unconfirmed: read anyway
		case <-recheck.C:
			read = true
			recheck.Reset(jitter(s.slice))
		}
	}
}

// jitter spreads d by up to a fifth either way, so that readers that
// started together do not read together.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

// decodeNotified decodes notified events, checking that they follow on
// from `after`.
func decodeNotified(id sessionmgr.SessionID, after uint64, ns []notified) ([]sessionmgr.Event, error) {
	evs := make([]sessionmgr.Event, len(ns))
	for i, n := range ns {
		e, err := decodeEvent(n.data)
		if err != nil {
			return nil, fmt.Errorf("decode event %d of session %s: %w", n.seq, id, err)
		}
		evs[i] = e
		if evs[i].Seq != after+1+uint64(i) {
			return nil, fmt.Errorf("session %s: notified event %d where %d was due", id, evs[i].Seq, after+1+uint64(i))
		}
	}
	return evs, nil
}
