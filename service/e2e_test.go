package service_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/acme/viewersession/internal/stacktest"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/viewersession/kvsemu/camera"
	vspb "github.com/acme/viewersession/proto/viewersession/v1"
)

// rawConnect is a Connect stream driven by hand (no peer connection):
// for the signaling-only end-to-end tests.
type rawConnect struct {
	stream grpc.BidiStreamingClient[vspb.ConnectRequest, vspb.ConnectResponse]
	msgs   chan *vspb.ConnectResponse
	end    chan error // the stream's final status
}

func connectRaw(t *testing.T, s *stacktest.Stack, token, name string, after uint64) *rawConnect {
	t.Helper()
	stream, err := s.API.Connect(stacktest.WithToken(t.Context(), token))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name, AfterSequence: after}}}); err != nil {
		t.Fatal(err)
	}
	rc := &rawConnect{stream: stream, msgs: make(chan *vspb.ConnectResponse, 1024), end: make(chan error, 1)}
	go func() {
		for {
			m, err := stream.Recv()
			if err != nil {
				close(rc.msgs)
				if errors.Is(err, io.EOF) {
					err = nil
				}
				rc.end <- err
				return
			}
			rc.msgs <- m
		}
	}()
	return rc
}

func (rc *rawConnect) send(t *testing.T, m *vspb.ConnectRequest) {
	t.Helper()
	if err := rc.stream.Send(m); err != nil {
		t.Fatalf("Connect send: %v", err)
	}
}

// events drains the stream until it ends and returns its events and status.
func (rc *rawConnect) drain(t *testing.T, timeout time.Duration) ([]*vspb.SessionEvent, error) {
	t.Helper()
	var evs []*vspb.SessionEvent
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-rc.msgs:
			if !ok {
				return evs, <-rc.end
			}
			if e := m.GetEvent(); e != nil {
				evs = append(evs, e)
			}
		case <-deadline:
			t.Fatalf("Connect stream still open after %v", timeout)
		}
	}
}

// waitEvent reads the stream until an event matches.
func (rc *rawConnect) waitEvent(t *testing.T, timeout time.Duration, match func(*vspb.SessionEvent) bool) *vspb.SessionEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-rc.msgs:
			if !ok {
				t.Fatalf("stream ended (%v) before the awaited event", <-rc.end)
			}
			if e := m.GetEvent(); e != nil && match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("no matching event within %v", timeout)
		}
	}
}

func offerMsg(sdp string) *vspb.ConnectRequest {
	return &vspb.ConnectRequest{Message: &vspb.ConnectRequest_Offer{Offer: &vspb.SessionDescription{Sdp: sdp}}}
}

func reasonOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func ofType(t vspb.EventType) func(*vspb.SessionEvent) bool {
	return func(e *vspb.SessionEvent) bool { return e.GetType() == t }
}

// Acceptance 2: the camera never answers (on memory and on Redis).
func TestE2ECameraNeverAnswers(t *testing.T) {
	t.Run("memory", func(t *testing.T) { cameraNeverAnswers(t, false) })
	t.Run("redis", func(t *testing.T) { cameraNeverAnswers(t, true) })
}

