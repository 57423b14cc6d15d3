package sessionmgr_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/acme/viewersession/sessionmgr"
	"github.com/acme/viewersession/sessionmgr/memstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeCamera is a stub Signaler: one channel, a camera whose answers the
// test programs. Unit tests of sessionmgr only; the end-to-end tests use
// the real kvs client and the emulator.
type fakeCamera struct {
	mu         sync.Mutex
	answerFrom int  // answer the Nth offer and later ones (1-based); 0 never
	answerICE  bool // answer ICE-restart offers
	// mode, when set, replaces answerFrom and answerICE with a master's
	// behaviour (see camMode); its answers carry DTLS fingerprints.
	mode     camMode
	pcs      int             // peer connections the camera made (mode set)
	answered map[string]bool // clientIds with a live session (camCSample)
	offers   []offerRec
	conns    []*fakeConn
	dials    []string
}

// camMode is how a simulated master treats offers, as the real ones do
// (../shared/design/KVS-PROTOCOL.md section 4.1).
type camMode int

const (
	camDefault camMode = iota
	// camRestartCapable renegotiates on the same connection: every answer
	// carries the same certificate (in alternating letter case, which
	// must not look like a change).
	camRestartCapable
	// camJSSample answers every offer, even from a known clientId, from a
	// new connection: a new certificate each time.
	camJSSample
	// camCSample answers the first offer of a clientId from a new
	// connection and ignores any later one (its session lives).
	camCSample
)

type offerRec struct {
	clientID string
	sdp      string
	at       time.Time
}

func (f *fakeCamera) Resolve(_ context.Context, ref sessionmgr.ChannelRef) (sessionmgr.Channel, error) {
	if ref.Name == "missing" {
		return sessionmgr.Channel{}, fmt.Errorf("%w: no such channel", sessionmgr.ErrChannelNotFound)
	}
	name := ref.Name
	if name == "" {
		name = "cam"
	}
	return sessionmgr.Channel{ARN: "arn:aws:kinesisvideo:us-west-2:1:channel/" + name + "/1", Name: name, Region: "us-west-2", MessageTTL: time.Minute}, nil
}

func (f *fakeCamera) IceServers(context.Context, sessionmgr.Channel, string, bool) (sessionmgr.IceServers, error) {
	return sessionmgr.IceServers{
		Servers: []sessionmgr.IceServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "u", Credential: "secret"}},
		Expires: time.Now().Add(5 * time.Minute),
	}, nil
}

func (f *fakeCamera) Dial(_ context.Context, _ sessionmgr.Channel, clientID string) (sessionmgr.SignalingConn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &fakeConn{cam: f, clientID: clientID, events: make(chan *sessionmgr.SignalEvent, 16)}
	f.conns = append(f.conns, c)
	f.dials = append(f.dials, clientID)
	return c, nil
}

func (f *fakeCamera) ValidateOffer(sdp string) (string, error) {
	if !strings.HasPrefix(sdp, "v=0") {
		return "", errors.New("not an SDP offer")
	}
	return sdp, nil
}

func (f *fakeCamera) ValidateCandidate(c sessionmgr.Candidate) error {
	if !strings.HasPrefix(c.Candidate, "candidate:") {
		return errors.New("not a candidate line")
	}
	return nil
}

func (f *fakeCamera) offerLog() []offerRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]offerRec(nil), f.offers...)
}

type fakeConn struct {
	cam      *fakeCamera
	clientID string
	mu       sync.Mutex
	closed   bool
	events   chan *sessionmgr.SignalEvent
}

