package sessionmgr_test

import (
	"errors"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/viewersession/sessionmgr"
)

// The app's sequenced messages are handled at most once: a repeat (a
// resend after a resume) is acknowledged and not applied, out-of-order
// arrivals are acknowledged once contiguous, and the acknowledgement is
// stored with the events the message caused.
func TestAppSequenceAtMostOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{})
		s := h.create(t, "acker")
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		send := func(msg sessionmgr.AppMessage) (sessionmgr.Session, error) {
			t.Helper()
			got, err := h.m.Send(t.Context(), s.ID, msg)
			synctest.Wait()
			return got, err
		}
		cand := func(n uint64) sessionmgr.AppMessage {
			return sessionmgr.AppMessage{AppSeq: n, Candidate: &sessionmgr.Candidate{Candidate: "candidate:1"}}
		}

		got, err := send(sessionmgr.AppMessage{AppSeq: 1, Offer: offer})
		if err != nil || got.AckedAppSeq != 1 {
			t.Fatalf("offer #1: acked %d, %v; want 1, nil", got.AckedAppSeq, err)
		}
		// The resent offer would be OFFER_IN_FLIGHT if it were applied.
		got, err = send(sessionmgr.AppMessage{AppSeq: 1, Offer: offer})
		if err != nil || got.AckedAppSeq != 1 {
			t.Errorf("repeated offer #1: acked %d, %v; want 1, nil (acknowledged, not applied)", got.AckedAppSeq, err)
		}
		if n := len(h.cam.offerLog()); n != 1 {
			t.Errorf("camera got %d offers, want 1", n)
		}
		// #3 overtakes #2 (Signal calls race).
		if got, err = send(cand(3)); err != nil || got.AckedAppSeq != 1 {
			t.Errorf("candidate #3 before #2: acked %d, %v; want 1, nil", got.AckedAppSeq, err)
		}
		if got, err = send(cand(2)); err != nil || got.AckedAppSeq != 3 {
			t.Errorf("candidate #2: acked %d, %v; want 3, nil", got.AckedAppSeq, err)
		}
		if got, err = send(cand(3)); err != nil || got.AckedAppSeq != 3 {
			t.Errorf("repeated candidate #3: acked %d, %v; want 3, nil", got.AckedAppSeq, err)
		}
		// A refused message is handled too: its repeat is not refused again.
		if _, err = send(sessionmgr.AppMessage{AppSeq: 4, Offer: offer}); !errors.Is(err, sessionmgr.ErrOfferInFlight) {
			t.Errorf("second offer #4 = %v, want ErrOfferInFlight", err)
		}
		if got, err = send(sessionmgr.AppMessage{AppSeq: 4, Offer: offer}); err != nil || got.AckedAppSeq != 4 {
			t.Errorf("repeated refused offer #4: acked %d, %v; want 4, nil", got.AckedAppSeq, err)
		}
		// Too far ahead: refused, and not counted as handled.
		if _, err = send(cand(4 + 257)); !errors.Is(err, sessionmgr.ErrInvalidArgument) {
			t.Errorf("candidate 257 above the acknowledged one = %v, want ErrInvalidArgument", err)
		}
		if got, err = send(cand(4 + 256)); err != nil || got.AckedAppSeq != 4 {
			t.Errorf("candidate 256 above: acked %d, %v; want 4, nil", got.AckedAppSeq, err)
		}

		// The record holds the acknowledgement (written with #2 and #3,
		// which caused no event), and each event the acknowledgement at
		// its emission.
		stored, err := h.m.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.AckedAppSeq != 4 || len(stored.AppSeqsAbove) != 1 {
			t.Errorf("stored record: acked %d above %v, want 4 [260]", stored.AckedAppSeq, stored.AppSeqsAbove)
		}
		var offerSent *sessionmgr.Event
		_ = h.m.Watch(t.Context(), s.ID, 0, func(e sessionmgr.Event) error {
			if e.Type == sessionmgr.EventOfferSent {
				offerSent = &e
			}
			if e.Seq == stored.LastSeq {
				return io.EOF
			}
			return nil
		})
		if offerSent == nil || offerSent.AckedAppSeq != 1 {
			t.Errorf("OFFER_SENT event = %+v, want it to carry acked app sequence 1 (the offer's own)", offerSent)
		}
	})
}

// A takeover on another replica keeps the acknowledgements: a resent
// message is not applied twice there.
func TestAppSequenceSurvivesTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t)
		s, err := r.a.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "mover"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.a.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := r.a.Send(t.Context(), s.ID, sessionmgr.AppMessage{AppSeq: 1, Offer: offer}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		desc := "wifi->lte"
		if _, err := r.a.Send(t.Context(), s.ID, sessionmgr.AppMessage{AppSeq: 2, NetworkChanged: &desc}); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		r.c.kill("replica-a") // A dies; the app comes back on B
		time.Sleep(10 * time.Second)
		synctest.Wait()
		got, err := r.b.Attach(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != "replica-b" || got.AckedAppSeq != 2 {
			t.Fatalf("after the takeover: owner %s acked %d, want replica-b and 2", got.Owner, got.AckedAppSeq)
		}
		before := len(r.cam.offerLog())
		got, err = r.b.Send(t.Context(), s.ID, sessionmgr.AppMessage{AppSeq: 1, Offer: offer})
		synctest.Wait()
		if err != nil || got.AckedAppSeq != 2 {
			t.Errorf("offer #1 resent to B: acked %d, %v; want 2, nil", got.AckedAppSeq, err)
		}
		if n := len(r.cam.offerLog()); n != before {
			t.Errorf("the resent offer reached the camera (%d offers, had %d)", n, before)
		}
	})
}