func cameraNeverAnswers(t *testing.T, onRedis bool) {
	s := stacktest.Start(t, stacktest.Options{Redis: onRedis})
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	const answerTimeout, retryDelay = 1500 * time.Millisecond, 600 * time.Millisecond
	cs := s.Create(t, "noanswer", &vspb.SessionOptions{
		AnswerTimeout: durationpb.New(answerTimeout), RetryDelay: durationpb.New(retryDelay),
	})
	rc := connectRaw(t, s, cs.GetSessionToken(), cs.GetSession().GetName(), 0)
	rc.waitEvent(t, 10*time.Second, func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER })
	rc.send(t, offerMsg(stacktest.PionOffer(t)))
	evs, err := rc.drain(t, 30*time.Second)

	if code := status.Code(err); code != codes.DeadlineExceeded || reasonOf(err) != "ANSWER_TIMEOUT" {
		t.Fatalf("Connect ended with %v (reason %q), want DEADLINE_EXCEEDED with ANSWER_TIMEOUT", err, reasonOf(err))
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "did not answer") || !strings.Contains(msg, "online") {
		t.Errorf("status message %q is not plain words about the camera", msg)
	}
	// Exactly two offers reached the emulator, under two clientIds.
	var offers []time.Time
	var ids []string
	for _, m := range s.Emu.Messages(s.ARN) {
		if m.Type == "SDP_OFFER" && m.From == "viewer" {
			offers = append(offers, m.Time)
			ids = append(ids, m.ClientID)
		}
	}
	if len(offers) != 2 {
		t.Fatalf("emulator saw %d offers (%v), want 2", len(offers), ids)
	}
	if ids[0] == ids[1] {
		t.Errorf("both offers came from clientId %q, want two distinct", ids[0])
	}
	if got := s.Emu.Counters().Messages["viewer->master:SDP_OFFER"]; got != 2 {
		t.Errorf("emulator counter viewer->master:SDP_OFFER = %d, want 2", got)
	}
	firstTimeout := offers[0].Add(answerTimeout)
	if d := offers[1].Sub(firstTimeout) - retryDelay; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("second offer %v after the first timeout, want retry_delay %v within 50ms", offers[1].Sub(firstTimeout), retryDelay)
	}
	last := evs[len(evs)-1]
	if last.GetType() != vspb.EventType_EVENT_TYPE_FAILED || last.GetFailure().GetReason() != vspb.FailureReason_FAILURE_REASON_ANSWER_TIMEOUT {
		t.Fatalf("last event = %v, want FAILED with ANSWER_TIMEOUT", last)
	}
	total := last.GetTime().AsTime().Sub(offers[0])
	if want := 2*answerTimeout + retryDelay; total-want < -50*time.Millisecond || total-want > 50*time.Millisecond {
		t.Errorf("FAILED %v after the first offer, want 2 x answer_timeout + retry_delay = %v within 50ms", total, want)
	}
	t.Logf("offers %v apart; failed after %v; clientIds %v", offers[1].Sub(offers[0]), total, ids)
}

// Acceptance 5: a second offer while one is in flight.
func TestE2ESecondOfferInFlight(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	cs := s.Create(t, "twice", &vspb.SessionOptions{AnswerTimeout: durationpb.New(20 * time.Second)})
	rc := connectRaw(t, s, cs.GetSessionToken(), cs.GetSession().GetName(), 0)
	rc.waitEvent(t, 10*time.Second, func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER })
	offer := stacktest.PionOffer(t)
	rc.send(t, offerMsg(offer))
	rc.waitEvent(t, 10*time.Second, ofType(vspb.EventType_EVENT_TYPE_OFFER_SENT))
	rc.send(t, offerMsg(offer))
	_, err := rc.drain(t, 10*time.Second)
	if status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "OFFER_IN_FLIGHT" {
		t.Fatalf("second offer: %v (reason %q), want FAILED_PRECONDITION OFFER_IN_FLIGHT", err, reasonOf(err))
	}
	got, err := s.API.GetSession(stacktest.Backend(t.Context()), &vspb.GetSessionRequest{Name: cs.GetSession().GetName()})
	if err != nil {
		t.Fatal(err)
	}
	if st := got.GetSession().GetState(); st != vspb.SessionState_SESSION_STATE_AWAITING_ANSWER {
		t.Errorf("session state after the refused offer = %v, want AWAITING_ANSWER (unharmed)", st)
	}
}

// Acceptance 8: the 11th session on a channel.
func TestE2EChannelFull(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for i := range 10 {
		s.Create(t, fmt.Sprintf("viewer%d", i), nil)
	}
	_, err := s.API.CreateSession(stacktest.Backend(t.Context()), &vspb.CreateSessionRequest{Channel: &vspb.Channel{Arn: s.ARN}, ViewerId: "eleventh"})
	if status.Code(err) != codes.ResourceExhausted || reasonOf(err) != "CHANNEL_FULL" {
		t.Fatalf("11th CreateSession = %v (reason %q), want RESOURCE_EXHAUSTED CHANNEL_FULL", err, reasonOf(err))
	}
	var quota bool
	for _, d := range status.Convert(err).Details() {
		_, ok := d.(*errdetails.QuotaFailure)
		quota = quota || ok
	}
	if !quota {
		t.Errorf("CHANNEL_FULL carries no QuotaFailure")
	}
}

