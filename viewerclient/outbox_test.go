package viewerclient

import (
	"errors"
	"slices"
	"testing"
	"time"

	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// seqs returns the app sequences and kinds of what next hands stream,
// until it has nothing.
func sendAll(o *outbox, stream uint64) (seqs []uint64, kinds []msgKind) {
	for {
		m, ok := o.next(stream, time.Now())
		if !ok {
			return seqs, kinds
		}
		seqs, kinds = append(seqs, m.seq), append(kinds, m.kind)
	}
}

// Numbers are given when a message is first sent, so dropping queued
// messages leaves no hole; a second stream resends what is unacknowledged,
// in order, with the same numbers, then new messages; acks drop messages
// and tell their waiters.
func TestOutboxNumbersResendsAndAcks(t *testing.T) {
	o := newOutbox()
	if o.push(&outMsg{kind: kindOffer}) {
		t.Fatal("push before start = true, want false")
	}
	o.start()
	offerDone := make(chan error, 1)
	o.push(&outMsg{kind: kindOffer, done: offerDone})
	o.push(&outMsg{kind: kindCandidate, gen: 1})
	o.push(&outMsg{kind: kindCandidate, gen: 1})
	o.removeQueued(func(m *outMsg) bool { return m.kind == kindCandidate }) // a newer offer replaced them
	o.push(&outMsg{kind: kindMediaReport})
	o.push(&outMsg{kind: kindStateReport})
	o.push(&outMsg{kind: kindMediaReport}) // replaces the queued one

	seqs, kinds := sendAll(o, 1)
	if !slices.Equal(seqs, []uint64{1, 2, 3}) || !slices.Equal(kinds, []msgKind{kindOffer, kindStateReport, kindMediaReport}) {
		t.Fatalf("stream 1 sent %v %v; want 1 2 3: offer, state_report, media_report", seqs, kinds)
	}
	if seqs, _ := sendAll(o, 1); len(seqs) != 0 {
		t.Errorf("stream 1 sent %v again, want nothing", seqs)
	}
	if o.oldestSent(1).IsZero() || !o.oldestSent(2).IsZero() {
		t.Error("oldestSent: want a time for stream 1 and none for stream 2")
	}

	o.ack(1)
	if err := <-offerDone; err != nil {
		t.Errorf("the offer's waiter got %v, want nil once acked", err)
	}
	o.ack(1) // repeats and old acks change nothing
	o.ack(0)
	o.push(&outMsg{kind: kindLeave})
	seqs, kinds = sendAll(o, 2)
	if !slices.Equal(seqs, []uint64{2, 3, 4}) || kinds[2] != kindLeave {
		t.Fatalf("stream 2 sent %v %v; want the unacknowledged 2 3 again, then the leave as 4", seqs, kinds)
	}
	last, acked, pending := o.sequences()
	if last != 4 || acked != 1 || pending != 3 {
		t.Errorf("sequences() = %d, %d, %d; want 4, 1, 3", last, acked, pending)
	}
	o.ack(9) // more than was sent: everything
	if _, acked, pending := o.sequences(); acked != 9 || pending != 0 {
		t.Errorf("after ack(9): acked, pending = %d, %d; want 9, 0", acked, pending)
	}
}

// Signal mode settles a message by its own call: taken, or refused; either
// way it is not resent.
func TestOutboxSettle(t *testing.T) {
	o := newOutbox()
	o.start()
	aDone, bDone := make(chan error, 1), make(chan error, 1)
	o.push(&outMsg{kind: kindNetworkChanged, done: aDone})
	o.push(&outMsg{kind: kindStateReport, done: bDone})
	ma, _ := o.next(1, time.Now())
	mb, _ := o.next(1, time.Now())
	refused := errors.New("refused")
	o.settle(mb, refused)
	o.settle(ma, nil)
	if err := <-aDone; err != nil {
		t.Errorf("a: %v, want nil", err)
	}
	if err := <-bDone; !errors.Is(err, refused) {
		t.Errorf("b: %v, want the refusal", err)
	}
	if seqs, _ := sendAll(o, 2); len(seqs) != 0 {
		t.Errorf("a new stream resent %v, want nothing", seqs)
	}
}

// Stopping tells every waiter; a leave counts as delivered when the caller
// says so (the session ended CLOSED); numbering goes on after the run.
func TestOutboxStop(t *testing.T) {
	o := newOutbox()
	o.start()
	leaveDone, ncDone := make(chan error, 1), make(chan error, 1)
	o.push(&outMsg{kind: kindNetworkChanged, done: ncDone})
	o.next(1, time.Now())
	o.push(&outMsg{kind: kindLeave, done: leaveDone})
	o.stop(func(m *outMsg) bool { return m.kind == kindLeave })
	if err := <-leaveDone; err != nil {
		t.Errorf("leave: %v, want nil", err)
	}
	if err := <-ncDone; !errors.Is(err, ErrStopped) {
		t.Errorf("network_changed: %v, want ErrStopped", err)
	}
	if o.push(&outMsg{kind: kindLeave}) {
		t.Error("push after stop = true, want false")
	}
	m := &outMsg{kind: kindLeave}
	o.number(m)
	if m.seq != 2 {
		t.Errorf("a message after the run got %d, want 2", m.seq)
	}
}

// A message whose Signal call is out learns its outcome from the call, not
// from an ack that overtakes the reply (the refusal wins); if the call is
// cut short, the ack that covered it tells its waiter.
func TestOutboxCallOutcomeWins(t *testing.T) {
	o := newOutbox()
	o.start()
	refusedDone, cutDone := make(chan error, 1), make(chan error, 1)
	o.push(&outMsg{kind: kindNetworkChanged, done: refusedDone})
	o.push(&outMsg{kind: kindStateReport, done: cutDone})
	refusedMsg, _ := o.call(1, time.Now())
	o.ack(1) // an event's ack overtakes the reply
	select {
	case err := <-refusedDone:
		t.Fatalf("the waiter got %v before the call's reply", err)
	default:
	}
	refused := errors.New("refused")
	o.settle(refusedMsg, refused)
	if err := <-refusedDone; !errors.Is(err, refused) {
		t.Errorf("outcome %v, want the refusal", err)
	}
	sent := time.Now()
	cut, _ := o.call(1, sent)
	o.ack(2)
	// Acknowledged, but the call is still out: the ack timeout still runs.
	if got := o.oldestSent(1); !got.Equal(sent) {
		t.Errorf("oldestSent with an acknowledged call out = %v, want %v", got, sent)
	}
	o.abandon(cut)
	if got := o.oldestSent(1); !got.IsZero() {
		t.Errorf("oldestSent after the call = %v, want zero", got)
	}
	if err := <-cutDone; err != nil {
		t.Errorf("outcome of an acknowledged message whose call was cut short: %v, want nil", err)
	}
	if seqs, _ := sendAll(o, 2); len(seqs) != 0 {
		t.Errorf("a new stream resent %v, want nothing", seqs)
	}
}

// A media report resent after a resume carries the newest counters: the
// old ones, received at the resume, would show the service video growing
// then, however long ago it stopped (found on real links: a Wi-Fi fade
// ended in a needless recovery).
func TestOutboxResendsCurrentMedia(t *testing.T) {
	o := newOutbox()
	o.start()
	o.push(&outMsg{kind: kindMediaReport, media: &vspb.MediaReport{PeerConnectionId: 1, PacketsReceived: 100}})
	if m, _ := o.next(1, time.Now()); m.media.GetPacketsReceived() != 100 {
		t.Fatalf("first send carries %d packets, want 100", m.media.GetPacketsReceived())
	}
	o.push(&outMsg{kind: kindMediaReport, media: &vspb.MediaReport{PeerConnectionId: 1, PacketsReceived: 100}})
	o.next(1, time.Now())
	// The stream died; video stopped at 100 packets and came back: 180 now.
	o.push(&outMsg{kind: kindMediaReport, media: &vspb.MediaReport{PeerConnectionId: 1, PacketsReceived: 180}})
	var got []uint64
	for {
		m, ok := o.next(2, time.Now())
		if !ok {
			break
		}
		got = append(got, m.media.GetPacketsReceived())
	}
	if !slices.Equal(got, []uint64{180, 180, 180}) {
		t.Errorf("resent reports carry %v packets, want the current 180 in each", got)
	}
}
