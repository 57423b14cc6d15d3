package viewerclient

import (
	"sync"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// outbox holds the app's messages to the service and gives each its app
// sequence number: 1, 2, 3 ... per session, across streams, connections and
// modes. A message is numbered when a sender first takes it, so a message
// dropped before that (a candidate of an offer that was replaced, a media
// report superseded by a newer one) leaves no hole in the numbering. A
// numbered message stays until the service acknowledges it (ack), or, in
// Signal mode, until its own call is answered (settle); every stream sends,
// in order, each unacknowledged message it has not sent yet, so a resumed
// stream resends what the service may not have, with the same numbers.
//
// The outbox belongs to the Client and outlives Run (numbers keep counting
// for a Leave after Run); it takes new messages only while Run is running.
// Safe for concurrent use.
type outbox struct {
	ready chan struct{} // holds a token while a sender may have work

	// mu guards the fields below.
	mu      sync.Mutex
	open    bool      // Run is running: push takes messages
	queued  []*outMsg // not numbered yet, in order
	unacked []*outMsg // numbered, not acknowledged, ascending sequence
	last    uint64    // the last number given
	acked   uint64    // the highest number the service acknowledged
	// The Signal call out, if any (acknowledged or not, a call that does
	// not return blocks the sender): its message.
	calling *outMsg
	// media is the newest media report pushed: a report resent after a
	// resume carries it, not the counters of when it was first sent.
	media *vspb.MediaReport
}

func newOutbox() *outbox { return &outbox{ready: make(chan struct{}, 1)} }

// start opens the outbox for a run.
func (o *outbox) start() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open = true
}

// push queues m and reports whether the outbox took it (false when no Run
// is running). A media report replaces one still queued: only the newest
// progress matters.
func (o *outbox) push(m *outMsg) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.open {
		return false
	}
	if m.kind == kindMediaReport {
		o.queued = dropKind(o.queued, kindMediaReport)
		o.media = m.media
	}
	o.queued = append(o.queued, m)
	o.signalLocked()
	return true
}

func dropKind(ms []*outMsg, k msgKind) []*outMsg {
	kept := ms[:0]
	for _, m := range ms {
		if m.kind != k {
			kept = append(kept, m)
		}
	}
	clear(ms[len(kept):])
	return kept
}

func (o *outbox) signalLocked() {
	select {
	case o.ready <- struct{}{}:
	default:
	}
}

// next returns the next message for the stream whose id is stream: the
// oldest unacknowledged message not yet sent on it, else the next queued
// one, numbered now. It records the send (stream and time) before the
// caller sends, so that a send that blocks counts towards the ack timeout.
func (o *outbox) next(stream uint64, now time.Time) (*outMsg, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.unacked {
		if m.sentOn != stream {
			m.sentOn, m.sentAt = stream, now
			if m.kind == kindMediaReport && o.media != nil {
				// A resent report shows the counters as they are now:
				// old ones would show the service video growing at the
				// resume (receipt) time, however long ago it stopped.
				m.media = o.media
			}
			return m, true
		}
	}
	if len(o.queued) == 0 {
		return nil, false
	}
	m := o.queued[0]
	o.queued[0] = nil
	o.queued = o.queued[1:]
	o.last++
	m.seq = o.last
	m.sentOn, m.sentAt = stream, now
	o.unacked = append(o.unacked, m)
	return m, true
}

// number gives m the next number without keeping it: a message sent
// outside Run (one Signal call).
func (o *outbox) number(m *outMsg) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.last++
	m.seq = o.last
}

// ack records that the service handled every message up to seq: they are
// dropped, and whoever waits for them is told they were delivered (a
// message whose Signal call is still out learns its outcome from the
// call's reply, which may be a refusal).
func (o *outbox) ack(seq uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq <= o.acked {
		return
	}
	o.acked = seq
	n := 0
	for n < len(o.unacked) && o.unacked[n].seq <= seq {
		if m := o.unacked[n]; m.calling {
			m.acked = true
		} else {
			m.finishLocked(nil)
		}
		n++
	}
	if n > 0 {
		clear(o.unacked[:n])
		o.unacked = o.unacked[n:]
	}
}

// call is next for a Signal call: the message it returns is settled by
// the call (settle, or abandon if the call is cut short).
func (o *outbox) call(stream uint64, now time.Time) (*outMsg, bool) {
	m, ok := o.next(stream, now)
	if ok {
		o.mu.Lock()
		m.calling = true
		o.calling = m
		o.mu.Unlock()
	}
	return m, ok
}

// settle drops m, whose own call the service answered (Signal mode): err
// is nil when it was taken, the service's refusal otherwise. Either way it
// was handled and is not resent.
func (o *outbox) settle(m *outMsg, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, u := range o.unacked {
		if u == m {
			o.unacked = append(o.unacked[:i], o.unacked[i+1:]...)
			break
		}
	}
	m.calling = false
	if o.calling == m {
		o.calling = nil
	}
	m.finishLocked(err)
}

// abandon records that m's Signal call was cut short without a reply: m
// stays for the next stream, unless an ack covered it meanwhile, which
// then tells its waiter.
func (o *outbox) abandon(m *outMsg) {
	o.mu.Lock()
	defer o.mu.Unlock()
	m.calling = false
	if o.calling == m {
		o.calling = nil
	}
	if m.acked {
		m.finishLocked(nil)
	}
}

// oldestSent returns when the oldest message sent on stream and not
// answered yet was sent (zero when there is none): the ack timeout runs
// from it. That is the oldest unacknowledged one, or the Signal call out
// if older (a call whose message an event acknowledged still blocks the
// sender until its reply comes).
func (o *outbox) oldestSent(stream uint64) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	var oldest time.Time
	if c := o.calling; c != nil && c.sentOn == stream {
		oldest = c.sentAt
	}
	for _, m := range o.unacked {
		if m.sentOn == stream {
			if oldest.IsZero() || m.sentAt.Before(oldest) {
				oldest = m.sentAt
			}
			break
		}
	}
	return oldest
}

// removeQueued drops the queued (not yet numbered) messages drop selects.
func (o *outbox) removeQueued(drop func(*outMsg) bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	kept := o.queued[:0]
	for _, m := range o.queued {
		if !drop(m) {
			kept = append(kept, m)
		}
	}
	clear(o.queued[len(kept):])
	o.queued = kept
}

// sequences returns the last number given and the highest acknowledged.
func (o *outbox) sequences() (last, acked uint64, pending int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last, o.acked, len(o.unacked) + len(o.queued)
}

// stop closes the outbox at the end of a run and tells whoever waits for
// a message still in it: nil when delivered(m) says the message's purpose
// was served (a leave once the session is CLOSED), ErrStopped otherwise.
// Numbers are never reused: a Leave after Run continues from the last one.
func (o *outbox) stop(delivered func(*outMsg) bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.open = false
	for _, m := range append(o.unacked, o.queued...) {
		if delivered(m) {
			m.finishLocked(nil)
		} else {
			m.finishLocked(ErrStopped)
		}
	}
	o.queued, o.unacked = nil, nil
}