// TestE2EChannelNotFoundNamesIt is a papercut of the operators issue:
// CHANNEL_NOT_FOUND named neither the channel nor the region.
func TestE2EChannelNotFoundNamesIt(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	_, err := s.API.CreateSession(stacktest.Backend(t.Context()), &vspb.CreateSessionRequest{
		Channel: &vspb.Channel{Name: "no-such-camera", Region: "us-west-2"}, ViewerId: "v"})
	if status.Code(err) != codes.NotFound || reasonOf(err) != "CHANNEL_NOT_FOUND" {
		t.Fatalf("CreateSession on a missing channel = %v (reason %q), want NOT_FOUND CHANNEL_NOT_FOUND", err, reasonOf(err))
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, `"no-such-camera"`) || !strings.Contains(msg, "region us-west-2") {
		t.Errorf("CHANNEL_NOT_FOUND message %q names neither the channel nor the region", msg)
	}
}

// TestE2EListSessionsByViewer is a papercut of the operators issue:
// ListSessions could not filter by viewer_id.
func TestE2EListSessionsByViewer(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	for _, v := range []string{"alice", "bob", "alice"} {
		s.Create(t, v, nil)
	}
	ctx := stacktest.Backend(t.Context())
	list, err := s.API.ListSessions(ctx, &vspb.ListSessionsRequest{ViewerId: "alice", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := list.GetSessions()
	if next := list.GetNextPageToken(); next != "" {
		more, err := s.API.ListSessions(ctx, &vspb.ListSessionsRequest{ViewerId: "alice", PageSize: 1, PageToken: next})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, more.GetSessions()...)
		if _, err := s.API.ListSessions(ctx, &vspb.ListSessionsRequest{ViewerId: "bob", PageToken: next}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("alice's page token used for bob's listing = %v, want INVALID_ARGUMENT", err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("ListSessions(viewer_id alice) = %d sessions, want 2", len(got))
	}
	for _, sess := range got {
		if sess.GetViewerId() != "alice" {
			t.Errorf("ListSessions(viewer_id alice) returned viewer %q", sess.GetViewerId())
		}
	}
	if _, err := s.API.ListSessions(ctx, &vspb.ListSessionsRequest{ViewerId: strings.Repeat("v", 257)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a 257-byte viewer_id = %v, want INVALID_ARGUMENT", err)
	}
}

// TestE2ESessionTokenShape pins what the proto says of session_token (a
// papercut of the operators issue: it said "256 random bits"): the session
// id, a dot, and a 256-bit HMAC in unpadded base64url.
func TestE2ESessionTokenShape(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	cs := s.Create(t, "shape", nil)
	id := strings.TrimPrefix(cs.GetSession().GetName(), "sessions/")
	tok := cs.GetSessionToken()
	prefix, tag, ok := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(tag)
	if !ok || prefix != id || err != nil || len(raw) != 32 {
		t.Errorf("session_token %q: want %s.<32 bytes of unpadded base64url>", tok, id)
	}
}

// Acceptance 9: bad input, each with its status, the session unharmed.
func TestE2EBadInput(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	cs := s.Create(t, "badinput", nil)
	other := s.Create(t, "other", nil)
	name, token := cs.GetSession().GetName(), cs.GetSessionToken()
	unknown := "sessions/aaaaaaaaaaaaaaaaaaaaaaaaaa"
	good := stacktest.PionOffer(t)

	signal := func(ctx context.Context, name string, r *vspb.SignalRequest) error {
		r.Name = name
		_, err := s.API.Signal(ctx, r)
		return err
	}
	offer := func(sdp string) *vspb.SignalRequest {
		return &vspb.SignalRequest{Message: &vspb.SignalRequest_Offer{Offer: &vspb.SessionDescription{Sdp: sdp}}}
	}
	cand := func(c string) *vspb.SignalRequest {
		mid := "0"
		return &vspb.SignalRequest{Message: &vspb.SignalRequest_Candidate{Candidate: &vspb.IceCandidate{Candidate: c, SdpMid: mid}}}
	}
	own := stacktest.WithToken(t.Context(), token)

	// Before joining (nobody watches with the token yet).
	if err := signal(own, name, offer(good)); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "NOT_JOINED" {
		t.Errorf("offer before join: %v, want FAILED_PRECONDITION NOT_JOINED", err)
	}
	// Join over Connect, then a table of bad messages on Signal.
	rc := connectRaw(t, s, token, name, 0)
	rc.waitEvent(t, 10*time.Second, func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER })

	tests := []struct {
		name       string
		ctx        context.Context
		session    string
		give       *vspb.SignalRequest
		wantCode   codes.Code
		wantReason string
	}{
		{"malformed sdp", own, name, offer("v=0\r\nthis is not sdp"), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"oversized sdp", own, name, offer(good + strings.Repeat("a=x-padding:"+strings.Repeat("z", 100)+"\r\n", 100)), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"empty sdp", own, name, offer(""), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"bad candidate", own, name, cand("nonsense"), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"oversized candidate", own, name, cand("candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host " + strings.Repeat("x", 2000)), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"no message", own, name, &vspb.SignalRequest{}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"media report counting without a peer connection", own, name, &vspb.SignalRequest{Message: &vspb.SignalRequest_MediaReport{MediaReport: &vspb.MediaReport{PacketsReceived: 5}}}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"app sequence far ahead", own, name, &vspb.SignalRequest{AppSequence: 1000, Message: &vspb.SignalRequest_MediaReport{MediaReport: &vspb.MediaReport{}}}, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"bad name", own, "sessions/nope", offer(good), codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"unknown session", stacktest.Backend(t.Context()), unknown, offer(good), codes.NotFound, "SESSION_NOT_FOUND"},
		{"missing token", t.Context(), name, offer(good), codes.Unauthenticated, "UNAUTHENTICATED"},
		{"wrong token", stacktest.WithToken(t.Context(), "not-a-token"), name, offer(good), codes.Unauthenticated, "UNAUTHENTICATED"},
		{"forged token", stacktest.WithToken(t.Context(), token[:len(token)-4]+"AAAA"), name, offer(good), codes.Unauthenticated, "UNAUTHENTICATED"},
		{"another session's token", stacktest.WithToken(t.Context(), other.GetSessionToken()), name, offer(good), codes.PermissionDenied, "PERMISSION_DENIED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := signal(tt.ctx, tt.session, tt.give)
			if status.Code(err) != tt.wantCode || reasonOf(err) != tt.wantReason {
				t.Errorf("Signal: %v (reason %q), want %v %s", err, reasonOf(err), tt.wantCode, tt.wantReason)
			}
			got, err := s.API.GetSession(stacktest.Backend(t.Context()), &vspb.GetSessionRequest{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			if st := got.GetSession().GetState(); st != vspb.SessionState_SESSION_STATE_AWAITING_OFFER {
				t.Errorf("session state = %v, want AWAITING_OFFER (unharmed)", st)
			}
		})
	}

	// Join twice on one stream.
	rc.send(t, &vspb.ConnectRequest{Message: &vspb.ConnectRequest_Join{Join: &vspb.Join{Name: name}}})
	if _, err := rc.drain(t, 10*time.Second); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "ALREADY_JOINED" {
		t.Errorf("join twice: %v, want FAILED_PRECONDITION ALREADY_JOINED", err)
	}
	// A Connect whose first message is not join.
	stream, err := s.API.Connect(own)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(offerMsg(good)); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.FailedPrecondition || reasonOf(err) != "NOT_JOINED" {
		t.Errorf("Connect starting with an offer: %v, want FAILED_PRECONDITION NOT_JOINED", err)
	}
	got, err := s.API.GetSession(stacktest.Backend(t.Context()), &vspb.GetSessionRequest{Name: name})
	if err != nil || got.GetSession().GetState() == vspb.SessionState_SESSION_STATE_CLOSED {
		t.Errorf("session after the bad-input table: %v, %v; want it alive", got.GetSession().GetState(), err)
	}
}

// Acceptance 1 (cooldown part) and 7 (no resume): CloseSession and
// CLIENT_GONE release the clientId into cooldown.
func TestE2EClientIDCooldown(t *testing.T) {
	const cooldown = time.Second
	s := stacktest.Start(t, stacktest.Options{Cooldown: cooldown})
	first := s.Create(t, "zoe", nil)
	if got := first.GetSession().GetClientId(); got != "zoe" {
		t.Fatalf("first clientId = %q, want zoe", got)
	}
	closed, err := s.API.CloseSession(stacktest.Backend(t.Context()), &vspb.CloseSessionRequest{Name: first.GetSession().GetName()})
	if err != nil || closed.GetSession().GetCloseReason() != vspb.CloseReason_CLOSE_REASON_CLOSED_BY_BACKEND {
		t.Fatalf("CloseSession: %v %v", closed, err)
	}
	released := time.Now()
	second := s.Create(t, "zoe", nil)
	if got := second.GetSession().GetClientId(); got != "zoe-2" {
		t.Errorf("clientId inside the cooldown = %q, want zoe-2", got)
	}

	// No resume within the grace: CLIENT_GONE, clientId into cooldown.
	gone := s.Create(t, "yan", &vspb.SessionOptions{ResumeGrace: durationpb.New(300 * time.Millisecond)})
	w, err := s.API.WatchSession(stacktest.Backend(t.Context()), &vspb.WatchSessionRequest{Name: gone.GetSession().GetName()})
	if err != nil {
		t.Fatal(err)
	}
	var last *vspb.SessionEvent
	for {
		r, err := w.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = r.GetEvent()
	}
	if last.GetType() != vspb.EventType_EVENT_TYPE_CLOSED || last.GetCloseReason() != vspb.CloseReason_CLOSE_REASON_CLIENT_GONE {
		t.Fatalf("last event = %v, want CLOSED CLIENT_GONE", last)
	}
	if got := s.Create(t, "yan", nil).GetSession().GetClientId(); got != "yan-2" {
		t.Errorf("clientId after CLIENT_GONE = %q, want yan-2 (yan cooling down)", got)
	}

	// After the cooldown the base is free again. The cooldown is the longer
	// of the configured one and the channel's MessageTtlSeconds (5s here).
	effective := max(cooldown, stacktest.ChannelMessageTTL)
	wait := time.Until(released.Add(effective + 100*time.Millisecond))
	time.Sleep(wait) // real time: the allocator's cooldown is wall-clock
	third := s.Create(t, "zoe", nil)
	if got := third.GetSession().GetClientId(); got != "zoe" {
		t.Errorf("clientId after the cooldown = %q, want zoe", got)
	}
}

// A Connect join on a session that ended while the app was away replays
// what it missed and ends with the session's own end.
func TestE2EJoinEndedSession(t *testing.T) {
	s := stacktest.Start(t, stacktest.Options{})
	if err := s.Emu.SetCameraFault(s.ARN, camera.Fault{NoAnswer: true}); err != nil {
		t.Fatal(err)
	}
	cs := s.Create(t, "ended", &vspb.SessionOptions{AnswerTimeout: durationpb.New(200 * time.Millisecond), RetryDelay: durationpb.New(50 * time.Millisecond)})
	rc := connectRaw(t, s, cs.GetSessionToken(), cs.GetSession().GetName(), 0)
	last := rc.waitEvent(t, 10*time.Second, func(e *vspb.SessionEvent) bool { return e.GetState() == vspb.SessionState_SESSION_STATE_AWAITING_OFFER })
	rc.send(t, offerMsg(stacktest.PionOffer(t)))
	rc.drain(t, 10*time.Second) // FAILED ANSWER_TIMEOUT

	again := connectRaw(t, s, cs.GetSessionToken(), cs.GetSession().GetName(), last.GetSequence())
	evs, err := again.drain(t, 10*time.Second)
	if status.Code(err) != codes.DeadlineExceeded || reasonOf(err) != "ANSWER_TIMEOUT" {
		t.Errorf("join after the end: %v (reason %q), want the failure's DEADLINE_EXCEEDED ANSWER_TIMEOUT", err, reasonOf(err))
	}
	if len(evs) == 0 || evs[0].GetSequence() != last.GetSequence()+1 || evs[len(evs)-1].GetType() != vspb.EventType_EVENT_TYPE_FAILED {
		t.Errorf("replay = %s, want everything after seq %d up to FAILED", summary(evs), last.GetSequence())
	}
}