func (c *fakeConn) SendOffer(_ context.Context, sdp string) error {
	f := c.cam
	f.mu.Lock()
	f.offers = append(f.offers, offerRec{clientID: c.clientID, sdp: sdp, at: time.Now()})
	n := len(f.offers)
	answer := f.answerFrom > 0 && n >= f.answerFrom
	if strings.Contains(sdp, "restart") {
		answer = f.answerICE
	}
	reply := "v=0 answer to " + sdp
	if f.mode != camDefault {
		if f.answered == nil {
			f.answered = map[string]bool{}
		}
		fp := "CA:FE:00"
		switch f.mode {
		case camRestartCapable:
			answer = true
			if n%2 == 0 {
				fp = strings.ToLower(fp)
			}
		case camJSSample:
			answer = true
			f.pcs++
			fp = fmt.Sprintf("CA:FE:%02X", f.pcs)
		case camCSample:
			answer = !f.answered[c.clientID]
			f.pcs++
			fp = fmt.Sprintf("CA:FE:%02X", f.pcs)
		}
		f.answered[c.clientID] = true
		reply = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:sha-256 " + fp + "\r\n"
	}
	f.mu.Unlock()
	if answer {
		c.mu.Lock()
		if !c.closed {
			c.events <- &sessionmgr.SignalEvent{Kind: sessionmgr.SignalCandidate, Candidate: sessionmgr.Candidate{Candidate: "candidate:early"}}
			c.events <- &sessionmgr.SignalEvent{Kind: sessionmgr.SignalAnswer, SDP: reply}
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *fakeConn) SendCandidate(context.Context, sessionmgr.Candidate) error { return nil }

func (c *fakeConn) Events() <-chan *sessionmgr.SignalEvent { return c.events }

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.events)
	}
	return nil
}

// fakeIDs hands out base, base-2, ... and never reuses an id (an infinite
// cooldown), recording releases.
type fakeIDs struct {
	mu       sync.Mutex
	used     map[string]int
	live     map[string]bool
	released []string
}

func (f *fakeIDs) Acquire(_ context.Context, ch, base string, _ time.Duration) (sessionmgr.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.used == nil {
		f.used, f.live = map[string]int{}, map[string]bool{}
	}
	f.used[base]++
	id := base
	if n := f.used[base]; n > 1 {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	f.live[id] = true
	return sessionmgr.Lease{ClientID: id, Channel: ch, Token: "t-" + id, Cooldown: time.Minute}, nil
}

func (f *fakeIDs) Renew(context.Context, sessionmgr.Lease) error { return nil }

func (f *fakeIDs) Release(_ context.Context, l sessionmgr.Lease) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.live, l.ClientID)
	f.released = append(f.released, l.ClientID)
	return nil
}

func (f *fakeIDs) liveIDs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.live)
}

type harness struct {
	m     *sessionmgr.Manager
	cam   *fakeCamera
	ids   *fakeIDs
	store sessionmgr.Store
}

func newHarness(t *testing.T, cam *fakeCamera, opts ...sessionmgr.Option) *harness {
	t.Helper()
	return newHarnessStore(t, cam, memstore.New(), opts...)
}

func newHarnessStore(t *testing.T, cam *fakeCamera, store sessionmgr.Store, opts ...sessionmgr.Option) *harness {
	t.Helper()
	cfg := sessionmgr.DefaultConfig()
	cfg.DialsPerSecond = 1000
	h := &harness{cam: cam, ids: &fakeIDs{}, store: store}
	opts = append([]sessionmgr.Option{sessionmgr.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))}, opts...)
	h.m = sessionmgr.New(cfg, store, cam, h.ids, opts...)
	t.Cleanup(func() {
		if err := h.m.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h
}

func (h *harness) create(t *testing.T, viewer string) sessionmgr.Session {
	t.Helper()
	s, err := h.m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: viewer})
	if err != nil {
		t.Fatalf("Create(%q): %v", viewer, err)
	}
	return s
}

// timeline collects a session's events until its terminal event.
func (h *harness) watch(t *testing.T, id sessionmgr.SessionID) <-chan []sessionmgr.Event {
	out := make(chan []sessionmgr.Event, 1)
	go func() {
		var evs []sessionmgr.Event
		err := h.m.Watch(context.Background(), id, 0, func(e sessionmgr.Event) error {
			evs = append(evs, e)
			return nil
		})
		if err != nil {
			t.Errorf("Watch: %v", err)
		}
		out <- evs
	}()
	return out
}

func types(evs []sessionmgr.Event) []string {
	var out []string
	for _, e := range evs {
		s := e.Type.String()
		if e.Type == sessionmgr.EventStateChanged {
			s = "->" + e.State.String()
		}
		out = append(out, s)
	}
	return out
}

const offer = "v=0 offer"

func TestAnswerTimeoutRetriesOnceThenFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{}) // never answers
		s := h.create(t, "alice")
		done := h.watch(t, s.ID)
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		start := time.Now()
		if _, err := h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: offer}); err != nil {
			t.Fatalf("Send(offer): %v", err)
		}
		evs := <-done
		total := time.Since(start)

		offers := h.cam.offerLog()
		if len(offers) != 2 {
			t.Fatalf("camera got %d offers, want 2", len(offers))
		}
		if offers[0].clientID == offers[1].clientID {
			t.Errorf("both offers used clientId %q, want two distinct", offers[0].clientID)
		}
		if offers[1].sdp != offer {
			t.Errorf("retry replayed %q, want the app's offer", offers[1].sdp)
		}
		o := sessionmgr.DefaultOptions()
		if gap := offers[1].at.Sub(offers[0].at); gap != o.AnswerTimeout+o.RetryDelay {
			t.Errorf("second offer %v after the first, want answer timeout + retry delay = %v", gap, o.AnswerTimeout+o.RetryDelay)
		}
		if want := 2*o.AnswerTimeout + o.RetryDelay; total != want {
			t.Errorf("FAILED after %v, want 2 x answer timeout + retry delay = %v", total, want)
		}
		last := evs[len(evs)-1]
		if last.Type != sessionmgr.EventFailed || last.Failure == nil || last.Failure.Reason != sessionmgr.FailureAnswerTimeout {
			t.Fatalf("last event = %+v, want FAILED with ANSWER_TIMEOUT", last)
		}
		if !strings.Contains(last.Failure.Message, "did not answer") {
			t.Errorf("failure message %q does not say the camera did not answer", last.Failure.Message)
		}
		want := []string{
			"CREATED", "CLIENT_ID_ALLOCATED", "APP_ATTACHED", "->SIGNALING", "SIGNALING_CONNECTED", "->AWAITING_OFFER",
			"->AWAITING_ANSWER", "OFFER_SENT", "ANSWER_TIMEOUT", "->RETRYING", "RETRY_SCHEDULED",
			// The next attempt's clientId and signaling are prepared during
			// the last part of the retry delay (predial).
			"CLIENT_ID_ALLOCATED", "SIGNALING_CONNECTED", "->SIGNALING", "->AWAITING_OFFER", "->AWAITING_ANSWER", "OFFER_SENT",
			"ANSWER_TIMEOUT", "FAILED",
		}
		if got := types(evs); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("timeline =\n %v\nwant\n %v", got, want)
		}
		for i, e := range evs {
			if e.Seq != uint64(i+1) {
				t.Fatalf("event %d has sequence %d, want contiguous from 1", i, e.Seq)
			}
		}
		synctest.Wait()
		if n := h.ids.liveIDs(); n != 0 {
			t.Errorf("%d clientIds still leased after FAILED, want 0", n)
		}
	})
}

func TestAnswerFromSecondOffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{answerFrom: 2})
		s := h.create(t, "bob")
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if _, err := h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{Offer: offer}); err != nil {
			t.Fatal(err)
		}
		if _, err := h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{Candidate: &sessionmgr.Candidate{Candidate: "candidate:1"}}); err != nil {
			t.Fatalf("Send(candidate): %v", err)
		}
		time.Sleep(sessionmgr.DefaultOptions().AnswerTimeout + sessionmgr.DefaultOptions().RetryDelay + time.Second) // fake time
		synctest.Wait()
		got, err := h.m.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateConnecting || got.Attempt != 2 || got.ClientID != "bob-2" {
			t.Fatalf("session = %s attempt %d clientId %s, want CONNECTING on attempt 2 with bob-2", got.State, got.Attempt, got.ClientID)
		}
		got, err = h.m.Send(t.Context(), s.ID, sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{Peer: sessionmgr.PeerConnected}})
		if err != nil || got.State != sessionmgr.StateConnected {
			t.Fatalf("after connected report: %s, %v; want CONNECTED", got.State, err)
		}
		// The camera candidate that came before the answer is delivered after it.
		var sawAnswer bool
		err = h.m.Watch(t.Context(), s.ID, 0, func(e sessionmgr.Event) error {
			if e.Type == sessionmgr.EventAnswer {
				sawAnswer = true
			}
			if e.Type == sessionmgr.EventRemoteCandidate && !sawAnswer {
				t.Errorf("remote candidate (seq %d) before the answer", e.Seq)
			}
			if e.Seq == got.LastSeq {
				return io.EOF
			}
			return nil
		})
		if !errors.Is(err, io.EOF) || !sawAnswer {
			t.Errorf("Watch = %v, answer seen %v", err, sawAnswer)
		}
	})
}

func TestBadAppMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{})
		s := h.create(t, "carol")
		tests := []struct {
			name   string
			attach bool
			give   sessionmgr.AppMessage
			want   error
		}{
			{"offer before join", false, sessionmgr.AppMessage{Offer: offer}, sessionmgr.ErrNotJoined},
			{"candidate before join", false, sessionmgr.AppMessage{Candidate: &sessionmgr.Candidate{Candidate: "candidate:1"}}, sessionmgr.ErrNotJoined},
			{"malformed offer", true, sessionmgr.AppMessage{Offer: "hello"}, sessionmgr.ErrInvalidArgument},
			{"bad candidate", true, sessionmgr.AppMessage{Candidate: &sessionmgr.Candidate{Candidate: "nonsense"}}, sessionmgr.ErrInvalidArgument},
			{"first offer", true, sessionmgr.AppMessage{Offer: offer}, nil},
			{"second offer in flight", true, sessionmgr.AppMessage{Offer: offer}, sessionmgr.ErrOfferInFlight},
			{"empty message", true, sessionmgr.AppMessage{}, sessionmgr.ErrInvalidArgument},
		}
		for _, tt := range tests {
			if tt.attach {
				if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
			}
			got, err := h.m.Send(t.Context(), s.ID, tt.give)
			if !errors.Is(err, tt.want) {
				t.Errorf("%s: Send error = %v, want %v", tt.name, err, tt.want)
			}
			if got.Terminal() {
				t.Errorf("%s: session %s after a refused message, want it unharmed", tt.name, got.State)
			}
		}
		if _, err := h.m.Send(t.Context(), "aaaaaaaaaaaaaaaaaaaaaaaaaa", sessionmgr.AppMessage{Offer: offer}); !errors.Is(err, sessionmgr.ErrNotFound) {
			t.Errorf("Send to an unknown session = %v, want ErrNotFound", err)
		}
	})
}

func TestResumeGraceClosesClientGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{answerFrom: 1})
		s := h.create(t, "dave")
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		h.m.Detach(t.Context(), s.ID)
		grace := sessionmgr.DefaultOptions().ResumeGrace
		time.Sleep(grace - time.Millisecond) // fake time: just inside the grace
		synctest.Wait()
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatalf("resume inside the grace: %v", err)
		}
		h.m.Detach(t.Context(), s.ID)
		time.Sleep(grace + time.Millisecond)
		synctest.Wait()
		got, err := h.m.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateClosed || got.Close != sessionmgr.CloseClientGone {
			t.Fatalf("session %s/%s after the grace, want CLOSED/CLIENT_GONE", got.State, got.Close)
		}
		if n := h.ids.liveIDs(); n != 0 {
			t.Errorf("%d clientIds leased after CLIENT_GONE, want 0 (released into cooldown)", n)
		}
	})
}

func TestChannelFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{})
		for i := range 10 {
			h.create(t, fmt.Sprintf("v%d", i))
		}
		_, err := h.m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "eleventh"})
		if !errors.Is(err, sessionmgr.ErrChannelFull) {
			t.Fatalf("11th Create = %v, want ErrChannelFull", err)
		}
		if _, err := h.m.Create(t.Context(), sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "other"}, ViewerID: "x"}); err != nil {
			t.Errorf("Create on another channel = %v, want success", err)
		}
	})
}

func TestCreateValidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{})
		tests := []struct {
			name string
			give sessionmgr.CreateParams
			want error
		}{
			{"no channel", sessionmgr.CreateParams{ViewerID: "a"}, sessionmgr.ErrInvalidArgument},
			{"bad arn", sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{ARN: "arn:nope"}, ViewerID: "a"}, sessionmgr.ErrInvalidArgument},
			{"no viewer", sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}}, sessionmgr.ErrInvalidArgument},
			{"control char", sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "a\x00b"}, sessionmgr.ErrInvalidArgument},
			{"timeout too long", sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "cam"}, ViewerID: "a", Options: sessionmgr.Options{AnswerTimeout: time.Hour}}, sessionmgr.ErrInvalidArgument},
			{"missing channel", sessionmgr.CreateParams{Channel: sessionmgr.ChannelRef{Name: "missing"}, ViewerID: "a"}, sessionmgr.ErrChannelNotFound},
		}
		for _, tt := range tests {
			if _, err := h.m.Create(t.Context(), tt.give); !errors.Is(err, tt.want) {
				t.Errorf("%s: Create error = %v, want %v", tt.name, err, tt.want)
			}
		}
	})
}

func TestWatchAfterTheEndReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, &fakeCamera{})
		s := h.create(t, "fay")
		closed, err := h.m.CloseSession(t.Context(), s.ID)
		if err != nil || closed.State != sessionmgr.StateClosed {
			t.Fatalf("CloseSession = %s, %v; want CLOSED", closed.State, err)
		}
		var n int
		if err := h.m.Watch(t.Context(), s.ID, closed.LastSeq, func(sessionmgr.Event) error { n++; return nil }); err != nil {
			t.Fatalf("Watch after the last event = %v, want nil", err)
		}
		if n != 0 {
			t.Errorf("Watch after the last event delivered %d events, want 0", n)
		}
		again, err := h.m.CloseSession(t.Context(), s.ID)
		if err != nil || again.LastSeq != closed.LastSeq {
			t.Errorf("second CloseSession = %+v, %v; want the closed session unchanged", again, err)
		}
	})
}

// A signaling connection lost while CONNECTED is dialled again for an ICE
// restart (same clientId), not replaced by a full reconnect.
func TestICERestartAfterSignalingLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := &fakeCamera{answerFrom: 1, answerICE: true}
		h := newHarness(t, cam)
		s := h.create(t, "gil")
		if _, err := h.m.Attach(t.Context(), s.ID); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		send := func(msg sessionmgr.AppMessage) sessionmgr.Session {
			t.Helper()
			got, err := h.m.Send(t.Context(), s.ID, msg)
			if err != nil {
				t.Fatalf("Send(%+v): %v", msg, err)
			}
			synctest.Wait()
			return got
		}
		send(sessionmgr.AppMessage{Offer: offer})
		send(sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{Peer: sessionmgr.PeerConnected}})
		cam.mu.Lock()
		first := cam.conns[0]
		cam.mu.Unlock()
		_ = first.Close() // KVS drops the socket for good
		synctest.Wait()
		desc := "wifi->lte"
		send(sessionmgr.AppMessage{NetworkChanged: &desc})
		time.Sleep(10 * time.Millisecond) // fake time: the dial pacer's turn comes
		synctest.Wait()
		send(sessionmgr.AppMessage{Offer: "v=0 restart"})
		got, err := h.m.Get(t.Context(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != sessionmgr.StateRecovering {
			t.Errorf("after the restart offer: %s, want RECOVERING until video flows", got.State)
		}
		got = send(sessionmgr.AppMessage{StateReport: &sessionmgr.ConnState{Peer: sessionmgr.PeerConnected}})
		if got.State != sessionmgr.StateRecovering {
			t.Errorf("after a connected report: %s, want RECOVERING until video flows", got.State)
		}
		got = send(sessionmgr.AppMessage{Media: &sessionmgr.MediaReport{PeerConnection: 1, Packets: 40}})
		if got.State != sessionmgr.StateConnected || got.ClientID != "gil" {
			t.Errorf("after recovery: %s with %s, want CONNECTED with the same clientId gil (an ICE restart)", got.State, got.ClientID)
		}
		cam.mu.Lock()
		dials := append([]string(nil), cam.dials...)
		cam.mu.Unlock()
		if len(dials) != 2 || dials[1] != "gil" {
			var kinds []string
			_ = h.m.Watch(t.Context(), s.ID, 0, func(e sessionmgr.Event) error {
				kinds = append(kinds, e.Type.String()+"/"+e.State.String()+":"+e.Message)
				if e.Seq == got.LastSeq {
					return io.EOF
				}
				return nil
			})
			t.Errorf("dials = %v, want the lost connection dialled again with gil; timeline:\n%s", dials, strings.Join(kinds, "\n"))
		}
	})
}
