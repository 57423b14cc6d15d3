package service_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/viewersession/internal/stacktest"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// waitMsg reads the stream until a message matches; events and others on
// the way are dropped.
func (rc *rawConnect) waitMsg(t *testing.T, timeout time.Duration, what string, match func(*vspb.ConnectResponse) bool) *vspb.ConnectResponse {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-rc.msgs:
			if !ok {
				t.Fatalf("stream ended (%v) before %s", <-rc.end, what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

func ackOf(m *vspb.ConnectResponse) bool { return m.GetAck() != nil }

func sequenced(n uint64, m *vspb.ConnectRequest) *vspb.ConnectRequest {
	m.AppSequence = n
	return m
}

// Acks on Connect: each sequenced message is acknowledged, a repeat is
// acknowledged and not applied, a refused one is acknowledged before the
// stream ends, and the next join says how far the service got.
func TestE2EConnectAcks(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	cs := s.Create(t, "acks", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	good := stacktest.PionOffer(t)

	rc := connectRaw(t, s, token, name, 0)
	joined := rc.waitMsg(t, 10*time.Second, "joined", func(m *vspb.ConnectResponse) bool { return m.GetJoined() != nil })
	if n := joined.GetJoined().GetAckedAppSequence(); n != 0 {
		t.Errorf("first join: acked %d, want 0", n)
	}
	rc.send(t, sequenced(1, offerMsg(good)))
	if got := rc.waitMsg(t, 10*time.Second, "ack of #1", ackOf).GetAck().GetAppSequence(); got != 1 {
		t.Errorf("ack after offer #1 = %d, want 1", got)
	}
	offerSent := rc.waitEvent(t, 10*time.Second, ofType(vspb.EventType_EVENT_TYPE_OFFER_SENT))
	if offerSent.GetAckedAppSequence() != 1 {
		t.Errorf("OFFER_SENT carries acked %d, want 1", offerSent.GetAckedAppSequence())
	}
	// The same offer again (a resend after a resume): acknowledged, not
	// refused as a second offer.
	rc.send(t, sequenced(1, offerMsg(good)))
	if got := rc.waitMsg(t, 10*time.Second, "ack of the repeat", ackOf).GetAck().GetAppSequence(); got != 1 {
		t.Errorf("ack after the repeated offer = %d, want 1", got)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range s.Emu.Messages(s.ARN) {
				t.Logf("emulator: %+v", r)
			}
		}
	})
	rc.waitEvent(t, 20*time.Second, ofType(vspb.EventType_EVENT_TYPE_ANSWER))
	// A new offer nobody asked for: refused, but acknowledged first.
	rc.send(t, sequenced(2, offerMsg(good)))
	if got := rc.waitMsg(t, 10*time.Second, "ack of the refused #2", ackOf).GetAck().GetAppSequence(); got != 2 {
		t.Errorf("ack after the refused offer #2 = %d, want 2", got)
	}
	if _, err := rc.drain(t, 10*time.Second); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "OFFER_NOT_EXPECTED" {
		t.Fatalf("stream after the refused offer: %v, want FAILED_PRECONDITION OFFER_NOT_EXPECTED", err)
	}

	rc = connectRaw(t, s, token, name, 0)
	joined = rc.waitMsg(t, 10*time.Second, "joined", func(m *vspb.ConnectResponse) bool { return m.GetJoined() != nil })
	if n := joined.GetJoined().GetAckedAppSequence(); n != 2 {
		t.Errorf("resumed join: acked %d, want 2", n)
	}
	rc.send(t, sequenced(2, offerMsg(good)))
	if got := rc.waitMsg(t, 10*time.Second, "ack of the resent #2", ackOf).GetAck().GetAppSequence(); got != 2 {
		t.Errorf("ack after the resent offer #2 = %d, want 2", got)
	}

	// Signal: the response carries the acknowledgement.
	own := stacktest.WithToken(t.Context(), token)
	desc := "wifi->lte"
	resp, err := s.API.Signal(own, &vspb.SignalRequest{Name: name, AppSequence: 4,
		Message: &vspb.SignalRequest_NetworkChanged{NetworkChanged: &vspb.NetworkChanged{Description: desc}}})
	if err != nil || resp.GetAckedAppSequence() != 2 {
		t.Errorf("Signal #4 before #3: acked %d, %v; want 2, nil", resp.GetAckedAppSequence(), err)
	}
	resp, err = s.API.Signal(own, &vspb.SignalRequest{Name: name, AppSequence: 3,
		Message: &vspb.SignalRequest_StateReport{StateReport: &vspb.ConnectionStateReport{IceState: vspb.IceConnectionState_ICE_CONNECTION_STATE_CHECKING}}})
	if err != nil || resp.GetAckedAppSequence() != 4 {
		t.Errorf("Signal #3: acked %d, %v; want 4, nil", resp.GetAckedAppSequence(), err)
	}
	got, err := s.API.GetSession(stacktest.Backend(t.Context()), &vspb.GetSessionRequest{Name: name})
	if err != nil || got.GetSession().GetAckedAppSequence() != 4 {
		t.Errorf("GetSession: acked %d, %v; want 4", got.GetSession().GetAckedAppSequence(), err)
	}

	// A join carries no sequence.
	stream, err := s.API.Connect(own)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&vspb.ConnectRequest{AppSequence: 9, Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.InvalidArgument || reasonOf(err) != "INVALID_ARGUMENT" {
		t.Errorf("join with an app sequence: %v, want INVALID_ARGUMENT", err)
	}
}
